"""Fixtures of the channel tests: a real Sanic server in a background thread, a stub bot, HTTP helpers."""

from __future__ import annotations

import asyncio
import itertools
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, Awaitable, Callable, Iterator, List, Optional

import pytest
from rasa.core.channels.channel import UserMessage, register
from redis.asyncio import Redis
from sanic import Sanic

from bot.redis_server import free_port
from bot.settings import Settings, load_settings
from connectors.app import AppInput

# Several apps are served in one process: keep Sanic's one-time method rewriting (TouchUp)
# repeatable, as sanic-testing does.
Sanic.test_mode = True
_app_names = itertools.count()


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
    """

    behaviour: str = "reply"
    calls: List[UserMessage] = field(default_factory=list)
    redis_url: str = ""
    handoff_seen: List[Optional[str]] = field(default_factory=list)

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
                [{"title": "查订单", "payload": "/order_status"}],
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
    ) -> ChannelServer:
        channel = AppInput(
            redis_url=channel_redis_url or redis_url,
            identity_secret=identity_secret,
            action_server_url=action_server_url or f"http://127.0.0.1:{free_port()}",
            settings=settings or load_settings({}),
        )
        bot = StubBot(behaviour, redis_url=channel_redis_url or redis_url)
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
