"""Fault campaign of the human handoff: concurrent handoffs while Redis is restarted and a desk is killed.

Usage::

    PYTHONPATH=. .venv/bin/python -m bench.faults [--shoppers 50] [--rounds 8] [--model PATH]

Starts the stack of ``make run`` on free ports as :mod:`bench.handoff` does (its own redis-server
with its append-only file under ``var/bench/faults``, an always-open policy with room for every
shopper), plus a SECOND desk process (``python -m desk serve`` on its own port). agent1 works on the
first desk, agent2 on the second; both send heartbeats like the console. Then:

1. ``--shoppers`` signed shoppers send 「转人工」 at once; each conversation is claimed by its agent.
2. Each conversation exchanges ``--rounds`` messages each way: the shopper writes (the app channel
   answers 202), the agent replies through the desk API; a poller per shopper reads
   ``GET /webhooks/app/messages/<sender>`` all along.
3. In the middle, Redis is stopped and started again (the same server and append-only file), and
   the second desk is killed with SIGKILL; agent2 carries on through the surviving desk (sessions
   live in Redis). Everything keeps going.

A 503 (or a refused connection) is a message the client knows was not taken: it is retried, at
most ``--attempts`` times, and the retries are counted. Counted at the end: shopper messages sent
and accepted (200/202) or given up, those in the transcripts the agents read
(``GET /api/conversations/<sender>`` on the surviving desk), agent replies sent and accepted and
those the shoppers received, deduplicated by message id (the outbox cursor), with duplicates (the
same reply under two ids, or one id twice) counted. Prints a table and writes
``results/faults-<time>.json``. Loopback only; a few minutes at most.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import re
import shutil
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import aiohttp

from bench.handoff import bench_policy
from bot import launcher
from bot.identity import identity_token_for
from bot.redis_server import RedisServer, free_port
from bot.settings import PROJECT_ROOT, load_settings

AGENTS = ("agent1", "agent2")
"""The demo agents who claim (the supervisor reads the metrics only)."""
HEARTBEAT_S = 5.0
POLL_S = 0.5
RETRY_PAUSE_S = (0.2, 0.4, 0.8, 1.0)
SHOPPER_TOKEN = re.compile(r"顾客消息 (\S+)")
AGENT_TOKEN = re.compile(r"客服回复 (\S+)")


@dataclasses.dataclass
class Tally:
    """Counters of one kind of message."""

    sent: int = 0
    accepted: int = 0
    given_up: int = 0
    retries: int = 0
    refused_503: int = 0
    connection_errors: int = 0
    ambiguous: int = 0
    """Requests cut off after they were sent (the server may have taken them): retried anyway."""
    other: Counter = dataclasses.field(default_factory=Counter)
    tries: Dict[str, List[str]] = dataclasses.field(default_factory=dict)
    """Per message (its token): what each try met, for the messages that needed more than one."""


@dataclasses.dataclass
class Campaign:
    """Endpoints, agents' sessions and everything counted."""

    app: str
    desks: Dict[str, str]
    secret: str
    attempts: int
    tokens: Dict[str, str] = dataclasses.field(default_factory=dict)
    home: Dict[str, str] = dataclasses.field(default_factory=dict)
    dead: set = dataclasses.field(default_factory=set)
    shopper: Tally = dataclasses.field(default_factory=Tally)
    agent: Tally = dataclasses.field(default_factory=Tally)
    claims: Tally = dataclasses.field(default_factory=Tally)
    handoffs: Tally = dataclasses.field(default_factory=Tally)
    received: Dict[str, Dict[str, str]] = dataclasses.field(default_factory=dict)
    """Per shopper: outbox cursor → text of every message the poller got."""
    same_cursor_twice: int = 0
    events: List[Tuple[float, str]] = dataclasses.field(default_factory=list)
    started: float = dataclasses.field(default_factory=time.monotonic)

    def note(self, text: str) -> None:
        at = time.monotonic() - self.started
        self.events.append((round(at, 2), text))
        print(f"  [{at:6.1f} s] {text}", flush=True)

    def desk_for(self, agent: str) -> str:
        """The agent's desk, the surviving one once theirs is gone."""
        home = self.home[agent]
        if home not in self.dead:
            return self.desks[home]
        return next(url for name, url in self.desks.items() if name not in self.dead)


async def _retrying(c: Campaign, tally: Tally, call, ok: Tuple[int, ...], token: str = "") -> Tuple[int, Any]:
    """Run ``call`` until it answers one of ``ok`` or another final status, retrying 503s and broken connections."""
    status, body = 0, None
    met: List[str] = []
    for attempt in range(c.attempts):
        if attempt:
            tally.retries += 1
            if token:
                tally.tries[token] = met
            await asyncio.sleep(RETRY_PAUSE_S[min(attempt - 1, len(RETRY_PAUSE_S) - 1)])
        try:
            status, body = await call()
        except aiohttp.ClientConnectorError:
            tally.connection_errors += 1  # never reached the server
            met.append(f"{time.monotonic() - c.started:.2f}s no connection")
            continue
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as error:
            tally.ambiguous += 1  # sent, the answer lost: the server may have taken it
            met.append(f"{time.monotonic() - c.started:.2f}s {type(error).__name__}")
            continue
        met.append(f"{time.monotonic() - c.started:.2f}s {status}" + (f" {json.dumps(body, ensure_ascii=False)[:120]}" if status == 503 else ""))
        if status == 503:
            tally.refused_503 += 1
            continue
        if status in ok:
            tally.accepted += 1
        else:
            tally.other[status] += 1
        return status, body
    tally.given_up += 1
    return status, body


async def say(session: aiohttp.ClientSession, c: Campaign, tally: Tally, sender: str, customer: str, text: str) -> Tuple[int, Any]:
    """A shopper's message through the app channel, retried on 503 with the same ``message_id``."""
    tally.sent += 1
    body = {"sender": sender, "message": text, "message_id": f"m-{tally.sent}",
            "metadata": {"identity_token": identity_token_for(c.secret, customer)}}

    async def call() -> Tuple[int, Any]:
        async with session.post(f"{c.app}/webhook", json=body) as response:
            return response.status, await response.json(content_type=None)

    return await _retrying(c, tally, call, (200, 202), token=text)


async def desk(session: aiohttp.ClientSession, c: Campaign, tally: Optional[Tally], method: str, path: str, agent: str,
               body: Any = None, ok: Tuple[int, ...] = (200, 201)) -> Tuple[int, Any]:
    """A desk API call as an agent on their desk (the surviving one once theirs is dead), retried on 503."""
    tally = tally or Tally()
    tally.sent += 1

    async def call() -> Tuple[int, Any]:
        url = c.desk_for(agent)
        try:
            async with session.request(method, f"{url}{path}", json=body,
                                       headers={"Authorization": f"Bearer {c.tokens[agent]}"}) as response:
                return response.status, await response.json(content_type=None)
        except aiohttp.ClientConnectorError:
            c.dead.update(name for name, known in c.desks.items() if known == url)
            raise

    return await _retrying(c, tally, call, ok, token=str((body or {}).get("text") or ""))


async def poll(session: aiohttp.ClientSession, c: Campaign, sender: str, customer: str, stop: asyncio.Event) -> None:
    """Read a shopper's pushed messages all along, as the app does, keeping every one by its cursor."""
    cursor = ""
    seen = c.received.setdefault(sender, {})
    headers = {"X-Identity-Token": identity_token_for(c.secret, customer)}
    while True:
        try:
            params = {"after": cursor} if cursor else {}
            async with session.get(f"{c.app}/messages/{sender}", params=params, headers=headers) as response:
                if response.status == 200:
                    body = await response.json(content_type=None)
                    for message in body.get("messages", []):
                        key = str(message.get("cursor"))
                        if key in seen:
                            c.same_cursor_twice += 1
                        seen[key] = str(message.get("text") or "")
                    cursor = body.get("cursor") or cursor
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        if stop.is_set():
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=POLL_S)
        except asyncio.TimeoutError:
            pass


async def heartbeats(session: aiohttp.ClientSession, c: Campaign, stop: asyncio.Event) -> None:
    """Each agent's console: a heartbeat every few seconds to the desk it is on."""
    while not stop.is_set():
        for agent in AGENTS:
            try:
                await desk(session, c, None, "POST", "/api/presence", agent)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
        try:
            await asyncio.wait_for(stop.wait(), timeout=HEARTBEAT_S)
        except asyncio.TimeoutError:
            pass


async def conversation(session: aiohttp.ClientSession, c: Campaign, n: int, sender: str, customer: str, rounds: int,
                       all_claimed: asyncio.Event, claimed: List[str]) -> Dict[str, Any]:
    """One shopper and their agent: 「转人工」, the claim, then ``rounds`` messages each way."""
    agent = AGENTS[n % len(AGENTS)]
    status, body = await say(session, c, c.handoffs, sender, customer, "转人工")
    if status not in (200, 202):
        return {"sender": sender, "agent": agent, "handoff": status}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body = await desk(session, c, c.claims, "POST", f"/api/conversations/{sender}/claim", agent)
        if status == 200:
            break
        await asyncio.sleep(0.3)  # not materialized yet (404), or taken
    else:
        return {"sender": sender, "agent": agent, "claim": status}
    claimed.append(sender)
    await all_claimed.wait()
    for i in range(rounds):
        await say(session, c, c.shopper, sender, customer, f"顾客消息 {n}-{i}")
        await asyncio.sleep(0.3)
        await desk(session, c, c.agent, "POST", f"/api/conversations/{sender}/messages", agent, {"text": f"客服回复 {n}-{i}"})
        await asyncio.sleep(0.7)
    return {"sender": sender, "agent": agent}


async def faults(c: Campaign, redis: RedisServer, second_desk: launcher.Child, all_claimed: asyncio.Event, delay_s: float) -> None:
    """Restart Redis, then kill the second desk, while the conversations go on."""
    await all_claimed.wait()
    await asyncio.sleep(delay_s)
    c.note("stopping Redis (SIGTERM: the append-only file is flushed)")
    await asyncio.to_thread(redis.stop)
    await asyncio.sleep(2.0)
    await asyncio.to_thread(redis.start)
    c.note("Redis started again from its append-only file")
    await asyncio.sleep(delay_s)
    assert second_desk.process is not None
    os.killpg(second_desk.process.pid, signal.SIGKILL)
    await asyncio.to_thread(second_desk.process.wait, 10)
    c.dead.add("desk-2")
    c.note("second desk killed (SIGKILL); agent2 carries on through the first")


def tally_view(t: Tally) -> Dict[str, Any]:
    return {**dataclasses.asdict(t), "other": dict(t.other)}


async def count(session: aiohttp.ClientSession, c: Campaign, outcomes: List[Dict[str, Any]], rounds: int) -> Dict[str, Any]:
    """Compare what was sent with what agents and shoppers got."""
    transcript_shopper: Counter = Counter()
    transcript_agent: Counter = Counter()
    unreadable = 0
    for outcome in outcomes:
        sender, agent = outcome["sender"], outcome["agent"]
        status, body = await desk(session, c, None, "GET", f"/api/conversations/{sender}", agent)
        if status != 200:
            unreadable += 1
            continue
        for entry in body.get("transcript", []):
            text = str(entry.get("text") or "")
            found = SHOPPER_TOKEN.fullmatch(text) if entry.get("from") == "shopper" else AGENT_TOKEN.fullmatch(text)
            if found:
                (transcript_shopper if entry.get("from") == "shopper" else transcript_agent)[found.group(1)] += 1
    received: Counter = Counter()
    for messages in c.received.values():
        for text in messages.values():
            found = AGENT_TOKEN.fullmatch(text)
            if found:
                received[found.group(1)] += 1
    expected = {f"{n}-{i}" for n, outcome in enumerate(outcomes) if "claim" not in outcome and "handoff" not in outcome
                for i in range(rounds)}
    return {
        "conversations": len(outcomes),
        "conversations_claimed": sum(1 for o in outcomes if "claim" not in o and "handoff" not in o),
        "transcripts_unreadable": unreadable,
        "shopper_messages": {
            **tally_view(c.shopper),
            "in_transcripts": len(set(transcript_shopper) & expected),
            "missing_from_transcripts": sorted(expected - set(transcript_shopper)),
            "duplicated_in_transcripts": sum(v - 1 for v in transcript_shopper.values() if v > 1),
        },
        "agent_replies": {
            **tally_view(c.agent),
            "in_transcripts": len(set(transcript_agent) & expected),
            "duplicated_in_transcripts": sum(v - 1 for v in transcript_agent.values() if v > 1),
            "received_by_shoppers": len(set(received) & expected),
            "duplicates_to_shoppers": {token: {"copies": n, "in_transcript": transcript_agent[token],
                                               "tries": c.agent.tries.get(f"客服回复 {token}", [])}
                                       for token, n in received.items() if n > 1},
            "missing_at_shoppers": sorted(expected - set(received)),
            "duplicated_to_shoppers": sum(v - 1 for v in received.values() if v > 1),
            "same_message_id_twice": c.same_cursor_twice,
        },
        "handoff_requests": tally_view(c.handoffs),
        "claims": tally_view(c.claims),
    }


async def drive(c: Campaign, redis: RedisServer, second_desk: launcher.Child, shoppers: int, rounds: int, delay_s: float) -> Dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        for agent in AGENTS:
            async with session.post(f"{c.desks[c.home[agent]]}/api/login", json={"username": agent, "password": f"{agent}-pass"}) as response:
                c.tokens[agent] = (await response.json())["token"]
        stamp = int(time.time())
        people = [(f"fault-{n}-{stamp}", f"C{n + 1:06d}") for n in range(shoppers)]
        stop = asyncio.Event()
        all_claimed = asyncio.Event()
        claimed: List[str] = []
        background = [asyncio.ensure_future(heartbeats(session, c, stop))]
        background += [asyncio.ensure_future(poll(session, c, s, cu, stop)) for s, cu in people]
        injector = asyncio.ensure_future(faults(c, redis, second_desk, all_claimed, delay_s))
        c.note(f"{shoppers} shoppers send 「转人工」")
        work = [asyncio.ensure_future(conversation(session, c, n, s, cu, rounds, all_claimed, claimed)) for n, (s, cu) in enumerate(people)]
        deadline = time.monotonic() + 120
        while len(claimed) < shoppers and time.monotonic() < deadline and not all(w.done() for w in work):
            await asyncio.sleep(0.2)
        c.note(f"{len(claimed)} conversations claimed; exchanging {rounds} messages each way")
        all_claimed.set()
        outcomes = await asyncio.gather(*work)
        c.note("exchanges done; letting the last replies arrive")
        await injector
        await asyncio.sleep(3.0)
        stop.set()
        await asyncio.gather(*background)
        return await count(session, c, list(outcomes), rounds)


def print_table(figures: Dict[str, Any]) -> None:
    s, a = figures["shopper_messages"], figures["agent_replies"]
    rows = [
        ("conversations (handed off / claimed)", f"{figures['conversations']} / {figures['conversations_claimed']}"),
        ("shopper messages sent", s["sent"]),
        ("  accepted (200/202)", s["accepted"]),
        ("  given up after the retries", s["given_up"]),
        ("  retries (503 / no connection / answer lost)", f"{s['retries']} ({s['refused_503']} / {s['connection_errors']} / {s['ambiguous']})"),
        ("  in the transcripts agents read", s["in_transcripts"]),
        ("  missing from the transcripts", len(s["missing_from_transcripts"])),
        ("  duplicated in the transcripts", s["duplicated_in_transcripts"]),
        ("agent replies sent", a["sent"]),
        ("  accepted (201)", a["accepted"]),
        ("  given up after the retries", a["given_up"]),
        ("  retries (503 / no connection / answer lost)", f"{a['retries']} ({a['refused_503']} / {a['connection_errors']} / {a['ambiguous']})"),
        ("  in the transcripts", a["in_transcripts"]),
        ("  received by the shoppers (distinct)", a["received_by_shoppers"]),
        ("  missing at the shoppers", len(a["missing_at_shoppers"])),
        ("  duplicated in the transcripts", a["duplicated_in_transcripts"]),
        ("  duplicated to the shoppers", a["duplicated_to_shoppers"]),
        ("  same message id fetched twice", a["same_message_id_twice"]),
        ("handoff requests: retries / given up", f"{figures['handoff_requests']['retries']} / {figures['handoff_requests']['given_up']}"),
        ("claims: retries / given up", f"{figures['claims']['retries']} / {figures['claims']['given_up']}"),
    ]
    for label, value in rows:
        print(f"  {label:<48} {value}")


def existing_model() -> Path:
    """The model for the current data, else the newest trained one (the campaign never trains)."""
    current = launcher.model_path()
    if current.exists():
        return current
    found = sorted(launcher.MODEL_DIR.glob("shop-*.tar.gz"), key=lambda path: path.stat().st_mtime, reverse=True)
    if not found:
        raise SystemExit("no trained model in models/: run `make train` first")
    print(f"using {found[0].name} (the model for the current data is not trained)", flush=True)
    return found[0]


def main(argv: Optional[List[str]] = None) -> int:
    """Run the campaign, print the figures and write them to results/."""
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoppers", type=int, default=50, help="concurrent handoffs (default 50)")
    parser.add_argument("--rounds", type=int, default=8, help="messages each way per conversation (default 8)")
    parser.add_argument("--attempts", type=int, default=40, help="tries per message before giving up (default 40)")
    parser.add_argument("--fault-delay", type=float, default=2.5, help="seconds into the exchanges before each fault (default 2.5)")
    parser.add_argument("--model", type=Path, help="trained model (default: the one for the current data, else the newest)")
    args = parser.parse_args(argv)

    var_dir = PROJECT_ROOT / "var" / "bench" / "faults"
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    redis = RedisServer(free_port(), var_dir / "redis").start()
    settings = dataclasses.replace(
        load_settings(), var_dir=var_dir, redis_url=redis.url, crm_port=free_port(), action_port=free_port(), rasa_port=free_port(),
        desk_port=free_port(), shop_port=free_port(), handoff_policy_file=bench_policy(var_dir / "service.yml", args.shoppers),
    )
    stack = launcher.Stack(settings)
    second_port = free_port()
    started = time.time()
    try:
        model = args.model or existing_model()
        print("starting the stack and a second desk ...", flush=True)
        launcher.start_services(stack, model)
        second = launcher.Child("desk-2", [launcher.python_bin(), "-m", "desk", "serve", "--host", "127.0.0.1", "--port", str(second_port)],
                                f"http://127.0.0.1:{second_port}/health")
        stack.start_child(second, launcher.base_env(stack.settings, redis.url), 60)
        campaign = Campaign(f"http://127.0.0.1:{settings.rasa_port}/webhooks/app",
                            {"desk-1": f"http://127.0.0.1:{settings.desk_port}", "desk-2": f"http://127.0.0.1:{second_port}"},
                            stack.settings.shop_identity_secret, args.attempts, home={"agent1": "desk-1", "agent2": "desk-2"})
        figures = asyncio.run(drive(campaign, redis, second, args.shoppers, args.rounds, args.fault_delay))
    finally:
        stack.stop()
        redis.stop()
    figures.update({"shoppers": args.shoppers, "rounds": args.rounds, "attempts": args.attempts, "events": campaign.events,
                    "duration_s": round(time.time() - started, 1),
                    "machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores"})
    print()
    print(f"Fault campaign: {args.shoppers} concurrent handoffs x {args.rounds} messages each way; Redis restarted, "
          f"one of two desks killed ({figures['machine']})")
    print_table(figures)
    out = PROJECT_ROOT / "results" / f"faults-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"written to {out.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
