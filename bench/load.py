"""Closed-loop load generator: N simulated shoppers over one pooled aiohttp session.

Every shopper sends its next message as soon as the previous reply arrives (no think time), so the
figures are the most the server sustains at that concurrency. A run is bounded three ways: shoppers
start no request after the end of the measured window, every request has a timeout, and the whole
run has a request budget. Only loopback URLs (``127.0.0.1``) are accepted.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Sequence
from urllib.parse import urlparse

import aiohttp

LOOPBACK = "127.0.0.1"
DEFAULT_REQUEST_TIMEOUT_S = 30.0
DEFAULT_MAX_REQUESTS = 200_000


@dataclass(frozen=True)
class Turn:
    """One message a shopper sends.

    Attributes:
        kind: what the message asks for (``greet``, ``track``, ...); used to group latencies.
        body: the JSON body of the POST.
        action: True when the reply is expected to come from a custom action.
    """

    kind: str
    body: Dict[str, Any]
    action: bool = False


class Script(Protocol):
    """What a simulated shopper says: one conversation (with a fresh sender id) at a time."""

    def conversation(self, rng: random.Random) -> List[Turn]:
        """The turns of the shopper's next conversation."""


@dataclass
class Sample:
    """The outcome of one request."""

    kind: str
    action: bool
    started: float
    latency_s: float
    status: int
    replies: int
    error: Optional[str] = None
    reply_text: str = ""

    @property
    def finished(self) -> float:
        return self.started + self.latency_s

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class LoadResult:
    """Every sample of a run and the measured window (monotonic clock)."""

    concurrency: int
    window_start: float
    window_end: float
    samples: List[Sample]
    probes: Dict[str, Dict[str, float]] = field(default_factory=dict)
    budget_exhausted: bool = False

    @property
    def window_s(self) -> float:
        return self.window_end - self.window_start

    def measured(self, predicate: Optional[Callable[[Sample], bool]] = None) -> List[Sample]:
        """Samples that finished inside the measured window (warm-up and stragglers excluded)."""
        return [
            s for s in self.samples
            if self.window_start <= s.finished <= self.window_end and (predicate is None or predicate(s))
        ]


def percentile(sorted_values: Sequence[float], q: float) -> Optional[float]:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    if not sorted_values:
        return None
    rank = (len(sorted_values) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def summarize(samples: Sequence[Sample], window_s: float) -> Dict[str, Any]:
    """Throughput, latency percentiles (successful requests only, in ms) and errors of samples."""
    ok = [s for s in samples if s.ok]
    latencies = sorted(s.latency_s * 1000.0 for s in ok)
    errors: Dict[str, int] = {}
    for s in samples:
        if s.error:
            errors[s.error] = errors.get(s.error, 0) + 1
    replies = sum(s.replies for s in ok)

    def rounded(value: Optional[float]) -> Optional[float]:
        return None if value is None else round(value, 2)

    return {
        "requests": len(samples),
        "ok": len(ok),
        "errors": len(samples) - len(ok),
        "error_kinds": errors,
        "empty_replies": sum(1 for s in ok if s.replies == 0),
        "replies": replies,
        "window_s": round(window_s, 3),
        "requests_per_s": round(len(ok) / window_s, 2) if window_s > 0 else 0.0,
        "replies_per_s": round(replies / window_s, 2) if window_s > 0 else 0.0,
        "p50_ms": rounded(percentile(latencies, 50)),
        "p95_ms": rounded(percentile(latencies, 95)),
        "p99_ms": rounded(percentile(latencies, 99)),
        "mean_ms": rounded(sum(latencies) / len(latencies)) if latencies else None,
        "max_ms": rounded(latencies[-1]) if latencies else None,
    }


def require_loopback(url: str) -> str:
    """The URL itself; refuses anything that is not http://127.0.0.1."""
    parsed = urlparse(url)
    if parsed.scheme != "http" or parsed.hostname != LOOPBACK:
        raise ValueError(f"the load generator only talks to http://{LOOPBACK}, not {url}")
    return url


def _reply_text(body: Any) -> str:
    if isinstance(body, list):
        return "\n".join(str(m.get("text", "")) for m in body if isinstance(m, dict))
    return ""


class LoadGenerator:
    """One pooled ``aiohttp.ClientSession`` for setup requests and any number of load runs.

    Args:
        max_connections: size of the connection pool (at least the highest concurrency).
        request_timeout_s: total time allowed to one request.
        max_requests: request budget of one run.
    """

    def __init__(self, max_connections: int, request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
                 max_requests: int = DEFAULT_MAX_REQUESTS) -> None:
        self.max_connections = max(1, max_connections)
        self.request_timeout_s = request_timeout_s
        self.max_requests = max_requests
        self._session: Optional[aiohttp.ClientSession] = None

    async def __aenter__(self) -> LoadGenerator:
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections,
                                         keepalive_timeout=30)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.request_timeout_s),
            json_serialize=lambda obj: json.dumps(obj, ensure_ascii=False),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the LoadGenerator inside 'async with'")
        return self._session

    async def get_json(self, url: str, headers: Optional[Dict[str, str]] = None) -> Any:
        """GET a JSON resource (setup requests, not measured); raises on a non-200 status."""
        async with self.session.get(require_loopback(url), headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"GET {url} answered {response.status}: {(await response.text())[:200]}")
            return await response.json(content_type=None)

    async def post_json(self, url: str, body: Any) -> Any:
        """POST a JSON body (setup and warm-up, not measured); returns (status, decoded body)."""
        async with self.session.post(require_loopback(url), json=body) as response:
            return response.status, await response.json(content_type=None)

    async def run(
        self,
        url: str,
        scripts: Sequence[Script],
        warmup_s: float,
        duration_s: float,
        seed: int = 7,
        probe: Optional[Callable[[], Dict[str, float]]] = None,
        on_progress: Optional[Callable[[str], None]] = None,
    ) -> LoadResult:
        """Drive ``url`` with one task per script for ``warmup_s + duration_s`` seconds.

        Args:
            url: the webhook to POST to.
            scripts: one per simulated shopper (their number is the concurrency).
            warmup_s: time before the measured window (samples finishing then are discarded).
            duration_s: length of the measured window.
            seed: base of each shopper's random generator, for repeatable message sequences.
            probe: called at the start and the end of the window (e.g. CPU counters).
            on_progress: receives a one-line status every few seconds.
        """
        require_loopback(url)
        session = self.session
        loop_start = time.monotonic()
        window_start = loop_start + warmup_s
        window_end = window_start + duration_s
        samples: List[Sample] = []
        budget = [self.max_requests]
        result = LoadResult(len(scripts), window_start, window_end, samples)

        async def send(turn: Turn) -> None:
            started = time.monotonic()
            status, replies, error, text = 0, 0, None, ""
            try:
                async with session.post(url, json=turn.body) as response:
                    status = response.status
                    raw = await response.read()
                if status >= 400:
                    error = f"http {status}"
                else:
                    body = json.loads(raw) if raw else None
                    if isinstance(body, list):
                        replies = len(body)
                        text = _reply_text(body)
            except asyncio.TimeoutError:
                error = "timeout"
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                error = type(exc).__name__
            samples.append(Sample(turn.kind, turn.action, started, time.monotonic() - started, status, replies, error,
                                  text if turn.action else ""))

        async def shopper(index: int, script: Script) -> None:
            rng = random.Random(seed * 100_003 + index)
            while True:
                for turn in script.conversation(rng):
                    if time.monotonic() >= window_end:
                        return
                    if budget[0] <= 0:
                        result.budget_exhausted = True
                        return
                    budget[0] -= 1
                    await send(turn)

        async def probes() -> None:
            if probe is None:
                return
            await asyncio.sleep(max(0.0, window_start - time.monotonic()))
            result.probes["start"] = probe()
            await asyncio.sleep(max(0.0, window_end - time.monotonic()))
            result.probes["end"] = probe()

        async def progress() -> None:
            if on_progress is None:
                return
            while time.monotonic() < window_end:
                await asyncio.sleep(5.0)
                now = time.monotonic()
                phase = "warm-up" if now < window_start else f"{min(now, window_end) - window_start:4.0f}/{duration_s:.0f} s"
                recent = [s for s in samples if s.finished >= now - 5.0]
                errors = sum(1 for s in recent if not s.ok)
                on_progress(f"  {phase}: {len(recent) / 5.0:6.1f} req/s over the last 5 s, {errors} errors")

        tasks = [asyncio.create_task(shopper(i, s)) for i, s in enumerate(scripts)]
        helpers = [asyncio.create_task(probes()), asyncio.create_task(progress())]
        hard_limit = warmup_s + duration_s + self.request_timeout_s + 5.0
        try:
            done, pending = await asyncio.wait(tasks, timeout=hard_limit)
            for task in pending:
                task.cancel()
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks + helpers:
                task.cancel()
            await asyncio.gather(*tasks, *helpers, return_exceptions=True)
        if result.budget_exhausted and samples:
            result.window_end = min(window_end, max(s.finished for s in samples))
        if probe is not None and "end" not in result.probes:
            result.probes.setdefault("start", probe())
            result.probes["end"] = probe()
        return result


def kinds(samples: Iterable[Sample]) -> Dict[str, int]:
    """How many samples of each kind."""
    counts: Dict[str, int] = {}
    for s in samples:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    return counts
