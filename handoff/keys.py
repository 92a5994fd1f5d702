"""Names of every Redis key and channel of the human handoff, and the syntax of its ids.

All keys live in the Redis that holds the tracker store (``REDIS_URL``). Scripts build
``handoff:transcript:<id>`` from an id they read, so the handoff needs a single Redis server (not
a cluster).
"""

from __future__ import annotations

import re
import uuid

REQUESTS_STREAM = "handoff:requests"
"""Stream of handoff requests written by the bot; the desk reads it with a consumer group."""

DEAD_REQUESTS_STREAM = "handoff:requests:dead"
"""Handoff requests the desk's intake could not take in (kept for an operator)."""

CONSUMER_GROUP = "desk"
"""Consumer group of the desk instances on :data:`REQUESTS_STREAM`."""

QUEUE = "handoff:queue"
"""Sorted set of waiting handoff ids, scored by :func:`handoff.policy.priority_score`."""

EVENTS_CHANNEL = "handoff:events"
"""Pub/sub channel of live events (JSON) that the desk forwards to agents' websockets."""

CALLBACKS_OPEN = "handoff:callbacks:open"
"""Sorted set of open callback ticket ids by due time."""

CALLBACKS_DONE = "handoff:callbacks:done"
"""Sorted set of completed callback ticket ids by completion time."""

AGENTS = "desk:agents"
"""Set of agent usernames that have ever logged in (for presence and capacity lookups)."""

RECENT_WAITS = "handoff:stats:recent_wait_s"
RECENT_HANDLES = "handoff:stats:recent_handle_s"
RECENT_FIRST_RESPONSES = "handoff:stats:recent_first_response_s"
RECENT_LIMIT = 500
"""Recent waiting, handling and first-response times kept for ETAs and percentiles."""

LEADER_LOCK = "desk:leader"
"""Lock held by the one desk instance that runs the periodic tasks."""

HANDOFF_ID = re.compile(r"^h[0-9a-f]{24}$")
CALLBACK_ID = re.compile(r"^c[0-9a-f]{24}$")
SENDER = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
"""Syntax of a conversation id (the same as the app channel's)."""


def new_handoff_id() -> str:
    """A fresh handoff id: ``h`` and 24 hex digits."""
    return "h" + uuid.uuid4().hex[:24]


def new_callback_id() -> str:
    """A fresh callback ticket id: ``c`` and 24 hex digits."""
    return "c" + uuid.uuid4().hex[:24]


def is_handoff_id(value: object) -> bool:
    """Whether a value is a handoff id."""
    return isinstance(value, str) and HANDOFF_ID.fullmatch(value) is not None


def record(handoff_id: str) -> str:
    """Hash of one handoff: who, why, status, agent, times, summary."""
    return f"handoff:{handoff_id}"


def active(sender: str) -> str:
    """The handoff id that has the conversation (queued or with an agent); absent when the bot has it."""
    return f"handoff:active:{sender}"


def latest(sender: str) -> str:
    """The conversation's most recent handoff id (kept after it ends)."""
    return f"handoff:latest:{sender}"


def history(sender: str) -> str:
    """List of a conversation's handoff ids, oldest first."""
    return f"handoff:history:{sender}"


def transcript(handoff_id: str) -> str:
    """Stream of the messages exchanged during a handoff, in order."""
    return f"handoff:transcript:{handoff_id}"


TRANSCRIPT_PREFIX = "handoff:transcript:"


def reply_ids(handoff_id: str) -> str:
    """Hash of the client ids of a handoff's agent replies → ``<transcript entry>|<outbox cursor>`` (each written once)."""
    return f"handoff:reply_ids:{handoff_id}"


CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
"""Syntax of the id a desk client gives a reply so that retrying it never sends it twice."""


def notes(handoff_id: str) -> str:
    """List of agents' internal notes on a handoff (never shown to the shopper)."""
    return f"handoff:notes:{handoff_id}"


def agent_load(agent: str) -> str:
    """Set of handoff ids an agent has now."""
    return f"desk:agent:{agent}:active"


def presence(agent: str) -> str:
    """Key that exists while an agent's console sends heartbeats."""
    return f"desk:agent:{agent}:presence"


def presence_until(agent: str) -> str:
    """When an agent's presence ends or ended: the last heartbeat's expiry, or the logout (kept after it)."""
    return f"desk:agent:{agent}:presence_until"


PRESENCE_MEMORY_S = 30 * 24 * 3600
"""How long :func:`presence_until` is kept after the last heartbeat."""


def last_agent(customer_key: str) -> str:
    """The agent who last handled a shopper (sticky routing)."""
    return f"handoff:last_agent:{customer_key}"


def dedicated_agent(customer_id: str) -> str:
    """Hash of a verified customer's dedicated agent: ``agent``, ``agent_name``, ``since``, ``set_by``
    (``first_service`` or the supervisor who chose them); kept until a supervisor changes it."""
    return f"handoff:dedicated_agent:{customer_id}"


DEDICATED_PREFIX = "handoff:dedicated_agent:"


def by_customer(customer_id: str) -> str:
    """Key holding the conversation of a verified customer's latest handoff, for other channels to join."""
    return f"handoff:by_customer:{customer_id}"


def customer_handoffs(customer_id: str) -> str:
    """List of a verified customer's handoff ids on every channel, oldest first (the desk's workspace)."""
    return f"handoff:customer_handoffs:{customer_id}"


def workspace_done(idempotency_key: str) -> str:
    """What a desk workspace action with this idempotency key made in the CRM (a return's id), for retries."""
    return f"desk:workspace:done:{idempotency_key}"


def mirrors(sender: str) -> str:
    """Set of the customer's other conversations that joined the handoff of ``sender``."""
    return f"handoff:mirrors:{sender}"


def rating_pending(sender: str) -> str:
    """The handoff a conversation's next rating belongs to."""
    return f"handoff:rating_pending:{sender}"


def callback(callback_id: str) -> str:
    """Hash of one callback ticket."""
    return f"handoff:callback:{callback_id}"


def day_stats(day: str) -> str:
    """Hash of one day's counters (``YYYY-MM-DD`` in shop time)."""
    return f"handoff:stats:day:{day}"


def session(token: str) -> str:
    """A desk login session: the agent's username."""
    return f"desk:session:{token}"


def login_failures(username: str) -> str:
    """Counter of recent failed logins of one username."""
    return f"desk:login_failures:{username}"


def login_attempts(username: str, client: str) -> str:
    """Counter of recent login attempts of one username from one client address (or IPv6 network).

    The address comes first: it never holds a ``|``, so no username can make another pair's key.
    """
    return f"desk:login_attempts:{client}|{username}"


def login_attempts_client(client: str) -> str:
    """Counter of recent login attempts from one client address, whatever the username."""
    return f"desk:login_attempts_client:{client}"


def login_attempts_user(username: str) -> str:
    """Counter of recent login attempts of one username from every client address together."""
    return f"desk:login_attempts_user:{username}"


def customer_key(customer_id: str | None, sender: str) -> str:
    """Whom sticky routing remembers: the verified customer, else the conversation."""
    return f"customer:{customer_id}" if customer_id else f"conversation:{sender}"


# Callback tickets' windows and lookups (handoff/callbacks.py, handoff/windows.py).

def callback_by_sender(sender: str) -> str:
    """The conversation's latest callback ticket id (a hint: the ticket itself says whether it is open and whose)."""
    return f"handoff:callback:by_sender:{sender}"


def callback_window(start_epoch_s: int) -> str:
    """The set of callback tickets booked in the window starting at ``start_epoch_s``."""
    return f"handoff:callback:window:{start_epoch_s}"


def callback_booking(callback_id: str) -> str:
    """The window a callback ticket holds (``start end`` in epoch seconds)."""
    return f"handoff:callback:booking:{callback_id}"


# Carrier-urge tickets (handoff/carrier_urges.py).

CARRIER_URGES_WAITING = "handoff:carrier_urges:waiting"
"""Sorted set of tickets still waiting for the carrier's answer, by the time to poll the CRM next."""
CARRIER_URGES_OPEN = "handoff:carrier_urges:open"
"""Sorted set of tickets not yet settled (waiting or overdue), by due time."""
CARRIER_URGES_DONE = "handoff:carrier_urges:done"
"""Sorted set of settled tickets (answered by the carrier or by an agent), by the time they were."""


def carrier_urge(ticket_id: str) -> str:
    """Hash of one carrier-urge ticket."""
    return f"handoff:carrier_urge:{ticket_id}"


# Supervisor reviews (handoff/reviews.py).

REVIEWS_OPEN = "handoff:reviews:open"
"""Sorted set of open review ids by due time."""
REVIEWS_DONE = "handoff:reviews:done"
"""Sorted set of closed review ids by closing time."""


def review(review_id: str) -> str:
    """Hash of one review item."""
    return f"handoff:review:{review_id}"
