"""Copy Rasa's slots without Python's generic reduction.

Every tracker Rasa builds (reading one, and again per policy and prediction to replay the
conversation into states) copies each of the domain's slots with ``copy.copy``, whose generic
path (``__reduce_ex__``, ``copyreg.__newobj__``, ``copy._reconstruct``) is about a tenth of the
server's CPU. For a slot class with nothing custom about copying (no slot names, state or reduce
hooks, no ``copyreg`` entry: every Rasa slot type) that path amounts to a new instance of the same
class with the same attribute dict copied over; this patch gives ``Slot`` a ``__copy__`` that does
just that, and takes the generic path for any other slot class. Its targets are the whole
``Slot`` class (whose copying it reproduces) and the absence of Rasa's own ``Slot.__copy__``.
"""

from __future__ import annotations

import copy
import copyreg
from functools import cache
from typing import Any

from bot.rasa_patches import ABSENT, RASA_VERSION, Patch

SLOT = "rasa.shared.core.slots:Slot"
COPY = "rasa.shared.core.slots:Slot.__copy__"

_COPY_HOOKS = ("__getstate__", "__setstate__", "__getnewargs__", "__getnewargs_ex__")


@cache
def copies_as_plain_object(cls: Any) -> bool:
    """Whether ``copy.copy`` of an instance of ``cls`` is a new instance with the same attribute dict.

    True when nothing of the class changes Python's default reduction: no ``copyreg`` entry,
    ``__reduce_ex__`` and ``__reduce__`` of ``object``, no slot names (``abc.ABC``'s empty
    ``__slots__`` add none), no state or new-arguments hooks (``object.__getstate__`` of Python
    3.11 keeps the default).
    """
    if cls in copyreg.dispatch_table:
        return False
    if cls.__reduce_ex__ is not object.__reduce_ex__ or cls.__reduce__ is not object.__reduce__:
        return False
    if copyreg._slotnames(cls):  # type: ignore[attr-defined]  # what the reduction itself consults
        return False
    default_getstate = getattr(object, "__getstate__", None)
    return all(getattr(cls, hook, None) in (None, default_getstate) for hook in _COPY_HOOKS)


def copy_slot(slot: Any) -> Any:
    """``copy.copy(slot)``, without the generic reduction for plain slot classes."""
    cls: Any = type(slot)
    if copies_as_plain_object(cls):
        copied = cls.__new__(cls)
        copied.__dict__.update(slot.__dict__)
        return copied
    reductor = copyreg.dispatch_table.get(cls)  # copy.copy's own way, past the __copy__ lookup
    reduced = reductor(slot) if reductor is not None else slot.__reduce_ex__(4)
    if isinstance(reduced, str):
        return slot
    return copy._reconstruct(slot, None, *reduced)  # type: ignore[attr-defined]


def apply(patch: Patch) -> None:
    from rasa.shared.core.slots import Slot

    patch.replace(Slot, "__copy__", copy_slot)


PATCH = Patch(
    name="slot_copy",
    rasa_version=RASA_VERSION,
    targets={SLOT: "0a694d68aef367326f0d4714f862136245b05509efc5b037ab8c60fb3341e47e", COPY: ABSENT},
    apply=apply,
    saves="about a tenth of the Rasa server's CPU (copy.copy of every slot of every tracker)",
)
