"""Resolve event type names through an index.

Every tracker read from the Redis tracker store (twice a turn: Rasa's fetch, and its save, which
reads the stored tracker back to merge it) turns each stored event into an object with
``Event.resolve_by_type``, which walks the whole tree of ``Event`` subclasses (and asks
``inspect.isabstract`` of each) for every event: 10-12 % of the server's CPU. This patch keeps the
answer per type name, found the same way (first match in the same order), and forgets it whenever
a new ``Event`` subclass is defined (an ``Event.__init_subclass__`` it adds), the only way the
answer can change.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from bot.rasa_patches import ABSENT, RASA_VERSION, Patch

RESOLVE = "rasa.shared.core.events:Event.resolve_by_type"
INIT_SUBCLASS = "rasa.shared.core.events:Event.__init_subclass__"
ALL_SUBCLASSES = "rasa.shared.utils.common:all_subclasses"


class EventTypeIndex:
    """``Event`` classes by type name, found exactly as ``Event.resolve_by_type`` finds them.

    The answer for a name is the first non-abstract subclass of ``Event`` (depth first, in
    definition order) with that ``type_name``; it only changes when a subclass is defined, which
    :meth:`forget` is told about.
    """

    def __init__(self) -> None:
        self._by_name: Optional[Dict[str, Any]] = None

    def forget(self) -> None:
        """Drop the index (a new ``Event`` subclass was defined)."""
        self._by_name = None

    def find(self, type_name: str) -> Optional[Any]:
        """The class Rasa would pick for ``type_name``, or None when no class has that name."""
        by_name = self._by_name
        if by_name is None:
            by_name = self._build()
        return by_name.get(type_name)

    def _build(self) -> Dict[str, Any]:
        from rasa.shared.core.events import Event
        from rasa.shared.utils.common import all_subclasses

        by_name: Dict[str, Any] = {}
        for cls in all_subclasses(Event):
            name = cls.type_name
            if isinstance(name, str):
                by_name.setdefault(name, cls)  # the first match wins, as in Rasa's loop
        self._by_name = by_name
        return by_name


EVENT_TYPES = EventTypeIndex()


def resolve_event_type(type_name: str, default: Optional[Any] = None) -> Optional[Any]:
    """``Event.resolve_by_type`` with the index: same class, same ``None``, same error."""
    found = EVENT_TYPES.find(type_name) if isinstance(type_name, str) else None
    if found is not None:
        return found
    return PATCH.stock(RESOLVE)(type_name, default)  # unknown names: Rasa's own answer or error


def apply(patch: Patch) -> None:
    from rasa.shared.core.events import Event

    def __init_subclass__(cls: Any, **kwargs: Any) -> None:
        super(Event, cls).__init_subclass__(**kwargs)
        EVENT_TYPES.forget()

    patch.replace(Event, "__init_subclass__", classmethod(__init_subclass__))
    patch.replace(Event, "resolve_by_type", staticmethod(resolve_event_type))
    EVENT_TYPES.forget()


PATCH = Patch(
    name="event_types",
    rasa_version=RASA_VERSION,
    targets={
        RESOLVE: "b5cf570fa7f286c7059ec73d8880528d03a78b28cf4e80285a46079c0fa65968",
        ALL_SUBCLASSES: "28c2e6df9c15daea296f630b83d0b2391636581164056082458a32647d6761d1",
        INIT_SUBCLASS: ABSENT,
    },
    apply=apply,
    saves="10-12 % of the Rasa server's CPU (a walk of every Event subclass per stored event)",
)
