"""``make eval-nlu``: the NLU measured on the held-out file and by cross-validation.

Writes Rasa's intent and entity reports, error lists and confusion-matrix pictures into
``results/nlu/heldout`` and ``results/nlu/cross-validation``, and prints intent macro-F1, per-intent
F1 and recall, the precision, recall and F1 of the identifier extractor (``ShopPatternExtractor``)
for order_id, tracking_number and phone, and the entity F1 of DIET and the spaCy product matcher.
The held-out file is normalised first exactly as the pipeline normalises messages, so gold entity
spans line up with the tokens the model sees (full-width and spaced digits included).

Beside the project's own figures it measures the model on real shoppers' messages kept outside the
project (``../shared/devset/real-dev.tsv``, or ``NLU_DEVSET``), labelled with 8 coarse labels: the
project's intents are mapped onto them (:func:`coarse_label`) and the per-class precision, recall
and F1, the macro figures and the 8 x 8 confusion matrix are printed, with the most frequent
confusions counted by the project's own labels. Only figures are printed or written
(``results/nlu/devset/summary.json``), never the messages: the set is for measuring, and nobody
writing training data reads its rows. When the file is absent this part is skipped.

``--model`` evaluates a model already trained (e.g. ``rasa train nlu --out <dir>``) instead of
training the project's model; ``--latest`` takes the newest model in ``models/`` without training;
``--quick`` is ``--latest --folds 0`` (held-out and dev set only, about a minute); ``--folds 0``
skips the cross-validation; ``--devset-only`` skips the held-out test as well.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from bot.launcher import MODEL_DIR, rasa_bin, train_if_needed
from bot.settings import PROJECT_ROOT

HELDOUT = PROJECT_ROOT / "tests" / "nlu" / "heldout.yml"
RESULTS = PROJECT_ROOT / "results" / "nlu"
KEY_ENTITIES = ("order_id", "tracking_number", "phone")
KEY_EXTRACTOR = "ShopPatternExtractor"
OTHER_IDENTIFIERS = ("phone_last4", "amount")

DEVSET_ENV = "NLU_DEVSET"
DEFAULT_DEVSET = PROJECT_ROOT.parent / "shared" / "devset" / "real-dev.tsv"
COARSE_LABELS = ("track_order", "return_or_refund", "points_membership", "human_agent",
                 "greet", "thank", "goodbye", "out_of_scope")
"""The 8 labels real shoppers' messages are labelled with."""
INTENT_TO_COARSE: Dict[str, str] = {
    "track_order": "track_order", "track_order_full": "track_order", "urge_delivery": "track_order",
    "return_request": "return_or_refund", "exchange_request": "return_or_refund",
    "refund_status": "return_or_refund",
    "points_balance": "points_membership", "points_expiry": "points_membership",
    "points_redeem": "points_membership", "membership_tier": "points_membership",
    "human_agent": "human_agent", "bot_challenge": "human_agent",
    "greet": "greet", "thank": "thank", "goodbye": "goodbye",
    "faq/return_policy": "return_or_refund",
    "faq/points_rules": "points_membership", "faq/tier_rules": "points_membership",
}
"""Project labels (intents, ``faq/...`` answers) that are one of the 8; every other label,
``nlu_fallback`` included, counts as out_of_scope."""


def devset_path() -> Path:
    """Where the dev set is read from: ``$NLU_DEVSET`` or ``../shared/devset/real-dev.tsv``."""
    return Path(os.environ.get(DEVSET_ENV) or DEFAULT_DEVSET)


def read_devset(path: Path) -> List[Tuple[str, str]]:
    """The ``(text, label)`` rows of a dev-set TSV (header ``text, intent, source``)."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(row["text"], row["intent"]) for row in reader if row.get("text") and row.get("intent")]


def project_label(parse: Mapping[str, Any]) -> str:
    """The project's label of a parse: the intent, or ``faq/<key>`` for a retrieval intent."""
    intent = str((parse.get("intent") or {}).get("name") or "")
    for selector in (parse.get("response_selector") or {}).values():
        if not isinstance(selector, Mapping):
            continue
        key = str(((selector.get("response") or {}).get("intent_response_key")) or "")
        if key.startswith(f"{intent}/"):
            return key
    return intent


FALLBACK_INTENT = "nlu_fallback"
SWEEP_THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
"""FallbackClassifier thresholds the evaluation replays each parse at."""


def fallback_settings(config: Path = PROJECT_ROOT / "config.yml") -> Tuple[float, float]:
    """The FallbackClassifier's ``threshold`` and ``ambiguity_threshold`` in ``config``."""
    import yaml

    pipeline = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("pipeline") or []
    for component in pipeline:
        if component.get("name") == "FallbackClassifier":
            return float(component.get("threshold", 0.3)), float(component.get("ambiguity_threshold", 0.1))
    return 0.0, 0.0


def label_at(parse: Mapping[str, Any], threshold: float, ambiguity: float) -> str:
    """The project label ``parse`` would get with the FallbackClassifier at ``threshold``.

    The ranking before the fallback is the classifier's; an explicit request for a human (set after
    the fallback, confidence 1) stays what it is.
    """
    intent = (parse.get("intent") or {})
    ranking = [r for r in parse.get("intent_ranking") or [] if r.get("name") != FALLBACK_INTENT]
    if not ranking or (intent.get("name") not in (FALLBACK_INTENT, ranking[0].get("name"))
                       and float(intent.get("confidence") or 0) >= 1.0):
        return project_label(parse)
    top = float(ranking[0].get("confidence") or 0.0)
    second = float(ranking[1].get("confidence") or 0.0) if len(ranking) > 1 else 0.0
    if top < threshold or top - second < ambiguity:
        return FALLBACK_INTENT
    return project_label({**parse, "intent": ranking[0]})


def fallback_sweep(gold: Sequence[str], parses: Sequence[Mapping[str, Any]], ambiguity: float,
                   coarse: bool) -> List[Dict[str, Any]]:
    """For each of :data:`SWEEP_THRESHOLDS`: the share of messages sent to fallback, the share
    answered with a wrong label, and accuracy (and macro-recall on the 8 labels when ``coarse``)."""
    rows = []
    for threshold in SWEEP_THRESHOLDS:
        raw = [label_at(parse, threshold, ambiguity) for parse in parses]
        predicted = [coarse_label(r) for r in raw] if coarse else raw
        n = len(gold) or 1
        fallback = sum(r == FALLBACK_INTENT for r in raw)
        wrong = sum(p != g and r != FALLBACK_INTENT for g, p, r in zip(gold, predicted, raw, strict=True))
        row: Dict[str, Any] = {"threshold": threshold, "fallback": round(fallback / n, 4), "wrong_answer": round(wrong / n, 4),
               "accuracy": round(sum(p == g for g, p in zip(gold, predicted, strict=True)) / n, 4)}
        if coarse:
            row["macro_recall"] = coarse_report(gold, predicted, raw)["macro_recall"]
            row["fallback_by_label"] = dict(Counter(g for g, r in zip(gold, raw, strict=True) if r == FALLBACK_INTENT))
        rows.append(row)
    return rows


def print_sweep(title: str, rows: Sequence[Mapping[str, Any]], current: float) -> None:
    """Print a :func:`fallback_sweep`."""
    print(f"  fallback threshold replayed on {title}:")
    for row in rows:
        mark = "  <- config.yml" if abs(row["threshold"] - current) < 1e-9 else ""
        recall = f"   macro-recall {row['macro_recall']:.3f}" if "macro_recall" in row else ""
        by_label = ", ".join(f"{label} {count}" for label, count in sorted((row.get("fallback_by_label") or {}).items()))
        print(f"    {row['threshold']:.2f}: to fallback {row['fallback']:6.1%}   wrong answer {row['wrong_answer']:6.1%}"
              f"   accuracy {row['accuracy']:.3f}{recall}{mark}" + (f"   (fallback: {by_label})" if by_label else ""))


def coarse_label(label: str) -> str:
    """The 8-label name of a project label (see :data:`INTENT_TO_COARSE`)."""
    return INTENT_TO_COARSE.get(label, "out_of_scope")


def coarse_report(gold: Sequence[str], predicted: Sequence[str], raw: Sequence[str]) -> Dict[str, Any]:
    """Per-class precision, recall and F1, macro figures, the confusion matrix and the most
    frequent confusions (gold label -> the project's label) of an 8-label evaluation."""
    labels = list(COARSE_LABELS)
    unknown = sorted(set(gold) - set(labels))
    if unknown:
        raise ValueError(f"labels outside the 8: {unknown}")
    matrix = {g: {p: 0 for p in labels} for g in labels}
    for g, p in zip(gold, predicted, strict=True):
        matrix[g][p] += 1
    per_class: Dict[str, Dict[str, float]] = {}
    for label in labels:
        tp = matrix[label][label]
        support = sum(matrix[label].values())
        predicted_n = sum(matrix[g][label] for g in matrix)
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": round(precision, 4), "recall": round(recall, 4),
                            "f1": round(f1, 4), "support": support}
    present = [label for label in labels if per_class[label]["support"]]
    confusions = Counter((g, r) for g, p, r in zip(gold, predicted, raw, strict=True) if g != p)
    return {
        "messages": len(gold),
        "accuracy": round(sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold), 4) if gold else 0.0,
        "macro_recall": round(sum(per_class[x]["recall"] for x in present) / len(present), 4) if present else 0.0,
        "macro_f1": round(sum(per_class[x]["f1"] for x in present) / len(present), 4) if present else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix,
        "top_confusions": [{"gold": g, "predicted": r, "count": n} for (g, r), n in confusions.most_common(20)],
    }


def _quiet_rasa() -> None:
    """Rasa's parse log prints each message's text; the dev set's messages are never shown."""
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)
    for name in ("rasa", "root", ""):
        logging.getLogger(name).setLevel(logging.WARNING if name != "rasa" else logging.ERROR)


async def _parse_all(model: Path, batches: Sequence[Sequence[str]]) -> List[List[Dict[str, Any]]]:
    from rasa.core.agent import Agent

    _quiet_rasa()
    agent = Agent.load(str(model))
    _quiet_rasa()
    parsed: List[List[Dict[str, Any]]] = []
    for batch in batches:
        parsed.append([await agent.parse_message(text) for text in batch])
    return parsed


def heldout_rows(path: Path = HELDOUT) -> List[Tuple[str, str]]:
    """The held-out file's ``(text, label)`` pairs (``faq/<key>`` for retrieval intents)."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    return [(m.get("text"), m.get("intent_response_key") or m.get("intent")) for m in data.training_examples]


def evaluate_in_process(model: Path, devset: Optional[Path], heldout: bool) -> Dict[str, Any]:
    """Parse the dev set (8 labels; figures only, no texts) and, when asked, the held-out file with
    ``model`` in this process, and replay each at several fallback thresholds."""
    dev_rows = read_devset(devset) if devset else []
    held_rows = heldout_rows() if heldout else []
    dev_parses, held_parses = asyncio.run(_parse_all(model, [[t for t, _ in dev_rows], [t for t, _ in held_rows]]))
    current, ambiguity = fallback_settings()
    result: Dict[str, Any] = {"fallback_threshold": current, "ambiguity_threshold": ambiguity}
    if dev_rows:
        gold = [label for _, label in dev_rows]
        raw = [project_label(parse) for parse in dev_parses]
        report = coarse_report(gold, [coarse_label(r) for r in raw], raw)
        report["model"] = model.name
        report["fallback_sweep"] = fallback_sweep(gold, dev_parses, ambiguity, coarse=True)
        result["devset"] = report
    if held_rows:
        result["heldout_sweep"] = fallback_sweep([label for _, label in held_rows], held_parses, ambiguity, coarse=False)
    return result


def print_devset(report: Mapping[str, Any]) -> None:
    """Print the 8-label figures of :func:`evaluate_devset`."""
    print(f"\n== real shoppers' messages, 8 labels ({report['messages']} messages, model {report['model']}) ==")
    print(f"accuracy {report['accuracy']:.4f}   macro-recall {report['macro_recall']:.4f}   "
          f"macro-F1 {report['macro_f1']:.4f}")
    print(f"  {'label':<18} precision  recall     F1  support")
    for label, figures in report["per_class"].items():
        print(f"  {label:<18} {figures['precision']:9.3f} {figures['recall']:7.3f} {figures['f1']:6.3f}"
              f" {figures['support']:8d}")
    short = {"track_order": "track", "return_or_refund": "return", "points_membership": "points",
             "human_agent": "human", "greet": "greet", "thank": "thank", "goodbye": "bye",
             "out_of_scope": "oos"}
    print("  confusion matrix (rows gold, columns predicted):")
    print("  " + " " * 18 + "".join(f"{short[p]:>7}" for p in COARSE_LABELS))
    for gold, row in report["confusion_matrix"].items():
        print(f"  {gold:<18}" + "".join(f"{row.get(p, 0):7d}" for p in COARSE_LABELS))
    if report["top_confusions"]:
        print("  most frequent confusions (gold -> the project's label):")
        for item in report["top_confusions"]:
            print(f"    {item['count']:3d}  {item['gold']} -> {item['predicted']}")


def latest_model() -> Path:
    """The newest trained model in ``models/`` (no training)."""
    models = sorted(MODEL_DIR.glob("*.tar.gz"), key=lambda path: path.stat().st_mtime)
    if not models:
        raise SystemExit("no trained model in models/: run `make train` first")
    return models[-1]


def normalized_copy(source: Path, target: Path) -> Path:
    """Write ``source`` with every example normalised and its entity spans moved along."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.loading import load_data

    from bot.nlu.components import ChineseTextNormalizer

    data = load_data(str(source))
    for example in data.training_examples:
        ChineseTextNormalizer._normalize_message(example)
    target.parent.mkdir(parents=True, exist_ok=True)
    RasaYAMLWriter().dump(str(target), data)
    return target


def _rasa(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([rasa_bin(), *args], cwd=PROJECT_ROOT, env=env, check=True)


def _read(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def summarize(out_dir: Path) -> Dict[str, Any]:
    """Intent macro-F1, per-intent F1 and recall, and entity figures from Rasa's reports in ``out_dir``."""
    intents = _read(out_dir / "intent_report.json")
    labels = {
        name: values
        for name, values in intents.items()
        if isinstance(values, dict) and "f1-score" in values and name not in ("macro avg", "weighted avg", "micro avg")
    }
    entities: Dict[str, Dict[str, float]] = {}
    key_entities: Dict[str, Dict[str, float]] = {}
    for report_file in sorted(out_dir.glob("*Extractor_report.json")) + sorted(out_dir.glob("DIETClassifier_report.json")):
        report = _read(report_file)
        extractor = report_file.name.removesuffix("_report.json")
        for label, values in report.items():
            if not isinstance(values, dict) or "f1-score" not in values or "avg" in label:
                continue
            if extractor == KEY_EXTRACTOR and label in KEY_ENTITIES:
                key_entities[label] = {
                    "precision": round(values["precision"], 4),
                    "recall": round(values["recall"], 4),
                    "f1": round(values["f1-score"], 4),
                    "support": values.get("support", 0),
                }
            if values.get("support", 0):
                entities.setdefault(extractor, {})[label] = round(values["f1-score"], 3)
    return {
        "intent_macro_f1": round(intents.get("macro avg", {}).get("f1-score", 0.0), 4),
        "intent_accuracy": round(intents.get("accuracy", 0.0), 4),
        "per_intent_f1": {name: round(values["f1-score"], 3) for name, values in labels.items()},
        "per_intent_recall": {name: round(values["recall"], 3) for name, values in labels.items()},
        "key_entities": key_entities,
        "entity_f1": entities,
    }


def print_summary(title: str, summary: Dict[str, Any]) -> None:
    """Print one evaluation's figures."""
    print(f"\n== {title} ==")
    print(f"intent macro-F1 {summary['intent_macro_f1']:.4f}   accuracy {summary['intent_accuracy']:.4f}")
    recall = summary.get("per_intent_recall", {})
    worst = sorted(summary["per_intent_f1"].items(), key=lambda item: item[1])
    for name, f1 in worst:
        print(f"  {f1:.3f}  {name}" + (f"  (recall {recall[name]:.3f})" if name in recall else ""))
    key_entities = summary.get("key_entities", {})
    print(f"  identifiers by {KEY_EXTRACTOR}:")
    for label in KEY_ENTITIES:
        figures = key_entities.get(label)
        if figures and figures["support"]:
            print(f"    {label:<16} precision {figures['precision']:.3f}  recall {figures['recall']:.3f}  "
                  f"F1 {figures['f1']:.3f}  (support {figures['support']} tokens)")
        else:
            print(f"    {label:<16} not annotated in this data")
    for extractor, entity_labels in summary["entity_f1"].items():
        if extractor == KEY_EXTRACTOR:
            shown = {label: f1 for label, f1 in entity_labels.items() if label in OTHER_IDENTIFIERS}
        else:
            shown = {label: f1 for label, f1 in entity_labels.items()
                     if label not in KEY_ENTITIES and label not in OTHER_IDENTIFIERS}
        if shown:
            print(f"  entities by {extractor}: " + ", ".join(f"{label} {f1:.3f}" for label, f1 in sorted(shown.items())))


def main(argv: Optional[List[str]] = None) -> int:
    """Run the held-out evaluation and, unless skipped, the cross-validation."""
    parser = argparse.ArgumentParser(prog="python -m bot.evaluation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=3, help="cross-validation folds (0 skips it)")
    parser.add_argument("--model", type=Path, help="a trained model to evaluate (default: the project's, trained if needed)")
    parser.add_argument("--latest", action="store_true", help="evaluate the newest model in models/, never train")
    parser.add_argument("--quick", action="store_true", help="--latest --folds 0: the trained model on held-out and dev set")
    parser.add_argument("--devset-only", action="store_true", help="only the dev set (no held-out test, no cross-validation)")
    parser.add_argument("--devset", type=Path, help=f"the dev set (default: ${DEVSET_ENV} or ../shared/devset/real-dev.tsv)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where reports go (default: results/nlu)")
    args = parser.parse_args(argv)
    if args.quick:
        args.latest, args.folds = True, 0
    if args.devset_only:
        args.folds = 0
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.model:
        model = args.model.resolve()
    else:
        model = latest_model() if args.latest else train_if_needed()
    results: Dict[str, Any] = {}
    if not args.devset_only:
        heldout_dir = out / "heldout"
        normalized = normalized_copy(HELDOUT, out / "heldout.normalized.yml")
        _rasa("test", "nlu", "--model", str(model), "--nlu", str(normalized), "--out", str(heldout_dir))
        results["heldout"] = summarize(heldout_dir)
    if args.folds:
        cv_dir = out / "cross-validation"
        _rasa("test", "nlu", "--nlu", "data", "--config", "config.yml", "--cross-validation",
              "--folds", str(args.folds), "--out", str(cv_dir))
        results["cross_validation"] = summarize(cv_dir)
    for title, summary in results.items():
        print_summary(title, summary)
    devset: Optional[Path] = (args.devset or devset_path()).resolve()
    if devset is not None and not devset.is_file():
        print(f"\n(no dev set at {devset}: the 8-label evaluation on real shoppers' messages is skipped)")
        devset = None
    parsed = evaluate_in_process(model, devset, heldout=not args.devset_only)
    if "heldout_sweep" in parsed:
        print_sweep("the held-out file (project labels)", parsed["heldout_sweep"], parsed["fallback_threshold"])
        results["heldout_fallback_sweep"] = parsed["heldout_sweep"]
    if "devset" in parsed:
        report = parsed["devset"]
        print_devset(report)
        print_sweep("real shoppers' messages (8 labels)", report["fallback_sweep"], parsed["fallback_threshold"])
        (out / "devset").mkdir(parents=True, exist_ok=True)
        (out / "devset" / "summary.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        results["devset"] = {key: report[key] for key in ("messages", "accuracy", "macro_recall", "macro_f1")}
    (out / "summary.json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    shown = out.relative_to(PROJECT_ROOT) if out.is_relative_to(PROJECT_ROOT) else out
    print(f"\nReports and confusion matrices: {shown}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
