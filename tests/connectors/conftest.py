"""Fixtures of the channel tests: a real Sanic server in a background thread, a stub bot, the shop's
identity tokens, HTTP helpers for the app channel and a socket.io widget for the web channel."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import aiohttp
import pytest
import socketio
from rasa.core.channels.channel import UserMessage, register
from redis.asyncio import Redis
from sanic import Sanic

from bot.identity import identity_token_for, sign_customer_id, verify_channel_identity
from bot.logs import valid_correlation_id
from bot.outbox import Outbox
from bot.redis_server import free_port
from bot.settings import Settings, load_settings
from connectors.app import MESSAGES, AppInput
from connectors.web import WebInput

# Several apps are served in one process: keep Sanic's one-time method rewriting (TouchUp)
# repeatable, as sanic-testing does.
Sanic.test_mode = True
_app_names = itertools.count()

SECRET = "test-shop-secret"
"""The shop's identity secret in every channel test."""

WAIT_S = 10.0
"""Longest wait for a socket.io event that must come (a failure guard, not a timing assertion)."""

STATIC_SIGNATURES: Mapping[str, str] = {"SHOP_IDENTITY_STATIC_SIGNATURES": "true"}
"""Environment of a shop that still accepts the old static signatures."""


def signed(customer_id: str, **extra: Any) -> Dict[str, Any]:
    """What the shop's backend adds for a logged-in customer: a fresh identity token (and ``extra``)."""
    return {"identity_token": identity_token_for(SECRET, customer_id), **extra}


def statically_signed(customer_id: str, **extra: Any) -> Dict[str, Any]:
    """The old static claim: the customer id and its never-expiring signature."""
    return {"customer_id": customer_id, "signature": sign_customer_id(SECRET, customer_id), **extra}


def assert_sent_by(message: UserMessage, channel: str, customer_id: Optional[str]) -> None:
    """The metadata the bot got is the channel's own: informative fields and a channel-signed identity."""
    metadata = dict(message.metadata or {})
    identity = metadata.pop("identity", None)
    assert valid_correlation_id(metadata.pop("correlation_id", None)), message.metadata  # the turn's id in the logs
    assert {key: value for key, value in metadata.items() if key != "handoff"} == {
        "channel": channel, "verified": customer_id is not None, "customer_id": customer_id}
    assert identity is not None and identity["customer_id"] == customer_id
    assert verify_channel_identity(SECRET, message.sender_id, identity) == customer_id


class ServedApp:
    """A Sanic app served on a free port of 127.0.0.1 by an event loop in a background thread.

    Args:
        app: the Sanic app to serve.
    """

    def __init__(self, app: Sanic) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._thread = threading.Thread(target=self._run, name=f"sanic-{self.port}", daemon=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:  # reported to the test thread
            self._error = error
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await self.app.create_server(host="127.0.0.1", port=self.port, return_asyncio_server=True, access_log=False)
        assert server is not None  # create_server has already bound the listening socket
        await server.startup()
        await server.after_start()
        self._ready.set()
        await self._stop.wait()
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()

    def __enter__(self) -> ServedApp:
        self._thread.start()
        if not self._ready.wait(timeout=10) or self._error is not None:
            raise RuntimeError(f"Sanic test server did not start: {self._error!r}")
        return self

    def __exit__(self, *_: Any) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


@dataclass
class StubBot:
    """Records the messages a channel passes on and decides how the "bot" reacts.

    Attributes:
        behaviour: ``reply`` (text and buttons), ``raise`` (as an unreachable tracker store) or
            ``silent`` (no reply, as when an action failed inside Rasa) or ``hands_off`` (takes a
            while, then opens a handoff as ``action_handoff`` does, in ``redis_url``) or ``slow``
            (takes a while, then replies).
        calls: every message received, in order.
        handoff_seen: for each call, the handoff the conversation had when the message reached
            the bot (``handoff:active:<sender>``), None for none.
        buttons: the buttons of the bot's first reply.
    """

    behaviour: str = "reply"
    calls: List[UserMessage] = field(default_factory=list)
    redis_url: str = ""
    handoff_seen: List[Optional[str]] = field(default_factory=list)
    buttons: List[Dict[str, str]] = field(default_factory=lambda: [{"title": "查订单", "payload": "/order_status"}])

    def handler(self) -> Callable[[UserMessage], Awaitable[None]]:
        """The coroutine function given to ``AppInput.blueprint``, like Rasa's own handler."""

        async def on_new_message(message: UserMessage) -> None:
            self.calls.append(message)
            if self.redis_url:
                client = Redis.from_url(self.redis_url, decode_responses=True)
                self.handoff_seen.append(await client.get(f"handoff:active:{message.sender_id}"))
                await client.close()
            if self.behaviour == "raise":
                raise ConnectionError(f"tracker store unreachable while handling {message.text}")
            if self.behaviour == "silent":
                return
            if self.behaviour in ("hands_off", "slow"):
                await asyncio.sleep(0.5)
            if self.behaviour == "hands_off":
                client = Redis.from_url(self.redis_url)
                await client.set(f"handoff:active:{message.sender_id}", "h" + "0" * 24)
                await client.close()
            await message.output_channel.send_text_with_buttons(
                message.sender_id,
                f"收到：{message.text}",
                self.buttons,
            )
            await message.output_channel.send_text_message(message.sender_id, "还有什么可以帮您？")

        return on_new_message


@dataclass
class ChannelServer:
    """A served ``AppInput`` channel with its stub bot."""

    channel: AppInput
    bot: StubBot
    served: ServedApp

    @property
    def base(self) -> str:
        """URL prefix of the channel's routes, as Rasa mounts them."""
        return f"{self.served.url}/webhooks/app"


@pytest.fixture()
def serve_channel(redis_url: str) -> Iterator[Callable[..., ChannelServer]]:
    """Factory serving an ``AppInput`` channel over the session's Redis on a real Sanic server.

    The channel is mounted under ``/webhooks/app`` either directly or through Rasa's own
    ``register``; the action server URL points at a free port where nothing listens, unless given.
    """
    stack: List[ServedApp] = []

    def start(
        identity_secret: str,
        behaviour: str = "reply",
        action_server_url: Optional[str] = None,
        channel_redis_url: Optional[str] = None,
        mount_with_rasa: bool = False,
        settings: Optional[Settings] = None,
        buttons: Optional[List[Dict[str, str]]] = None,
    ) -> ChannelServer:
        channel = AppInput(
            redis_url=channel_redis_url or redis_url,
            identity_secret=identity_secret,
            action_server_url=action_server_url or f"http://127.0.0.1:{free_port()}",
            settings=settings or load_settings({}),
        )
        bot = StubBot(behaviour, redis_url=channel_redis_url or redis_url)
        if buttons is not None:
            bot.buttons = buttons
        app = Sanic(f"app_channel_test_{next(_app_names)}")
        if mount_with_rasa:
            # exactly what `rasa run` does: Rasa's own handler forwards to app.ctx.agent
            app.ctx.agent = SimpleNamespace(handle_message=bot.handler())
            register([channel], app, route="/webhooks/")
        else:
            app.blueprint(channel.blueprint(bot.handler()), url_prefix="/webhooks/app")
        served = ServedApp(app).__enter__()
        stack.append(served)
        return ChannelServer(channel, bot, served)

    yield start
    for served in reversed(stack):
        served.__exit__()


class _HealthHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's naming
        body = b'{"status": "ok"}' if self.path == "/health" else b"{}"
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return


@pytest.fixture()
def healthy_action_server() -> Iterator[str]:
    """URL of a minimal HTTP server answering ``GET /health`` like rasa-sdk's action server."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# -- the app channel over HTTP --------------------------------------------------------------------


class Answer(Tuple[int, Any]):
    """An HTTP answer: ``(status, decoded JSON or None)``, with its ``headers`` besides."""

    headers: Dict[str, str]

    def __new__(cls, status: int, body: Any, headers: Mapping[str, str]) -> Answer:
        answer = super().__new__(cls, (status, body))
        answer.headers = dict(headers)
        return answer

    @property
    def status(self) -> int:
        return self[0]

    @property
    def body(self) -> Any:
        return self[1]


def http(method: str, url: str, body: Union[None, bytes, Dict[str, Any]] = None, headers: Optional[Mapping[str, str]] = None,
         timeout_s: float = 10.0) -> Answer:
    """Send one HTTP request and decode the JSON answer (None when the body is not JSON)."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8") if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            status, raw, answer_headers = answer.status, answer.read(), answer.headers
    except urllib.error.HTTPError as error:
        status, raw, answer_headers = error.code, error.read(), error.headers
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = None
    return Answer(status, decoded, answer_headers)


def send(server: ChannelServer, sender: Optional[str], text: Any, metadata: Optional[Dict[str, Any]] = None,
         token: Optional[str] = None, **extra: Any) -> Answer:
    """``POST /webhook`` as the shop's app does; ``token``: the anonymous conversation's token."""
    body: Dict[str, Any] = {"message": text, **extra}
    if sender is not None:
        body["sender"] = sender
    if metadata is not None:
        body["metadata"] = metadata
    return http("POST", f"{server.base}/webhook", body, headers={"X-Conversation-Token": token} if token else None)


def fetch(server: ChannelServer, sender: str, query: str = "", identity: Optional[str] = None, token: Optional[str] = None) -> Answer:
    """``GET /messages/<sender>`` with the customer's identity token or the anonymous conversation's token."""
    headers = {name: value for name, value in (("X-Identity-Token", identity), ("X-Conversation-Token", token)) if value}
    return http("GET", f"{server.base}/messages/{sender}" + (f"?{query}" if query else ""), headers=headers)


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    """The answer is the polite refusal ``code`` with ``expected_status``."""
    assert status == expected_status, body
    assert body["error"]["code"] == code
    assert body["error"]["message"] == MESSAGES[code]


async def push_async(redis_url: str, sender: str, *messages: Dict[str, Any]) -> List[str]:
    """Push messages to a conversation's outbox (as an agent's reply or a notice is); their ids."""
    connection = Redis.from_url(redis_url, decode_responses=True)
    try:
        return [await Outbox(connection, ttl_s=600).push(sender, message) for message in messages]
    finally:
        await connection.close()


def push(redis_url: str, sender: str, messages: List[Dict[str, Any]]) -> List[str]:
    """:func:`push_async` from synchronous code."""
    return asyncio.run(push_async(redis_url, sender, *messages))


# -- the web channel over socket.io ---------------------------------------------------------------

Event = Tuple[str, Any]


class Widget:
    """A socket.io client as the shop's widget uses the channel (websocket transport), recording every event.

    Attributes:
        session_id: the session confirmed last.
        conversation_token: the anonymous conversation's token confirmed with it (None for a customer's).
    """

    def __init__(self, url: str) -> None:
        # The shop's widget asks for its richer format; a URL with a query of its own keeps it.
        self.url = url if "?" in url else f"{url}/?format=shop"
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.seen: List[Event] = []
        self.session_id: Optional[str] = None
        self.conversation_token: Optional[str] = None

        @self.sio.on("*")
        async def record(event: str, *args: Any) -> None:
            item = (event, args[0] if len(args) == 1 else list(args))
            self.seen.append(item)
            self.events.put_nowait(item)

    async def __aenter__(self) -> Widget:
        await self.sio.connect(self.url, transports=["websocket"], wait_timeout=WAIT_S)
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.sio.disconnect()

    async def next(self, *names: str) -> Event:
        """The next event among ``names``, skipping others."""
        while True:
            event = await asyncio.wait_for(self.events.get(), WAIT_S)
            if event[0] in names:
                return event

    async def start(self, session_id: Optional[str] = None, custom: Optional[Dict[str, Any]] = None) -> Event:
        """``session_request``; returns ``("session_confirm", {"session_id", ...})`` or ``("error", {...})``."""
        payload: Dict[str, Any] = {"session_id": session_id}
        if custom is not None:
            payload["customData"] = custom
        await self.sio.emit("session_request", payload)
        event = await self.next("session_confirm", "error")
        if event[0] == "session_confirm":
            self.session_id = event[1]["session_id"]
            self.conversation_token = event[1].get("conversation_token")
        return event

    async def open(self, session_id: Optional[str] = None, custom: Optional[Dict[str, Any]] = None) -> str:
        """:meth:`start` a session that must be confirmed; its id."""
        event = await self.start(session_id, custom)
        assert event[0] == "session_confirm", event
        return event[1]["session_id"]

    async def say(self, text: Any, **fields: Any) -> List[Dict[str, Any]]:
        """``user_uttered``; returns the ``bot_uttered`` payloads up to the end of the turn."""
        payload = {"message": text, "session_id": self.session_id, **fields}
        return await self.send(payload)

    async def send(self, *args: Any, event: str = "user_uttered") -> List[Dict[str, Any]]:
        """Emit any event with any payload; returns the ``bot_uttered`` payloads up to the end of the turn."""
        await self.sio.emit(event, args[0] if len(args) == 1 else tuple(args))
        replies = []
        while True:
            name, data = await self.next("bot_uttered", "turn_done")
            if name == "turn_done":
                return replies
            replies.append(data)

    async def pushed(self, count: int) -> List[Dict[str, Any]]:
        """The next ``count`` ``bot_uttered`` payloads."""
        return [(await self.next("bot_uttered"))[1] for _ in range(count)]


class WebServer:
    """A served ``WebInput`` channel with its stub bot."""

    def __init__(self, channel: WebInput, bot: StubBot, served: ServedApp) -> None:
        self.channel = channel
        self.bot = bot
        self.served = served

    @property
    def url(self) -> str:
        return self.served.url

    def widget(self) -> Widget:
        return Widget(self.url)


@pytest.fixture()
def websocket_client_on_old_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-engineio's asyncio client passes ``aiohttp.ClientWSTimeout(ws_close=...)`` (aiohttp 3.10+)
    to ``ws_connect``; the aiohttp Rasa 3.6 pins takes that close timeout as a number."""
    if not hasattr(aiohttp, "ClientWSTimeout"):
        monkeypatch.setattr(aiohttp, "ClientWSTimeout", lambda ws_receive=None, ws_close=None: float(ws_close or 10.0), raising=False)


@pytest.fixture()
def serve_web(redis_url: str, websocket_client_on_old_aiohttp: None) -> Iterator[Callable[..., WebServer]]:
    """Factory serving a ``WebInput`` channel, mounted as Rasa mounts it, over the session's Redis."""
    with ExitStack() as servers:

        def start(behaviour: str = "reply", action_server_url: Optional[str] = None, channel_redis_url: Optional[str] = None,
                  settings: Optional[Settings] = None, buttons: Optional[List[Dict[str, str]]] = None) -> WebServer:
            channel = WebInput(redis_url=channel_redis_url or redis_url, identity_secret=SECRET, settings=settings or load_settings({}),
                               action_server_url=action_server_url or f"http://127.0.0.1:{free_port()}")
            bot = StubBot(behaviour)
            if buttons is not None:
                bot.buttons = buttons
            app = Sanic(f"web_channel_test_{next(_app_names)}")
            app.ctx.agent = SimpleNamespace(handle_message=bot.handler())  # what `rasa run` gives Rasa's handler
            register([channel], app, route="/webhooks/")
            return WebServer(channel, bot, servers.enter_context(ServedApp(app)))

        yield start
