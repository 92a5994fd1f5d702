"""Where the time of one action turn goes: ``python -m bench.breakdown [--turns 200] [--profile]``.

Starts a redis-server, the seeded CRM and the action server on free ports (as ``bot.launcher``
does), loads our model into an in-process Rasa agent configured by ``endpoints.yml`` (Redis
tracker and lock stores, the real action server), then plays one shopper's action turns (tracking
questions of signed customers, fresh sender id every 2-4 turns) one after the other and prints,
in milliseconds:

- the CRM calls the action makes, measured directly;
- the action server's ``/webhook`` with the payload Rasa sends (with and without the domain);
- Rasa's validation of the action server's response (``jsonschema.validate``, as Rasa 3.6 does on
  every custom action) against a validator built once;
- the wall time of each stage of ``MessageProcessor.handle_message`` per turn (timers wrapped
  around Rasa's methods in this process only): NLU, policy predictions, custom action, tracker
  fetch and save;
- with ``--profile``: the functions with the most cumulative time (cProfile) on the Rasa side.

What-if switches, applied to the in-process agent only (nothing in the project changes):
``--prebuilt-validator`` validates action responses with a validator built once instead of
``jsonschema.validate``; ``--selective-domain`` sends the domain to the action server only to the
actions that ask for it (Rasa's ``enable_selective_domain``).

This is a diagnostic, not the benchmark: the Sanic server and the app channel are not in the
loop, and the figures are for one shopper on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import functools
import io
import json
import logging
import os
import pstats
import random
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from bench.load import percentile
from bench.systems import BENCH_VAR, BenchError
from bot import launcher
from bot.identity import channel_identity
from bot.redis_server import RedisServer, free_port
from bot.settings import PROJECT_ROOT, Settings, load_settings

TRACKING_TEXTS = ("我的快递到哪了", "物流信息查一下", "订单 {order_id} 到哪了")
OTHER_TEXTS = ("你好", "谢谢", "运费怎么算", "你是机器人吗")


def stats_line(label: str, values_ms: List[float], width: int = 52) -> str:
    values = sorted(values_ms)
    if not values:
        return f"  {label:<{width}} (no samples)"
    mean = sum(values) / len(values)
    return (f"  {label:<{width}} p50 {percentile(values, 50):7.1f}  p95 {percentile(values, 95):7.1f}  "
            f"mean {mean:7.1f}  (n={len(values)})")


class StageTimer:
    """Wall time of selected methods, summed per turn."""

    def __init__(self) -> None:
        self.current: Dict[str, float] = {}
        self.per_turn: Dict[str, List[float]] = {}
        self.order: List[str] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        self.order.append(label)
        if asyncio.iscoroutinefunction(original):
            @functools.wraps(original)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    self.current[label] = self.current.get(label, 0.0) + time.perf_counter() - started
            setattr(owner, name, async_wrapper)
        else:
            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    self.current[label] = self.current.get(label, 0.0) + time.perf_counter() - started
            setattr(owner, name, wrapper)

    def start_turn(self) -> None:
        self.current = {}

    def end_turn(self, total_s: float) -> None:
        self.current["turn total (agent.handle_message, with lock)"] = total_s
        for label, value in self.current.items():
            self.per_turn.setdefault(label, []).append(value * 1000)


async def timed_requests(count: int, request: Callable[[], Any]) -> List[float]:
    """Wall times (ms) of ``count`` awaited calls."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await request()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def use_prebuilt_validator() -> None:
    """Make Rasa validate action server responses with one validator built once."""
    import jsonschema
    from rasa.core.actions.action import RemoteAction

    spec = RemoteAction.action_response_format_spec()
    validator = jsonschema.validators.validator_for(spec)(spec)
    original = RemoteAction._validate_action_result

    def validate(self: Any, result: Dict[str, Any]) -> bool:
        if validator.is_valid(result):
            return True
        return original(self, result)  # the same error as Rasa's

    RemoteAction._validate_action_result = validate  # type: ignore[method-assign]


async def measure(settings: Settings, model: Path, turns: int, profile: bool, prebuilt_validator: bool = False,
                  selective_domain: bool = False) -> None:
    import aiohttp
    import jsonschema
    from rasa.core.actions.action import RemoteAction
    from rasa.core.agent import load_agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.core.processor import MessageProcessor
    from rasa.core.utils import AvailableEndpoints
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.WARNING)
    configure_structlog(logging.WARNING)

    started = time.monotonic()
    endpoints = AvailableEndpoints.read_endpoints(str(PROJECT_ROOT / "endpoints.yml"))
    if selective_domain and endpoints.action is not None:
        endpoints.action.kwargs["enable_selective_domain"] = True
    agent = await load_agent(model_path=str(model), endpoints=endpoints)
    print(f"agent loaded in {time.monotonic() - started:.0f} s (tracker store {type(agent.tracker_store).__name__}, "
          f"lock store {type(agent.lock_store).__name__})", flush=True)

    headers = {"X-API-Key": settings.crm_api_key}
    crm = settings.effective_crm_url
    async with aiohttp.ClientSession(headers=headers) as session:
        async def get(url: str) -> bytes:
            async with session.get(url) as response:
                return await response.read()

        customers = [c["customer_id"] for c in json.loads(await get(f"{crm}/api/customers?limit=200"))["items"]]
        orders: Dict[str, List[str]] = {}
        list_ms: List[float] = []
        for customer_id in customers:
            t = time.perf_counter()
            body = await get(f"{crm}/api/customers/{customer_id}/orders?limit=20")
            list_ms.append((time.perf_counter() - t) * 1000)
            orders[customer_id] = [o["order_id"] for o in json.loads(body)["items"]]
        order_ids = [ids[0] for ids in orders.values() if ids]
        get_ms = [await _timed(get(f"{crm}/api/orders/{order_id}")) for order_id in order_ids]
        list_size = len(await get(f"{crm}/api/customers/{customers[0]}/orders?limit=20"))

    rng = random.Random(5)

    async def turn(sender: str, customer_id: str, text: str) -> Optional[List[Dict[str, Any]]]:
        # the metadata the app channel attaches once it has verified the shop's identity token
        metadata = {"channel": "app", "verified": True, "customer_id": customer_id,
                    "identity": channel_identity(settings.shop_identity_secret, sender, customer_id)}
        message = UserMessage(text, CollectingOutputChannel(), sender, input_channel="app", metadata=metadata)
        return await agent.handle_message(message)

    def tracking_text(customer_id: str) -> str:
        text = rng.choice(TRACKING_TEXTS)
        if "{order_id}" in text:
            return text.format(order_id=rng.choice(orders[customer_id])) if orders[customer_id] else TRACKING_TEXTS[0]
        return text

    # warm-up, and the payload Rasa sends to the action server
    sender = f"breakdown-{uuid.uuid4().hex[:8]}"
    for _ in range(20):
        await turn(sender, customers[0], tracking_text(customers[0]))
        sender = f"breakdown-{uuid.uuid4().hex[:8]}"
    await turn(sender, customers[0], TRACKING_TEXTS[0])
    tracker = await agent.tracker_store.retrieve(sender)
    action = RemoteAction("action_track_order", agent.action_endpoint)
    payload = action._action_call_format(tracker, agent.domain)
    domain_bytes = len(json.dumps(payload.get("domain", {})))
    tracker_bytes = len(json.dumps(payload["tracker"]))
    async with aiohttp.ClientSession() as session:
        async def post(body: bytes) -> Any:
            async with session.post(agent.action_endpoint.url, data=body, headers={"Content-Type": "application/json"}) as r:
                return await r.json()

        with_domain = json.dumps(payload).encode()
        without_domain = json.dumps({k: v for k, v in payload.items() if k != "domain"}).encode()
        action_response = await post(with_domain)
        action_with_ms = (await timed_requests(60, lambda: post(with_domain)))[10:]
        action_without_ms = (await timed_requests(60, lambda: post(without_domain)))[10:]

    spec = RemoteAction.action_response_format_spec()
    validator = jsonschema.validators.validator_for(spec)(spec)
    validate_ms = _time_calls(lambda: jsonschema.validate(action_response, spec), 40)
    prebuilt_ms = _time_calls(lambda: validator.validate(action_response), 40)

    if prebuilt_validator:
        use_prebuilt_validator()
    timer = StageTimer()
    timer.wrap(MessageProcessor, "log_message", "log_message (fetch tracker + NLU)")
    timer.wrap(MessageProcessor, "fetch_tracker_and_update_session", "  fetch tracker (Redis, deserialize)")
    timer.wrap(MessageProcessor, "parse_message", "  NLU (parse_message)")
    timer.wrap(MessageProcessor, "run_action_extract_slots", "action_extract_slots")
    timer.wrap(MessageProcessor, "predict_next_with_tracker_if_should", "policy predictions (all, per turn)")
    timer.wrap(MessageProcessor, "_run_action", "actions run (all, per turn)")
    timer.wrap(RemoteAction, "run", "  custom action (RemoteAction.run)")
    timer.wrap(RemoteAction, "_validate_action_result", "    response validation (jsonschema)")
    timer.wrap(MessageProcessor, "save_tracker", "save tracker (serialize, Redis)")

    profiler = cProfile.Profile() if profile else None
    other_nlu_ms: List[float] = []
    done = 0
    while done < turns:
        customer_id = rng.choice(customers)
        sender = f"breakdown-{uuid.uuid4().hex[:8]}"
        for _ in range(rng.randint(2, 4)):
            text = tracking_text(customer_id)
            timer.start_turn()
            if profiler:
                profiler.enable()
            t = time.perf_counter()
            await turn(sender, customer_id, text)
            total = time.perf_counter() - t
            if profiler:
                profiler.disable()
            timer.end_turn(total)
            done += 1
    for text in OTHER_TEXTS * 10:
        t = time.perf_counter()
        await agent.parse_message(text)
        other_nlu_ms.append((time.perf_counter() - t) * 1000)

    print(f"\nCRM, measured directly (ms; list response {list_size} bytes for 20 orders):")
    print(stats_line("GET /api/customers/{id}/orders?limit=20", list_ms))
    print(stats_line("GET /api/orders/{id}", get_ms))
    print(f"\naction server POST /webhook, payload as Rasa sends it (ms; tracker {tracker_bytes} bytes, "
          f"domain {domain_bytes} bytes):")
    print(stats_line("with the domain (Rasa's default)", action_with_ms))
    print(stats_line("without the domain (enable_selective_domain)", action_without_ms))
    print("\nRasa's validation of one action server response (ms):")
    print(stats_line("jsonschema.validate(response, spec), as Rasa 3.6 does", validate_ms))
    print(stats_line("validator built once, .validate(response)", prebuilt_ms))
    what_if = [name for name, on in (("--prebuilt-validator", prebuilt_validator),
                                     ("--selective-domain", selective_domain)) if on]
    print(f"\n{done} action turns, one after the other, in-process agent (ms per turn)"
          f"{' with ' + ' '.join(what_if) if what_if else ''}:")
    for label in ["turn total (agent.handle_message, with lock)", *timer.order]:
        print(stats_line(label, timer.per_turn.get(label, [])))
    print(f"\nNLU alone ({' / '.join(OTHER_TEXTS)}), ms:")
    print(stats_line("parse_message of the other messages of the mix", other_nlu_ms))
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        print("\n" + out.getvalue())


async def _timed(awaitable: Any) -> float:
    started = time.perf_counter()
    await awaitable
    return (time.perf_counter() - started) * 1000


def _time_calls(call: Callable[[], Any], count: int) -> List[float]:
    call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=200, help="action turns to time (default 200)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the Rasa side")
    parser.add_argument("--model", type=Path, help="model to load (default: the one for the current data)")
    parser.add_argument("--prebuilt-validator", action="store_true",
                        help="what-if: validate action responses with a validator built once")
    parser.add_argument("--selective-domain", action="store_true",
                        help="what-if: send the domain only to actions that ask for it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("launcher").setLevel(logging.INFO)
    model = args.model.resolve() if args.model else launcher.model_path()
    if not model.exists():
        print(f"no trained model at {model}: run `make train`", file=sys.stderr)
        return 2
    directory = BENCH_VAR / "breakdown"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    redis_port = free_port()
    settings = dataclasses.replace(load_settings({}), var_dir=directory, redis_url=f"redis://127.0.0.1:{redis_port}/0",
                                   crm_port=free_port(), action_port=free_port(), rasa_port=free_port(),
                                   desk_port=free_port(), shop_port=free_port(), action_server_token=secrets.token_urlsafe(32))
    stack = launcher.Stack(settings)
    try:
        stack.redis = RedisServer(redis_port, directory / "redis").start()
        env = launcher.base_env(settings, settings.redis_url)
        py = launcher.python_bin()
        subprocess.run([py, "-m", "crm", "ensure-seeded"], cwd=PROJECT_ROOT, env=env, check=True)
        stack.start_child(launcher.Child("crm", [py, "-m", "crm", "serve", "--host", settings.crm_host,
                                                 "--port", str(settings.crm_port)], f"{settings.effective_crm_url}/health"),
                          env, 60)
        stack.start_child(launcher.Child("action-server", [py, "-m", "actions.server",
                                                           "--port", str(settings.action_port)],
                                         f"http://{settings.action_host}:{settings.action_port}/health"), env, 90)
        os.environ.update(env)  # endpoints.yml takes the Redis and action server addresses from the environment
        asyncio.run(measure(settings, model, args.turns, args.profile, args.prebuilt_validator, args.selective_domain))
        return 0
    except (BenchError, RuntimeError, subprocess.CalledProcessError) as error:
        print(f"breakdown failed: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
