"""Redis through Sentinel for every client of the stack: ``REDIS_SENTINELS`` and ``REDIS_SENTINEL_MASTER``.

None of the stack's Redis clients asks a Sentinel for the master by itself: Rasa 3.6's tracker and
lock stores take a host and a port (``endpoints.yml``), the project's own clients a ``REDIS_URL``
(redis-py's ``from_url``: the channels, the handoff, the desk, the verification throttle, push
delivery, the NLU inbox), and only python-socketio's manager would understand a
``redis+sentinel://`` URL. Rather than a second way of connecting in each of them, this module
changes what one address means:

- ``REDIS_SENTINELS``: the sentinels, ``host:port`` comma-separated (``[v6 address]:port`` too);
- ``REDIS_SENTINEL_MASTER``: the name they monitor the master under (``sentinel monitor <name> ...``);
- ``REDIS_SENTINEL_PASSWORD``: the sentinels' own ``requirepass``, if they have one;
- ``REDIS_URL`` keeps the password and the database, and its host and port become a name for
  "the current master", e.g. ``redis://:secret@shop-master:6379/0`` (a name no DNS knows, so a
  process without this module fails loudly instead of reaching some other server).

:func:`install` (run when ``bot`` is imported with ``REDIS_SENTINELS`` in the environment, which
the launcher puts there for every service it starts) patches redis-py's TCP connection classes,
synchronous and asyncio, so that a connection to that host and port

- asks the sentinels for the current master each time it connects (redis-py's
  ``Sentinel.discover_master``: the first sentinel that knows a master not flagged down);
- is dropped before its next command from the moment a sentinel has chosen the replica to promote
  until it names the new master (threads per process listen to the sentinels' events and ask them
  every half second), and the command waits for that (at most :data:`FENCE_WAIT_S`), then goes to
  the new master: a master demoted while still up (``SENTINEL FAILOVER``) keeps accepting writes,
  and losing them, until Sentinel reconfigures it up to 10 s later, and a command that failed
  instead would leave, for instance, a conversation lock behind for its whole lifetime;
- is dropped when the server it reached answers ``READONLY`` (a master demoted to replica), so the
  caller's next command reconnects to the new master.

Connections to any other address (the sentinels themselves, a test's own server) are left alone.

What it covers: every redis-py connection of a process that imported ``bot`` (the Rasa server with
its tracker store, lock store, channels and socket.io manager; the action server; the desk; the
CRM has no Redis). What it does not: a command in flight when the master dies still fails (the
callers answer as for any Redis outage: 503 to the shopper, retried by the client); during the
failover itself (``down-after-milliseconds`` plus the election) every connection fails fast with
``MasterNotFoundError`` or a refused connection; and writes the old master acknowledged but had not
yet sent to its replica are gone after a failover (replication is asynchronous).
``make fleet-test`` measures both (``docs/fleet.md``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlparse

import redis
import redis.asyncio.connection as async_connection
import redis.connection as sync_connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.sentinel import Sentinel

from bot.settings import Settings, SettingsError

Address = Tuple[str, int]

SENTINEL_TIMEOUT_S = 0.5
"""Connect and read timeout of one question to one sentinel."""

WATCH_INTERVAL_S = 0.5
"""How often each process asks the sentinels whether the master changed."""

FENCE_MAX_S = 15.0
"""Longest a failover keeps the old master fenced without a sentinel naming the new one (failover-timeout and more)."""

FENCE_WAIT_S = 5.0
"""How long a connection waits for a failover under way to end before it fails (a planned one takes about 1 s)."""

SENTINEL_EVENTS = ("+selected-slave", "+failover-state-send-slaveof-noone", "+switch-master", "-failover-abort-*")
"""The Sentinel events each process listens to."""


@dataclass(frozen=True)
class SentinelConfig:
    """Where the sentinels are and which address stands for the master.

    Attributes:
        sentinels: the sentinels' addresses, asked in turn.
        master: the name the sentinels monitor the master under.
        alias: the host and port of ``REDIS_URL``, which stand for the current master.
        password: the sentinels' own password (None: none).
    """

    sentinels: Tuple[Address, ...]
    master: str
    alias: Address
    password: Optional[str] = None


def parse_address(entry: str, default_port: int = 26379) -> Address:
    """``host:port`` (or ``[v6]:port``, or a bare host on ``default_port``) as a pair.

    Raises:
        SettingsError: the entry is empty or its port is not a number in 1-65535.
    """
    text = entry.strip()
    if not text:
        raise SettingsError("REDIS_SENTINELS holds an empty entry")
    parsed = urlparse(f"//{text}")
    try:
        port = parsed.port or default_port
    except ValueError as error:
        raise SettingsError(f"REDIS_SENTINELS entry {entry!r} is not host:port") from error
    if not parsed.hostname:
        raise SettingsError(f"REDIS_SENTINELS entry {entry!r} is not host:port")
    return parsed.hostname, port


def config_from_settings(settings: Settings) -> Optional[SentinelConfig]:
    """The Sentinel configuration of ``settings``; None when ``REDIS_SENTINELS`` is empty.

    Raises:
        SettingsError: sentinels without ``REDIS_SENTINEL_MASTER`` or without ``REDIS_URL``.
    """
    if not settings.redis_sentinels.strip():
        return None
    if not settings.redis_sentinel_master.strip():
        raise SettingsError("REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER (the monitored master's name) is empty")
    if not settings.redis_url:
        raise SettingsError("REDIS_SENTINELS is set but REDIS_URL is empty: it names the master, e.g. redis://:password@shop-master:6379/0")
    url = urlparse(settings.redis_url)
    if url.scheme not in ("redis", "rediss") or not url.hostname:
        raise SettingsError(f"REDIS_URL must be redis://[:password@]<master name>:<port>/<db> with REDIS_SENTINELS, not {url.scheme}://...")
    sentinels = tuple(parse_address(entry) for entry in settings.redis_sentinels.split(","))
    return SentinelConfig(sentinels, settings.redis_sentinel_master.strip(), (url.hostname, url.port or 6379),
                          settings.redis_sentinel_password or None)


class MasterResolver:
    """Asks the sentinels for the current master, and follows their failovers as they happen.

    :meth:`master` asks (redis-py's ``Sentinel.discover_master``: the first sentinel that knows a
    master not flagged down). The first call in a process also starts daemon threads (again in a
    forked worker): one per sentinel listening to its events, and one asking every
    ``watch_interval_s`` in case an event was missed. From the moment a sentinel has chosen the
    replica to promote (``+selected-slave``, about 0.1 s before it sends ``REPLICAOF NO ONE``)
    until it names the new master (``+switch-master``), or aborts, or :data:`FENCE_MAX_S` pass,
    the master is *fenced*: connections to it are dropped before their next command, and new ones
    wait for the new master (:meth:`wait_out_failover`), or fail after :data:`FENCE_WAIT_S`.
    Otherwise a master demoted while still up (``SENTINEL FAILOVER``) would keep taking writes,
    acknowledged and then lost, until Sentinel reconfigures it up to 10 s later.

    Args:
        config: the sentinels and the master's name.
        timeout_s: connect and read timeout per sentinel.
        watch_interval_s: how often the watcher asks; 0: no threads (no watching, no fencing).
    """

    def __init__(self, config: SentinelConfig, timeout_s: float = SENTINEL_TIMEOUT_S, watch_interval_s: float = WATCH_INTERVAL_S) -> None:
        self.config = config
        self.watch_interval_s = watch_interval_s
        self._options: Dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        if config.password:
            self._options["password"] = config.password
        self._sentinel = Sentinel(list(config.sentinels), sentinel_kwargs=self._options)
        self._lock = threading.Lock()
        self._known: Optional[Address] = None
        self._fenced_until = 0.0
        self._watcher_pid: Optional[int] = None
        self._stopped = threading.Event()

    def _ask(self) -> Address:
        with self._lock:  # discover_master reorders its list of sentinels
            host, port = self._sentinel.discover_master(self.config.master)
        return str(host), int(port)

    def master(self) -> Address:
        """The current master's host and port, asked now.

        Raises:
            redis.exceptions.ConnectionError: a failover is under way (fenced), no sentinel
                answered, or none knows a master that is up (``MasterNotFoundError``); every caller
                already handles a Redis that cannot be reached.
        """
        if self.fenced():
            raise RedisConnectionError(f"Sentinel is failing over {self.config.master}: waiting for it to name the new master")
        self._known = self._ask()
        self._watch()
        return self._known

    def known(self) -> Optional[Address]:
        """The master as last learnt (by :meth:`master`, an event or the watcher), None before the first answer."""
        return self._known

    def fenced(self) -> bool:
        """Whether a failover is under way: no command may reach the old master."""
        return time.monotonic() < self._fenced_until

    def wait_out_failover(self, limit_s: float = FENCE_WAIT_S) -> None:
        """Block while a failover is under way, at most ``limit_s``."""
        deadline = time.monotonic() + limit_s
        while self.fenced() and time.monotonic() < deadline:
            time.sleep(0.02)

    async def await_failover(self, limit_s: float = FENCE_WAIT_S) -> None:
        """Wait (without blocking the event loop) while a failover is under way, at most ``limit_s``."""
        deadline = time.monotonic() + limit_s
        while self.fenced() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def on_event(self, channel: str, data: str) -> None:
        """Follow one Sentinel event (``+selected-slave``, ``+switch-master``, ``-failover-abort-*`` ...)."""
        parts = data.split()
        if channel == "+switch-master" and len(parts) == 5 and parts[0] == self.config.master:
            self._known = (parts[3], int(parts[4]))
            self._fenced_until = 0.0
        elif channel in ("+selected-slave", "+failover-state-send-slaveof-noone"):
            if "@" in parts and parts[parts.index("@") + 1:][:1] == [self.config.master]:
                self._fenced_until = time.monotonic() + FENCE_MAX_S
        elif channel.startswith("-failover-abort") and parts[1:2] == [self.config.master]:
            self._fenced_until = 0.0

    def stop(self) -> None:
        """Stop the threads."""
        self._stopped.set()

    def _watch(self) -> None:
        if not self.watch_interval_s or self._watcher_pid == os.getpid():
            return
        self._watcher_pid = os.getpid()
        threading.Thread(target=self._run_watcher, name="redis-sentinel-watch", daemon=True).start()
        for address in self.config.sentinels:
            threading.Thread(target=self._run_listener, args=(address,), name=f"redis-sentinel-events-{address[0]}", daemon=True).start()

    def _run_watcher(self) -> None:
        while not self._stopped.wait(self.watch_interval_s):
            try:
                now = self._ask()
            except (RedisError, OSError):
                continue  # no master known right now (a failover is under way): keep the last one
            if self.fenced() and now != self._known:  # the end of a failover whose +switch-master was missed
                self._fenced_until = 0.0
            if not self.fenced():
                self._known = now

    def _run_listener(self, address: Address) -> None:
        options = {**self._options, "socket_timeout": None}
        while not self._stopped.is_set():
            client = redis.Redis(host=address[0], port=address[1], decode_responses=True, **options)
            events = client.pubsub(ignore_subscribe_messages=True)
            try:
                events.psubscribe(*SENTINEL_EVENTS)
                while not self._stopped.is_set():
                    message = events.get_message(timeout=1.0)
                    if message and message.get("type") == "pmessage":
                        self.on_event(str(message["channel"]), str(message["data"]))
            except (RedisError, OSError):
                self._stopped.wait(self.watch_interval_s or 0.5)
            finally:
                events.close()
                client.close()


_resolver: Optional[MasterResolver] = None
_saved: Dict[Tuple[type, str], Tuple[Callable[..., Any], bool]] = {}
"""Per patched (class, attribute): the function it replaced and whether the class defined it itself."""


def _stands_for_master(host: Any, port: Any) -> bool:
    resolver = _resolver
    return resolver is not None and (host, int(port or 0)) == resolver.config.alias


def _sync_connect(self: sync_connection.Connection) -> Any:
    original = _saved[(sync_connection.Connection, "_connect")][0]
    resolver = _resolver
    if resolver is None or not _stands_for_master(self.host, self.port):
        return original(self)
    resolver.wait_out_failover()
    return _connect_to(self, resolver.master(), original)


async def _async_connect(self: async_connection.Connection) -> Any:
    original = _saved[(async_connection.Connection, "_connect")][0]
    resolver = _resolver
    if resolver is None or not _stands_for_master(self.host, self.port):
        return await original(self)
    await resolver.await_failover()
    master = await asyncio.get_running_loop().run_in_executor(None, resolver.master)
    return await _connect_to(self, master, original)


def _connect_to(connection: Any, master: Address, original: Callable[..., Any]) -> Any:
    """Run redis-py's own ``_connect`` (or its coroutine: awaited by the caller) towards ``master``."""
    alias = (connection.host, connection.port)
    connection.host, connection.port = master
    connection.shop_master = master
    try:
        result = original(connection)
    except BaseException:
        connection.host, connection.port = alias
        raise
    if not asyncio.iscoroutine(result):
        connection.host, connection.port = alias
        return result
    return _restoring(connection, alias, result)


async def _restoring(connection: Any, alias: Address, pending: Any) -> Any:
    try:
        return await pending
    finally:
        connection.host, connection.port = alias


def _stale(connection: Any) -> bool:
    """Whether ``connection`` reached a master that is being failed over, or that the sentinels no longer name."""
    resolver = _resolver
    reached = getattr(connection, "shop_master", None)
    return resolver is not None and reached is not None and (resolver.fenced() or resolver.known() not in (None, reached))


def _sync_send(self: sync_connection.Connection, *args: Any, **kwargs: Any) -> Any:
    if _stale(self):
        self.disconnect()  # redis-py connects again (through the sentinels) before sending
    return _saved[(sync_connection.Connection, "send_packed_command")][0](self, *args, **kwargs)


async def _async_send(self: async_connection.Connection, *args: Any, **kwargs: Any) -> Any:
    if _stale(self):
        await self.disconnect()
    return await _saved[(async_connection.Connection, "send_packed_command")][0](self, *args, **kwargs)


def _demoted(host: Any) -> RedisConnectionError:
    return RedisConnectionError(f"the server behind {host} is no longer the master: reconnecting through Sentinel")


def _sync_read_response(self: sync_connection.Connection, *args: Any, **kwargs: Any) -> Any:
    original = _saved[(sync_connection.Connection, "read_response")][0]
    try:
        return original(self, *args, **kwargs)
    except ReadOnlyError:
        if not _stands_for_master(self.host, self.port):
            raise
        self.disconnect()
        raise _demoted(self.host) from None


async def _async_read_response(self: async_connection.Connection, *args: Any, **kwargs: Any) -> Any:
    original = _saved[(async_connection.Connection, "read_response")][0]
    try:
        return await original(self, *args, **kwargs)
    except ReadOnlyError:
        if not _stands_for_master(self.host, self.port):
            raise
        await self.disconnect()
        raise _demoted(self.host) from None


_PATCHES: Tuple[Tuple[type, str, Callable[..., Any]], ...] = (
    (sync_connection.Connection, "_connect", _sync_connect),
    (sync_connection.Connection, "send_packed_command", _sync_send),
    (sync_connection.Connection, "read_response", _sync_read_response),
    (async_connection.Connection, "_connect", _async_connect),
    (async_connection.Connection, "send_packed_command", _async_send),
    (async_connection.Connection, "read_response", _async_read_response),
)


def install(config: SentinelConfig, timeout_s: float = SENTINEL_TIMEOUT_S, watch_interval_s: float = WATCH_INTERVAL_S) -> MasterResolver:
    """Make connections to ``config.alias`` reach the current master (see the module's description).

    Installing again replaces the configuration. Returns the resolver in use.
    """
    global _resolver
    for cls, name, replacement in _PATCHES:
        if (cls, name) not in _saved:
            _saved[(cls, name)] = (getattr(cls, name), name in cls.__dict__)  # the inherited function when not its own
            setattr(cls, name, replacement)
    if _resolver is not None:
        _resolver.stop()
    _resolver = MasterResolver(config, timeout_s, watch_interval_s)
    return _resolver


def uninstall() -> None:
    """Put redis-py's connection classes back as they were."""
    global _resolver
    if _resolver is not None:
        _resolver.stop()
    _resolver = None
    for (cls, name), (original, own) in list(_saved.items()):
        if own:
            setattr(cls, name, original)
        else:
            delattr(cls, name)
        del _saved[(cls, name)]


def installed() -> Optional[SentinelConfig]:
    """The configuration in force, None when connections go where their address says."""
    return _resolver.config if _resolver else None


def install_from_environment() -> Optional[SentinelConfig]:
    """:func:`install` from the settings when ``REDIS_SENTINELS`` is in the environment (else nothing)."""
    if not os.environ.get("REDIS_SENTINELS", "").strip():
        return None
    from bot.settings import load_settings

    config = config_from_settings(load_settings())
    if config is not None:
        install(config)
    return config
