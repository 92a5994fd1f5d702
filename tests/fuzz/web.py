"""The web channel under fuzz: ``WebInput`` mounted as Rasa mounts it on a real Sanic server over a real
Redis, a stub in place of Rasa, python-socketio clients sending junk events and raw packets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, List, Optional, Tuple

import aiohttp
import redis
import socketio
from hypothesis import strategies as st
from rasa.core.channels.channel import register
from sanic import Sanic

from bot.settings import load_settings
from connectors.binding import turn_key
from connectors.common import MESSAGES, check_text
from connectors.payloads import neutralised
from handoff import keys as handoff_keys
from tests.connectors.conftest import ServedApp, StubBot
from tests.fuzz import strategies
from tests.fuzz.channels import HUMAN_REQUESTS, ErrorLog, Tally
from tests.fuzz.strategies import SECRET
from tests.support.desk import write_policy

WAIT_S = 10.0
"""Longest wait for the end of an answer; longer counts as a hang."""

RAW_SILENCE_S = 0.3
"""How long a raw packet that asked for nothing is given before the next event goes."""

EVENTS = ("session_request", "user_uttered", "user_uttered", "bot_uttered", "session_confirm", "message", "turn_done", "error", "会话", "")


@dataclass
class Event:
    """One thing a fuzzed client does.

    Attributes:
        name: the socket.io event (or ``raw`` for a raw socket.io packet in ``payload``).
        payload: the event's arguments (a tuple: several), or the raw packet text.
    """

    name: str
    payload: Any


def events() -> st.SearchStrategy[Event]:
    """Events the widget sends, with junk payloads, well-formed messages (mostly in the socket's own
    session, so most are accepted and looked for), and raw socket.io packets."""
    well_formed = st.builds(lambda text, session: {"message": text, **({"session_id": session} if session else {})},
                            st.one_of(st.sampled_from(HUMAN_REQUESTS), strategies.shopper_texts(300)),
                            st.one_of(st.none(), st.none(), strategies.sender_ids()))
    payloads = st.one_of(strategies.socket_payloads(), well_formed, st.tuples(strategies.json_values(3), strategies.json_values(3)), st.just(()))
    raw = st.one_of(
        st.sampled_from(['2["user_uttered",', '2["user_uttered"]', '2[]', "2", "2{}", '2["user_uttered",{"message":"hi"}]x', '2/nsp,["a"]',
                         '21["user_uttered",{"message":"你好"}]', '5-["user_uttered",{"_placeholder":true,"num":9}]', "4", "9", "",
                         '2["user_uttered",' + "[" * 5000 + "]" * 5000 + "]", '2["user_uttered",{"message":"\\ud800"}]', "0", "1", "3",
                         "2" + json.dumps(["user_uttered", {"message": "好" * 2001}], ensure_ascii=False)]),
        st.text(strategies.any_character, max_size=40).map(lambda text: "2" + text),
    ).map(lambda text: text.encode("utf-8", "replace").decode("utf-8"))  # a websocket text frame is UTF-8: no lone surrogates
    junk = st.one_of(
        st.builds(Event, st.sampled_from(EVENTS), payloads),
        st.builds(Event, st.text(strategies.any_character, max_size=12).filter(lambda name: name not in ("connect", "disconnect")), payloads),
        st.builds(Event, st.just("raw"), raw),
    )
    return either(st.builds(Event, st.just("user_uttered"), well_formed), junk, 0.4)


def either(first: st.SearchStrategy[Any], second: st.SearchStrategy[Any], odds: float) -> st.SearchStrategy[Any]:
    """A draw of ``first`` in about ``odds`` of the examples, else of ``second`` (``one_of`` leans on its first branches)."""
    return st.tuples(st.floats(0, 1), first, second).map(lambda drawn: drawn[1] if drawn[0] < odds else drawn[2])


def sessions() -> st.SearchStrategy[List[Event]]:
    """One connection's events, usually opening with a session request."""
    opening = st.builds(Event, st.just("session_request"), either(st.just({}), strategies.socket_payloads(), 0.6))
    return st.tuples(either(opening, events(), 0.8), st.lists(events(), max_size=4)).map(lambda pair: [pair[0], *pair[1]])


def recording_client() -> Tuple[socketio.AsyncClient, asyncio.Queue]:
    """A socket.io client (no reconnection) and the queue of every event it receives, as ``(name, payload)``."""
    client = socketio.AsyncClient(reconnection=False)
    received: asyncio.Queue[Tuple[str, Any]] = asyncio.Queue()

    @client.on("*")
    async def record(event: str, *args: Any) -> None:
        received.put_nowait((event, args[0] if len(args) == 1 else list(args)))

    return client, received


class WebChannelUnderFuzz:
    """The ``web`` channel served on a free port over ``redis_url``, always open to human handoffs.

    Args:
        redis_url: the Redis the channel uses.
        tally: where the checks count.
    """

    def __init__(self, redis_url: str, tally: Optional[Tally] = None) -> None:
        self.redis_url = redis_url
        self.tally = tally or Tally("web channel")
        self.errors = ErrorLog()
        self.bot = StubBot("reply")
        self._stack = contextlib.ExitStack()
        self.served: Optional[ServedApp] = None
        self._earlier: List[Event] = []
        self.loop = asyncio.new_event_loop()
        self.sync = redis.Redis.from_url(redis_url, decode_responses=True)

    def __enter__(self) -> WebChannelUnderFuzz:
        from connectors.web import WebInput

        Sanic.test_mode = True
        if not hasattr(aiohttp, "ClientWSTimeout"):
            # python-engineio's client passes aiohttp.ClientWSTimeout (aiohttp 3.10+); Rasa 3.6's aiohttp takes a number
            aiohttp.ClientWSTimeout = lambda ws_receive=None, ws_close=None: float(ws_close or 10.0)  # type: ignore[attr-defined]
            self._stack.callback(delattr, aiohttp, "ClientWSTimeout")
        folder = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="fuzz-web-")))
        settings = load_settings({"HANDOFF_POLICY_FILE": str(write_policy(folder / "service.yml"))})
        channel = WebInput(redis_url=self.redis_url, identity_secret=SECRET, settings=settings, action_server_url="http://127.0.0.1:9")
        app = Sanic(f"fuzz_web_channel_{id(self)}")
        app.ctx.agent = SimpleNamespace(handle_message=self.bot.handler())
        register([channel], app, route="/webhooks/")
        self._stack.enter_context(self.errors.installed())
        self.served = self._stack.enter_context(ServedApp(app))
        return self

    def __exit__(self, *_: Any) -> None:
        self._stack.close()
        self.loop.close()
        self.sync.close()

    def session(self, steps: List[Event]) -> List[str]:
        """Connect, send the events one after the other, check every answer; then check the server still serves."""
        return self.loop.run_until_complete(asyncio.wait_for(self._session(steps), WAIT_S * (len(steps) + 3)))

    async def _session(self, steps: List[Event]) -> List[str]:
        assert self.served is not None
        client, received = recording_client()

        problems: List[str] = []
        await client.connect(f"{self.served.url}/?format=shop", transports=["websocket"], wait_timeout=WAIT_S)
        session_id: Optional[str] = None
        self._earlier = []
        try:
            for step in steps:
                if not client.connected:
                    break
                found, session_id = await self._step(client, received, step, session_id)
                self._earlier.append(step)
                problems += found
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()
        problems += await self._still_serves()
        return problems

    def _given(self, step: Event) -> str:
        return f"{step.name!r}: {step.payload!r}"[:500]

    async def _step(self, client: socketio.AsyncClient, received: asyncio.Queue, step: Event,
                    session_id: Optional[str]) -> Tuple[List[str], Optional[str]]:
        self.tally.inputs += 1
        calls_before = len(self.bot.calls)
        while not received.empty():
            received.get_nowait()
        try:
            if step.name == "raw":
                await client.eio.send(step.payload)
            else:
                await client.emit(step.name, step.payload)
        except (socketio.exceptions.SocketIOError, ValueError, TypeError) as error:
            self.tally.statuses[f"client could not send: {type(error).__name__}"] += 1
            return [], session_id
        answers, closed = await self._answers(client, received, step)
        given = self._given(step)
        problems = []
        for record in self.errors.take():  # a packet python-socketio cannot read is the channel's to drop quietly too
            problems.append(self.tally.record("exceptions", f"logged: {record}", given))
        passed_on = self.bot.calls[calls_before:]
        for name, data in answers:
            self.tally.statuses[name] += 1
            if name == "session_confirm" and isinstance(data, dict):
                session_id = data.get("session_id", session_id)
            code = data.get("code") if name == "error" and isinstance(data, dict) else None
            code = data.get("error") if name == "bot_uttered" and isinstance(data, dict) and "error" in data else code
            if name in ("error", "bot_uttered") and (name == "error" or code is not None) and code not in MESSAGES:
                problems.append(self.tally.record("other", f"refusal without a known code: {name} {data!r}", given))
            if code == "bot_unavailable":
                problems.append(self.tally.record("server_errors", "answered bot_unavailable with Redis up and the bot answering", given))
        if closed:
            self.tally.statuses["connection closed"] += 1
        if not answers and not closed and step.name != "raw":
            problems.append(self.tally.record("hangs", f"no answer within {WAIT_S:.0f} s ({self._turn_state(step, session_id)})", given))
        problems += self._check_delivery(step, answers, passed_on, session_id, given)
        return problems, session_id

    def _turn_state(self, step: Event, session_id: Optional[str]) -> str:
        """What a message may have waited for: the conversation turns taken (with the milliseconds they are
        held yet; a message waits for its conversation's turn) and the session's earlier events (a socket's
        messages are answered one after the other)."""
        held = {key.removeprefix(turn_key("")): self.sync.pttl(key) for key in self.sync.scan_iter(match=turn_key("*"), count=1000)}
        earlier = "; ".join(self._given(event)[:120] for event in self._earlier)
        return f"session {session_id!r}; turns held (ms): {held}; earlier events: {earlier or 'none'}"

    async def _answers(self, client: socketio.AsyncClient, received: asyncio.Queue, step: Event) -> Tuple[List[Tuple[str, Any]], bool]:
        """What came back up to the end of the answer (``turn_done``, a session confirmation or refusal), and
        whether the server closed the connection instead."""
        answers: List[Tuple[str, Any]] = []
        ends = ("session_confirm", "error") if step.name == "session_request" else ("turn_done",)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while loop.time() < deadline:
            try:
                name, data = await asyncio.wait_for(received.get(), 0.05)
            except asyncio.TimeoutError:
                if not client.connected:
                    return answers, True
                if step.name == "raw" and loop.time() > deadline - WAIT_S + RAW_SILENCE_S:
                    return answers, False  # a raw packet that is no event gets no answer
                continue
            answers.append((name, data))
            if name in ends or (step.name == "session_request" and name == "bot_uttered"):
                return answers, False
        return answers, False

    def _check_delivery(self, step: Event, answers: List[Tuple[str, Any]], passed_on: List[Any], session_id: Optional[str],
                        given: str) -> List[str]:
        """An accepted message reached the bot (or the agent's transcript) exactly once; a refused one never."""
        refused = any(name == "bot_uttered" and isinstance(data, dict) and "error" in data for name, data in answers)
        kept = [data for name, data in answers if name == "bot_uttered" and isinstance(data, dict) and "handoff" in data]
        replies = [data for name, data in answers if name == "bot_uttered" and isinstance(data, dict) and data.get("from") == "bot"]
        if refused or step.name not in ("user_uttered", "raw"):
            if passed_on:
                return [self.tally.record("duplicated", f"refused or no message, yet the bot got {len(passed_on)}", given)]
            return []
        if step.name == "raw":
            return []  # what a raw packet asked for is not known here; the checks above still apply
        payload = step.payload
        # what the server reads: the client's JSON escapes a surrogate pair, which the server's decoder joins into one character
        expected = check_text(json.loads(json.dumps(payload.get("message"))))[0] if isinstance(payload, dict) else ""
        if kept:
            self.tally.accepted += 1
            if passed_on:
                return [self.tally.record("duplicated", "kept for the agent and passed to the bot", given)]
            handoff_id = kept[0]["handoff"].get("handoff_id", "")
            shopper = [fields.get("text") for _, fields in self.sync.xrevrange(handoff_keys.transcript(handoff_id), count=5)
                       if fields.get("from") == "shopper"]
            if not shopper or shopper[0] != expected:
                return [self.tally.record("lost", f"kept for the agent but the transcript ends with {shopper[:1]!r}", given)]
            self.tally.delivered += 1
            return []
        if not answers:
            return []
        if len(passed_on) != 1:
            if not passed_on and replies:
                return []  # left the queue: answered by the channel itself
            self.tally.accepted += 1
            kind = "lost" if not passed_on else "duplicated"
            return [self.tally.record(kind, f"accepted but the bot got the message {len(passed_on)} times", given)]
        self.tally.accepted += 1
        message = passed_on[0]
        if message.text not in (expected, neutralised(expected)):
            return [self.tally.record("other", f"the bot got {message.text!r}, not {expected!r}", given)]
        if not any(reply.get("text") == f"收到：{message.text}" for reply in replies):
            return [self.tally.record("lost", "the bot's reply did not reach the socket", given)]
        self.tally.delivered += 1
        return []

    async def _still_serves(self) -> List[str]:
        """After a session, a new client still gets a session and an answer."""
        assert self.served is not None
        client, received = recording_client()

        try:
            await client.connect(f"{self.served.url}/?format=shop", transports=["websocket"], wait_timeout=WAIT_S)
            calls_before = len(self.bot.calls)
            await client.emit("user_uttered", {"message": "你好", "session_id": f"fz-alive-{uuid.uuid4().hex}"})
            while True:
                name, _ = await asyncio.wait_for(received.get(), WAIT_S)
                if name == "turn_done":
                    break
            if len(self.bot.calls) != calls_before + 1:
                return [self.tally.record("lost", "after the session a plain message did not reach the bot", "你好")]
            return []
        except (asyncio.TimeoutError, socketio.exceptions.SocketIOError) as error:
            return [self.tally.record("hangs", f"the server no longer serves a new client: {type(error).__name__}", "你好")]
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()
