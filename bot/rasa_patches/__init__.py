"""Fenced patches to Rasa 3.6's private code, one module per patch, for speed.

Nothing is patched by importing this package (or the channels): the Rasa server's entry point
(``python -m bot.rasa_patches run ...``, what the launcher's ``rasa`` role starts) and the tests
that load Rasa in-process call :func:`install`. ``RASA_SPEEDUPS=0`` (``Settings.rasa_speedups``)
runs stock Rasa: every patch off, the parse cache included. ``docs/speed.md`` says what each patch
does, why, and what it saves.

Conventions of a patch module (every module of this package whose name does not start with ``_``
is one, found by :func:`patches`, applied in the order of their names):

- It defines ``PATCH = Patch(name=..., rasa_version=..., targets=..., apply=...)``.
- ``rasa_version`` is the exact Rasa version the patch was written against (``RASA_VERSION``,
  3.6.21); on any other version the patch is skipped with a warning.
- ``targets`` maps every Rasa object the patch replaces (or whose exact behaviour it reproduces)
  to the sha256 of its ``inspect.getsource`` text (:func:`source_hash`), or to :data:`ABSENT` for
  an attribute the patch adds and Rasa must not define. Names are ``module:Qualified.name``. A
  target whose source differs (Rasa upgraded, or someone else patched it) skips the patch with a
  warning naming the patch, the target and both hashes.
- ``apply(patch)`` makes every change through ``patch.replace(owner, attribute, value)``, so that
  :meth:`Patch.revert` puts back exactly what was there; it reads Rasa's own functions through
  ``patch.stock(target)``, which is the original even while the patch is installed.
- It imports Rasa lazily (inside functions), so importing the package stays cheap.
- Its tests go in ``tests/unit/test_rasa_patches.py`` (the declared hashes, the skipped changed
  target: both run for every patch automatically) and its own equivalence test beside the others.

To update the hashes after an upgrade, check each patch against the new Rasa code, then print the
new values with ``python -m bot.rasa_patches hashes``.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import pkgutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

RASA_VERSION = "3.6.21"
"""The Rasa version every patch of this package was written against."""

ABSENT = "absent"
"""The declared hash of an attribute a patch adds: Rasa must not define it itself."""

_MISSING = object()


def rasa_version() -> str:
    """The installed Rasa's version."""
    from rasa.version import __version__

    return __version__


def resolve(target: str) -> Tuple[Any, str]:
    """The owner (a module or class) and attribute name of ``module:Qualified.name``.

    Raises:
        ImportError, AttributeError: the module or an owner on the way does not exist.
    """
    module_name, _, qualified = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, attribute = qualified.split(".")
    for name in path:
        owner = getattr(owner, name)
    return owner, attribute


def source_hash(obj: Any) -> str:
    """sha256 of ``inspect.getsource(obj)``: what a patch declares for each target."""
    return hashlib.sha256(inspect.getsource(obj).encode("utf-8")).hexdigest()


@dataclass
class Patch:
    """One fenced patch: what it targets, how it is applied, and how it is taken back.

    Attributes:
        name: the patch's module name (short: ``tracker_merge``).
        rasa_version: the exact Rasa version it was written against.
        targets: ``module:Qualified.name`` to the sha256 of its source, or :data:`ABSENT`.
        apply: makes the changes, each through :meth:`replace`.
        saves: one line for logs and docs: what it saves.
    """

    name: str
    rasa_version: str
    targets: Mapping[str, str]
    apply: Callable[[Patch], None]
    saves: str = ""
    _saved: List[Tuple[Any, str, Any]] = field(default_factory=list, repr=False)

    @property
    def applied(self) -> bool:
        return bool(self._saved)

    # -------------------------------------------------------------- used by the patch module
    def replace(self, owner: Any, attribute: str, value: Any) -> None:
        """Set ``owner.attribute`` to ``value``, remembering what the owner itself held."""
        self._saved.append((owner, attribute, vars(owner).get(attribute, _MISSING)))
        setattr(owner, attribute, value)

    def _held(self, owner: Any, attribute: str) -> List[Any]:
        """What the owner itself held before the patch replaced it (empty when it did not)."""
        return [raw for held, name, raw in self._saved if held is owner and name == attribute][:1]

    def stock(self, target: str) -> Any:
        """Rasa's own object for ``target`` (the original while the patch is installed), or _MISSING."""
        owner, attribute = resolve(target)
        saved = self._held(owner, attribute)
        if not saved:
            return getattr(owner, attribute, _MISSING)
        raw = saved[0]  # what the owner held before the patch
        if not isinstance(owner, type):
            return raw
        if raw is _MISSING:  # inherited: the first base that defines it
            raw = next((vars(base)[attribute] for base in owner.__mro__[1:] if attribute in vars(base)), _MISSING)
        return raw.__get__(None, owner) if hasattr(raw, "__get__") else raw

    # -------------------------------------------------------------------------- the fence
    def problem(self) -> Optional[str]:
        """Why the patch must not be applied to the Rasa installed here, or None."""
        installed = rasa_version()
        if installed != self.rasa_version:
            return f"written for Rasa {self.rasa_version}, this is Rasa {installed}"
        for target, declared in self.targets.items():
            try:
                owner, attribute = resolve(target)
            except (ImportError, AttributeError) as error:
                return f"{target} not found ({error})"
            if declared == ABSENT:
                saved = self._held(owner, attribute)
                if (saved[0] is not _MISSING) if saved else attribute in vars(owner):  # what Rasa itself defines
                    return f"{target} is now defined by Rasa"
                continue
            found = self.stock(target)
            if found is _MISSING:
                return f"{target} not found"
            try:
                actual = source_hash(found)
            except (OSError, TypeError) as error:
                return f"{target} has no source to check ({error})"
            if actual != declared:
                return f"{target} changed (source sha256 {actual[:12]}, the patch was written for {declared[:12]})"
        return None

    def install(self) -> Optional[str]:
        """Apply the patch when the fence allows it; returns why it was skipped, or None."""
        if self.applied:
            return None
        why = self.problem()
        if why is not None:
            logger.warning("rasa patch %s skipped: %s", self.name, why)
            return why
        try:
            self.apply(self)
        except BaseException:
            self.revert()
            raise
        return None

    def revert(self) -> None:
        """Put back what the patch replaced (no-op when it is not applied)."""
        while self._saved:
            owner, attribute, raw = self._saved.pop()
            if raw is _MISSING:
                if attribute in vars(owner):
                    delattr(owner, attribute)
            else:
                setattr(owner, attribute, raw)


# ------------------------------------------------------------------------------ the package
_patches: Optional[List[Patch]] = None


def patches() -> List[Patch]:
    """Every patch of the package, in the order of their module names."""
    global _patches
    if _patches is None:
        names = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
        _patches = [importlib.import_module(f"{__name__}.{name}").PATCH for name in names]
    return _patches


def patch(name: str) -> Patch:
    """The patch called ``name``.

    Raises:
        KeyError: there is none.
    """
    for candidate in patches():
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def install(enabled: Optional[bool] = None, only: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """Apply the patches the fence allows, or none at all (idempotent).

    Args:
        enabled: False runs stock Rasa (every patch reverted); None reads ``RASA_SPEEDUPS``.
        only: the names of the patches to apply (default: all).

    Returns:
        Per patch: ``installed``, ``off``, or ``skipped: <why>``.
    """
    if enabled is None:
        from bot.settings import load_settings

        enabled = load_settings().rasa_speedups
    status: Dict[str, str] = {}
    for each in patches():
        if not enabled or (only is not None and each.name not in only):
            each.revert()
            status[each.name] = "off"
            continue
        why = each.install()
        status[each.name] = "installed" if why is None else f"skipped: {why}"
    logger.info("rasa patches (RASA_SPEEDUPS=%d): %s", int(enabled),
                ", ".join(f"{name} {state.split(':')[0]}" for name, state in status.items()))
    return status


def uninstall() -> None:
    """Revert every patch: stock Rasa."""
    for each in reversed(patches()):
        each.revert()


@contextmanager
def stock() -> Iterator[None]:
    """Stock Rasa inside the block (every patch reverted), the installed patches back after it."""
    applied = [each for each in patches() if each.applied]
    for each in reversed(applied):
        each.revert()
    try:
        yield
    finally:
        for each in applied:
            each.install()
