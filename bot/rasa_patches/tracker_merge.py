"""Merge trackers in the Redis tracker store with an index of the merged events.

Saving a tracker, Rasa's Redis tracker store reads the stored one back and merges the two. Our
trackers start with the ``session_started_metadata`` slot before ``action_session_start``, so the
tracker Rasa fetched (the last session) never equals the stored one and every save takes the slow
merge: for each event of the turn's tracker, ``as_dict()`` of every event already merged
(quadratic in the length of the conversation). This patch merges the same events in the same
order, but looks events up in an index of those dicts (by event type and timestamp, which equal
dicts always share, each candidate then compared with ``==`` as Rasa does), so the stored tracker
is the same byte for byte.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Dict, Iterable, List, Tuple

from bot.rasa_patches import RASA_VERSION, Patch

TARGET = "rasa.core.tracker_store:RedisTrackerStore._merge_trackers"


def event_dict_key(as_dict: Dict[str, Any]) -> Tuple[Any, Any]:
    """A hashable key that two equal (``==``) event dicts always share: their type and timestamp.

    Raises:
        TypeError: the type or timestamp is unhashable.
    """
    key = (as_dict.get("event"), as_dict.get("timestamp"))
    hash(key)
    return key


class EventDictIndex:
    """The ``as_dict()`` of events, looked up by :func:`event_dict_key` and confirmed with ``==``."""

    def __init__(self) -> None:
        self._buckets: Dict[Any, List[Dict[str, Any]]] = {}

    def add(self, events: Iterable[Any]) -> None:
        """Index events (their dicts as they are now)."""
        for event in events:
            as_dict = event.as_dict()
            self._buckets.setdefault(event_dict_key(as_dict), []).append(as_dict)

    def __contains__(self, as_dict: Dict[str, Any]) -> bool:
        return any(as_dict == known for known in self._buckets.get(event_dict_key(as_dict), ()))


def stock_merge_trackers(prior_tracker: Any, tracker: Any) -> Any:
    """Rasa's own ``RedisTrackerStore._merge_trackers``, whether or not the patch is installed."""
    return PATCH.stock(TARGET)(prior_tracker, tracker)


def merge_trackers(prior_tracker: Any, tracker: Any) -> Any:
    """``RedisTrackerStore._merge_trackers`` with the events looked up in an index.

    Args:
        prior_tracker: the tracker stored in Redis (every session).
        tracker: the tracker to save.

    Returns:
        The tracker Rasa would save: ``tracker`` when it extends the stored one, else the stored
        events followed by the events of ``tracker`` whose ``as_dict()`` none of the merged
        events has, in order.
    """
    if not prior_tracker.events:
        return tracker
    past_tracker = tracker.travel_back_in_time(target_time=prior_tracker.events[-1].timestamp)
    if past_tracker.events == prior_tracker.events:
        return tracker
    merged = tracker.init_copy()
    merged.update_with_events(list(prior_tracker.events), override_timestamp=False, domain=None)
    try:
        known = EventDictIndex()
        known.add(merged.events)
        for new_event in tracker.events:
            if new_event.as_dict() not in known:
                before = len(merged.events)
                merged.update(new_event)
                known.add(islice(merged.events, before, None))
    except TypeError:  # an event dict with a value of unknown kind: Rasa's own way
        return stock_merge_trackers(prior_tracker, tracker)
    return merged


def apply(patch: Patch) -> None:
    from rasa.core.tracker_store import RedisTrackerStore

    patch.replace(RedisTrackerStore, "_merge_trackers", staticmethod(merge_trackers))


PATCH = Patch(
    name="tracker_merge",
    rasa_version=RASA_VERSION,
    targets={TARGET: "44586eba3e62239d15c70daaa62a99ed32f64a3964e9618ea39ea4fc9b8b6329"},
    apply=apply,
    saves="a merge quadratic in the conversation's length on every save",
)
