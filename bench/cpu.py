"""CPU per shopper turn of each process of our stack: ``python -m bench.cpu [--model PATH]``.

Wall-clock throughput moves with whatever else the machine runs; the CPU time each process spends
per turn moves much less, so this is the figure to compare two versions of the code by. It starts
our stack as ``make bench`` does (``bench.systems.OurStack``: Redis, seeded CRM, action server,
Rasa with its workers and the app channel), plays a fixed set of shopper conversations
(``bench.scenarios.ShopScript``, seeded: the same messages every run) with a few shoppers at once,
and prints, for the measured conversations (after unmeasured warm-up ones), the CPU milliseconds
(user + system, the process and its children, from ``/proc``) each process used per turn, and the
turns per second of that run for information only.

Compare versions with several alternating runs, on the same model file (``--model``).

``--profile-crm FILE`` runs the CRM under cProfile, database threads included
(:mod:`bench.crm_profile`; its CPU figure then includes the profiler's overhead), writes the
statistics to FILE when the CRM stops and prints its costliest functions: where the CRM's time
per lookup goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import pstats
import random
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from bench.__main__ import load_customers
from bench.load import LoadGenerator, Turn
from bench.scenarios import CustomerRotation, ShopScript
from bench.systems import MACHINE_BUSY, BenchError, OurStack, tree_cpu_seconds
from bot import launcher, roles


def per_turn_ms(before: Dict[str, float], after: Dict[str, float], turns: int) -> Dict[str, float]:
    """CPU milliseconds per turn of each process between two readings of ``tree_cpu_seconds``."""
    if turns <= 0:
        return {}
    return {name: 1000 * (after[name] - before.get(name, 0.0)) / turns for name in after if name != MACHINE_BUSY}


async def play(generator: LoadGenerator, url: str, conversations: List[List[Turn]], shoppers: int) -> Dict[str, int]:
    """Play conversations with ``shoppers`` at once, each conversation's turns in order."""
    queue = list(reversed(conversations))
    counts = {"turns": 0, "errors": 0}

    async def shopper() -> None:
        while queue:
            for turn in queue.pop():
                status, _ = await generator.post_json(url, turn.body)
                counts["turns"] += 1
                counts["errors"] += status != 200

    await asyncio.gather(*(shopper() for _ in range(shoppers)))
    return counts


async def measure(stack: OurStack, args: argparse.Namespace) -> int:
    async with LoadGenerator(args.concurrency, 30.0, 10**7) as generator:
        customers = await load_customers(generator, stack)
        rng = random.Random(args.seed)
        rotation = CustomerRotation(customers, random.Random(args.seed))
        scripts = [ShopScript(f"cpu{i}", rotation) for i in range(args.concurrency)]
        conversations = [scripts[i % len(scripts)].conversation(rng) for i in range(args.warmup + args.conversations)]
        await play(generator, stack.webhook_url, conversations[:args.warmup], args.concurrency)
        before, started, load_before = tree_cpu_seconds(stack.cpu_roots()), time.monotonic(), os.getloadavg()
        counts = await play(generator, stack.webhook_url, conversations[args.warmup:], args.concurrency)
        after, wall = tree_cpu_seconds(stack.cpu_roots()), time.monotonic() - started
    turns = counts["turns"]
    print(f"{turns} turns ({counts['errors']} errors), {args.concurrency} shoppers: "
          f"{turns / wall:.1f} turns/s (wall clock, for information only); load average (1, 5, 15 min) "
          f"{' '.join(f'{v:.2f}' for v in load_before)} before, {' '.join(f'{v:.2f}' for v in os.getloadavg())} after")
    for name, value in per_turn_ms(before, after, turns).items():
        print(f"  {name:<28} {value:7.2f} ms CPU per turn")
    return 0 if counts["errors"] == 0 else 1


@contextlib.contextmanager
def crm_under_cprofile(output: Path) -> Iterator[None]:
    """Within the block, the CRM role starts as ``python -m bench.crm_profile OUTPUT serve ...`` (every thread profiled)."""
    original = roles.launch

    def launch(role: str, settings: object, model: Optional[Path] = None) -> roles.RoleLaunch:
        how = original(role, settings, model)  # type: ignore[arg-type]
        if role != "crm":
            return how
        python, _, _, *rest = how.command  # python -m crm serve ...
        return dataclasses.replace(how, command=(python, "-m", "bench.crm_profile", str(output), *rest))

    roles.launch = launch  # type: ignore[assignment]
    try:
        yield
    finally:
        roles.launch = original  # type: ignore[assignment]


def print_profile(path: Path, top: int = 30) -> None:
    """The functions with the most own time, then the most cumulative time, of a cProfile file."""
    if not path.exists():
        print(f"no profile at {path} (the CRM did not stop cleanly)", file=sys.stderr)
        return
    for key in ("tottime", "cumulative"):
        print(f"\nCRM profile, top {top} by {key} ({path}):")
        pstats.Stats(str(path)).strip_dirs().sort_stats(key).print_stats(top)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model to serve (default: the one for the current data)")
    parser.add_argument("--conversations", type=int, default=300, help="measured conversations (default 300)")
    parser.add_argument("--warmup", type=int, default=40, help="unmeasured conversations first (default 40)")
    parser.add_argument("--concurrency", type=int, default=8, help="shoppers at once (default 8)")
    parser.add_argument("--seed", type=int, default=3, help="seed of the conversations (default 3)")
    parser.add_argument("--profile-crm", type=Path, metavar="FILE",
                        help="run the CRM under cProfile, write its statistics to FILE and print the top costs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    model = args.model.resolve() if args.model else launcher.model_path()
    if not model.exists():
        print(f"no trained model at {model}: run `make train` or pass --model", file=sys.stderr)
        return 2
    stack = OurStack(model)
    profile = args.profile_crm.resolve() if args.profile_crm else None
    try:
        with crm_under_cprofile(profile) if profile else contextlib.nullcontext():
            stack.start()
        return asyncio.run(measure(stack, args))
    except BenchError as error:
        print(f"bench.cpu: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        stack.stop()
        if profile:
            print_profile(profile)


if __name__ == "__main__":
    sys.exit(main())
