"""The fleet test's clients: shoppers on the app channel, agents on the desk API, each request kept.

A request whose answer says it was not taken (500, 502, 503, 504: a load balancer with no server
left, a service without Redis) or that never got an answer (refused connection, connection cut,
timeout) is sent again, the same body with the same ids, after 0.2, 0.4, 0.8 and then 1 s, at most
``attempts`` times. Every try is kept with its time (:class:`Request`), so the runner can say how
long clients met errors after a fault and compare what was acknowledged with what the services
stored.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import aiohttp

from bot.identity import identity_token_for

RETRY_STATUSES = (500, 502, 503, 504)
"""Answers that mean the request was not taken."""
PAUSES_S = (0.2, 0.4, 0.8, 1.0)
CUT_OFF = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError, asyncio.TimeoutError)
"""Errors after the request was sent: the server may have taken it (the retry carries the same ids)."""


@dataclass
class Try:
    """One try of a request: when it ended, what it met, whether it failed."""

    at: float
    outcome: str
    failed: bool


@dataclass
class Request:
    """One request as the client saw it, over all its tries.

    Attributes:
        kind: what it is (``shopper``, ``agent``, ``handoff``, ``claim`` ...).
        key: what identifies it in the counts (``<sender>|<text>``).
        tries: every try.
        status: the final answer's status (0: given up).
        body: the final answer's body.
        acknowledged: the final answer is one of the request's success statuses.
        started: when it was first sent (monotonic seconds).
    """

    kind: str
    key: str
    started: float = field(default_factory=time.monotonic)
    tries: List[Try] = field(default_factory=list)
    status: int = 0
    body: Any = None
    acknowledged: bool = False

    @property
    def given_up(self) -> bool:
        return self.status == 0

    @property
    def seconds(self) -> float:
        """From the first try's start to the last try's end."""
        return self.tries[-1].at - self.started if self.tries else 0.0


@dataclass
class Ledger:
    """Every request of a check."""

    requests: List[Request] = field(default_factory=list)

    def of(self, kind: str) -> List[Request]:
        return [request for request in self.requests if request.kind == kind]

    def failed_tries(self, start: float = 0.0, end: float = float("inf"), kinds: Optional[Sequence[str]] = None) -> List[Try]:
        """Failed tries that ended between ``start`` and ``end`` (monotonic seconds)."""
        return [t for r in self.requests if kinds is None or r.kind in kinds for t in r.tries if t.failed and start <= t.at <= end]

    def summary(self, kind: str) -> Dict[str, Any]:
        """Sent, acknowledged, given up, retries and what the failed tries met, for one kind."""
        requests = self.of(kind)
        met = Counter(t.outcome for r in requests for t in r.tries if t.failed)
        return {
            "sent": len(requests),
            "acknowledged": sum(r.acknowledged for r in requests),
            "given_up": sum(r.given_up for r in requests),
            "other_answers": dict(Counter(r.status for r in requests if not r.acknowledged and not r.given_up)),
            "retries": sum(max(0, len(r.tries) - 1) for r in requests),
            "failed_tries": dict(met),
            "over_10_s": sum(r.seconds > 10 for r in requests),
        }


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")[:200]


async def call(session: aiohttp.ClientSession, ledger: Ledger, kind: str, key: str, method: str, url: str, *,
               body: Any = None, headers: Optional[Dict[str, str]] = None, ok: Tuple[int, ...] = (200,), attempts: int = 40) -> Request:
    """Send one request, retried as the module describes; returns it with every try."""
    request = Request(kind, key)
    ledger.requests.append(request)
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(PAUSES_S[min(attempt - 1, len(PAUSES_S) - 1)])
        try:
            async with session.request(method, url, json=body, headers=headers) as response:
                status, answer = response.status, _decode(await response.read())
        except aiohttp.ClientConnectorError:
            request.tries.append(Try(time.monotonic(), "no connection", True))
            continue
        except CUT_OFF as error:
            request.tries.append(Try(time.monotonic(), f"cut off ({type(error).__name__})", True))
            continue
        retry = status in RETRY_STATUSES
        request.tries.append(Try(time.monotonic(), str(status), retry))
        if not retry:
            request.status, request.body, request.acknowledged = status, answer, status in ok
            return request
    return request


@dataclass
class Shopper:
    """A signed-in shopper's conversation on the app channel."""

    sender: str
    customer: str
    sent: int = 0


async def say(session: aiohttp.ClientSession, ledger: Ledger, app_url: str, secret: str, shopper: Shopper, text: str,
              kind: str = "shopper", attempts: int = 40) -> Request:
    """A shopper's message, retried with the same ``message_id``; 200 (the bot's answer) and 202 (kept for the agent) count as taken."""
    shopper.sent += 1
    body = {"sender": shopper.sender, "message": text, "message_id": f"{shopper.sender}.{shopper.sent}",
            "metadata": {"identity_token": identity_token_for(secret, shopper.customer)}}
    return await call(session, ledger, kind, f"{shopper.sender}|{text}", "POST", f"{app_url}/webhook", body=body, ok=(200, 202),
                      attempts=attempts)


@dataclass
class Agent:
    """An agent signed in at the desk (through the load balancer)."""

    username: str
    password: str
    token: str = ""

    def headers(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def login(session: aiohttp.ClientSession, ledger: Ledger, desk_url: str, agent: Agent) -> None:
    """Sign the agent in (retried like every request).

    Raises:
        RuntimeError: the desk refused the login.
    """
    done = await call(session, ledger, "login", agent.username, "POST", f"{desk_url}/api/login",
                      body={"username": agent.username, "password": agent.password})
    if not done.acknowledged:
        raise RuntimeError(f"desk login of {agent.username} failed: {done.status} {done.body}")
    agent.token = done.body["token"]
