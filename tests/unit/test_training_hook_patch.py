"""The training_hook patch: with Rasa's training cache off, the hook computes no fingerprints (they
would be thrown away); with the cache on, Rasa's own hook runs and caches as before. The launcher
and `make bench-nlu` train the same way, through ``python -m bot.rasa_patches train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, List

import pytest
from rasa.engine.caching import LocalTrainingCache
from rasa.engine.graph import ExecutionContext, GraphSchema, SchemaNode
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.training.hooks import TrainingHook
from rasa.graph_components.providers.nlu_training_data_provider import NLUTrainingDataProvider
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot import launcher, rasa_patches
from bot.rasa_patches.__main__ import TRAINING_PATCHES


@pytest.fixture
def patched() -> Iterator[None]:
    before = [each.name for each in rasa_patches.patches() if each.applied]
    rasa_patches.install(enabled=True, only=TRAINING_PATCHES)
    yield
    rasa_patches.install(enabled=bool(before), only=before)


def _hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_size: str) -> TrainingHook:
    monkeypatch.setenv("RASA_MAX_CACHE_SIZE", cache_size)
    monkeypatch.setenv("RASA_CACHE_DIRECTORY", str(tmp_path / "cache"))
    schema = GraphSchema({"nlu_data": SchemaNode(needs={}, uses=NLUTrainingDataProvider, constructor_name="create", fn="run", config={})})
    return TrainingHook(LocalTrainingCache(), LocalModelStorage(tmp_path / "storage"), schema)


def _run_node(hook: TrainingHook, tmp_path: Path) -> Any:
    data = TrainingData([Message(data={"text": "我的快递到哪了", "intent": "track_order"})])
    context = ExecutionContext(hook._pruned_schema)
    before = hook.on_before_node("nlu_data", context, {}, {"importer": data})
    hook.on_after_node("nlu_data", context, {}, data, before)
    return before


def _count_fingerprints(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    calls: List[int] = []
    original = TrainingData.fingerprint

    def counted(self: TrainingData) -> str:
        calls.append(1)
        return original(self)

    monkeypatch.setattr(TrainingData, "fingerprint", counted)
    return calls


def test_with_the_cache_off_no_fingerprint_is_computed(patched: None, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_fingerprints(monkeypatch)
    before = _run_node(_hook(tmp_path, monkeypatch, "0"), tmp_path)
    assert before == {} and calls == []


def test_with_the_cache_on_rasa_hook_fingerprints_and_caches(patched: None, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_fingerprints(monkeypatch)
    hook = _hook(tmp_path, monkeypatch, "100")
    before = _run_node(hook, tmp_path)
    assert set(before) == {"fingerprint_key"} and len(calls) == 2  # the input, then the output
    assert hook._cache.get_cached_output_fingerprint(before["fingerprint_key"]) is not None


def test_stock_rasa_fingerprints_even_with_the_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with rasa_patches.stock():
        calls = _count_fingerprints(monkeypatch)
        before = _run_node(_hook(tmp_path, monkeypatch, "0"), tmp_path)
    assert set(before) == {"fingerprint_key"} and len(calls) == 2


def test_the_launcher_trains_with_the_training_patches_and_the_cache_off(tmp_path: Path) -> None:
    command = launcher.train_command(tmp_path, "shop-x")
    assert command[1:4] == ["-m", "bot.rasa_patches", "train"] and "--force" in command
    assert command[command.index("--out") + 1] == str(tmp_path) and command[command.index("--fixed-model-name") + 1] == "shop-x"
    assert launcher.train_environment({"PATH": "/bin"}) == {"PATH": "/bin", "RASA_MAX_CACHE_SIZE": "0"}
