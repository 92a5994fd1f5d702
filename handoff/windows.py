"""Callback windows with a capacity: a full window offers the next one.

:func:`candidate_windows` is pure: the successive windows :func:`handoff.policy.callback_window`
gives from a moment, each starting where the previous ended (inside opening hours).
:func:`book_window` takes a place in the first of them with room, atomically in Redis (one Lua
script checks and adds), so concurrent bookings never put more than ``callback.capacity_per_window``
tickets (``handoff/service.yml``) in one window. It looks up to :data:`HORIZON_DAYS` ahead and
answers None when no window opens or every one is full. A ticket id books once: booking it again
answers the window it already has.

Every callback is booked here: the bot's offer (:mod:`actions.handoff`), waiting handoffs turned
into callbacks (:func:`handoff.callbacks.queued_to_callbacks`), the recovery of an offline
agent's conversations (:mod:`handoff.recovery`) and the agent workspace's action
(:mod:`desk.workspace`); each tells the shopper the window booked and gives the place back
(:func:`release`) when its ticket is not created after all.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import List, Optional, Tuple

from handoff import keys
from handoff.context import HandoffContext
from handoff.conversation import script
from handoff.policy import ServicePolicy, callback_window

Window = Tuple[datetime, datetime]

LOOKAHEAD = 48
"""How many successive windows one booking step tries (two days of hourly windows); the next step goes on from the last."""

HORIZON_DAYS = 21
"""How far ahead a window may lie (what :func:`handoff.policy.callback_window` looks through)."""

WINDOW_TTL_S = (HORIZON_DAYS + 1) * 86400
"""How long a window's bookings are kept (the windows lie at most three weeks ahead)."""

BOOK = """
-- KEYS[1]: the ticket's booking ('start end' of the window it holds); KEYS[2..]: one set per
-- candidate window, in order. ARGV: ticket id, capacity (0: none), ttl s, then 'start end' of each window.
local held = redis.call('GET', KEYS[1])
if held then return {'held', held} end
for index = 2, #KEYS do
  if tonumber(ARGV[2]) == 0 or redis.call('SCARD', KEYS[index]) < tonumber(ARGV[2]) then
    redis.call('SADD', KEYS[index], ARGV[1])
    redis.call('EXPIRE', KEYS[index], ARGV[3])
    redis.call('SET', KEYS[1], ARGV[index + 2], 'EX', ARGV[3])
    return {'booked', ARGV[index + 2]}
  end
end
return {'full', ''}
"""

RELEASE = """
-- KEYS: the ticket's booking, the window's set. ARGV: ticket id
redis.call('DEL', KEYS[1])
return redis.call('SREM', KEYS[2], ARGV[1])
"""


def candidate_windows(policy: ServicePolicy, moment: datetime, tz: tzinfo, count: int = LOOKAHEAD) -> List[Window]:
    """The first ``count`` callback windows from ``moment``: the earliest, then each next one after the previous ends."""
    found: List[Window] = []
    window = callback_window(policy, moment, tz)
    lead = timedelta(minutes=policy.callback_lead_minutes)
    while window is not None and len(found) < count:
        found.append(window)
        window = callback_window(policy, window[1] - lead, tz)
    return found


def first_with_room(windows: List[Window], booked: List[int], capacity: int) -> Optional[int]:
    """The index of the first window with room given how many each holds (what :data:`BOOK` does in Redis)."""
    for index, (_, count) in enumerate(zip(windows, booked, strict=False)):
        if capacity == 0 or count < capacity:
            return index
    return None


def window_key(start: datetime) -> str:
    """The set of tickets booked in the window starting at ``start`` (:func:`handoff.keys.callback_window`)."""
    return keys.callback_window(int(start.timestamp()))


booking_key = keys.callback_booking


def _span(window: Window) -> str:
    return f"{window[0].timestamp()!r} {window[1].timestamp()!r}"


def _window(span: str, tz: tzinfo) -> Window:
    start, end = (datetime.fromtimestamp(float(part), tz) for part in span.split())
    return start, end


async def book_window(ctx: HandoffContext, callback_id: str, moment: Optional[datetime] = None) -> Optional[Window]:
    """Book a place for a ticket in the first window with room within :data:`HORIZON_DAYS`.

    Returns:
        The window booked (the one the ticket already holds when booked before), None when no
        window opens or every one is full.
    """
    moment = moment or ctx.local(ctx.now())
    horizon = moment + timedelta(days=HORIZON_DAYS)
    lead = timedelta(minutes=ctx.policy.callback_lead_minutes)
    step = [w for w in candidate_windows(ctx.policy, moment, ctx.tz) if w[0] < horizon]
    while step:
        status, span = (str(part) for part in await script(ctx.redis, BOOK)(
            keys=[booking_key(callback_id), *(window_key(start) for start, _ in step)],
            args=[callback_id, ctx.policy.callback_capacity, WINDOW_TTL_S, *(_span(w) for w in step)]))
        if status != "full":
            return _window(span, ctx.tz)
        step = [w for w in candidate_windows(ctx.policy, step[-1][1] - lead, ctx.tz) if w[0] < horizon and w[0] > step[-1][0]]
    return None


async def booked(ctx: HandoffContext, window: Window) -> int:
    """How many tickets a window holds."""
    return int(await ctx.redis.scard(window_key(window[0])))


async def release(ctx: HandoffContext, callback_id: str, window: Window) -> None:
    """Give back a ticket's place (its ticket was not created after all)."""
    await script(ctx.redis, RELEASE)(keys=[booking_key(callback_id), window_key(window[0])], args=[callback_id])
