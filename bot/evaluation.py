"""``make eval-nlu``: the NLU measured on the held-out file and by cross-validation.

Writes Rasa's intent and entity reports, error lists and confusion-matrix pictures into
``results/nlu/heldout`` and ``results/nlu/cross-validation``, and prints intent macro-F1, per-intent
F1 and recall, the precision, recall and F1 of the identifier extractor (``ShopPatternExtractor``)
for order_id, tracking_number and phone, and the entity F1 of DIET and the spaCy product matcher.
The held-out file is normalised first exactly as the pipeline normalises messages, so gold entity
spans line up with the tokens the model sees (full-width and spaced digits included).

``--model`` evaluates a model already trained (e.g. ``rasa train nlu --out <dir>``) instead of
training the project's model; ``--folds 0`` skips the cross-validation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from bot.launcher import rasa_bin, train_if_needed
from bot.settings import PROJECT_ROOT

HELDOUT = PROJECT_ROOT / "tests" / "nlu" / "heldout.yml"
RESULTS = PROJECT_ROOT / "results" / "nlu"
KEY_ENTITIES = ("order_id", "tracking_number", "phone")
KEY_EXTRACTOR = "ShopPatternExtractor"
OTHER_IDENTIFIERS = ("phone_last4", "amount")


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
    parser.add_argument("--out", type=Path, default=RESULTS, help="where reports go (default: results/nlu)")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    model = args.model.resolve() if args.model else train_if_needed()
    heldout_dir = out / "heldout"
    normalized = normalized_copy(HELDOUT, out / "heldout.normalized.yml")
    _rasa("test", "nlu", "--model", str(model), "--nlu", str(normalized), "--out", str(heldout_dir))
    results = {"heldout": summarize(heldout_dir)}
    if args.folds:
        cv_dir = out / "cross-validation"
        _rasa("test", "nlu", "--nlu", "data", "--config", "config.yml", "--cross-validation",
              "--folds", str(args.folds), "--out", str(cv_dir))
        results["cross_validation"] = summarize(cv_dir)
    for title, summary in results.items():
        print_summary(title, summary)
    (out / "summary.json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    shown = out.relative_to(PROJECT_ROOT) if out.is_relative_to(PROJECT_ROOT) else out
    print(f"\nReports and confusion matrices: {shown}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
