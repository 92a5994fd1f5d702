"""Worker routing of the web channel's socket.io: each socket's requests reach the worker that holds it.

Engine.io keeps a socket's HTTP long-polling state (and the websocket upgrade) in the memory of
the process that accepted its handshake. The Rasa server's Sanic workers share one listening port,
so the kernel hands each new TCP connection to either worker, and successive polling requests of
one socket land on both: the wrong worker answers ``400 Invalid session`` and the shopper never
gets the bot's reply. Routing fixes that without cookies:

- Every engine.io sid starts with its worker's tag, ``<instance>.<pid>.``: the instance name
  (``RASA_INSTANCE``, default the host name; what a load balancer routes by, see
  ``fleet/haproxy.cfg``) and the worker's process id (:func:`worker_sid`, :func:`parse_sid`).
- A worker of a server with several workers listens on a Unix socket of its own,
  ``VAR_DIR/run/web-<instance>-<pid>.sock`` (directory 0700, socket 0600, peers of another user
  refused).
- A request whose ``sid`` names another worker of this instance is handed to that worker whole:
  its TCP connection's file descriptor goes over the Unix socket (``SCM_RIGHTS``) with the bytes
  already read (the request rebuilt from its head and body, and whatever the client sent after
  it), and the owner adopts the connection into its own Sanic server (``connect_accepted_socket``
  with Sanic's HTTP protocol, fed those bytes first). The owner answers the request, including a
  websocket upgrade, and every later request of that keep-alive connection. A handoff that fails
  (the owner is gone) leaves the request to this worker, whose engine.io answers 400: the client
  opens a new session, as without routing.

This module is the one place that relies on Sanic's and python-engineio's internals: the shape of
Sanic's HTTP protocol (its constructor, ``recv_buffer``, ``abort``), how its HTTP/1 loop ends a
request whose transport is gone, and engine.io's ``generate_id`` and ``handle_request``. The fence
(:func:`problem`) checks the exact versions (:data:`SANIC_VERSION`, :data:`ENGINEIO_VERSION`) and
the source hash of each of those objects (:data:`TARGETS`); on any difference routing is off with
a warning, as it is with ``WEB_WORKER_ROUTING=false``: sids are engine.io's own and nothing is
handed over (long-polling then needs a single worker or the websocket transport).
"""

from __future__ import annotations

import array
import asyncio
import logging
import os
import re
import socket
import stat
import struct
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import engineio

from bot.rasa_patches import resolve, source_hash
from bot.settings import Settings

logger = logging.getLogger(__name__)

SANIC_VERSION = "21.12.2"
ENGINEIO_VERSION = "4.15.1"
"""The exact versions the routing was written against."""

TARGETS: Dict[str, str] = {
    "sanic.server.protocols.http_protocol:HttpProtocol.__init__": "a11f3ec81d3fc3aa466f15cb185d00f15ac737303d073968c732dbe0dd8a5359",
    "sanic.server.protocols.http_protocol:HttpProtocol.connection_made": "980c201d9ed0979544973cd10a07e3b14cd3484210dc88d890d3ea049a1d03a0",
    "sanic.server.protocols.http_protocol:HttpProtocol.data_received": "80a61c1fbb81312a091612e9410aa55b0a0883abaa21e458d6f33c0759fb02af",
    "sanic.server.protocols.base_protocol:SanicProtocol.abort": "227d1e731bfdf86a1e2c5957d41d48f38162520494fc4887ed08811382638694",
    "sanic.server.runners:_build_protocol_kwargs": "df364f22d706e31f9870ad90690125ac3d65b0dc6d76fe502134cd0edd3dce80",
    "sanic.http:Http.http1": "20227158ce2933f7c14a04a9042681da87f33f33f562ed3fa8cee2bacf4a3257",
    "engineio.base_server:BaseServer.generate_id": "b6a591454237c0bb4e57dfef897c3d1f45477d0582474a4f48df35d12a552c25",
    "engineio.async_server:AsyncServer.handle_request": "1a8c878e35166cfe868d2cef40cdeb33af620541363a705c4dd2eea76c0f27af",
}
"""Each Sanic or engine.io object the routing relies on, with the sha256 of its source."""

MAX_HANDOFF_BYTES = 2 * 1024 * 1024
"""Most bytes handed over with a connection (a request head and body: engine.io accepts 256 KB)."""

HANDOFF_TIMEOUT_S = 5.0
"""Longest wait for the owner to take a connection (it answers at once unless it is stuck)."""

_INSTANCE = re.compile(r"[^A-Za-z0-9_-]+")
_SID = re.compile(r"^([A-Za-z0-9_-]{1,32})\.([0-9]{1,10})\.[A-Za-z0-9_-]+$")
_ACCEPTED, _REFUSED = b"\x01", b"\x00"
_DROPPED_HEADERS = ("content-length", "transfer-encoding", "expect")


def instance_name(configured: str) -> str:
    """The instance part of every sid: ``configured`` (else the host name) in letters, digits, ``_`` and ``-``."""
    name = _INSTANCE.sub("-", configured or socket.gethostname()).strip("-")[:32]
    return name or "rasa"


def worker_sid(instance: str, pid: int, stock_id: str) -> str:
    """The sid of a socket of worker ``pid`` of ``instance``: ``<instance>.<pid>.<engine.io's own id>``."""
    return f"{instance}.{pid}.{stock_id}"


def parse_sid(sid: Any) -> Optional[Tuple[str, int]]:
    """The ``(instance, pid)`` a sid names, or None for any other value (a stock sid, garbage)."""
    found = _SID.match(sid) if isinstance(sid, str) else None
    return (found.group(1), int(found.group(2))) if found else None


@lru_cache(maxsize=1)
def problem() -> Optional[str]:
    """Why routing must stay off with the Sanic and python-engineio installed here, or None."""
    installed = {"sanic": version("sanic"), "python-engineio": version("python-engineio")}
    for package, wanted in (("sanic", SANIC_VERSION), ("python-engineio", ENGINEIO_VERSION)):
        if installed[package] != wanted:
            return f"written for {package} {wanted}, this is {installed[package]}"
    for target, declared in TARGETS.items():
        try:
            owner, attribute = resolve(target)
            actual = source_hash(getattr(owner, attribute))
        except (ImportError, AttributeError, OSError, TypeError) as error:
            return f"{target} not found ({error})"
        if actual != declared:
            return f"{target} changed (source sha256 {actual[:12]}, routing was written for {declared[:12]})"
    return None


def current_hashes() -> Dict[str, str]:
    """The source hash of each target as installed here (to review and declare after an upgrade)."""
    hashes = {}
    for target in TARGETS:
        owner, attribute = resolve(target)
        hashes[target] = source_hash(getattr(owner, attribute))
    return hashes


def replayed_request(request: Any) -> bytes:
    """The bytes of a request as the client sent them: its head (without the body framing and
    ``Expect``, which Sanic has already answered) and its whole body with a ``Content-Length``."""
    head = bytes(request.head).split(b"\r\n")
    kept = [head[0], *(line for line in head[1:] if line.split(b":", 1)[0].strip().lower().decode("latin-1") not in _DROPPED_HEADERS)]
    body = bytes(request.body or b"")
    if body:
        kept.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(kept) + b"\r\n\r\n" + body


class _Primed(asyncio.Protocol):
    """Feeds an adopted connection's first bytes to Sanic's protocol, then steps aside."""

    def __init__(self, inner: asyncio.Protocol, first: bytes) -> None:
        self.inner = inner
        self.first = first

    def connection_made(self, transport: Any) -> None:
        transport.set_protocol(self.inner)
        self.inner.connection_made(transport)
        if self.first:
            self.inner.data_received(self.first)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:  # only until connection_made
        self.inner.data_received(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.inner.connection_lost(exc)


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


class WorkerRouter:
    """The routing of one Rasa server process (every forked worker finds its own pid).

    Args:
        run_dir: where the workers' Unix sockets are (``VAR_DIR/run``).
        instance: this server's instance name (:func:`instance_name`).
        enabled: routing is on (the setting and the fence agree).
    """

    def __init__(self, run_dir: Path, instance: str, enabled: bool) -> None:
        self.run_dir = run_dir
        self.instance = instance
        self.enabled = enabled
        self.handed_off = 0
        self.adopted = 0
        self._listener: Optional[socket.socket] = None
        self._accepting: Optional[asyncio.Task[None]] = None
        self._template: Optional[Tuple[type, Dict[str, Any]]] = None
        self._app: Any = None
        self._adopting: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerRouter:
        """The router the settings ask for; off with a warning when the fence refuses it."""
        enabled = settings.web_worker_routing
        if enabled:
            why = problem()
            if why is not None:
                logger.warning("web.worker_routing.off reason=%s", why)
                enabled = False
        return cls(settings.var_dir / "run", instance_name(settings.rasa_instance), enabled)

    def socket_path(self, pid: int) -> Path:
        """The Unix socket of worker ``pid`` of this instance."""
        return self.run_dir / f"web-{self.instance}-{pid}.sock"

    # -- sids --------------------------------------------------------------------------------

    def sid(self, stock_id: str) -> str:
        """A new sid of this worker (engine.io's own when routing is off)."""
        return worker_sid(self.instance, os.getpid(), stock_id) if self.enabled else stock_id

    def owner(self, sid: Any) -> Optional[Path]:
        """The Unix socket of the other worker of this instance that holds ``sid``, or None (this
        worker's, another instance's, a stock or unknown sid: engine.io here answers it)."""
        named = parse_sid(sid) if self.enabled else None
        if named is None or named[0] != self.instance or named[1] == os.getpid():
            return None
        path = self.socket_path(named[1])
        return path if path.is_socket() else None

    # -- the listener (the owner's side) -----------------------------------------------------

    async def start(self, app: Any) -> None:
        """Listen for handed-over connections (in a worker of a server with several workers)."""
        if not self.enabled or int(getattr(app.state, "workers", 1) or 1) < 2 or self._listener is not None:
            return
        loop = asyncio.get_running_loop()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        path = self.socket_path(os.getpid())
        if len(os.fsencode(path)) > 107:
            logger.error("web.worker_routing.off reason=socket path longer than 107 bytes path=%s", path)
            self.enabled = False
            return
        self._remove_stale_sockets()
        path.unlink(missing_ok=True)  # a socket left by an earlier process of the same pid
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self._app = app
        self._accepting = loop.create_task(self._accept(listener))
        logger.info("web.worker_routing.listening worker=%s.%d", self.instance, os.getpid())

    def _remove_stale_sockets(self) -> None:
        """Remove the sockets this instance's workers that are no longer running left behind (a crash)."""
        for path in self.run_dir.glob(f"web-{self.instance}-*.sock"):
            pid = path.name[len(f"web-{self.instance}-"):-len(".sock")]
            if not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                path.unlink(missing_ok=True)
            except PermissionError:  # alive, another user's
                pass

    async def stop(self) -> None:
        """Stop listening and remove this worker's socket."""
        if self._accepting is not None:
            self._accepting.cancel()
            self._accepting = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            self.socket_path(os.getpid()).unlink(missing_ok=True)
            logger.info("web.worker_routing.stopped worker=%s.%d handed_off=%d adopted=%d", self.instance, os.getpid(),
                        self.handed_off, self.adopted)

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            link, _ = await loop.sock_accept(listener)
            link.setblocking(False)
            task = loop.create_task(self._adopt(link))
            self._adopting.add(task)
            task.add_done_callback(self._adopting.discard)

    async def _adopt(self, link: socket.socket) -> None:
        """Take over one connection a sibling worker hands over, answering it accepted or refused."""
        loop = asyncio.get_running_loop()
        fds: List[int] = []
        accepted = False
        try:
            _, uid, _ = struct.unpack("3i", link.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            if uid != os.getuid():
                logger.warning("web.worker_routing.refused reason=peer uid")
                return
            data = await asyncio.wait_for(self._receive(loop, link, fds), HANDOFF_TIMEOUT_S)
            if data is not None and len(fds) == 1:
                connection = socket.socket(fileno=fds.pop())
                try:
                    if connection.type != socket.SOCK_STREAM or connection.family not in (socket.AF_INET, socket.AF_INET6):
                        raise ValueError("not a TCP connection")
                    await loop.connect_accepted_socket(lambda: _Primed(self._protocol(loop), data), connection)
                except BaseException:
                    connection.close()
                    raise
                accepted = True
                self.adopted += 1
        except (OSError, ValueError, asyncio.TimeoutError, struct.error) as error:
            logger.warning("web.worker_routing.adopt_failed error=%s", type(error).__name__)
        finally:
            for fd in fds:
                os.close(fd)
            try:
                await loop.sock_sendall(link, _ACCEPTED if accepted else _REFUSED)
            except OSError:
                pass
            link.close()

    @staticmethod
    async def _receive(loop: asyncio.AbstractEventLoop, link: socket.socket, fds: List[int]) -> Optional[bytes]:
        """The bytes of one handoff (4-byte length, then the bytes); the descriptors go to ``fds``."""
        buffer = bytearray()
        need = 4
        while len(buffer) < need:
            await _readable(loop, link)
            try:
                chunk, received, _, _ = socket.recv_fds(link, 65536, 4)
            except BlockingIOError:
                continue
            fds.extend(received)
            if not chunk:
                return None
            buffer += chunk
            if len(buffer) >= 4:
                need = 4 + struct.unpack("!I", buffer[:4])[0]
                if need > MAX_HANDOFF_BYTES + 4:
                    raise ValueError("handoff too large")
        return bytes(buffer[4:need])

    def remember(self, request: Any) -> None:
        """Note how this worker's Sanic builds its HTTP protocol (from a request it serves)."""
        if self._template is None:
            protocol = request.transport.get_protocol()
            self._template = (type(protocol), {"signal": protocol.signal, "connections": protocol.connections})

    def _protocol(self, loop: asyncio.AbstractEventLoop) -> asyncio.Protocol:
        """A new Sanic HTTP protocol as this worker's server makes one for an accepted connection."""
        from sanic.server.protocols.http_protocol import HttpProtocol
        from sanic.server.protocols.websocket_protocol import WebSocketProtocol
        from sanic.server.runners import _build_protocol_kwargs

        app = self._app
        kind, shared = self._template or (WebSocketProtocol if app.websocket_enabled else HttpProtocol, {})
        protocol: asyncio.Protocol = kind(loop=loop, app=app, unix=None, **shared, **_build_protocol_kwargs(kind, app.config))
        return protocol

    # -- the handoff (the side that got the request) -----------------------------------------

    async def hand_off(self, request: Any, path: Path) -> bool:
        """Give the request's connection to the worker listening at ``path``.

        Returns:
            True when the owner took it (this worker has let go of the connection); False when it
            could not (the request is still this worker's to answer).
        """
        transport = request.transport
        protocol = transport.get_protocol()
        raw = transport.get_extra_info("socket")
        if raw is None:
            return False
        loop = asyncio.get_running_loop()
        transport.pause_reading()
        data = replayed_request(request) + bytes(getattr(protocol, "recv_buffer", b""))
        if len(data) > MAX_HANDOFF_BYTES:
            transport.resume_reading()
            return False
        duplicate = os.dup(raw.fileno())
        link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        link.setblocking(False)
        try:
            await asyncio.wait_for(self._send(loop, link, path, data, duplicate), HANDOFF_TIMEOUT_S)
            answer = await asyncio.wait_for(loop.sock_recv(link, 1), HANDOFF_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as error:
            logger.warning("web.worker_routing.handoff_failed error=%s", type(error).__name__)
            answer = _REFUSED
        finally:
            os.close(duplicate)
            link.close()
        if answer != _ACCEPTED:
            transport.resume_reading()
            return False
        self.handed_off += 1
        protocol.abort()  # closes this worker's descriptor only: the connection lives on in the owner
        return True

    @staticmethod
    async def _send(loop: asyncio.AbstractEventLoop, link: socket.socket, path: Path, data: bytes, fd: int) -> None:
        await loop.sock_connect(link, str(path))
        header = struct.pack("!I", len(data))
        while True:
            try:
                link.sendmsg([header], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
                break
            except BlockingIOError:
                await asyncio.sleep(0.001)
        await loop.sock_sendall(link, data)


class RoutedEngineServer(engineio.AsyncServer):
    """Engine.io's server whose sids name their worker, handing other workers' requests to them."""

    router: Optional[WorkerRouter] = None

    def generate_id(self) -> str:
        stock_id: str = super().generate_id()
        return self.router.sid(stock_id) if self.router is not None else stock_id

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        router = self.router
        if router is not None and router.enabled and args:
            request = args[0]
            router.remember(request)
            path = router.owner(request.args.get("sid"))
            if path is not None and await router.hand_off(request, path):
                raise asyncio.CancelledError  # Sanic ends the request quietly: its transport is gone
        return await super().handle_request(*args, **kwargs)


if __name__ == "__main__":  # python -m connectors.worker_routing: the fence's verdict and the targets' hashes
    print(f"routing: {problem() or 'allowed'}")
    for name, digest in current_hashes().items():
        print(f"{name} {digest}{'' if digest == TARGETS[name] else '  (changed)'}")
