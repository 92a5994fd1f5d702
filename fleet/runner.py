"""``make fleet-test``: build the fleet on this machine, run the checks, print the figures, tear it all down.

Usage (as root)::

    PYTHONPATH=. .venv/bin/python -m fleet [--short] [--model PATH]

``FLEET_SHORT=1`` (or ``--short``) is the short form for CI: the same hosts and checks with fewer
shoppers and messages. The figures go to ``results/fleet-<time>.json``; the run's configuration
copies and every process's log stay in ``var/fleet/<time>/``. Exit code 0 when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import platform
import shutil
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from fleet import checks, hosts, topology
from fleet.stack import PROJECT_ROOT, Fleet

PG_ADMIN_URL = os.environ.get("FLEET_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
"""Where the CRM's database is created (and dropped after): the machine's PostgreSQL, reached from the root namespace."""


@dataclass(frozen=True)
class Plan:
    """How much each check sends."""

    shoppers: int
    messages: int
    handoffs: int
    rounds: int
    failover_shoppers: int
    settle_s: float


FULL = Plan(shoppers=20, messages=10, handoffs=20, rounds=10, failover_shoppers=10, settle_s=8.0)
SHORT = Plan(shoppers=6, messages=4, handoffs=6, rounds=4, failover_shoppers=4, settle_s=5.0)
CHECK_TIMEOUT_S = 300.0
"""No check runs longer than this."""


def customers(first: int, count: int) -> List[str]:
    """Demo customers ``C<first>`` onwards: each check its own, so no handoff of one check catches another's shopper."""
    return [f"C{n:06d}" for n in range(first, first + count)]


def _pg_admin(statement: str) -> None:
    import psycopg2

    with contextlib.closing(psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)) as connection:
        connection.autocommit = True  # CREATE / DROP DATABASE run outside a transaction
        connection.cursor().execute(statement)


def create_database() -> str:
    """A fresh PostgreSQL database for the CRM, ``shopfleet_<random>``; its URL.

    Raises:
        hosts.FleetError: PostgreSQL cannot be reached.
    """
    name = f"shopfleet_{uuid.uuid4().hex[:10]}"
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except Exception as error:
        raise hosts.FleetError(f"PostgreSQL at {PG_ADMIN_URL} (FLEET_PG_ADMIN_URL) is needed for the CRM: {error}") from error
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    """Drop a database made by :func:`create_database`."""
    _pg_admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def model_for_fleet(given: Optional[Path]) -> Path:
    """The model every Rasa server loads: ``given``, else the one for the current data, else the newest (never trains)."""
    from bot import launcher

    if given:
        return given.resolve()
    current = launcher.model_path()
    if current.exists():
        return current
    found = sorted(launcher.MODEL_DIR.glob("shop-*.tar.gz"), key=lambda path: path.stat().st_mtime, reverse=True)
    if not found:
        raise hosts.FleetError("no trained model in models/: run `make train` first")
    print(f"using {found[0].name} (the model for the current data is not trained)", flush=True)
    return found[0]


class Clock:
    """Progress lines with the seconds since the start."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f} s] {text}", flush=True)


def build(fleet: Fleet, clock: Clock) -> Dict[str, Any]:
    """Create the hosts and start every service; returns the start-up figures."""
    fleet.network.create()
    clock.say(f"{len(topology.HOSTS)} hosts (network namespaces on bridge {topology.BRIDGE}, {topology.SUBNET})")
    fleet.write_files()
    for each in topology.hosts_running("redis"):
        fleet.start_redis(each)
    for each in topology.hosts_running("sentinel"):
        fleet.start_sentinel(each)
    master, replica = fleet.wait_replication(60)
    clock.say(f"Redis master {master}, replica {replica}, 3 sentinels agree")
    fleet.start_haproxy()
    fleet.start_service("crm", None)
    services: List[Tuple[str, Optional[topology.Host]]] = [("crm", None)]
    for role in ("actions", "desk", "rasa"):
        for on in topology.hosts_running(role):
            fleet.start_service(role, on)
            services.append((role, on))
    clock.say("CRM (seeding PostgreSQL), 2 action servers, 2 desks and 2 Rasa servers starting (serve ROLE)")
    for role, where in services:
        at = fleet.wait_service(role, where, 900 if role == "rasa" else 180)
        clock.say(f"{role}@{where.name if where else 'gateway'} healthy at {at:.0f} s")
    states = fleet.wait_backends("UP", timeout_s=30)
    clock.say(f"HAProxy: {sum(s.startswith('UP') for s in states.values())} servers up")
    return {"healthy_at_s": dict(fleet.started_at), "fleet_ready_s": round(time.monotonic() - fleet.t0, 1), "haproxy": states}


async def bounded(what: str, coroutine: Any, clock: Clock) -> Dict[str, Any]:
    """Run one check within :data:`CHECK_TIMEOUT_S`; a check that fails to finish is a failed check."""
    clock.say(f"check: {what}")
    started = time.monotonic()
    try:
        result: Dict[str, Any] = await asyncio.wait_for(coroutine, CHECK_TIMEOUT_S)
    except Exception as error:  # reported as a failed check, with the reason
        result = {"passed": False, "error": f"{type(error).__name__}: {error}"}
    result["check_seconds"] = round(time.monotonic() - started, 1)
    clock.say(f"  {'passed' if result.get('passed') else 'FAILED'} in {result['check_seconds']:.0f} s"
              + (f": {result['error']}" if "error" in result else ""))
    return result


async def run_checks(fleet: Fleet, plan: Plan, clock: Clock, results: Dict[str, Any]) -> None:
    """Every check in turn, each one's figures into ``results``; the Rasa server is killed last (it takes longest to come back)."""
    act1, desk1, rasa1 = topology.host("act1"), topology.host("desk1"), topology.host("rasa1")

    def kill(each: topology.Host) -> checks.Fault:
        async def fault() -> Dict[str, Any]:
            killed = await asyncio.to_thread(fleet.kill_host, each)
            clock.say(f"  killed host {each.name} ({killed} processes, SIGKILL)")
            return {"host": each.name, "processes_killed": killed}
        return fault

    async def restart(role: str, each: topology.Host) -> None:
        fleet.start_service(role, each)
        at = await asyncio.to_thread(fleet.wait_service, role, each, 180)
        await asyncio.to_thread(fleet.wait_backends, "UP", None, 30)
        clock.say(f"  {role}@{each.name} started again, healthy at {at:.0f} s")

    results["alternation"] = await bounded("one conversation alternately on rasa1 and rasa2", checks.alternation(fleet), clock)
    results["metrics"] = await bounded("/metrics on every service", checks.metrics(fleet), clock)
    results["web_sessions"] = await bounded("socket.io sessions through HAProxy (polling, then websocket)", checks.web_sessions(fleet), clock)
    results["kill_action_server"] = await bounded(
        f"{plan.shoppers} shoppers x {plan.messages} messages, action server act1 killed",
        checks.bot_turns(fleet, "act", customers(1, plan.shoppers), plan.messages, kill(act1)), clock)
    await restart("actions", act1)
    results["kill_desk"] = await bounded(
        f"{plan.handoffs} handoffs x {plan.rounds} messages each way, desk desk1 killed",
        checks.handoffs(fleet, customers(101, plan.handoffs), plan.rounds, kill(desk1)), clock)
    await restart("desk", desk1)
    results["sentinel_failover"] = await bounded(
        f"{plan.failover_shoppers} shoppers talking through SENTINEL FAILOVER, then the new master killed",
        checks.failover(fleet, customers(201, plan.failover_shoppers), plan.settle_s), clock)
    results["kill_rasa"] = await bounded(
        f"{plan.shoppers} shoppers x {plan.messages} messages, Rasa server rasa1 killed",
        checks.bot_turns(fleet, "rasa", customers(301, plan.shoppers), plan.messages, kill(rasa1)), clock)


def rows(results: Dict[str, Any]) -> Iterator[Tuple[str, str]]:
    """The table: one line per figure."""
    def get(data: Dict[str, Any], *path: str) -> Any:
        for key in path:
            data = data.get(key, {}) if isinstance(data, dict) else {}
        return data if data != {} else "-"

    alt = results.get("alternation", {})
    yield "(a) one conversation on both Rasa servers", "passed" if alt.get("passed") else f"FAILED {alt.get('error', '')}"
    for turn in alt.get("turns", []):
        yield f"    {turn['server']}: {turn['said']}", f"{turn['status']} {'as expected' if turn['as_expected'] else 'UNEXPECTED'}"
    web = results.get("web_sessions", {})
    yield "web widget sessions through HAProxy", "passed" if web.get("passed") else f"FAILED {web.get('error', '')}"
    for key in ("polling", "polling_then_websocket"):
        part = web.get(key, {})
        yield f"    {key}: answered / sessions; instances", f"{get(part, 'answered')} / {get(part, 'sessions')}; {get(part, 'instances')}"
    metrics = results.get("metrics", {})
    yield "/metrics on every service (token; 401 without)", "passed" if metrics.get("passed") else f"FAILED {metrics.get('error', '')}"
    for page in metrics.get("pages", []):
        yield f"    {page['service']}", f"{page['status']}, {page['families']} metric families, {page['without_token']} without the token"
    for key, title in (("kill_action_server", "(b) action server act1 killed"), ("kill_rasa", "(b) Rasa server rasa1 killed")):
        r = results.get(key, {})
        yield title, "passed" if r.get("passed") else f"FAILED {r.get('error', '')}"
        m = r.get("messages", {})
        yield "    shopper messages sent / acknowledged / given up", f"{get(m, 'sent')} / {get(m, 'acknowledged')} / {get(m, 'given_up')}"
        yield "    in the trackers / lost / duplicated", f"{get(m, 'stored')} / {get(m, 'lost')} / {get(m, 'duplicated')}"
        yield "    retries; errors after the kill (s)", f"{get(m, 'retries')}; {get(r, 'after_fault', 'seconds_of_errors')}"
        yield "    slowest message (s); messages over 10 s", f"{get(m, 'slowest_s')}; {get(m, 'over_10_s')}"
    d = results.get("kill_desk", {})
    yield "(b) desk desk1 killed", "passed" if d.get("passed") else f"FAILED {d.get('error', '')}"
    s, a = d.get("shopper_messages", {}), d.get("agent_replies", {})
    yield "    conversations claimed", f"{get(d, 'claimed')} of {get(d, 'conversations')}"
    yield "    shopper messages sent / acknowledged / given up", f"{get(s, 'sent')} / {get(s, 'acknowledged')} / {get(s, 'given_up')}"
    yield "    in the transcripts / lost / duplicated", (f"{get(s, 'in_transcripts', 'stored')} / {get(s, 'in_transcripts', 'lost')} / "
                                                     f"{get(s, 'in_transcripts', 'duplicated')}")
    yield "    agent replies sent / acknowledged / given up", f"{get(a, 'sent')} / {get(a, 'acknowledged')} / {get(a, 'given_up')}"
    yield "    received by shoppers / lost / duplicated", (f"{get(a, 'at_shoppers', 'stored')} / {get(a, 'at_shoppers', 'lost')} / "
                                                         f"{get(a, 'at_shoppers', 'duplicated')}")
    yield "    retries (shoppers, agents); errors after the kill (s)", (f"{get(s, 'retries')}, {get(a, 'retries')}; "
                                                                     f"{get(d, 'after_fault', 'seconds_of_errors')}")
    f = results.get("sentinel_failover", {})
    yield "(c) Sentinel failover", "survived" if f.get("passed") else f"FAILED {f.get('error', '')}"
    for event in f.get("events", []):
        yield f"    {event['what']}", f"{event['from']} -> {event['to']}"
        yield "      sentinels switched after (s); seconds of errors", f"{event['sentinels_switched_after_s']}; {event['seconds_of_errors']}"
        yield "      failed tries; acknowledged and lost", f"{event['failed_tries']}; {event['acknowledged_and_lost']}"
    m = f.get("messages", {})
    yield "    messages sent / acknowledged / given up", f"{get(m, 'sent')} / {get(m, 'acknowledged')} / {get(m, 'given_up')}"
    yield "    acknowledged and lost / duplicated", f"{get(m, 'lost')} / {get(m, 'duplicated')}"
    yield "    slowest message (s); messages over 10 s", f"{get(m, 'slowest_s')}; {get(m, 'over_10_s')}"


def print_table(results: Dict[str, Any], startup: Dict[str, Any], total_s: float) -> None:
    print()
    print(f"Fleet test ({startup.get('fleet_ready_s', '-')} s to start, {total_s:.0f} s in all)")
    for label, value in rows(results):
        print(f"  {label:<58} {value}")


def prune_runs(parent: Path, keep: int = 5) -> None:
    """Delete all but the newest ``keep`` run directories (their logs and Redis data)."""
    for old in sorted((path for path in parent.glob("*") if path.is_dir()), reverse=True)[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM tears down like Ctrl-C


def main(argv: Optional[List[str]] = None) -> int:
    """Build the fleet, run the checks, write the figures; always tear down."""
    parser = argparse.ArgumentParser(prog="python -m fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", default=os.environ.get("FLEET_SHORT", "") not in ("", "0"),
                        help="fewer shoppers and messages (also FLEET_SHORT=1)")
    parser.add_argument("--model", type=Path, help="the trained model (default: the one for the current data, else the newest)")
    args = parser.parse_args(argv)
    plan = SHORT if args.short else FULL
    clock = Clock()
    try:
        installed = hosts.preflight()
    except hosts.FleetError as error:
        print(f"fleet-test: {error}", file=sys.stderr)
        return 2
    lock = open("/run/shopfleet.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("fleet-test: another fleet test is running on this machine", file=sys.stderr)
        return 2
    left = hosts.remove_leftovers()
    if left:
        clock.say(f"removed what an interrupted run left: {', '.join(left)}")
    signal.signal(signal.SIGTERM, _interrupted)
    from bot.launcher import python_bin
    from fleet.topology import Secrets

    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = PROJECT_ROOT / "var" / "fleet" / stamp
    figures: Dict[str, Any] = {"short": args.short, "plan": plan.__dict__, "installed_packages": installed,
                               "machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores",
                               "load_average_at_start": os.getloadavg()}
    database = ""
    fleet: Optional[Fleet] = None
    passed = False
    try:
        model = model_for_fleet(args.model)
        database = create_database()
        fleet = Fleet(run_dir, Secrets.generate(), model, database, python_bin())
        figures["startup"] = build(fleet, clock)
        figures["results"] = {}
        asyncio.run(run_checks(fleet, plan, clock, figures["results"]))
        passed = all(result.get("passed") for result in figures["results"].values())
    except (hosts.FleetError, RuntimeError, OSError) as error:
        figures["error"] = f"{type(error).__name__}: {error}"
        print(f"fleet-test: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        figures["error"] = "interrupted"
        print("fleet-test: interrupted", file=sys.stderr)
    finally:
        problems = fleet.destroy() if fleet else []
        if database:
            try:
                drop_database(database)
            except Exception as error:  # reported, the run's outcome stands
                problems.append(f"database: {error}")
        clock.say("torn down: every namespace, veth, the bridge, every process" + (f"; problems: {problems}" if problems else ""))
        figures["teardown_problems"] = problems
        figures["total_seconds"] = round(time.monotonic() - clock.t0, 1)
        figures["passed"] = passed
        figures["run_dir"] = str(run_dir.relative_to(PROJECT_ROOT))
        out = PROJECT_ROOT / "results" / f"fleet-{stamp}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(figures, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        prune_runs(run_dir.parent)
        lock.close()
    if figures.get("results"):
        print_table(figures["results"], figures.get("startup", {}), figures["total_seconds"])
    print(f"{'PASSED' if passed else 'FAILED'}; figures in {out.relative_to(PROJECT_ROOT)}, logs in {figures['run_dir']}/logs")
    return 0 if passed else 1
