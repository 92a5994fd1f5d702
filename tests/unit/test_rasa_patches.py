"""The fence of bot.rasa_patches: every patch's declared Rasa version and source hashes are the
installed Rasa's (an upgrade fails here, not silently in production), a patch whose target changed
is skipped with a warning that names it, RASA_SPEEDUPS=0 is stock Rasa, and a reverted patch puts
back exactly what Rasa had."""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from bot import rasa_patches
from bot.rasa_patches import ABSENT, RASA_VERSION, Patch, resolve, source_hash

PATCHES = rasa_patches.patches()
TARGETS: List[Tuple[Patch, str]] = [(each, target) for each in PATCHES for target in each.targets]


def target_id(case: Any) -> str:
    return case.name if isinstance(case, Patch) else case.split(":")[-1]


@pytest.fixture(autouse=True)
def patches_kept() -> Iterator[None]:
    """Each test leaves the process's patches as it found them."""
    before = [each.name for each in PATCHES if each.applied]
    yield
    rasa_patches.install(enabled=bool(before), only=before)


def test_the_package_holds_every_patch_of_the_server() -> None:
    assert {each.name for each in PATCHES} >= {"action_validation", "event_types", "graph_plans", "model_load",
                                               "parse_cache", "rule_matches", "slot_copy", "tracker_merge"}
    assert rasa_patches.rasa_version() == RASA_VERSION


@pytest.mark.parametrize("patch", PATCHES, ids=target_id)
def test_each_patch_is_written_for_the_installed_rasa(patch: Patch) -> None:
    assert patch.rasa_version == rasa_patches.rasa_version()
    assert patch.targets and patch.saves
    assert patch.problem() is None


@pytest.mark.parametrize(("patch", "target"), TARGETS, ids=target_id)
def test_each_declared_hash_is_the_installed_rasa_source(patch: Patch, target: str) -> None:
    declared = patch.targets[target]
    owner, attribute = resolve(target)
    if declared == ABSENT:  # the patch adds it: Rasa does not define it
        assert attribute not in vars(owner) or (patch.applied and patch.stock(target) is not vars(owner)[attribute])
        return
    assert source_hash(patch.stock(target)) == declared, f"{target} changed: check {patch.name} against the new Rasa code"


def changed(*args: Any, **kwargs: Any) -> Any:
    """A target as a newer Rasa could have it."""
    raise AssertionError("the changed target must not be called by the patch's check")


class ChangedClass:
    """A class target as a newer Rasa could have it."""


def stand_in(owner: Any, attribute: str) -> Any:
    """Something in the place of ``owner.attribute`` with another source, of the same kind."""
    if not isinstance(owner, type):
        return ChangedClass if isinstance(getattr(owner, attribute), type) else changed
    raw = next((vars(base)[attribute] for base in owner.__mro__ if attribute in vars(base)), None)
    return type(raw)(changed) if isinstance(raw, staticmethod | classmethod) else changed


@pytest.mark.parametrize(("patch", "target"), TARGETS, ids=target_id)
def test_a_patch_whose_target_changed_is_skipped_with_a_warning(patch: Patch, target: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    owner, attribute = resolve(target)
    with rasa_patches.stock(), pytest.MonkeyPatch.context() as monkeypatch:
        replacement = stand_in(owner, attribute) if patch.targets[target] != ABSENT else changed
        monkeypatch.setattr(owner, attribute, replacement, raising=False)
        with caplog.at_level(logging.WARNING, logger="bot.rasa_patches"):
            status = rasa_patches.install(enabled=True, only=[patch.name])
        assert status[patch.name].startswith("skipped: ") and target in status[patch.name]
        assert not patch.applied
        assert vars(owner)[attribute] is replacement  # left as found
        warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
        assert any(f"rasa patch {patch.name} skipped" in line and target in line for line in warnings), warnings


def test_a_patch_for_another_rasa_version_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    with rasa_patches.stock():
        monkeypatch.setattr(rasa_patches, "rasa_version", lambda: "3.6.22")
        with caplog.at_level(logging.WARNING, logger="bot.rasa_patches"):
            status = rasa_patches.install(enabled=True)
        monkeypatch.undo()
        assert set(status) == {each.name for each in PATCHES}
        assert all(state == "skipped: written for Rasa 3.6.21, this is Rasa 3.6.22" for state in status.values())
        assert not any(each.applied for each in PATCHES)
        assert {f"rasa patch {each.name} skipped: written for Rasa 3.6.21, this is Rasa 3.6.22" for each in PATCHES} \
            <= {record.getMessage() for record in caplog.records}


def test_rasa_speedups_0_runs_stock_rasa(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(rasa_patches.install(enabled=True).values()) == {"installed"}
    monkeypatch.setenv("RASA_SPEEDUPS", "0")
    status = rasa_patches.install()
    assert set(status.values()) == {"off"}
    for each, target in TARGETS:
        owner, attribute = resolve(target)
        if each.targets[target] == ABSENT:
            assert attribute not in vars(owner)
        else:
            assert source_hash(getattr(owner, attribute)) == each.targets[target]  # Rasa's own code in place
    monkeypatch.setenv("RASA_SPEEDUPS", "1")
    assert set(rasa_patches.install().values()) == {"installed"}


def test_install_and_revert_put_back_exactly_what_rasa_had() -> None:
    with rasa_patches.stock():
        before: Dict[str, Any] = {target: vars(resolve(target)[0]).get(resolve(target)[1], ABSENT) for _, target in TARGETS}
        assert set(rasa_patches.install(enabled=True).values()) == {"installed"}
        replaced = [target for each, target in TARGETS
                    if vars(resolve(target)[0]).get(resolve(target)[1], ABSENT) is not before[target]]
        assert len(replaced) >= len(PATCHES)  # every patch changed something of Rasa's
        assert rasa_patches.install(enabled=True) == {each.name: "installed" for each in PATCHES}  # idempotent
        rasa_patches.uninstall()
        after = {target: vars(resolve(target)[0]).get(resolve(target)[1], ABSENT) for _, target in TARGETS}
        assert after == before and all(after[target] is before[target] for target in before)


# ------------------------------------------------------------ the fence on a target of our own
class FakeRasa:
    """Stands for a Rasa class."""

    def method(self) -> str:
        return "stock"

    @staticmethod
    def helper() -> str:
        return "stock helper"


class FakeRasaChild(FakeRasa):
    """Inherits ``method``: a patch on it must leave the parent's in place."""


FAKE = f"{__name__}:FakeRasaChild.method"
FAKE_HELPER = f"{__name__}:FakeRasa.helper"
FAKE_ADDED = f"{__name__}:FakeRasa.added"


def fake_patch(method_hash: str) -> Patch:
    def apply(patch: Patch) -> None:
        stock_method = patch.stock(FAKE)
        patch.replace(FakeRasaChild, "method", lambda self: f"patched {stock_method(self)}")
        patch.replace(FakeRasa, "helper", staticmethod(lambda: f"patched {patch.stock(FAKE_HELPER)()}"))
        patch.replace(FakeRasa, "added", True)

    return Patch(name="fake", rasa_version=RASA_VERSION, apply=apply, saves="nothing",
                 targets={FAKE: method_hash, FAKE_HELPER: source_hash(FakeRasa.helper), FAKE_ADDED: ABSENT})


def test_a_fake_target_is_patched_and_reverted_when_unchanged() -> None:
    patch = fake_patch(source_hash(FakeRasa.method))
    assert patch.install() is None and patch.applied
    assert FakeRasaChild().method() == "patched stock" and FakeRasa().method() == "stock"
    assert FakeRasa.helper() == "patched stock helper" and FakeRasa.added is True  # type: ignore[attr-defined]
    assert source_hash(patch.stock(FAKE)) == source_hash(FakeRasa.method)  # the stock source while installed
    patch.revert()
    assert not patch.applied and "method" not in vars(FakeRasaChild) and not hasattr(FakeRasa, "added")
    assert FakeRasaChild().method() == "stock" and FakeRasa.helper() == "stock helper"
    assert isinstance(vars(FakeRasa)["helper"], staticmethod)


def test_a_changed_fake_target_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    patch = fake_patch("0" * 64)  # the source it was written for is not the one here
    with caplog.at_level(logging.WARNING, logger="bot.rasa_patches"):
        why = patch.install()
    assert why is not None and why.startswith(f"{FAKE} changed (source sha256 {source_hash(FakeRasa.method)[:12]}")
    assert not patch.applied and FakeRasaChild().method() == "stock" and not hasattr(FakeRasa, "added")
    assert [record.getMessage() for record in caplog.records] == [f"rasa patch fake skipped: {why}"]
    FakeRasa.added = 1  # type: ignore[attr-defined]
    try:
        assert fake_patch(source_hash(FakeRasa.method)).problem() == f"{FAKE_ADDED} is now defined by Rasa"
    finally:
        del FakeRasa.added  # type: ignore[attr-defined]


def test_a_patch_that_fails_half_way_is_taken_back() -> None:
    def apply(patch: Patch) -> None:
        patch.replace(FakeRasaChild, "method", lambda self: "half")
        raise RuntimeError("broken patch")

    broken = Patch(name="broken", rasa_version=RASA_VERSION, apply=apply, targets={FAKE: source_hash(FakeRasa.method)})
    with pytest.raises(RuntimeError, match="broken patch"):
        broken.install()
    assert not broken.applied and "method" not in vars(FakeRasaChild)
