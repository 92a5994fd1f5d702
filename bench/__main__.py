"""Benchmark: our assistant beside a stock ``rasa init`` bot, in the same run, on the same machine.

Usage::

    make bench                                  # trains our model first if needed
    PYTHONPATH=. .venv/bin/python -m bench [--concurrency 20] [--duration 30] [--warmup 5]
        [--single-duration 15] [--only ours|stock] [--skip-stock-train] [--model PATH]
        [--rasa-speedups on|off|both]          # make bench RASA_SPEEDUPS=both: patched and stock Rasa
        [--no-fleet]                           # skip the two instances behind HAProxy (run by default)

What runs, one system after the other (never both at once), every process stopped at the end,
also on Ctrl-C or error:

1. Stock baseline: the bot of ``rasa init`` (created and trained once under ``var/bench/stock``),
   served by ``rasa run --enable-api`` on its REST channel (``/webhooks/rest/webhook``), in-memory
   tracker store, no action server.
2. Ours: ``bot.launcher.start_services`` with a redis-server of its own, a freshly seeded CRM, the
   action server and Rasa with the app channel (``/webhooks/app/webhook``), state under
   ``var/bench/ours``. Shoppers are the CRM's seeded customers with signed identities.

Load: N simulated shoppers (``--concurrency``, default 20), closed loop without think time, one
pooled aiohttp session, loopback only. Each shopper holds short conversations, each under a fresh
sender id: stock messages ("hello", "I am sad", "yes", "are you a bot?", "bye", ...) or ours
(「你好」, 「我的快递到哪了」, 「物流信息查一下」, 「订单 <own order id> 到哪了」, 「运费怎么算」,
「你是机器人吗」, 「谢谢」). After a warm-up (``--warmup``, 5 s) requests finishing inside the window
(``--duration``, 30 s) are measured.

Measured, per run: requests/s (successful requests), replies/s (bot messages returned), latency
p50/p95/p99 of successful requests, errors (HTTP >= 400, timeouts, connection errors), CPU cores
used by each process during the window and by everything else on the machine (a warning says when
other work took a share of the cores: the figures are then not comparable). For ours also the action turns (tracking questions, whose
reply comes from ``action_track_order`` calling the CRM) of the concurrent run, and a single-shopper
run of action turns only (``--single-duration``, 15 s).

Printed: a table (system, concurrency, requests/s, replies/s, p50, p95, p99, errors), our ratio to
the stock bot and the targets, MET or NOT MET: replies/s >= 3x stock at the same concurrency;
action-turn p95 <= 30 ms with one shopper; CPU per request over all of our stack's processes
(Rasa, CRM, action server, Redis, desk, shop; not the load generator) <= 15 ms at the same
concurrency. With ``--only ours`` the stock figures of the newest
earlier results file at the same concurrency are used, and named. Figures are also written to
``results/bench-<timestamp>.json``. The bench reports; it asserts nothing about timings (exit 0
whatever the figures, non-zero only when a system could not be run; what did run is still printed
and written). Service logs: ``var/bench/logs`` (stock) and ``var/bench/ours/logs``.

After ours (unless ``--no-fleet``; ``make bench-fleet`` runs ``--only ours``) a third system runs:
two Rasa servers of one Sanic worker each, each with its own action server, sharing one Redis and
one seeded CRM, behind HAProxy balancing the app channel's webhook round-robin with health checks
(:mod:`bench.fleet`); the same shopper mix at the same concurrency goes to the HAProxy front, and
its figures are printed beside the one-instance run's (ratios, and how many requests HAProxy sent
to each server). Without HAProxy the fleet is skipped with a message (not a failure).

``python -m bench.breakdown`` splits one shopper's action turn into its stages (NLU, policies,
action server, CRM, Rasa's response validation, tracker store) to find where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import random
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import aiohttp

from bench import report
from bench.fleet import FleetStack, FleetUnavailable
from bench.load import LoadGenerator, LoadResult, Sample, kinds, summarize
from bench.scenarios import CRM_UNAVAILABLE_REPLY, TRACKING_REPLY, Customer, CustomerRotation, ShopScript, StockScript
from bench.systems import BenchError, OurStack, StockBot, cpu_shares, prepare_stock_bot, tree_cpu_seconds
from bot import launcher
from bot.identity import identity_token_for
from bot.settings import PROJECT_ROOT

logger = logging.getLogger("bench")

SINGLE_WARMUP_S = 3.0
CUSTOMER_LIMIT = 200


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=20, help="simulated shoppers at once (default 20)")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per run (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds before each run (default 5)")
    parser.add_argument("--single-duration", type=float, default=15.0,
                        help="measured seconds of the single-shopper action-turn run (default 15; 0 skips it)")
    parser.add_argument("--only", choices=["ours", "stock"], help="run one system only")
    parser.add_argument("--rasa-speedups", choices=["on", "off", "both"], default=default_speedups(),
                        help="our stack with the Rasa patches, stock Rasa, or both one after the other "
                             "(default: RASA_SPEEDUPS, which may also say both)")
    parser.add_argument("--skip-stock-train", action="store_true",
                        help="never create or train the stock bot; fail if it has no model")
    parser.add_argument("--model", type=Path,
                        help="our model to serve (default: the one for the current data, bot.launcher.model_path())")
    parser.add_argument("--fleet", action=argparse.BooleanOptionalAction, default=True,
                        help="also run two Rasa instances behind HAProxy (bench.fleet) with the same load, after ours "
                             "(the default; --no-fleet skips it)")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds allowed to one request")
    parser.add_argument("--max-requests", type=int, default=200_000, help="request budget of one run")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0 or args.single_duration < 0:
        parser.error("--concurrency must be >= 1, --duration > 0, --warmup and --single-duration >= 0")
    return args


def default_speedups() -> str:
    """The --rasa-speedups default: RASA_SPEEDUPS=both, else the setting (on unless RASA_SPEEDUPS=0)."""
    if os.environ.get("RASA_SPEEDUPS", "").strip().lower() == "both":
        os.environ.pop("RASA_SPEEDUPS")  # not a setting's value: the services get on and off from the bench
        return "both"
    from bot.settings import load_settings

    return "on" if load_settings().rasa_speedups else "off"


# ------------------------------------------------------------------------------------ results
def describe_run(name: str, result: LoadResult, url: str, warmup_s: float, action_turns: bool) -> Dict[str, Any]:
    """The JSON-ready figures of one load run."""
    window = result.window_s
    measured = result.measured()
    summary: Dict[str, Any] = {"all": summarize(measured, window)}
    if action_turns:
        summary["action_turns"] = summarize([s for s in measured if s.action], window)
    summary["by_kind"] = {kind: summarize([s for s in measured if s.kind == kind], window) for kind in sorted(kinds(measured))}
    run: Dict[str, Any] = {
        "system": name,
        "url": url,
        "concurrency": result.concurrency,
        "warmup_s": warmup_s,
        "duration_s": round(window, 3),
        "requests_started_total": len(result.samples),
        "summary": summary,
        "cpu_cores": cpu_shares(result.probes, window),
        "budget_exhausted": result.budget_exhausted,
    }
    if action_turns:
        run["action_check"] = check_action_replies([s for s in measured if s.action and s.ok])
    return run


def check_action_replies(samples: List[Sample]) -> Dict[str, int]:
    """How many action turns were really answered by ``action_track_order`` from the CRM."""
    unavailable = sum(1 for s in samples if CRM_UNAVAILABLE_REPLY in s.reply_text)
    other = sum(1 for s in samples if CRM_UNAVAILABLE_REPLY not in s.reply_text and not TRACKING_REPLY.search(s.reply_text))
    return {"action_turns": len(samples), "crm_unavailable": unavailable, "not_tracking_reply": other}


def progress(line: str) -> None:
    print(line, flush=True)


# -------------------------------------------------------------------------------------- runs
async def first_message(generator: LoadGenerator, url: str, body: Dict[str, Any]) -> Any:
    """Send one message before the load; a system that cannot answer it is not benchmarked."""
    try:
        return await generator.post_json(url, body)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
        raise BenchError(f"{url} did not answer a first message: {type(error).__name__} {error}") from error


async def drive_stock(bot: StockBot, args: argparse.Namespace) -> Dict[str, Any]:
    async with LoadGenerator(args.concurrency, args.request_timeout, args.max_requests) as generator:
        status, body = await first_message(generator, bot.webhook_url, {"sender": "bench-check", "message": "hello"})
        if status != 200 or not body:
            raise BenchError(f"the stock bot answered its first message with {status} {body!r}")
        scripts = [StockScript(f"stock{i}") for i in range(args.concurrency)]
        print(f"stock: {args.concurrency} shoppers, {args.warmup:.0f} s warm-up + {args.duration:.0f} s", flush=True)
        probe = lambda: tree_cpu_seconds(bot.cpu_roots())  # noqa: E731
        result = await generator.run(bot.webhook_url, scripts, args.warmup, args.duration, probe=probe,
                                     on_progress=progress)
    return describe_run("stock", result, bot.webhook_url, args.warmup, action_turns=False)


async def load_customers(generator: LoadGenerator, stack: OurStack) -> List[Customer]:
    """Seeded customers with their order ids, signed as the shop's backend would."""
    headers = {"X-API-Key": stack.settings.crm_api_key}
    page = await generator.get_json(f"{stack.crm_url}/api/customers?limit={CUSTOMER_LIMIT}", headers=headers)
    items = page.get("items", []) if isinstance(page, dict) else page
    ids = [item["customer_id"] for item in items if isinstance(item, dict) and item.get("customer_id")]
    if not ids:
        raise BenchError(f"the CRM lists no customers: {str(page)[:200]}")
    limiter = asyncio.Semaphore(8)

    async def orders_of(customer_id: str) -> List[str]:
        async with limiter:
            body = await generator.get_json(f"{stack.crm_url}/api/customers/{customer_id}/orders?limit=50", headers=headers)
        orders = body.get("items", []) if isinstance(body, dict) else body
        return [o["order_id"] for o in orders if isinstance(o, dict) and o.get("order_id")]

    order_ids = await asyncio.gather(*(orders_of(cid) for cid in ids))
    secret = stack.settings.shop_identity_secret
    return [Customer(cid, identity_token_for(secret, cid, ttl_s=12 * 3600), tuple(orders)) for cid, orders in zip(ids, order_ids, strict=True)]


async def prepare_shoppers(generator: LoadGenerator, stack: Any) -> List[Customer]:
    """The seeded customers of ``stack`` (an OurStack or a FleetStack), once it answered a first message."""
    try:
        customers = await load_customers(generator, stack)
    except (RuntimeError, aiohttp.ClientError, asyncio.TimeoutError, KeyError, ValueError) as error:
        raise BenchError(f"could not list the CRM's customers and orders: {error}") from error
    with_orders = sum(1 for c in customers if c.order_ids)
    print(f"{stack.name}: {len(customers)} seeded customers ({with_orders} with orders)", flush=True)
    status, body = await first_message(generator, stack.webhook_url, {
        "sender": "bench-check", "message": "我的快递到哪了",
        "metadata": {"identity_token": customers[0].identity_token}})
    if status != 200:
        raise BenchError(f"the app channel of {stack.name} answered its first message with {status} {body!r}")
    return customers


async def run_shop_mix(generator: LoadGenerator, stack: Any, args: argparse.Namespace,
                       customers: List[Customer]) -> Dict[str, Any]:
    """The concurrent run of the shopper mix against ``stack.webhook_url`` (the same mix for every stack)."""
    probe = lambda: tree_cpu_seconds(stack.cpu_roots())  # noqa: E731
    rotation = CustomerRotation(customers, random.Random(11))
    scripts = [ShopScript(f"bench{i}", rotation) for i in range(args.concurrency)]
    print(f"{stack.name}: {args.concurrency} shoppers, {args.warmup:.0f} s warm-up + {args.duration:.0f} s", flush=True)
    result = await generator.run(stack.webhook_url, scripts, args.warmup, args.duration, probe=probe,
                                 on_progress=progress)
    return describe_run(stack.name, result, stack.webhook_url, args.warmup, action_turns=True)


async def drive_ours(stack: OurStack, args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    runs: Dict[str, Dict[str, Any]] = {}
    async with LoadGenerator(args.concurrency, args.request_timeout, args.max_requests) as generator:
        customers = await prepare_shoppers(generator, stack)
        probe = lambda: tree_cpu_seconds(stack.cpu_roots())  # noqa: E731
        runs["ours"] = await run_shop_mix(generator, stack, args, customers)
        runs["ours"]["rasa_workers"] = stack.settings.rasa_workers

        if args.single_duration > 0:
            await asyncio.sleep(1.0)
            rotation = CustomerRotation(customers, random.Random(13))
            print(f"ours: 1 shopper, action turns only, {SINGLE_WARMUP_S:.0f} s warm-up + {args.single_duration:.0f} s",
                  flush=True)
            result = await generator.run(stack.webhook_url, [ShopScript("single", rotation, actions_only=True)],
                                         SINGLE_WARMUP_S, args.single_duration, seed=13, probe=probe,
                                         on_progress=progress)
            runs["ours_single"] = describe_run("ours_single", result, stack.webhook_url, SINGLE_WARMUP_S,
                                               action_turns=True)
    return runs


async def drive_fleet(fleet: FleetStack, args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """The shopper mix against the fleet's HAProxy front, with HAProxy's count of the requests each server got."""
    async with LoadGenerator(args.concurrency, args.request_timeout, args.max_requests) as generator:
        customers = await prepare_shoppers(generator, fleet)
        before = fleet.server_stats()
        run = await run_shop_mix(generator, fleet, args, customers)
    after = fleet.server_stats()
    run["instances"] = len(fleet.instances)
    run["rasa_workers"] = fleet.settings.rasa_workers
    run["haproxy_servers"] = {name: {"status": s["status"], "requests": s["requests"] - before.get(name, {}).get("requests", 0),
                                     "errors": s["errors"] - before.get(name, {}).get("errors", 0)}
                              for name, s in after.items()}
    return {"fleet": run}


def with_system(system: Any, drive: Callable[[Any], Dict[str, Any]]) -> Dict[str, Any]:
    """Start a system, drive it, and stop it whatever happens."""
    started = time.monotonic()
    try:
        system.start()
        startup_s = round(time.monotonic() - started, 1)
        runs = drive(system)
        for run in runs.values():
            run["startup_s"] = startup_s
        return runs
    finally:
        logger.info("stopping %s...", system.name)
        system.stop()
        logger.info("%s stopped", system.name)


def run_fleet(model: Path, speedups: bool, args: argparse.Namespace, results: Dict[str, Any]) -> None:
    """Start the fleet (raises FleetUnavailable before starting anything without HAProxy), drive it, stop it."""
    fleet = FleetStack(model, rasa_speedups=speedups)
    runs = with_system(fleet, lambda stack: asyncio.run(drive_fleet(stack, args)))
    for run in runs.values():
        run.update(model=str(model), rasa_speedups=speedups)
    results.update(runs)


# --------------------------------------------------------------------------------------- main
def install_signal_handlers() -> None:
    """Ctrl-C, SIGTERM and SIGHUP unwind through the ``finally`` blocks that stop every process."""

    def interrupt(signum: int, frame: object) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # let the clean-up finish
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def environment(load_average_before: Tuple[float, float, float]) -> Dict[str, Any]:
    def git(*command: str) -> str:
        try:
            return subprocess.run(["git", *command], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    def version(package: str) -> Optional[str]:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain")),
        "cpus": os.cpu_count(),
        "load_average_before": load_average_before,  # 1, 5 and 15 minutes, when the bench began
        "load_average_after": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "rasa": version("rasa"),
        "rasa_sdk": version("rasa-sdk"),
        "aiohttp": version("aiohttp"),
    }


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    install_signal_handlers()
    begun = time.monotonic()
    load_before = os.getloadavg()
    timestamp = time.strftime("%Y%m%d-%H%M%S")
    results: Dict[str, Any] = {}
    failures: Dict[str, str] = {}
    skipped: Dict[str, str] = {}
    ours_model: Optional[Path] = None
    if args.only != "stock":
        ours_model = args.model.resolve() if args.model else launcher.model_path()
        if not ours_model.exists():
            logger.error("no trained model at %s: run `make train` (or `make bench`, which trains first)", ours_model)
            return 2
    try:
        if args.only != "ours":
            try:
                stock_model = prepare_stock_bot(args.skip_stock_train)
                results.update(with_system(StockBot(stock_model),
                                           lambda bot: {"stock": asyncio.run(drive_stock(bot, args))}))
                results["stock"]["model"] = str(stock_model.relative_to(PROJECT_ROOT))
            except BenchError as error:
                logger.error("stock: %s", error)
                failures["stock"] = str(error)
            if ours_model is not None:
                time.sleep(2.0)  # let the machine settle between the two systems
        modes = {"on": [True], "off": [False], "both": [True, False]}[args.rasa_speedups]
        for speedups in modes if ours_model is not None else []:
            suffix = "_stock_rasa" if not speedups and len(modes) > 1 else ""  # both: stock Rasa's rows apart
            try:
                runs = with_system(OurStack(ours_model, rasa_speedups=speedups), lambda stack: asyncio.run(drive_ours(stack, args)))
                for name, run in runs.items():
                    run.update(model=str(ours_model), rasa_speedups=speedups)
                    results[name.replace("ours", f"ours{suffix}", 1)] = run
            except BenchError as error:
                logger.error("ours%s: %s", suffix, error)
                failures[f"ours{suffix}"] = str(error)
        if args.fleet and ours_model is not None:
            time.sleep(2.0)
            try:
                run_fleet(ours_model, modes[0], args, results)
            except FleetUnavailable as error:
                logger.warning("fleet: skipped: %s", error)
                skipped["fleet"] = str(error)
            except BenchError as error:
                logger.error("fleet: %s", error)
                failures["fleet"] = str(error)
    except KeyboardInterrupt:
        logger.error("interrupted; every started process has been stopped")
        return 130

    stock_reference = results.get("stock")
    if stock_reference is None and args.only != "stock":
        stock_reference = report.latest_stock_result(args.concurrency)
    targets = report.evaluate_targets(results, stock_reference)
    fleet_comparison = report.fleet_comparison(results)
    machine = environment(load_before)
    document = {
        "timestamp": timestamp,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": machine,
        "targets": targets,
        "fleet_vs_one_instance": fleet_comparison,
        "results": results,
        "failures": failures,
        "skipped": skipped,
        "elapsed_s": round(time.monotonic() - begun, 1),
    }
    path = report.write_json(document, timestamp)

    print()
    print(report.render_table(report.table_rows(results)))
    print()
    print(report.render_targets(targets))
    fleet = report.render_fleet(fleet_comparison)
    if fleet:
        print()
        print(fleet)
    details = report.render_details(results)
    if details:
        print()
        print(details)
    print()
    for name, message in failures.items():
        print(f"{name}: NOT MEASURED, it could not be run: {message.splitlines()[0]}")
    for name, message in skipped.items():
        print(f"{name}: SKIPPED: {message}")
    load_after = machine["load_average_after"]
    print(f"load average (1, 5, 15 min): {' '.join(f'{v:.2f}' for v in load_before)} before, "
          f"{' '.join(f'{v:.2f}' for v in load_after)} after")
    print(f"figures: {path.relative_to(PROJECT_ROOT)}  (whole run {time.monotonic() - begun:.0f} s)")
    return 2 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
