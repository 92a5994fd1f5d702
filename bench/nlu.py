"""What the NLU costs: a full ``rasa train`` and one ``/model/parse`` (targets: under 5 min, p95 under 30 ms).

Usage::

    PYTHONPATH=. .venv/bin/python -m bench.nlu [--train] [--model PATH] [--rounds 3]

``--train`` first times a full training of the project's model (``config.yml``, ``domain.yml``,
``data/``) into a temporary folder, exactly as ``make train`` runs it. The model (the one for the
current data unless ``--model`` names another; trained if missing) is then served by ``rasa run
--enable-api`` with one worker and the parse cache off (``NLU_CACHE_SIZE=0``), so every parse runs
the whole pipeline: normaliser, jieba, patterns, features, intent classifier, DIET's entities, the
spaCy product matcher, the response selector where it applies, the fallback. Every message of the
held-out file is POSTed to ``/model/parse`` one at a time, ``--rounds`` times over, after a
warm-up; the latencies seen by the client (HTTP included) are printed as p50 / p95 / max with the
load average, since the machine is shared. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import List, Optional

from bench.handoff import line, percentile
from bench.systems import BENCH_VAR, BenchError, StockBot, bench_env
from bot import launcher
from bot.settings import PROJECT_ROOT

logger = logging.getLogger("bench")

HELDOUT = PROJECT_ROOT / "tests" / "nlu" / "heldout.yml"
NLU_DIR = BENCH_VAR / "nlu"
TARGET_TRAIN_S = 300.0
TARGET_PARSE_MS = 30.0
WARMUP_PARSES = 30


def heldout_texts(path: Path = HELDOUT) -> List[str]:
    """The held-out messages as a shopper typed them (entity markup removed)."""
    from rasa.shared.nlu.training_data.loading import load_data

    return [message.get("text") for message in load_data(str(path)).intent_examples if message.get("text")]


def time_training() -> float:
    """Seconds of a full ``rasa train`` of the project into a temporary folder."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        started = time.monotonic()
        completed = subprocess.run(
            [launcher.rasa_bin(), "train", "--config", "config.yml", "--domain", "domain.yml", "--data", "data",
             "--out", out, "--force"],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        elapsed = time.monotonic() - started
    if completed.returncode != 0:
        raise BenchError(f"rasa train failed (exit {completed.returncode}):\n{completed.stderr[-2000:]}")
    return elapsed


def parse_server(model: Path) -> StockBot:
    """``rasa run --enable-api`` of our model: REST channel only, one worker, no parse cache."""
    NLU_DIR.mkdir(parents=True, exist_ok=True)
    (NLU_DIR / "credentials.yml").write_text("rest:\n", encoding="utf-8")
    env = {**bench_env(), "PYTHONPATH": str(PROJECT_ROOT), "NLU_CACHE_SIZE": "0", "SANIC_WORKERS": "1",
           "TF_INTRA_OP_PARALLELISM_THREADS": "1", "TF_INTER_OP_PARALLELISM_THREADS": "1"}
    return StockBot(model, directory=NLU_DIR, env=env, log_name="nlu-rasa.log")


def parse_once(url: str, text: str) -> float:
    """Milliseconds of one ``POST /model/parse``, checked to have answered with an intent."""
    body = json.dumps({"text": text}, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as answer:
        parsed = json.loads(answer.read())
    elapsed_ms = (time.perf_counter() - started) * 1000
    if not parsed.get("intent", {}).get("name"):
        raise BenchError(f"/model/parse answered without an intent: {parsed!r:.200}")
    return elapsed_ms


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nlu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", help="time a full rasa train first")
    parser.add_argument("--model", type=Path, help="the model to serve (default: the one for the current data)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the held-out messages (default 3)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        training_s = time_training() if args.train else None
        model = args.model.resolve() if args.model else launcher.train_if_needed()
        texts = heldout_texts()
        server = parse_server(model)
        server.start()
        try:
            url = f"{server.base_url}/model/parse"
            for text in texts[:WARMUP_PARSES]:
                parse_once(url, text)
            load_before = os.getloadavg()
            latencies = [parse_once(url, text) for _ in range(args.rounds) for text in texts]
            load_after = os.getloadavg()
        finally:
            server.stop()
    except BenchError as error:
        print(f"bench.nlu: {error}", file=sys.stderr)
        return 1
    print(f"\nmodel {model.name}; {len(texts)} held-out messages x {args.rounds} rounds; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    if training_s is not None:
        verdict = "MET" if training_s <= TARGET_TRAIN_S else "NOT MET"
        print(f"{'full rasa train':<64} {training_s:7.1f} s   target <= {TARGET_TRAIN_S:.0f} s: {verdict}")
    print(line("POST /model/parse, one at a time, no parse cache", latencies, TARGET_PARSE_MS))
    print(f"{'':<64} p99={percentile(latencies, 0.99):7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
