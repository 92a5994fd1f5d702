"""``make eval-nlu``: the NLU measured on the held-out file and by cross-validation.

Writes Rasa's intent and entity reports, error lists and confusion-matrix pictures into
``results/nlu/heldout`` and ``results/nlu/cross-validation``, and prints intent macro-F1, per-intent
F1 and the entity F1 of the identifier extractor (order_id, tracking_number, phone) and the spaCy
product matcher. The held-out file is normalised first exactly as the pipeline normalises
messages, so gold entity spans line up with the tokens the model sees.
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
    """Intent macro-F1, per-intent F1 and key entity F1 from Rasa's report files in ``out_dir``."""
    intents = _read(out_dir / "intent_report.json")
    per_intent = {
        name: round(values["f1-score"], 3)
        for name, values in intents.items()
        if isinstance(values, dict) and "f1-score" in values and name not in ("macro avg", "weighted avg", "micro avg")
    }
    entities: Dict[str, Dict[str, float]] = {}
    for report_file in sorted(out_dir.glob("*Extractor_report.json")) + sorted(out_dir.glob("DIETClassifier_report.json")):
        report = _read(report_file)
        extractor = report_file.name.removesuffix("_report.json")
        for label, values in report.items():
            if isinstance(values, dict) and "f1-score" in values and values.get("support", 0) and "avg" not in label:
                entities.setdefault(extractor, {})[label] = round(values["f1-score"], 3)
    return {
        "intent_macro_f1": round(intents.get("macro avg", {}).get("f1-score", 0.0), 4),
        "intent_accuracy": round(intents.get("accuracy", 0.0), 4),
        "per_intent_f1": per_intent,
        "entity_f1": entities,
    }


def print_summary(title: str, summary: Dict[str, Any]) -> None:
    """Print one evaluation's figures."""
    print(f"\n== {title} ==")
    print(f"intent macro-F1 {summary['intent_macro_f1']:.4f}   accuracy {summary['intent_accuracy']:.4f}")
    worst = sorted(summary["per_intent_f1"].items(), key=lambda item: item[1])
    for name, f1 in worst:
        print(f"  {f1:.3f}  {name}")
    for extractor, labels in summary["entity_f1"].items():
        shown = {label: f1 for label, f1 in labels.items() if extractor != "DIETClassifier" or label not in KEY_ENTITIES}
        if shown:
            print(f"  entities by {extractor}: " + ", ".join(f"{label} {f1:.3f}" for label, f1 in sorted(shown.items())))


def main(argv: Optional[List[str]] = None) -> int:
    """Run the held-out evaluation and, unless skipped, the cross-validation."""
    parser = argparse.ArgumentParser(prog="python -m bot.evaluation", description=__doc__)
    parser.add_argument("--folds", type=int, default=3, help="cross-validation folds (0 skips it)")
    args = parser.parse_args(argv)
    model = train_if_needed()
    heldout_dir = RESULTS / "heldout"
    normalized = normalized_copy(HELDOUT, RESULTS / "heldout.normalized.yml")
    _rasa("test", "nlu", "--model", str(model), "--nlu", str(normalized), "--out", str(heldout_dir))
    results = {"heldout": summarize(heldout_dir)}
    if args.folds:
        cv_dir = RESULTS / "cross-validation"
        _rasa("test", "nlu", "--nlu", "data", "--config", "config.yml", "--cross-validation",
              "--folds", str(args.folds), "--out", str(cv_dir))
        results["cross_validation"] = summarize(cv_dir)
    for title, summary in results.items():
        print_summary(title, summary)
    (RESULTS / "summary.json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nReports and confusion matrices: {RESULTS.relative_to(PROJECT_ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
