"""What the NLU costs and how well it reads: a full ``rasa train``, one ``/model/parse``, held-out F1.

Targets: a full training within 90 s, ``/model/parse`` p95 within 10 ms on the 2-core machine.

Usage::

    PYTHONPATH=. .venv/bin/python -m bench.nlu [--train] [--model PATH] [--rounds 3]

``--train`` first times a full training of the project's model (``config.yml``, ``domain.yml``,
``data/``) into ``var/bench/nlu/model`` (its log beside it), exactly as ``make train`` runs it, and prints where the
time went (each component's training, read from Rasa's training hooks, and what happened between
them: start-up and validation, featurising the training data, packaging). The model (``--model``,
else the one just trained, else the one for the current data, trained if missing) is then served
by ``rasa run --enable-api`` with one worker and the parse cache off (``NLU_CACHE_SIZE=0``), so
every parse runs the whole pipeline: normaliser, jieba, patterns, features, intent classifier, the
entity extractors, the response selector where it applies, the fallback. Every message of the held-out
file is POSTed to ``/model/parse`` one at a time, ``--rounds`` times over, after a warm-up; the
latencies seen by the client (HTTP included) are printed as p50 / p95 / max with the load average,
since the machine is shared.

The answers of the first round are scored against the held-out annotations: intent macro-F1 and
accuracy (intent names, as ``rasa test nlu`` counts them), the FAQ/chitchat answer (the response
selector's ``intent_response_key``), and per entity type the precision, recall and F1 of exact
entities, whichever extractor found them: the same type, the same span of the normalised text and
the same value (a return reason's code, an identifier's canonical digits). ``make eval-nlu`` gives
Rasa's token-level figures per extractor. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench.handoff import line, percentile
from bench.systems import BENCH_VAR, BenchError, StockBot, bench_env
from bot import launcher
from bot.settings import PROJECT_ROOT

logger = logging.getLogger("bench")

HELDOUT = PROJECT_ROOT / "tests" / "nlu" / "heldout.yml"
NLU_DIR = BENCH_VAR / "nlu"
TARGET_TRAIN_S = 90.0
TARGET_PARSE_MS = 10.0
WARMUP_PARSES = 30
SERVER_START_S = 600.0
"""How long the parse server may take to load the model (a TensorFlow model on a busy machine takes minutes)."""

Span = Tuple[str, int, int, str]
"""An entity as (type, start, end, value) on the normalised text."""

_HOOK = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+INFO\s+rasa\.engine\.training\.hooks\s+-\s+"
    r"(Starting to train|Finished training) component '([^']+)'"
)


@dataclass(frozen=True)
class Example:
    """One held-out message: as typed, normalised, and what it should be read as."""

    text: str
    normalized: str
    intent: str
    response_key: Optional[str]
    entities: Tuple[Span, ...]


def heldout_examples(path: Path = HELDOUT) -> List[Example]:
    """The held-out messages with their labels; entity spans moved onto the normalised text."""
    from rasa.shared.nlu.training_data.loading import load_data

    from bot.nlu.components import ChineseTextNormalizer

    examples = []
    for message in load_data(str(path)).intent_examples:
        text = message.get("text")
        if not text:
            continue
        ChineseTextNormalizer._normalize_message(message)
        spans = tuple((e["entity"], e["start"], e["end"], str(e.get("value"))) for e in message.get("entities") or [])
        examples.append(Example(text, message.get("text"), message.get("intent"), message.get("intent_response_key"), spans))
    return examples


def heldout_texts(path: Path = HELDOUT) -> List[str]:
    """The held-out messages as a shopper typed them (entity markup removed)."""
    return [example.text for example in heldout_examples(path)]


def training_breakdown(log: str, total_s: float) -> List[Tuple[str, float]]:
    """Where a ``rasa train`` spent its time, from the training hooks' log lines.

    Args:
        log: what ``rasa train`` wrote (stdout and stderr).
        total_s: the training's wall-clock seconds.

    Returns:
        (what, seconds): each component's training in order (a component named twice, such as two
        featurizers, counts once per run), then the time between components (mostly the previous
        component processing the training data) and outside them (start-up, validation, reading the
        data, packaging the model). The log's timestamps have whole seconds.
    """
    events = [(datetime.fromisoformat(stamp), kind, name) for stamp, kind, name in _HOOK.findall(log)]
    if not events:
        return [("no training hooks in the log", total_s)]
    rows: List[Tuple[str, float]] = []
    open_since: Dict[str, datetime] = {}
    trained = 0.0
    for stamp, kind, name in events:
        if kind.startswith("Starting"):
            open_since[name] = stamp
        elif name in open_since:
            seconds = (stamp - open_since.pop(name)).total_seconds()
            rows.append((name, seconds))
            trained += seconds
    span = (events[-1][0] - events[0][0]).total_seconds()
    rows.append(("between components (processing the training data)", max(0.0, span - trained)))
    rows.append(("before and after: start-up, validation, reading the data, packaging", max(0.0, total_s - span)))
    return rows


def time_training(out: Path) -> Tuple[float, str, Path]:
    """Seconds of a full ``rasa train`` of the project into ``out``, what it logged, and the model."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.monotonic()
    completed = subprocess.run(
        launcher.train_command(out, "bench"),
        cwd=PROJECT_ROOT, env=launcher.train_environment(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    elapsed = time.monotonic() - started
    (out / "train.log").write_text(completed.stdout, encoding="utf-8")
    if completed.returncode != 0:
        raise BenchError(f"rasa train failed (exit {completed.returncode}):\n{completed.stdout[-2000:]}")
    return elapsed, completed.stdout, out / "bench.tar.gz"


def parse_server(model: Path) -> StockBot:
    """``rasa run --enable-api`` of our model: REST channel only, one worker, no parse cache."""
    NLU_DIR.mkdir(parents=True, exist_ok=True)
    (NLU_DIR / "credentials.yml").write_text("rest:\n", encoding="utf-8")
    env = {**bench_env(), "PYTHONPATH": str(PROJECT_ROOT), "NLU_CACHE_SIZE": "0", "SANIC_WORKERS": "1",
           "TF_INTRA_OP_PARALLELISM_THREADS": "1", "TF_INTER_OP_PARALLELISM_THREADS": "1"}
    return StockBot(model, directory=NLU_DIR, env=env, log_name="nlu-rasa.log")


def parse_once(url: str, text: str) -> Tuple[float, Dict[str, Any]]:
    """Milliseconds of one ``POST /model/parse`` and its answer, checked to carry an intent."""
    body = json.dumps({"text": text}, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as answer:
        parsed = json.loads(answer.read())
    elapsed_ms = (time.perf_counter() - started) * 1000
    if not parsed.get("intent", {}).get("name"):
        raise BenchError(f"/model/parse answered without an intent: {parsed!r:.200}")
    return elapsed_ms, parsed


def predicted_entities(parsed: Dict[str, Any]) -> List[Span]:
    """The entities of a parse as (type, start, end, value)."""
    return [(e["entity"], e["start"], e["end"], str(e.get("value"))) for e in parsed.get("entities") or []]


def selected_response(parsed: Dict[str, Any]) -> Optional[str]:
    """The response selector's answer (``faq/invoice``), None when it did not run."""
    selector = parsed.get("response_selector") or {}
    for key, prediction in selector.items():
        if key != "all_retrieval_intents" and isinstance(prediction, dict):
            return (prediction.get("response") or {}).get("intent_response_key")
    return None


def macro_f1(pairs: Sequence[Tuple[str, str]]) -> float:
    """Macro-F1 over the gold labels of (gold, predicted) pairs."""
    labels = {gold for gold, _ in pairs}
    scores = []
    for label in labels:
        tp = sum(1 for gold, predicted in pairs if gold == label and predicted == label)
        fp = sum(1 for gold, predicted in pairs if gold != label and predicted == label)
        fn = sum(1 for gold, predicted in pairs if gold == label and predicted != label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def entity_counts(examples: Sequence[Example], answers: Sequence[Dict[str, Any]]) -> Dict[str, Counter]:
    """Per entity type: true positives, false positives and false negatives of exact entities.

    An answer whose text is not the example's normalised text (a different normaliser) has all of
    its gold entities missed and all of its predictions wrong.
    """
    counts: Dict[str, Counter] = {}
    for example, parsed in zip(examples, answers, strict=True):
        aligned = parsed.get("text") == example.normalized
        gold = Counter(example.entities)
        found = Counter(predicted_entities(parsed))
        if not aligned:
            for span, n in found.items():
                counts.setdefault(span[0], Counter())["fp"] += n
            found = Counter()
        for span in set(gold) | set(found):
            tally = counts.setdefault(span[0], Counter())
            hits = min(gold[span], found[span])
            tally["tp"] += hits
            tally["fn"] += gold[span] - hits
            tally["fp"] += found[span] - hits
    return counts


def _spans(text: str, spans: Sequence[Span]) -> str:
    shown = []
    for kind, start, end, value in spans:
        surface = text[start:end]
        shown.append(f"{kind}={surface!r}" + (f"→{value}" if value != surface else ""))
    return ", ".join(shown) or "-"


def print_entity_errors(examples: Sequence[Example], answers: Sequence[Dict[str, Any]]) -> None:
    """Each held-out message whose entities differ from the annotation: what was wanted and found."""
    for example, parsed in zip(examples, answers, strict=True):
        wanted, found = sorted(example.entities), sorted(predicted_entities(parsed))
        if wanted != found:
            print(f"  {example.normalized!r}: annotated {_spans(example.normalized, wanted)}; "
                  f"found {_spans(example.normalized, found)}")


def print_slowest(examples: Sequence[Example], latencies: Sequence[float], count: int = 8) -> None:
    """The messages with the slowest median parse over the rounds."""
    rounds = len(latencies) // len(examples)
    medians = sorted(((sorted(latencies[index::len(examples)])[rounds // 2], example.text) for index, example in enumerate(examples)),
                     reverse=True)
    for median, text in medians[:count]:
        print(f"  {median:7.1f} ms  {text!r}")


def print_quality(examples: Sequence[Example], answers: Sequence[Dict[str, Any]]) -> None:
    """Intent, FAQ/chitchat answer and per-entity figures of the held-out answers."""
    intents = [(example.intent, parsed["intent"]["name"]) for example, parsed in zip(examples, answers, strict=True)]
    accuracy = sum(gold == predicted for gold, predicted in intents) / len(intents)
    print(f"{'held-out intent macro-F1':<64} {macro_f1(intents):.4f}   accuracy {accuracy:.4f}")
    retrieval = [(example.response_key, selected_response(parsed)) for example, parsed in zip(examples, answers, strict=True)
                 if example.response_key]
    if retrieval:
        right = sum(gold == predicted for gold, predicted in retrieval)
        print(f"{'held-out FAQ/chitchat answer (response selector) accuracy':<64} {right / len(retrieval):.4f}   "
              f"({right}/{len(retrieval)})")
    print(f"  {'entity (exact type, span, value)':<34} precision  recall      F1  support")
    for kind, tally in sorted(entity_counts(examples, answers).items()):
        tp, fp, fn = tally["tp"], tally["fp"], tally["fn"]
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        print(f"  {kind:<34} {precision:9.3f} {recall:7.3f} {f1:7.3f}  {tp + fn:7d}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nlu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", help="time a full rasa train first")
    parser.add_argument("--model", type=Path, help="the model to serve (default: the one for the current data)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the held-out messages (default 3)")
    parser.add_argument("--details", action="store_true", help="also list entity differences and the slowest messages")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        trained: Optional[Path] = None
        if args.train:
            load_before_training = os.getloadavg()
            training_s, log, trained = time_training(NLU_DIR / "model")
            verdict = "MET" if training_s <= TARGET_TRAIN_S else "NOT MET"
            print(f"\n{'full rasa train':<64} {training_s:7.1f} s   target <= {TARGET_TRAIN_S:.0f} s: {verdict}   "
                  f"(load average {load_before_training[0]:.2f} before, {os.getloadavg()[0]:.2f} after)")
            for what, seconds in training_breakdown(log, training_s):
                print(f"  {what:<62} {seconds:7.0f} s")
            sys.stdout.flush()
        model = args.model.resolve() if args.model else (trained or launcher.train_if_needed())
        examples = heldout_examples()
        server = parse_server(model)
        try:
            server.start(timeout_s=SERVER_START_S)
            url = f"{server.base_url}/model/parse"
            for example in examples[:WARMUP_PARSES]:
                parse_once(url, example.text)
            load_before = os.getloadavg()
            latencies: List[float] = []
            answers: List[Dict[str, Any]] = []
            for round_number in range(args.rounds):
                for example in examples:
                    elapsed_ms, parsed = parse_once(url, example.text)
                    latencies.append(elapsed_ms)
                    if round_number == 0:
                        answers.append(parsed)
            load_after = os.getloadavg()
        finally:
            server.stop()
    except BenchError as error:
        print(f"bench.nlu: {error}", file=sys.stderr)
        return 1
    print(f"\nmodel {model.name}; {len(examples)} held-out messages x {args.rounds} rounds; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(line("POST /model/parse, one at a time, no parse cache", latencies, TARGET_PARSE_MS))
    print(f"{'':<64} p99={percentile(latencies, 0.99):7.1f} ms")
    print_quality(examples, answers)
    if args.details:
        print("slowest messages (median over the rounds):")
        print_slowest(examples, latencies)
        print("entities unlike the annotation:")
        print_entity_errors(examples, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
