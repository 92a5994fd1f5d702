"""The fleet test's checks, each bounded in messages and in time.

- :func:`alternation`: one anonymous conversation whose turns go straight to one Rasa server, then
  the other, and back: verification asked on one, the order number given on the other, the phone
  tail on the first, which then shows the order. The tracker holds every turn in order.
- :func:`bot_turns`: shoppers through HAProxy, each sending a list of messages, while a fault is
  injected (a Rasa server's or an action server's host killed); every message acknowledged must be
  in its conversation's tracker, once.
- :func:`handoffs`: shoppers handed to two agents, messages both ways through HAProxy, while a desk's
  host is killed; every shopper message acknowledged must be in the transcript, every agent reply
  acknowledged in the transcript and received by the shopper.
- :func:`failover`: shoppers talking with the bot through a planned Sentinel failover
  (``SENTINEL FAILOVER``) and then the crash of the new master (SIGKILL): how long clients met
  errors, and which acknowledged messages the trackers lost.

Trackers are read from the current master and opened with the run's tracker key, as Rasa would.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence

import aiohttp

from bench.faults import AGENTS, Campaign, heartbeats, poll
from fleet import topology
from fleet.clients import Agent, Ledger, Request, Shopper, call, login, say
from fleet.stack import Fleet, wait_until

BOT_TEXTS = ("你好", "我的快递到哪了", "我有多少积分", "我是什么会员", "运费怎么算", "退款到哪了", "积分什么时候过期", "发票怎么开", "谢谢", "在吗")
"""What shoppers say to the bot: answered from the CRM (through an action server) or from the domain."""
TRACKER_PREFIX = "tracker:tracker:"
"""Key prefix of a tracker: ``key_prefix: tracker`` of endpoints.yml before Rasa's own ``tracker:``."""
THINK_S = 0.2
Fault = Callable[[], Awaitable[Dict[str, Any]]]


def user_texts(fleet: Fleet, senders: Sequence[str]) -> Dict[str, List[str]]:
    """What each conversation's tracker holds from the shopper (user events' texts, in order), read on the current master."""
    with warnings.catch_warnings():  # Rasa's import warns about SQLAlchemy 2.0
        warnings.simplefilter("ignore")
        from bot.tracker_store import TrackerCipher

    cipher = TrackerCipher.from_secret(fleet.keys.shop_identity_secret)
    client = fleet.master_client()
    found: Dict[str, List[str]] = {}
    for sender in senders:
        raw = client.get(TRACKER_PREFIX + sender)
        if raw is None:
            found[sender] = []
            continue
        plain = cipher.open(sender, raw) if cipher.is_sealed(raw) else raw
        events = json.loads(plain).get("events", [])
        found[sender] = [str(event.get("text")) for event in events if event.get("event") == "user"]
    return found


def counted(found: Dict[str, List[str]]) -> Dict[str, Counter]:
    return {sender: Counter(texts) for sender, texts in found.items()}


def lost_in_order(requests: Sequence[Request], stored: Sequence[str]) -> List[Request]:
    """The acknowledged requests of one conversation missing from what its tracker holds, placed by order.

    The tracker holds what the shopper sent, in order, less what a failover rolled back and plus
    what a retry stored twice: a longest common subsequence of the two places every stored message
    it can, and the acknowledged ones left out are the lost ones.
    """
    sent = [request.key.split("|", 1)[1] for request in requests]
    longest = [[0] * (len(stored) + 1) for _ in range(len(sent) + 1)]
    for i in range(len(sent) - 1, -1, -1):
        for j in range(len(stored) - 1, -1, -1):
            longest[i][j] = longest[i + 1][j + 1] + 1 if sent[i] == stored[j] else max(longest[i + 1][j], longest[i][j + 1])
    placed, i, j = set(), 0, 0
    while i < len(sent) and j < len(stored):
        if sent[i] == stored[j] and longest[i][j] == longest[i + 1][j + 1] + 1:
            placed.add(i)
            i, j = i + 1, j + 1
        elif longest[i + 1][j] >= longest[i][j + 1]:
            i += 1
        else:
            j += 1
    return [request for n, request in enumerate(requests) if n not in placed and request.acknowledged]


def account(requests: Sequence[Request], found: Dict[str, Counter]) -> Dict[str, Any]:
    """Compare what clients sent with what a store holds, per conversation and text (``<sender>|<text>`` keys).

    Returns:
        ``stored`` (acknowledged and found), ``lost`` (acknowledged, not found) with up to 20 of their
        keys, ``duplicated`` (found more often than sent), ``stored_not_acknowledged`` (given up
        by the client although the store has it).
    """
    acknowledged: Counter = Counter(r.key for r in requests if r.acknowledged)
    unacknowledged: Counter = Counter(r.key for r in requests if not r.acknowledged)
    stored = lost = duplicated = extra_stored = 0
    lost_keys: List[str] = []
    for key in sorted(set(acknowledged) | set(unacknowledged)):
        sender, text = key.split("|", 1)
        got = found.get(sender, Counter())[text]
        stored += min(got, acknowledged[key])
        if got < acknowledged[key]:
            lost += acknowledged[key] - got
            lost_keys.append(key)
        surplus = got - acknowledged[key]
        if surplus > 0:
            extra_stored += min(surplus, unacknowledged[key])
            duplicated += max(0, surplus - unacknowledged[key])
    return {"stored": stored, "lost": lost, "lost_examples": lost_keys[:20], "duplicated": duplicated,
            "stored_not_acknowledged": extra_stored}


def error_window(ledger: Ledger, start: float, end: float, kinds: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The failed tries clients met from ``start`` to ``end``: how many, and seconds from ``start`` to the last one."""
    failed = ledger.failed_tries(start, end, kinds)
    return {"failed_tries": len(failed), "seconds_of_errors": round(max((t.at for t in failed), default=start) - start, 2),
            "first_error_after_s": round(min(t.at for t in failed) - start, 2) if failed else None,
            "met": dict(Counter(t.outcome for t in failed))}


def slowest(requests: Sequence[Request]) -> float:
    return round(max((r.seconds for r in requests), default=0.0), 2)


def session(timeout_s: float = 90.0) -> aiohttp.ClientSession:
    """One HTTP client for a check (Rasa may wait out a dead server's 60 s conversation lock)."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s), connector=aiohttp.TCPConnector(limit=0))


# (a) one conversation, both Rasa servers ------------------------------------------------------------

async def alternation(fleet: Fleet) -> Dict[str, Any]:
    """One anonymous conversation served alternately by both Rasa servers, straight to each."""
    from actions.order_tracking import IN_FLIGHT, status_label

    servers = topology.hosts_running("rasa")
    async with session(30) as http:
        async with http.get(f"{fleet.crm_url}/api/customers/C000001/orders?limit=50", headers={"X-API-Key": fleet.keys.crm_api_key}) as r:
            orders = (await r.json())["items"]
        order = next(o for o in orders if o["status"] in IN_FLIGHT)
        order_id, tail = order["order_id"], order["receiver_phone"][-4:]
        sender = f"fleet-alt-{int(time.time())}"
        turns = [("我的快递到哪了", ["后四位"]), (f"订单号 {order_id}", [order_id, "后四位"]),
                 (f"尾号{tail}", [order_id, status_label(order)]), ("谢谢", [])]
        token = ""
        served: List[Dict[str, Any]] = []
        for n, (text, expected) in enumerate(turns):
            server = servers[n % len(servers)]
            headers = {"X-Conversation-Token": token} if token else {}
            async with http.post(f"{fleet.direct_app_url(server)}/webhook", json={"sender": sender, "message": text},
                                 headers=headers) as r:
                status, replies = r.status, await r.json(content_type=None)
                token = token or r.headers.get("X-Conversation-Token", "")
            reply = "\n".join(str(m.get("text", "")) for m in replies) if isinstance(replies, list) else json.dumps(replies, ensure_ascii=False)
            served.append({"server": server.name, "said": text, "status": status, "reply": reply[:160],
                           "as_expected": status == 200 and all(part in reply for part in expected)})
    stored = (await asyncio.to_thread(user_texts, fleet, [sender]))[sender]
    in_order = stored == [text for text, _ in turns]
    return {"sender": sender, "turns": served, "tracker": stored, "tracker_has_every_turn_in_order": in_order,
            "passed": all(turn["as_expected"] for turn in served) and in_order}


async def metrics(fleet: Fleet) -> Dict[str, Any]:
    """Every service's ``/metrics`` answers Prometheus text to the run's METRICS_TOKEN, and 401 without it."""
    from prometheus_client.parser import text_string_to_metric_families

    targets = [(role, on) for role in ("rasa", "actions", "desk") for on in topology.hosts_running(role)] + [("crm", None)]
    pages: List[Dict[str, Any]] = []
    async with session(30) as http:
        for role, on in targets:
            url = fleet.metrics_url(role, on)
            async with http.get(url, headers={"Authorization": f"Bearer {fleet.keys.metrics_token}"}) as r:
                status, body = r.status, await r.text()
            async with http.get(url) as r:
                without_token = r.status
            families = [family.name for family in text_string_to_metric_families(body)] if status == 200 else []
            pages.append({"service": on.name if on else "crm", "status": status, "families": len(families),
                          "without_token": without_token, "passed": status == 200 and bool(families) and without_token == 401})
    return {"pages": pages, "passed": all(page["passed"] for page in pages)}


async def _web_session(url: str, token: str, transports: Optional[List[str]]) -> Dict[str, Any]:
    """One socket.io session through the load balancer, as rasa-webchat opens one: its sid, transport and bot replies."""
    import socketio

    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))  # a connection per request
    client = socketio.AsyncClient(reconnection=False, http_session=http)
    events: asyncio.Queue = asyncio.Queue()

    @client.on("*")
    async def record(event: str, *args: Any) -> None:
        events.put_nowait((event, args[0] if len(args) == 1 else list(args)))

    async def next_event(*names: str) -> Any:
        while True:
            event = await asyncio.wait_for(events.get(), 60)
            if event[0] in names:
                return event

    try:
        await client.connect(url, transports=transports, socketio_path="/socket.io", wait_timeout=30)
        session_id = f"fleet-web-{secrets.token_hex(6)}"
        custom = {"identity_token": token}
        await client.emit("session_request", {"session_id": session_id, "customData": custom})
        confirmed = await next_event("session_confirm", "error")
        replies: List[Any] = []
        if confirmed[0] == "session_confirm":
            await client.emit("user_uttered", {"message": "你好", "session_id": session_id, "customData": custom})
            while (event := await next_event("bot_uttered", "turn_done"))[0] != "turn_done":
                replies.append(event[1])
        return {"sid": client.eio.sid, "transport": client.transport(), "replies": replies}
    finally:
        await client.disconnect()
        await http.close()


async def web_sessions(fleet: Fleet, count: int = 6) -> Dict[str, Any]:
    """Standard socket.io clients through HAProxy (long-polling only, and polling then websocket, as
    rasa-webchat connects): every session gets its bot reply, and the sids name both Rasa servers."""
    from bot.identity import identity_token_for

    if not hasattr(aiohttp, "ClientWSTimeout"):  # python-engineio's client on Rasa 3.6's aiohttp
        aiohttp.ClientWSTimeout = lambda ws_receive=None, ws_close=None: float(ws_close or 10.0)  # type: ignore[attr-defined]
    url = f"http://{topology.LB}:{topology.RASA_PORT}"
    token = identity_token_for(fleet.keys.shop_identity_secret, "C000001")
    results: Dict[str, Any] = {}
    for name, transports in (("polling", ["polling"]), ("polling_then_websocket", None)):
        found = await asyncio.gather(*(_web_session(url, token, transports) for _ in range(count)), return_exceptions=True)
        answered = [f for f in found if isinstance(f, dict) and any(
            isinstance(r, dict) and r.get("text") and (r.get("metadata") or {}).get("from") == "bot" for r in f["replies"])]
        results[name] = {"sessions": count, "answered": len(answered),
                         "errors": [type(f).__name__ for f in found if isinstance(f, BaseException)],
                         "instances": sorted({f["sid"].split(".", 1)[0] for f in answered})}
    passed = all(r["answered"] == count for r in results.values()) and all(len(r["instances"]) == 2 for r in results.values())
    return {**results, "passed": passed}


# (b) shoppers under a fault -------------------------------------------------------------------------

@dataclass
class Trigger:
    """Fires the fault once ``at`` of the ``total`` messages have been sent."""

    total: int
    at: float
    sent: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def tick(self) -> None:
        self.sent += 1
        if self.sent >= self.total * self.at:
            self.event.set()


async def _inject(trigger: Trigger, fault: Optional[Fault], marks: Dict[str, float]) -> Dict[str, Any]:
    if fault is None:
        return {}
    await trigger.event.wait()
    marks["fault"] = time.monotonic()
    return await fault()


async def bot_turns(fleet: Fleet, label: str, customers: Sequence[str], messages: int, fault: Optional[Fault] = None,
                    fault_at: float = 0.3) -> Dict[str, Any]:
    """Shoppers through HAProxy, ``messages`` each, with ``fault`` injected after ``fault_at`` of them were sent."""
    stamp = int(time.time())
    shoppers = [Shopper(f"fleet-{label}-{n}-{stamp}", customer) for n, customer in enumerate(customers)]
    ledger, marks = Ledger(), {"start": time.monotonic()}
    trigger = Trigger(len(shoppers) * messages, fault_at)

    async with session() as http:
        async def talk(shopper: Shopper) -> None:
            for i in range(messages):
                await say(http, ledger, fleet.app_url, fleet.keys.shop_identity_secret, shopper, BOT_TEXTS[i % len(BOT_TEXTS)])
                trigger.tick()
                await asyncio.sleep(THINK_S)

        injected, *_ = await asyncio.gather(_inject(trigger, fault, marks), *(talk(s) for s in shoppers))
    marks["end"] = time.monotonic()
    found = await asyncio.to_thread(user_texts, fleet, [s.sender for s in shoppers])
    shopper_requests = ledger.of("shopper")
    figures = account(shopper_requests, counted(found))
    fault_time = marks.get("fault", marks["end"])
    return {
        "shoppers": len(shoppers), "messages_each": messages, "fault": injected,
        "messages": {**ledger.summary("shopper"), **figures, "answered_202": sum(r.status == 202 for r in shopper_requests),
                     "slowest_s": slowest(shopper_requests)},
        "after_fault": error_window(ledger, fault_time, marks["end"]),
        "seconds": round(marks["end"] - marks["start"], 1),
        "passed": figures["lost"] == 0 and not ledger.summary("shopper")["given_up"] and bool(injected or fault is None),
    }


# (b) agents and shoppers under a desk's death -------------------------------------------------------

async def handoffs(fleet: Fleet, customers: Sequence[str], rounds: int, fault: Fault, fault_at: float = 0.3) -> Dict[str, Any]:
    """Shoppers handed off to two agents, ``rounds`` messages each way through HAProxy, a desk killed on the way."""
    stamp = int(time.time())
    shoppers = [Shopper(f"fleet-desk-{n}-{stamp}", customer) for n, customer in enumerate(customers)]
    agents = [Agent(name, password) for name, password in sorted(fleet.keys.agent_passwords.items())]
    ledger, marks = Ledger(), {"start": time.monotonic()}
    trigger = Trigger(len(shoppers) * rounds, fault_at)
    secret, app, desk = fleet.keys.shop_identity_secret, fleet.app_url, fleet.desk_url
    # bench.faults' consoles (heartbeats) and app (the poller of pushed messages), here all through HAProxy
    console = Campaign(app, {"lb": desk}, secret, attempts=3, home={name: "lb" for name in AGENTS})
    claimed: List[str] = []
    everyone_claimed = asyncio.Event()

    async with session(30) as http:
        for agent in agents:
            await login(http, ledger, desk, agent)
            console.tokens[agent.username] = agent.token
        stop = asyncio.Event()
        beating = asyncio.ensure_future(heartbeats(http, console, stop))
        pollers = [asyncio.ensure_future(poll(http, console, s.sender, s.customer, stop)) for s in shoppers]

        async def converse(n: int, shopper: Shopper) -> None:
            agent = agents[n % len(agents)]
            await say(http, ledger, app, secret, shopper, "转人工", kind="handoff")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = await call(http, ledger, "claim", shopper.sender, "POST", f"{desk}/api/conversations/{shopper.sender}/claim",
                                  headers=agent.headers())
                if done.acknowledged:
                    break
                await asyncio.sleep(0.3)  # not in the queue yet (404)
            claimed.append(shopper.sender)
            if len(claimed) == len(shoppers):
                everyone_claimed.set()
            await asyncio.wait_for(everyone_claimed.wait(), timeout=90)
            for i in range(rounds):
                await say(http, ledger, app, secret, shopper, f"顾客消息 {n}-{i}")
                await asyncio.sleep(0.3)
                text = f"客服回复 {n}-{i}"
                await call(http, ledger, "agent", f"{shopper.sender}|{text}", "POST", f"{desk}/api/conversations/{shopper.sender}/messages",
                           body={"text": text, "client_id": f"{shopper.sender}.r{i}"}, headers=agent.headers(), ok=(201,))
                trigger.tick()
                await asyncio.sleep(0.5)

        injected, *_ = await asyncio.gather(_inject(trigger, fault, marks), *(converse(n, s) for n, s in enumerate(shoppers)))
        marks["end"] = time.monotonic()
        await asyncio.sleep(3.0)  # the last replies on their way to the shoppers
        stop.set()
        await asyncio.gather(beating, *pollers)
        transcripts: Dict[str, Dict[str, Counter]] = {s.sender: {"shopper": Counter(), "agent": Counter()} for s in shoppers}
        unreadable = 0
        for n, shopper in enumerate(shoppers):
            agent = agents[n % len(agents)]
            done = await call(http, Ledger(), "read", shopper.sender, "GET", f"{desk}/api/conversations/{shopper.sender}", headers=agent.headers())
            if not done.acknowledged:
                unreadable += 1
                continue
            for entry in done.body.get("transcript", []):
                if entry.get("from") in ("shopper", "agent"):
                    transcripts[shopper.sender][entry["from"]][str(entry.get("text"))] += 1
    at_shoppers = {sender: Counter(texts.values()) for sender, texts in console.received.items()}
    shopper_counts = account(ledger.of("shopper"), {s: t["shopper"] for s, t in transcripts.items()})
    agent_in_transcripts = account(ledger.of("agent"), {s: t["agent"] for s, t in transcripts.items()})
    agent_at_shoppers = account(ledger.of("agent"), at_shoppers)
    fault_time = marks.get("fault", marks["end"])
    return {
        "conversations": len(shoppers), "rounds": rounds, "claimed": len(set(claimed)), "fault": injected,
        "transcripts_unreadable": unreadable,
        "shopper_messages": {**ledger.summary("shopper"), "in_transcripts": shopper_counts},
        "agent_replies": {**ledger.summary("agent"), "in_transcripts": agent_in_transcripts, "at_shoppers": agent_at_shoppers,
                          "same_message_id_fetched_twice": console.same_cursor_twice},
        "handoff_requests": ledger.summary("handoff"), "claims": ledger.summary("claim"),
        "after_fault": error_window(ledger, fault_time, marks["end"], kinds=("shopper", "agent")),
        "seconds": round(marks["end"] - marks["start"], 1),
        "passed": (shopper_counts["lost"] == 0 and agent_in_transcripts["lost"] == 0 and agent_at_shoppers["lost"] == 0
                   and not ledger.summary("shopper")["given_up"] and not ledger.summary("agent")["given_up"] and unreadable == 0
                   and bool(injected)),
    }


# (c) Sentinel failover -----------------------------------------------------------------------------

async def failover(fleet: Fleet, customers: Sequence[str], settle_s: float, warmup_s: float = 3.0) -> Dict[str, Any]:
    """Shoppers talk with the bot through ``SENTINEL FAILOVER`` and then the crash of the new master."""
    stamp = int(time.time())
    shoppers = [Shopper(f"fleet-failover-{n}-{stamp}", customer) for n, customer in enumerate(customers)]
    ledger = Ledger()
    stop = asyncio.Event()
    events: List[Dict[str, Any]] = []

    async def planned() -> Dict[str, Any]:
        before = fleet.master_address()
        sentinel = topology.hosts_running("sentinel")[-1]
        started = time.monotonic()
        await asyncio.to_thread(fleet.sentinel_client(sentinel).execute_command, "SENTINEL", "FAILOVER", topology.MASTER_NAME)
        after = await asyncio.to_thread(wait_until, "a new master after SENTINEL FAILOVER",
                                        lambda: (lambda now: now if now != before else None)(fleet.master_address()), 60)
        return {"what": "SENTINEL FAILOVER", "at": started, "from": before[0], "to": after[0],
                "sentinels_switched_after_s": round(time.monotonic() - started, 2)}

    async def crash() -> Dict[str, Any]:
        before = fleet.master_address()
        host = fleet.redis_host(before[0])
        started = time.monotonic()
        await asyncio.to_thread(fleet.kill_process, f"redis@{host.name}")
        after = await asyncio.to_thread(wait_until, "a new master after the master's crash",
                                        lambda: (lambda now: now if now != before else None)(fleet.master_address()), 60)
        return {"what": f"master killed (SIGKILL of redis-server on {host.name})", "at": started, "from": before[0], "to": after[0],
                "sentinels_switched_after_s": round(time.monotonic() - started, 2), "killed_host": host.name}

    async with session() as http:
        async def talk(shopper: Shopper) -> None:
            i = 0
            while not stop.is_set():
                await say(http, ledger, fleet.app_url, fleet.keys.shop_identity_secret, shopper, BOT_TEXTS[i % len(BOT_TEXTS)])
                i += 1
                await asyncio.sleep(THINK_S)

        load = [asyncio.ensure_future(talk(s)) for s in shoppers]
        started = time.monotonic()
        await asyncio.sleep(warmup_s)
        for fault in (planned, crash):
            events.append(await fault())
            await asyncio.sleep(settle_s)
            if fault is planned:
                await asyncio.to_thread(fleet.wait_replication, 60)  # the old master back as a replica in sync
        stop.set()
        await asyncio.gather(*load)
        ended = time.monotonic()
    killed = next(h for h in topology.hosts_running("redis") if h.name == events[-1]["killed_host"])
    fleet.start_redis(killed)
    master, replica = await asyncio.to_thread(fleet.wait_replication, 60)
    found = await asyncio.to_thread(user_texts, fleet, [s.sender for s in shoppers])
    requests = ledger.of("shopper")
    figures = account(requests, counted(found))
    lost = [r for s in shoppers for r in lost_in_order([q for q in requests if q.key.startswith(s.sender + "|")], found[s.sender])]
    windows = []
    for n, event in enumerate(events):
        end = events[n + 1]["at"] if n + 1 < len(events) else ended
        window = error_window(ledger, event["at"], end)
        errors_until = event["at"] + window["seconds_of_errors"]
        acknowledged_after = [r.tries[-1].at for r in requests if r.acknowledged and r.tries[-1].at > event["at"]]
        nearest = [r for r in lost if min(events, key=lambda e: abs(r.tries[-1].at - e["at"])) is event]
        windows.append({**{k: v for k, v in event.items() if k != "at"}, **window,
                        "acknowledged_during_window": sum(1 for at in acknowledged_after if at <= errors_until),
                        "acknowledged_and_lost": len(nearest),
                        "lost_acknowledged_at_s": sorted(round(r.tries[-1].at - event["at"], 2) for r in nearest),
                        "survived": any(at > errors_until for at in acknowledged_after)})
    stalled = [{"seconds": round(r.seconds, 1), "sent_after_s": {e["what"]: round(r.started - e["at"], 2) for e in events}}
               for r in requests if r.seconds > 10]
    return {
        "shoppers": len(shoppers), "seconds": round(ended - started, 1), "events": windows, "messages_over_10_s": stalled,
        "messages": {**ledger.summary("shopper"), **figures, "slowest_s": slowest(requests)},
        "redis_after": {"master": master, "replica": replica},
        "passed": all(w["survived"] for w in windows) and not ledger.summary("shopper")["given_up"],
    }
