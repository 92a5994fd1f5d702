"""The app channel under fuzz: a real Sanic server (``AppInput`` over a real Redis, a stub in place of
Rasa's ``on_new_message``), raw HTTP requests, and the checks of every answer.

Each check returns the broken promises it saw (empty: none) and counts into a :class:`Tally`, so
pytest asserts on them and ``python -m bench.fuzz`` counts them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import redis
from hypothesis import strategies as st
from sanic import Sanic

from bot.settings import load_settings
from connectors.common import MESSAGES, SENDER_PATTERN, check_text
from connectors.payloads import neutralised
from handoff import keys as handoff_keys
from handoff import texts as handoff_texts
from tests.connectors.conftest import ServedApp, StubBot
from tests.fuzz import strategies
from tests.fuzz.strategies import SECRET
from tests.support.desk import write_policy

REQUEST_TIMEOUT_S = 15.0
"""An answer slower than this counts as a hang (the channel's own waits are shorter for one request at a time)."""

WATCHED_LOGGERS = ("sanic", "asyncio", "connectors", "bot", "engineio", "socketio", "rasa")
"""Loggers whose ERROR records mean an exception the product did not expect (Redis is up, the stub answers)."""


@dataclass
class Tally:
    """What one campaign tried and saw.

    Attributes:
        target: what was fuzzed.
        inputs: inputs tried (requests, events, texts).
        statuses: answers by HTTP status (or event name).
        accepted: messages the channel took (answered by the bot, or kept for the agent).
        delivered: accepted messages found exactly once where they belong (the bot's calls, the
            handoff's transcript) with the bot's reply back to the client.
        server_errors: 5xx answers.
        exceptions: exceptions raised (pure functions) or logged at ERROR by the server.
        lost: accepted messages that reached neither the bot nor the agent.
        duplicated: messages that reached the bot (or the agent) more than once, or were refused and passed on anyway.
        hangs: requests without an answer in time.
        framework: requests Sanic itself refused or dropped before any route saw them (a target that is
            no URL, a header over its size limit): not the product's code, counted apart.
        other: any other broken promise (answer format, span outside the text, ...).
        examples: the first few problems, with their input.
    """

    target: str
    inputs: int = 0
    statuses: Counter = field(default_factory=Counter)
    accepted: int = 0
    delivered: int = 0
    server_errors: int = 0
    exceptions: int = 0
    lost: int = 0
    duplicated: int = 0
    hangs: int = 0
    framework: int = 0
    other: int = 0
    examples: List[str] = field(default_factory=list)

    def record(self, kind: str, problem: str, given: Any) -> str:
        """Count one problem of ``kind`` (an attribute name) and keep its description."""
        setattr(self, kind, getattr(self, kind) + 1)
        text = f"{problem} <- {given!r}"[:1500]
        if len(self.examples) < 20:
            self.examples.append(text)
        return text


class ErrorLog(logging.Handler):
    """Collects the ERROR records of :data:`WATCHED_LOGGERS` (with their tracebacks) while installed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: List[str] = []
        self._lock_records = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] not in WATCHED_LOGGERS:
            return
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        with self._lock_records:
            self.records.append(text)

    def take(self) -> List[str]:
        """The records since the last call."""
        with self._lock_records:
            taken, self.records = self.records, []
        return taken

    @contextlib.contextmanager
    def installed(self) -> Iterator[ErrorLog]:
        """Attach to the root logger (and let ERROR records of the watched loggers through)."""
        root = logging.getLogger()
        root.addHandler(self)
        levels = {name: logging.getLogger(name).level for name in WATCHED_LOGGERS}
        for name in WATCHED_LOGGERS:
            if logging.getLogger(name).getEffectiveLevel() > logging.ERROR:
                logging.getLogger(name).setLevel(logging.ERROR)
        try:
            yield self
        finally:
            root.removeHandler(self)
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


@dataclass
class Reply:
    """One HTTP answer as read off the socket (``status`` 0: none in time)."""

    status: int
    headers: Dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return json.loads(self.body)


def raw_request(port: int, method: bytes, target: bytes, headers: List[Tuple[bytes, bytes]], body: bytes = b"",
                timeout_s: float = REQUEST_TIMEOUT_S) -> Reply:
    """Send one HTTP/1.1 request byte for byte (any bytes in the target, headers and body) and read the answer."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body or method == b"POST":
        lines.append(b"Content-Length: " + str(len(body)).encode())
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body
    chunks = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(data)
            sock.settimeout(timeout_s)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except TimeoutError:
        return Reply(0, {}, b"")
    except ConnectionResetError:
        pass  # the server closed on a request it refused: whatever came before counts
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
    answer_headers = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        answer_headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return Reply(status, answer_headers, rest)


SANIC_DROP = "protocol.connection_task uncaught"
"""What Sanic 21.12 logs when it closes a connection whose request target httptools cannot parse as a URL
(a raw control byte or invalid UTF-8 in the path): it fails again building the error page and answers nothing."""


def framework_refusal(reply: Reply) -> bool:
    """Whether Sanic itself refused the request before any route saw it (a header over its size limit, a
    malformed request line): its own plain-text error page, never the channel's JSON."""
    return reply.headers.get("content-type", "").startswith("text/") and "⚠️".encode() in reply.body[:16]


@dataclass
class Step:
    """One request of a fuzzed conversation.

    Attributes:
        body: a JSON body (a dict, encoded when sent) or raw bytes.
        ascii_only: encode the JSON body with ``\\u`` escapes (else raw UTF-8, lone surrogates as invalid bytes).
        headers: extra headers, as bytes.
        follow: send it as the previous answer's conversation (its id as ``sender``, its token as header).
    """

    body: Any
    ascii_only: bool = True
    headers: List[Tuple[bytes, bytes]] = field(default_factory=list)
    follow: bool = False


class AppChannelUnderFuzz:
    """The ``app`` channel served on a free port over ``redis_url``, always open to human handoffs.

    Args:
        redis_url: the Redis the channel uses (up: a 503 counts as a server error).
        tally: where the checks count.
    """

    def __init__(self, redis_url: str, tally: Optional[Tally] = None) -> None:
        self.redis_url = redis_url
        self.tally = tally or Tally("app channel")
        self.errors = ErrorLog()
        self._stack = contextlib.ExitStack()
        self.bot = StubBot("reply")
        self.served: Optional[ServedApp] = None
        self.sync = redis.Redis.from_url(redis_url, decode_responses=True)

    def __enter__(self) -> AppChannelUnderFuzz:
        from connectors.app import AppInput

        Sanic.test_mode = True
        folder = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="fuzz-app-")))
        policy = write_policy(folder / "service.yml")
        settings = load_settings({"HANDOFF_POLICY_FILE": str(policy)})
        channel = AppInput(redis_url=self.redis_url, identity_secret=SECRET, settings=settings,
                           action_server_url="http://127.0.0.1:9")
        app = Sanic(f"fuzz_app_channel_{id(self)}")
        app.blueprint(channel.blueprint(self.bot.handler()), url_prefix="/webhooks/app")
        self._stack.enter_context(self.errors.installed())
        self.served = self._stack.enter_context(ServedApp(app))
        return self

    def __exit__(self, *_: Any) -> None:
        self._stack.close()
        self.sync.close()

    @property
    def port(self) -> int:
        assert self.served is not None
        return self.served.port

    # -- checks ---------------------------------------------------------------------------------

    def _common(self, reply: Reply, given: Any, routed: bool = True) -> List[str]:
        """What holds of every answer: in time, no 5xx, no ERROR logged, JSON error bodies for refusals."""
        problems = []
        self.tally.inputs += 1
        self.tally.statuses[reply.status] += 1
        records = self.errors.take()
        if reply.status == -1 and records and all(SANIC_DROP in record for record in records):
            self.tally.framework += 1  # Sanic's parser took the target for no URL and closed the connection
            return []
        for record in records:
            problems.append(self.tally.record("exceptions", f"logged: {record}", given))
        if reply.status == 0:
            return [*problems, self.tally.record("hangs", f"no answer within {REQUEST_TIMEOUT_S:.0f} s", given)]
        if reply.status >= 500 or reply.status < 100:
            problems.append(self.tally.record("server_errors", f"HTTP {reply.status}: {reply.body[:300]!r}", given))
        elif 400 <= reply.status < 500 and framework_refusal(reply):
            self.tally.framework += 1
        elif 400 <= reply.status < 500 and routed:
            try:
                code = reply.json()["error"]["code"]
                if code not in MESSAGES:
                    problems.append(self.tally.record("other", f"HTTP {reply.status} with unknown error code {code!r}", given))
            except (ValueError, KeyError, TypeError):
                problems.append(self.tally.record("other", f"HTTP {reply.status} without a JSON error: {reply.body[:200]!r}", given))
        return problems

    def _transcript_tail(self, sender: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
        """The handoff that has ``sender`` and the id of its transcript's last entry (none for what is no
        conversation id: the channel refuses it, and Redis could not take a lone surrogate)."""
        if not sender or SENDER_PATTERN.fullmatch(sender) is None:
            return None, None
        handoff_id = self.sync.get(handoff_keys.active(sender))
        if not handoff_id:
            return None, None
        last = self.sync.xrevrange(handoff_keys.transcript(handoff_id), count=1)
        return handoff_id, last[0][0] if last else None

    def post(self, step: Step, sender: Optional[str], token: Optional[str]) -> Tuple[Reply, List[str]]:
        """Send one webhook request, check the answer and where the message went."""
        body = step.body
        headers = list(step.headers)
        if isinstance(body, dict):
            if step.follow and sender is not None:
                body = {**body, "sender": sender}
                if token is not None:
                    headers = [(name, value) for name, value in headers if name.lower() != b"x-conversation-token"]
                    headers.append((b"X-Conversation-Token", token.encode()))
            raw = json.dumps(body, ensure_ascii=step.ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")
        else:
            raw = body
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            parsed = None
        expected = None
        if isinstance(parsed, dict):
            expected, refusal = check_text(parsed.get("message"))
            if refusal is not None:
                expected = None
            target_sender = parsed.get("sender") if isinstance(parsed.get("sender"), str) else None
        else:
            target_sender = None
        handoff_before, last_entry = self._transcript_tail(target_sender)
        calls_before = len(self.bot.calls)
        reply = raw_request(self.port, b"POST", b"/webhooks/app/webhook", headers, raw)
        given = {"body": raw[:400], "headers": headers}
        problems = self._common(reply, given)
        passed_on = self.bot.calls[calls_before:]
        if reply.status == 200 and not problems:
            problems += self._check_answered(reply, passed_on, expected, given)
        elif reply.status == 202 and not problems:
            problems += self._check_kept(reply, passed_on, expected, handoff_before, last_entry, given)
        elif passed_on:
            problems.append(self.tally.record("duplicated", f"refused with HTTP {reply.status} yet passed to the bot", given))
        return reply, problems

    def _check_answered(self, reply: Reply, passed_on: List[Any], expected: Optional[str], given: Any) -> List[str]:
        conversation = reply.headers.get("x-conversation-id")
        try:
            answer = reply.json()
        except ValueError:
            return [self.tally.record("other", "HTTP 200 without JSON", given)]
        if isinstance(answer, list) and len(answer) == 1 and answer[0].get("text") == handoff_texts.cancelled():
            return [] if not passed_on else [self.tally.record("duplicated", "left the queue yet passed to the bot", given)]
        self.tally.accepted += 1
        if len(passed_on) != 1:
            kind = "lost" if not passed_on else "duplicated"
            return [self.tally.record(kind, f"HTTP 200 but the bot got the message {len(passed_on)} times", given)]
        message = passed_on[0]
        if expected is None or message.text not in (expected, neutralised(expected)) or message.sender_id != conversation:
            return [self.tally.record("other", f"the bot got {message.text!r} of {message.sender_id!r}, not {expected!r} of {conversation!r}",
                                      given)]
        if not (isinstance(answer, list) and answer and answer[0].get("text") == f"收到：{message.text}"):
            return [self.tally.record("lost", f"the bot's replies did not come back: {answer!r}", given)]
        self.tally.delivered += 1
        return []

    def _check_kept(self, reply: Reply, passed_on: List[Any], expected: Optional[str], handoff_before: Optional[str],
                    last_entry: Optional[str], given: Any) -> List[str]:
        self.tally.accepted += 1
        if passed_on:
            return [self.tally.record("duplicated", "kept for the agent and passed to the bot", given)]
        try:
            handoff_id = reply.json()["handoff_id"]
        except (ValueError, KeyError, TypeError):
            return [self.tally.record("other", f"HTTP 202 without a handoff: {reply.body[:200]!r}", given)]
        if handoff_id != handoff_before:
            last_entry = None  # joined a handoff of another conversation of the customer
        entries = self.sync.xrange(handoff_keys.transcript(handoff_id), min=f"({last_entry}" if last_entry else "-")
        shopper = [fields.get("text") for _, fields in entries if fields.get("from") == "shopper"]
        if not shopper or shopper[-1] != expected:
            return [self.tally.record("lost", f"HTTP 202 but the transcript ends with {shopper[-1:]!r}, not {expected!r}", given)]
        if last_entry and len(shopper) != 1:
            return [self.tally.record("duplicated", f"HTTP 202 and {len(shopper)} transcript entries", given)]
        self.tally.delivered += 1
        return []

    def conversation(self, steps: List[Step]) -> List[str]:
        """Send the steps in order, each follow-up as the conversation the previous answer named."""
        problems: List[str] = []
        sender: Optional[str] = None
        token: Optional[str] = None
        for step in steps:
            reply, found = self.post(step, sender, token)
            problems += found
            if 200 <= reply.status < 300:
                sender = reply.headers.get("x-conversation-id", sender)
                token = reply.headers.get("x-conversation-token", token)
        return problems

    def fetch(self, segment: bytes, query: bytes, headers: List[Tuple[bytes, bytes]], known: bool = False) -> List[str]:
        """``GET /webhooks/app/messages/<segment>?<query>``; with ``known``, as a conversation that exists
        (made by a first message) with its own token."""
        if known:
            sender = f"fz-known-{time.monotonic_ns()}"
            first = self.post(Step({"sender": sender, "message": "你好"}), None, None)[0]
            token = first.headers.get("x-conversation-token", "")
            segment = sender.encode()
            headers = [*headers, (b"X-Conversation-Token", token.encode())]
        target = b"/webhooks/app/messages/" + segment + (b"?" + query if query else b"")
        calls_before = len(self.bot.calls)
        reply = raw_request(self.port, b"GET", target, headers)
        given = {"target": target, "headers": headers}
        routed = reply.status != 404 or reply.headers.get("content-type", "").startswith("application/json")
        problems = self._common(reply, given, routed=routed and b"/" not in segment)
        if len(self.bot.calls) != calls_before:
            problems.append(self.tally.record("duplicated", "reading messages passed something to the bot", given))
        if reply.status == 200 and not problems:
            try:
                answer = reply.json()
                assert isinstance(answer["messages"], list) and isinstance(answer["cursor"], str)
            except (ValueError, KeyError, TypeError, AssertionError):
                problems.append(self.tally.record("other", f"HTTP 200 without messages and cursor: {reply.body[:200]!r}", given))
        return problems

    def other_request(self, method: bytes, target: bytes, headers: List[Tuple[bytes, bytes]], body: bytes) -> List[str]:
        """Any method and target on the server: no 5xx, no exception, nothing passed to the bot."""
        calls_before = len(self.bot.calls)
        reply = raw_request(self.port, method, target, headers, body)
        given = {"method": method, "target": target, "headers": headers, "body": body[:200]}
        problems = self._common(reply, given, routed=False)
        if method != b"POST" and len(self.bot.calls) != calls_before:
            problems.append(self.tally.record("duplicated", "a request other than a webhook POST reached the bot", given))
        return problems


HUMAN_REQUESTS = ("转人工", "人工客服", "我要人工", "转人工！！", "取消人工", "不排了", "好的谢谢", "/order_status", "/handoff")
"""Messages that open, use or leave a human handoff (so follow-ups are kept for the agent, 202)."""


def handoff_bodies() -> st.SearchStrategy[Dict[str, Any]]:
    """Well-formed webhook bodies whose message asks for (or leaves) a human, anonymous or signed."""
    return st.fixed_dictionaries({"message": st.sampled_from(HUMAN_REQUESTS)}, optional={"metadata": strategies.metadata()})


def steps(deep: bool = True) -> st.SearchStrategy[Step]:
    """One webhook request: a JSON body (either encoding) or raw bytes, junk headers, maybe a follow-up."""
    return st.builds(Step, body=st.one_of(strategies.webhook_bodies(), handoff_bodies(), strategies.raw_bodies(deep)),
                     ascii_only=st.booleans(), headers=strategies.headers(), follow=st.booleans())


def conversations(deep: bool = True) -> st.SearchStrategy[List[Step]]:
    """One to four requests, the later ones often as the conversation the first one opened (``deep``: see
    :func:`tests.fuzz.strategies.raw_bodies`)."""
    return st.lists(steps(deep), min_size=1, max_size=4)


def fetches() -> st.SearchStrategy[Tuple[bytes, bytes, List[Tuple[bytes, bytes]], bool]]:
    """Arguments of :meth:`AppChannelUnderFuzz.fetch`."""
    return st.tuples(strategies.path_segments(), strategies.query_strings(), strategies.headers(), st.booleans())


def other_requests(deep: bool = True) -> st.SearchStrategy[Tuple[bytes, bytes, List[Tuple[bytes, bytes]], bytes]]:
    """Arguments of :meth:`AppChannelUnderFuzz.other_request`: any method on the channel's routes and beside them."""
    targets = st.one_of(
        st.sampled_from([b"/webhooks/app/", b"/webhooks/app", b"/webhooks/app/webhook", b"/webhooks/app/webhook/", b"/webhooks/app/messages/",
                         b"/webhooks/app/messages", b"/webhooks/app/messages/a/b", b"/webhooks/app/webhook?x=%zz", b"/%ff", b"/webhooks/app/%00",
                         b"*", b"//webhooks/app/webhook", b"/webhooks/app/../app/webhook", b"/webhooks/app/webhook#x"]),
        strategies.path_segments().map(lambda segment: b"/webhooks/app/" + segment),
    )
    methods = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD", b"TRACE", b"FOO"])
    return st.tuples(methods, targets, strategies.headers(), st.one_of(st.just(b""), strategies.raw_bodies(deep)))
