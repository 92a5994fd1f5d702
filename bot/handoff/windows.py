"""Callback windows with a capacity: a full window offers the next one.

:func:`candidate_windows` is pure: the successive windows :func:`bot.handoff.policy.callback_window`
gives from a moment, each starting where the previous ended (inside opening hours).
:func:`book_window` takes a place in the first of them with room, atomically in Redis (one Lua
script checks and adds), so concurrent bookings never put more than ``callback.capacity_per_window``
tickets (``desk/policy/service.yml``) in one window. A ticket id books once: booking it again
answers the window it already has.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import List, Optional, Tuple

from bot.handoff.context import HandoffContext
from bot.handoff.conversation import script
from bot.handoff.policy import ServicePolicy, callback_window

Window = Tuple[datetime, datetime]

LOOKAHEAD = 48
"""How many successive windows are tried before giving up (two days of hourly windows)."""

WINDOW_TTL_S = 21 * 86400
"""How long a window's bookings are kept (the windows lie at most three weeks ahead)."""

BOOK = """
-- KEYS: one set per candidate window, in order. ARGV: ticket id, capacity (0: none), ttl s
for index, key in ipairs(KEYS) do
  if redis.call('SISMEMBER', key, ARGV[1]) == 1 then return index end
end
for index, key in ipairs(KEYS) do
  if tonumber(ARGV[2]) == 0 or redis.call('SCARD', key) < tonumber(ARGV[2]) then
    redis.call('SADD', key, ARGV[1])
    redis.call('EXPIRE', key, ARGV[3])
    return index
  end
end
return 0
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
    """The set of tickets booked in the window starting at ``start``."""
    return f"handoff:callback:window:{int(start.timestamp())}"


async def book_window(ctx: HandoffContext, callback_id: str, moment: Optional[datetime] = None) -> Optional[Window]:
    """Book a place for a ticket in the first window with room; None when none has room or none opens."""
    windows = candidate_windows(ctx.policy, moment or ctx.local(ctx.now()), ctx.tz)
    if not windows:
        return None
    index = int(await script(ctx.redis, BOOK)(keys=[window_key(start) for start, _ in windows],
                                              args=[callback_id, ctx.policy.callback_capacity, WINDOW_TTL_S]))
    return windows[index - 1] if index else None


async def booked(ctx: HandoffContext, window: Window) -> int:
    """How many tickets a window holds."""
    return int(await ctx.redis.scard(window_key(window[0])))


async def release(ctx: HandoffContext, callback_id: str, window: Window) -> None:
    """Give back a ticket's place (its ticket was not created after all)."""
    await ctx.redis.srem(window_key(window[0]), callback_id)
