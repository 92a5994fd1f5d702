"""``make review-export``: the NLU inbox's labelled messages as training data, ``data/nlu/reviewed.yml``.

Every message a supervisor labelled in the desk (:mod:`bot.nlu_inbox`) becomes one example of its
intent in Rasa 3.x YAML (``version: "3.1"``), masked text only, for the next ``make train``. The
file is rebuilt on each export from what it held and the labels in the inbox (a later label of the
same text wins), so exporting twice writes the same file, and examples stay after their inbox item
has expired.

An example is left out (and named in the report) when it would break the training-data checks of
``tests/test_training_data.py``, whose rules the export reuses:

- ``unknown_intent``: the intent is not (any more) one of the domain's;
- ``annotation``: the text looks like Rasa's entity markup (``[...](...)``), which would be read as an annotation;
- ``no_words``: nothing is left of the text once normalised;
- ``known``: the same text (normalised) is already a training example of that intent;
- ``conflict``: the same text is a training example of another intent;
- ``held_out``: the text equals or nearly copies a held-out test message (``tests/nlu/``);
- ``dev_set``: the text equals or nearly copies a message of the real shoppers' dev set
  (``../shared/devset/``, read only when present; never trained on);
- ``near_copy``: the text nearly copies another example of the same intent.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml
from redis.asyncio import Redis

from bot.nlu_inbox import label_choices, labelled_items
from bot.pii import mask_text
from bot.settings import PROJECT_ROOT, Settings, load_settings

logger = logging.getLogger(__name__)

DATA_DIR = PROJECT_ROOT / "data" / "nlu"
OUTPUT = DATA_DIR / "reviewed.yml"
HEADER = """# Shopper messages the bot did not understand, labelled by supervisors in the desk's NLU inbox
# (written by `make review-export`; masked text only). Label in the desk and export again instead of
# editing this file: each export rebuilds it from this file and the inbox's labels.
"""
WITHIN_INTENT_JACCARD = 0.8
WITHIN_INTENT_MIN_LETTERS = 6
"""The rule of ``test_no_training_example_is_a_near_copy_within_intent``."""
HELD_OUT_MIN_LETTERS = 4
ANNOTATION = re.compile(r"\[[^\]\n]*\]\s*[({]")

REFUSALS = {
    "unknown_intent": "the intent is not one of the domain's",
    "annotation": "looks like entity markup [..](..)",
    "no_words": "no words left once normalised",
    "known": "already a training example of this intent",
    "conflict": "already a training example of another intent",
    "held_out": "equals or nearly copies a held-out test message",
    "dev_set": "equals or nearly copies a dev-set message",
    "near_copy": "nearly copies another example of this intent",
}


@dataclass(frozen=True)
class Candidate:
    """A labelled message to write: its (masked) text, intent and where it comes from."""

    text: str
    intent: str
    source: str


@dataclass
class ExportResult:
    """What an export wrote and left out."""

    written: List[Candidate] = field(default_factory=list)
    refused: List[Tuple[Candidate, str]] = field(default_factory=list)
    new: int = 0


def training_checks() -> ModuleType:
    """The training-data checks (``tests/test_training_data.py``): their normalisation and similarity rules."""
    from tests import test_training_data

    return test_training_data


def one_line(text: str) -> str:
    """A text as one example line: masked, blanks collapsed, no line breaks."""
    return re.sub(r"\s+", " ", mask_text(text)).strip()


def read_reviewed(path: Path) -> List[Candidate]:
    """The examples of an earlier export (none when the file does not exist)."""
    if not path.is_file():
        return []
    content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    found = []
    for block in content.get("nlu") or []:
        intent = str(block.get("intent") or "")
        for line in str(block.get("examples") or "").splitlines():
            line = line.strip()
            if intent and line.startswith("- ") and line[2:].strip():
                found.append(Candidate(line[2:].strip(), intent, path.name))
    return found


def render(examples: Iterable[Candidate]) -> str:
    """Rasa 3.x NLU YAML of the examples, intents and texts sorted (the same input, the same file)."""
    by_intent: Dict[str, List[str]] = {}
    for example in examples:
        by_intent.setdefault(example.intent, []).append(example.text)
    if not by_intent:
        return HEADER + 'version: "3.1"\nnlu: []\n'
    lines = [HEADER.rstrip("\n"), 'version: "3.1"', "nlu:"]
    for intent in sorted(by_intent):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in sorted(set(by_intent[intent]))]
    return "\n".join(lines) + "\n"


def dev_set_texts(checks: ModuleType) -> List[str]:
    """The dev set's messages when the checks know where it is and it is present (else none)."""
    path = getattr(checks, "DEVSET", None)
    if not isinstance(path, Path) or not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if row.get("text")]


def select(candidates: Sequence[Candidate], intents: Iterable[str], training: Sequence[Tuple[str, str]], held_out: Sequence[str],
           dev_texts: Sequence[str], checks: ModuleType) -> ExportResult:
    """Which candidates to write (pure; the rules in the module's description).

    Args:
        candidates: earlier examples first, then the inbox's labels oldest first; of two with the
            same normalised text, the later one counts.
        intents: the intents allowed.
        training: ``(text, intent)`` of every other training example.
        held_out: the held-out test messages.
        dev_texts: the dev set's messages (empty when absent).
        checks: the training-data checks (``normalise``, ``_jaccard``, ``NEAR_DUPLICATE_JACCARD``,
            and ``dev_set_copies`` when they have it).
    """
    normalise, jaccard, near = checks.normalise, checks._jaccard, checks.NEAR_DUPLICATE_JACCARD
    allowed = set(intents)
    result = ExportResult()
    latest: Dict[str, Candidate] = {}
    for candidate in candidates:
        key = normalise(candidate.text)
        earlier = latest.get(key)
        if earlier is not None and earlier.intent == candidate.intent:
            continue  # exported before (or labelled twice the same way): the first text stays
        if earlier is not None:
            result.refused.append((earlier, "relabelled"))
        latest[key] = candidate
    known = {normalise(text): intent for text, intent in training}
    by_intent: Dict[str, List[str]] = {}
    for text, intent in training:
        by_intent.setdefault(intent, []).append(normalise(text))
    held = [normalise(text) for text in held_out]
    held_keys = set(held)
    copies_dev = getattr(checks, "dev_set_copies", None)
    for key, candidate in sorted(latest.items(), key=lambda item: (item[1].intent, item[0])):
        reason = ""
        if candidate.intent not in allowed:
            reason = "unknown_intent"
        elif ANNOTATION.search(candidate.text):
            reason = "annotation"
        elif not key:
            reason = "no_words"
        elif key in known:
            reason = "known" if known[key] == candidate.intent else "conflict"
        elif key in held_keys or (len(key) >= HELD_OUT_MIN_LETTERS and any(
                len(other) >= HELD_OUT_MIN_LETTERS and jaccard(key, other) >= near for other in held)):
            reason = "held_out"
        elif dev_texts and callable(copies_dev) and copies_dev([("reviewed", candidate.text)], dev_texts):
            reason = "dev_set"
        elif any(min(len(key), len(other)) >= WITHIN_INTENT_MIN_LETTERS and jaccard(key, other) >= WITHIN_INTENT_JACCARD
                 for other in by_intent.get(candidate.intent, [])):
            reason = "near_copy"
        if reason:
            result.refused.append((candidate, reason))
            continue
        result.written.append(candidate)
        by_intent.setdefault(candidate.intent, []).append(key)
        result.new += candidate.source == "inbox"
    return result


def _labels(message: Any, checks: ModuleType) -> Tuple[str, str]:
    return str(message.get("text")), str(checks._label(message))


def export(items: Sequence[Mapping[str, Any]], out: Path = OUTPUT, data_dir: Optional[Path] = None,
           domain_file: Path = PROJECT_ROOT / "domain.yml", responses_dir: Path = PROJECT_ROOT / "data" / "responses") -> ExportResult:
    """Write the labelled inbox items (and the examples ``out`` held) to ``out``.

    Args:
        items: labelled inbox items (:func:`bot.nlu_inbox.labelled_items`), oldest label first.
        out: the file to (re)write.
        data_dir: the other training files (every ``*.yml`` but ``out``); ``out``'s folder by default.
        domain_file: the domain whose intents are allowed.
        responses_dir: the retrieval responses (``faq/...`` sub-intents).
    """
    checks = training_checks()
    data_dir = data_dir or out.parent
    others = [path for path in sorted(data_dir.glob("*.yml")) if path.resolve() != out.resolve()]
    training = [_labels(message, checks) for _, message in checks._examples(others)]
    held_out = [str(message.get("text")) for _, message in checks._examples(checks.TEST_FILES)]
    candidates = read_reviewed(out) + [Candidate(one_line(str(item["text"])), str(item["label"]), "inbox") for item in items
                                       if item.get("label") and str(item.get("text") or "").strip()]
    result = select(candidates, label_choices(domain_file, responses_dir), training, held_out, dev_set_texts(checks), checks)
    text = render(result.written)
    if not result.written and not out.is_file():
        return result  # nothing to learn: no empty file (it would only make the next `make train` retrain)
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return result


async def _read_inbox(url: str) -> List[Dict[str, Any]]:
    client = Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2)
    try:
        return await labelled_items(client)
    finally:
        await client.close()


def inbox_items(settings: Settings, redis_url: Optional[str] = None) -> List[Dict[str, Any]]:
    """The labelled items, from ``redis_url`` or the stack's Redis (the embedded one started for the
    export when ``make run`` is not running)."""
    if redis_url or settings.redis_url:
        return asyncio.run(_read_inbox(redis_url or settings.redis_url))
    from bot.redis_server import RedisServer, embedded_password, port_is_open

    data_dir = settings.var_dir / "redis"
    if port_is_open("127.0.0.1", settings.embedded_redis_port):
        return asyncio.run(_read_inbox(settings.effective_redis_url))
    if not data_dir.is_dir():
        return []
    server = RedisServer(settings.embedded_redis_port, data_dir, password=embedded_password(data_dir)).start()
    try:
        return asyncio.run(_read_inbox(server.url))
    finally:
        server.stop()


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m bot.nlu_export [--out data/nlu/reviewed.yml] [--data data/nlu] [--redis-url URL]``."""
    parser = argparse.ArgumentParser(prog="python -m bot.nlu_export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUTPUT, help="the file to write (default: data/nlu/reviewed.yml)")
    parser.add_argument("--data", type=Path, default=None, help="the other training files (default: the output's folder)")
    parser.add_argument("--redis-url", default=None, help="the inbox's Redis (default: REDIS_URL or the embedded server)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("rasa").setLevel(logging.ERROR)
    settings = load_settings()
    try:
        items = inbox_items(settings, args.redis_url)
    except Exception as error:  # Redis unreachable or refusing: say so, write nothing
        print(f"cannot read the NLU inbox from Redis ({type(error).__name__}: {error}); nothing written", file=sys.stderr)
        return 1
    result = export(items, args.out.resolve(), args.data.resolve() if args.data else None)
    where = args.out.resolve()
    shown = where.relative_to(PROJECT_ROOT) if where.is_relative_to(PROJECT_ROOT) else where
    print(f"{len(items)} labelled in the inbox; {len(result.written)} examples in {shown} ({result.new} from the inbox)")
    for candidate, reason in result.refused:
        if reason == "relabelled":
            continue
        print(f"  left out {candidate.text!r} → {candidate.intent}: {REFUSALS.get(reason, reason)}")
    if result.written:
        print("next: make train (the model is retrained because the training data changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
