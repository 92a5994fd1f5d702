"""The fleet test's committed configuration and its pure parts: addresses that agree across
haproxy.cfg, the Redis and Sentinel files and fleet/topology.py; settings that pass the production
guard; the counting of what clients sent against what the stores hold; the clients' retries."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import List

import aiohttp
import pytest
from aiohttp import web

from bot import roles
from bot.redis_server import free_port
from bot.settings import load_settings
from fleet import checks, topology
from fleet.clients import Ledger, Request, Try, call
from fleet.stack import CONFIG_DIR, Fleet

HAPROXY = (CONFIG_DIR / "haproxy.cfg").read_text()


def servers(backend: str) -> List[str]:
    """``host:port`` of each server of one backend in haproxy.cfg."""
    section = HAPROXY.split(f"backend {backend}\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\s+server \S+ (\S+)", section, flags=re.M)


def test_haproxy_sends_each_backend_to_the_hosts_of_the_topology() -> None:
    expected = {role: [f"{h.address}:{topology.ROLE_PORTS[role]}" for h in topology.hosts_running(role)]
                for role in ("rasa", "actions", "desk")}
    assert servers("rasa_app") == servers("rasa_socketio") == expected["rasa"]
    assert servers("actions") == expected["actions"]
    assert servers("desk") == expected["desk"]
    binds = re.findall(r"^\s+bind (\S+)", HAPROXY, flags=re.M)
    assert binds == [f"{topology.LB}:{port}" for port in (topology.RASA_PORT, topology.ACTION_PORT, topology.DESK_PORT, topology.STATS_PORT)]
    assert "cookie" not in HAPROXY.split("backend rasa_socketio\n", 1)[1].split("\n\n", 1)[0]


def test_haproxy_sends_a_socketio_request_to_the_rasa_server_its_sid_names() -> None:
    section = HAPROXY.split("backend rasa_socketio\n", 1)[1].split("\n\n", 1)[0]
    names = re.findall(r"^\s+server (\S+) ", section, flags=re.M)
    assert names == [host.name for host in topology.hosts_running("rasa")]
    assert re.findall(r"^\s+use-server (\S+) if \{ urlp\(sid\) -m beg (\S+)\. \}$", section, flags=re.M) == [(name, name) for name in names]
    for host in topology.hosts_running("rasa"):  # the instance name in its sids
        assert topology.service_env("rasa", host, topology.Secrets.generate(), Path("/run"))["RASA_INSTANCE"] == host.name


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy is not installed (make fleet-test installs it)")
def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    done = subprocess.run([str(shutil.which("haproxy")), "-c", "-f", str(CONFIG_DIR / "haproxy.cfg")], env={"FLEET_RUN_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_sentinels_monitor_the_first_redis_host_under_the_services_master_name() -> None:
    sentinel = (CONFIG_DIR / "redis" / "sentinel.conf").read_text()
    master = topology.hosts_running("redis")[0]
    assert f"sentinel monitor {topology.MASTER_NAME} {master.address} {topology.REDIS_PORT} 2" in sentinel
    assert len(topology.hosts_running("sentinel")) == 3 and len(topology.hosts_running("redis")) == 2
    assert topology.sentinels() == ",".join(f"{h.address}:{topology.SENTINEL_PORT}" for h in topology.hosts_running("sentinel"))
    assert "appendonly yes" in (CONFIG_DIR / "redis" / "redis.conf").read_text()


def test_every_host_has_its_own_address_and_names_that_fit_linux(tmp_path: Path) -> None:
    addresses = [h.address for h in topology.HOSTS]
    assert len(set(addresses)) == len(addresses) and topology.GATEWAY not in addresses
    assert all(len(h.veth) <= 15 for h in topology.HOSTS)
    assert len({h.veth for h in topology.HOSTS}) == len(topology.HOSTS)


def test_each_service_of_the_fleet_passes_the_production_guard_on_its_own_host(tmp_path: Path) -> None:
    keys = topology.Secrets.generate()
    fleet = Fleet(tmp_path, keys, Path("model.tar.gz"), "postgresql://postgres@127.0.0.1:5432/x", "python")
    fleet.write_files()  # the agents file with the run's passwords, the policy, the Redis and Sentinel files
    placed = [("crm", None)] + [(role, h) for role in ("rasa", "actions", "desk") for h in topology.hosts_running(role)]
    for role, on in placed:
        env = topology.service_env(role, on, keys, tmp_path, fleet.database_url)
        settings = load_settings(env)
        assert settings.shop_env == "production"
        roles.guard(role, settings)
        roles.check_action_token(role, settings)
        assert roles.host_of(settings, role) == (on.address if on else topology.GATEWAY)
        assert (settings.redis_url.split("@")[1], settings.redis_sentinel_master) == (f"{topology.MASTER_NAME}:6379/0", topology.MASTER_NAME)
    rasa = load_settings(topology.service_env("rasa", topology.host("rasa1"), keys, tmp_path))
    assert (rasa.action_host, rasa.action_port) == (topology.LB, topology.ACTION_PORT)  # through HAProxy
    redis2 = (tmp_path / "hosts" / "redis2" / "redis" / "redis.conf").read_text()
    assert f"replicaof {topology.hosts_running('redis')[0].address} 6379" in redis2 and keys.redis_password in redis2
    sentinel = (tmp_path / "hosts" / "sentinel3" / "sentinel" / "sentinel.conf").read_text()
    assert sentinel.index("\nsentinel monitor") < sentinel.index("\nsentinel auth-pass")  # a sentinel reads them in this order


def test_the_tracker_key_is_rasas() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from rasa.core.tracker_store import RedisTrackerStore

    store = SimpleNamespace(key_prefix="")
    RedisTrackerStore._set_key_prefix(store, "tracker")  # key_prefix: tracker in endpoints.yml
    assert store.key_prefix == checks.TRACKER_PREFIX


def sent(key: str, acknowledged: bool = True) -> Request:
    return Request("shopper", key, status=200 if acknowledged else 0, acknowledged=acknowledged)


def test_what_was_sent_is_counted_against_what_is_stored() -> None:
    requests = [sent("s1|你好"), sent("s1|你好"), sent("s1|谢谢"), sent("s2|在吗"), sent("s2|再见", acknowledged=False), sent("s3|x")]
    found = {"s1": Counter({"你好": 1, "谢谢": 2}), "s2": Counter({"在吗": 1, "再见": 1}), "s3": Counter()}
    assert checks.account(requests, found) == {"stored": 3, "lost": 2, "lost_examples": ["s1|你好", "s3|x"], "duplicated": 1,
                                               "stored_not_acknowledged": 1}


def test_messages_a_rolled_back_tracker_lost_are_found_in_order() -> None:
    texts = ["你好", "在吗", "谢谢", "你好", "在吗", "谢谢"]
    requests = [sent(f"s|{text}") for text in texts]
    requests[4].acknowledged = False  # given up: not lost
    stored = ["你好", "在吗", "你好", "谢谢"]  # the third and the fifth are gone

    def positions(lost: List[Request]) -> List[int]:
        return [n for n, request in enumerate(requests) if any(request is r for r in lost)]

    assert positions(checks.lost_in_order(requests, stored)) == [2]
    twice = ["你好", "你好", "在吗", "谢谢", "你好", "谢谢"]  # the first stored twice, the fifth (given up) not at all
    assert checks.lost_in_order(requests, twice) == []


def test_error_windows_count_failed_tries_after_a_fault() -> None:
    ledger = Ledger([Request("shopper", "a", tries=[Try(10.0, "503", True), Try(10.5, "503", True), Try(11.0, "200", False)]),
                     Request("agent", "b", tries=[Try(9.0, "no connection", True), Try(12.0, "201", False)])])
    assert checks.error_window(ledger, 9.5, 20.0) == {"failed_tries": 2, "seconds_of_errors": 1.0, "first_error_after_s": 0.5,
                                                     "met": {"503": 2}}
    assert checks.error_window(ledger, 12.5, 20.0)["seconds_of_errors"] == 0.0


def test_a_request_is_sent_again_until_it_is_taken() -> None:
    answers = [503, 502, 201]
    bodies: List[object] = []

    async def scenario() -> Request:
        async def handler(request: web.Request) -> web.Response:
            bodies.append(await request.json())
            return web.json_response({"n": len(bodies)}, status=answers[len(bodies) - 1])

        app = web.Application()
        app.router.add_post("/x", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession() as session:
                return await call(session, Ledger(), "agent", "k", "POST", f"http://127.0.0.1:{port}/x", body={"client_id": "c1"}, ok=(201,))
        finally:
            await runner.cleanup()

    done = asyncio.run(scenario())
    assert (done.status, done.acknowledged, [t.outcome for t in done.tries]) == (201, True, ["503", "502", "201"])
    assert bodies == [{"client_id": "c1"}] * 3  # the same body, the same id, each time
