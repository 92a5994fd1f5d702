"""Benchmark of the human handoff at 50 simultaneous handoffs (targets of issue 5).

Usage::

    PYTHONPATH=. .venv/bin/python -m bench.handoff [--shoppers 50] [--rounds 3] [--model PATH]

Starts the stack of ``make run`` on free ports (its own redis-server and seeded CRM under
``var/bench/handoff``, the agent desk, an always-open copy of the service policy with room for every
shopper), logs in the demo agents, then per round:

1. ``--shoppers`` signed shoppers send 「转人工」 at the same moment through the app channel.
   Measured: from sending to the handoff's entry in the queue (the desk's ``queued_at``; the
   channel queues an explicit 「转人工」 before the bot's turn, :mod:`handoff.express`), to the
   bot's full summary in that entry (``refined_at``), and to the shopper's answer with position
   and ETA.
2. The agents claim every conversation; then each agent replies to all of theirs at the same moment.
   Measured: from posting the reply to the desk until the shopper's message endpoint
   (``GET /webhooks/app/messages/{sender}``) returns it (polled every 20 ms per shopper).
3. Every shopper writes once while with the agent. Measured: the channel's 202 answer.
4. The agents resolve every conversation.

Prints p50/p95/max per measure and the targets (≤ 200 ms and ≤ 500 ms at p95); asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import aiohttp
import redis as redis_sync
import yaml

from bot import launcher
from bot.identity import identity_token_for
from bot.redis_server import RedisServer, free_port
from bot.settings import PROJECT_ROOT, load_settings
from handoff import keys

POLICY_FILE = PROJECT_ROOT / "handoff" / "service.yml"
POLL_S = 0.02
TARGET_ENTRY_MS = 200.0
TARGET_REPLY_MS = 500.0


def percentile(values: Sequence[float], fraction: float) -> Optional[float]:
    """Nearest-rank percentile; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


def line(label: str, values_ms: Sequence[float], target_ms: Optional[float] = None) -> str:
    """One result line: count, p50, p95, max, and the target when there is one."""
    if not values_ms:
        return f"{label:<64} no samples"
    p50, p95 = percentile(values_ms, 0.5), percentile(values_ms, 0.95)
    text = f"{label:<64} n={len(values_ms):<4} p50={p50:7.1f} ms  p95={p95:7.1f} ms  max={max(values_ms):7.1f} ms"
    if target_ms is not None and p95 is not None:
        text += f"   target p95 <= {target_ms:.0f} ms: {'MET' if p95 <= target_ms else 'NOT MET'}"
    return text


def bench_policy(path: Path, shoppers: int) -> Path:
    """The shipped policy, open around the clock, each agent able to take every shopper."""
    policy = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    policy["opening_hours"] = {"default": {"open": "00:00", "close": "24:00"}, "closed_dates": []}
    policy["capacity"] = {"default": max(10, shoppers), "agents": {}}
    path.write_text(yaml.safe_dump(policy, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@dataclasses.dataclass
class Clients:
    """HTTP endpoints of the running stack and the desk tokens."""

    app: str
    desk: str
    secret: str
    tokens: Dict[str, str] = dataclasses.field(default_factory=dict)


async def say(session: aiohttp.ClientSession, c: Clients, sender: str, customer: str, text: str) -> Tuple[int, Any, float]:
    """A shopper's message; returns (status, body, seconds)."""
    body = {"sender": sender, "message": text, "metadata": {"identity_token": identity_token_for(c.secret, customer)}}
    started = time.perf_counter()
    async with session.post(f"{c.app}/webhook", json=body) as response:
        payload = await response.json(content_type=None)
        return response.status, payload, time.perf_counter() - started


async def desk_call(session: aiohttp.ClientSession, c: Clients, method: str, path: str, agent: str, body: Any = None) -> Tuple[int, Any]:
    """A desk API call as an agent."""
    async with session.request(method, f"{c.desk}{path}", json=body, headers={"Authorization": f"Bearer {c.tokens[agent]}"}) as response:
        return response.status, await response.json(content_type=None)


async def fetch_messages(session: aiohttp.ClientSession, c: Clients, sender: str, customer: str, after: str) -> Tuple[List[Dict[str, Any]], str]:
    """Messages pushed to a shopper after a cursor."""
    params = {"after": after} if after else {}
    headers = {"X-Identity-Token": identity_token_for(c.secret, customer)}
    async with session.get(f"{c.app}/messages/{sender}", params=params, headers=headers) as response:
        body = await response.json(content_type=None)
        return body.get("messages", []), body.get("cursor", after)


async def one_round(session: aiohttp.ClientSession, c: Clients, redis_url: str, round_no: int, shoppers: int) -> Dict[str, List[float]]:
    """One burst of handoffs, replies, shopper messages and resolutions; returns durations in ms."""
    client = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    people = [(f"bench-{round_no}-{n}-{int(time.time())}", f"C{n + 1:06d}") for n in range(shoppers)]
    results: Dict[str, List[float]] = {"entry": [], "answer": [], "reply": [], "during": [], "to_request": [], "in_handoff": [],
                                        "full_summary": []}

    sent_at: Dict[str, float] = {}

    async def hand_off(sender: str, customer: str) -> None:
        sent_at[sender] = time.time()
        status, body, seconds = await say(session, c, sender, customer, "转人工")
        if status == 200 and "转接人工客服" in json.dumps(body, ensure_ascii=False):
            results["answer"].append(seconds * 1000)
        else:
            print(f"  unexpected answer for {sender}: {status} {str(body)[:160]}", flush=True)

    await asyncio.gather(*(hand_off(s, cu) for s, cu in people))
    deadline = time.time() + 30
    handoff_ids: Dict[str, str] = {}
    while time.time() < deadline and len(handoff_ids) < len(people):
        for sender, _ in people:
            if sender not in handoff_ids:
                handoff_id = client.get(keys.active(sender))
                if handoff_id and all(client.hmget(keys.record(handoff_id), "queued_at", "refined_at")):
                    handoff_ids[sender] = handoff_id
        await asyncio.sleep(0.05)
    for sender, handoff_id in handoff_ids.items():
        queued_at, enqueued_at, refined_at = (float(v) for v in client.hmget(keys.record(handoff_id), "queued_at", "enqueued_at",
                                                                                  "refined_at"))
        results["entry"].append((queued_at - sent_at[sender]) * 1000)
        results["to_request"].append((enqueued_at - sent_at[sender]) * 1000)
        results["in_handoff"].append((queued_at - enqueued_at) * 1000)
        results["full_summary"].append((refined_at - sent_at[sender]) * 1000)

    agents = sorted(c.tokens)
    owner: Dict[str, str] = {}

    async def claim(index: int, sender: str) -> None:
        offered = client.hget(keys.record(handoff_ids[sender]), "offered_to") or ""
        agent = offered if offered in c.tokens else agents[index % len(agents)]
        status, body = await desk_call(session, c, "POST", f"/api/conversations/{sender}/claim", agent)
        if status == 200:
            owner[sender] = agent
        else:
            print(f"  claim of {sender} by {agent}: {status} {body}", flush=True)

    await asyncio.gather(*(claim(i, s) for i, (s, _) in enumerate(people) if s in handoff_ids))
    cursors: Dict[str, str] = {}
    for sender, customer in people:
        _, cursors[sender] = await fetch_messages(session, c, sender, customer, "")

    async def reply_and_watch(sender: str, customer: str) -> None:
        text = f"您好，我是客服，这是给 {sender} 的回复"
        started = time.perf_counter()
        post = asyncio.ensure_future(desk_call(session, c, "POST", f"/api/conversations/{sender}/messages", owner[sender], {"text": text}))
        cursor = cursors[sender]
        while time.perf_counter() - started < 10:
            messages, cursor = await fetch_messages(session, c, sender, customer, cursor)
            if any(m.get("text") == text for m in messages):
                results["reply"].append((time.perf_counter() - started) * 1000)
                break
            await asyncio.sleep(POLL_S)
        status, body = await post
        if status != 201:
            print(f"  reply to {sender}: {status} {body}", flush=True)

    await asyncio.gather(*(reply_and_watch(s, cu) for s, cu in people if s in owner))

    async def write_during(sender: str, customer: str) -> None:
        status, _, seconds = await say(session, c, sender, customer, "好的，谢谢，我等您消息")
        if status == 202:
            results["during"].append(seconds * 1000)

    await asyncio.gather(*(write_during(s, cu) for s, cu in people if s in owner))
    await asyncio.gather(*(desk_call(session, c, "POST", f"/api/conversations/{s}/resolve", owner[s], {"code": "resolved"}) for s in owner))
    client.close()
    return results


async def sequential(session: aiohttp.ClientSession, c: Clients, redis_url: str, count: int) -> Dict[str, List[float]]:
    """``count`` handoffs one after the other (one shopper at a time): the unloaded baseline."""
    totals: Dict[str, List[float]] = {}
    for n in range(count):
        for name, values in (await one_round(session, c, redis_url, 100 + n, 1)).items():
            totals.setdefault(name, []).extend(values)
    return totals


async def drive(c: Clients, redis_url: str, shoppers: int, rounds: int, single: int) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    """Log the agents in, warm up, run the single-shopper baseline and the rounds."""
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        for agent in ("agent1", "agent2"):
            async with session.post(f"{c.desk}/api/login", json={"username": agent, "password": f"{agent}-pass"}) as response:
                c.tokens[agent] = (await response.json())["token"]
        print("warm-up round (not measured)...", flush=True)
        await one_round(session, c, redis_url, 0, 5)
        print(f"{single} handoffs one at a time (baseline)...", flush=True)
        baseline = await sequential(session, c, redis_url, single)
        totals: Dict[str, List[float]] = {}
        for round_no in range(1, rounds + 1):
            print(f"round {round_no}/{rounds}: {shoppers} simultaneous handoffs...", flush=True)
            for name, values in (await one_round(session, c, redis_url, round_no, shoppers)).items():
                totals.setdefault(name, []).extend(values)
        return baseline, totals


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.handoff", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoppers", type=int, default=50, help="simultaneous handoffs per round (default 50)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument("--single", type=int, default=20, help="handoffs one at a time for the unloaded baseline (default 20)")
    parser.add_argument("--model", type=Path, help="trained model (default: the one for the current data, trained if missing)")
    args = parser.parse_args(argv)

    var_dir = PROJECT_ROOT / "var" / "bench" / "handoff"
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    redis = RedisServer(free_port(), var_dir / "redis").start()
    settings = dataclasses.replace(
        load_settings(), var_dir=var_dir, redis_url=redis.url, crm_port=free_port(), action_port=free_port(),
        rasa_port=free_port(), desk_port=free_port(), shop_port=free_port(), handoff_policy_file=bench_policy(var_dir / "service.yml", args.shoppers),
    )
    stack = launcher.Stack(settings)
    try:
        model = args.model or launcher.train_if_needed()
        print(f"starting the stack (Rasa workers: {settings.rasa_workers}) ...", flush=True)
        launcher.start_services(stack, model)
        clients = Clients(f"http://127.0.0.1:{settings.rasa_port}/webhooks/app", f"http://127.0.0.1:{settings.desk_port}",
                          settings.shop_identity_secret)
        baseline, totals = asyncio.run(drive(clients, redis.url, args.shoppers, args.rounds, args.single))
    finally:
        stack.stop()
        redis.stop()
    print()
    print(f"Human handoff on {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"Rasa workers: {settings.rasa_workers}")
    for title, figures, targets in ((f"One shopper at a time ({args.single} handoffs):", baseline, False),
                                    (f"{args.shoppers} simultaneous shoppers x {args.rounds} rounds:", totals, True)):
        print(title)
        print(line("  「转人工」 sent → entry in the queue", figures.get("entry", []), TARGET_ENTRY_MS if targets else None))
        print(line("    of which: sent → request queued by the channel", figures.get("to_request", [])))
        print(line("    of which: request → entry (desk intake)", figures.get("in_handoff", [])))
        print(line("  「转人工」 sent → bot's full summary in the entry", figures.get("full_summary", [])))
        print(line("  「转人工」 sent → shopper's answer with position/ETA", figures.get("answer", [])))
        print(line("  agent reply posted → shopper's message endpoint", figures.get("reply", []), TARGET_REPLY_MS if targets else None))
        print(line("  shopper message during handoff → 202", figures.get("during", [])))
    print(f"(message endpoint polled every {POLL_S * 1000:.0f} ms per shopper; entry = the desk's queued_at, "
          "action start = the handoff's enqueued_at)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
