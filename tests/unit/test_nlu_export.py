"""``make review-export``: labelled inbox messages become valid, de-duplicated, masked Rasa training data,
and nothing the training-data checks would refuse (held-out copies, dev-set copies, conflicts)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from rasa.shared.nlu.training_data.loading import load_data

from bot.nlu_export import Candidate, export, select, training_checks
from bot.settings import PROJECT_ROOT
from tests.support.desk import POLICY_FILE
from tests.support.handoff import run
from tests.support.nlu_inbox import seed_inbox

TRAINING = """version: "3.1"
nlu:
- intent: track_order
  examples: |
    - 我的快递到哪了
    - 帮我看看包裹现在走到哪里了
- intent: greet
  examples: |
    - 你好
"""


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "nlu"
    folder.mkdir()
    (folder / "orders.yml").write_text(TRAINING, encoding="utf-8")
    return folder


def item(text: str, label: str, at: float = 1.0) -> Dict[str, Any]:
    return {"id": f"{int(at):020d}", "text": text, "label": label, "labelled_at": at}


def examples(path: Path) -> Dict[str, List[str]]:
    logging.getLogger("rasa").setLevel(logging.ERROR)
    found: Dict[str, List[str]] = {}
    for message in load_data(str(path), language="zh").nlu_examples:
        label = message.get("intent_response_key") or message.get("intent")
        found.setdefault(label, []).append(message.get("text"))
    return found


def test_labelled_messages_become_rasa_training_data(data_dir: Path) -> None:
    out = data_dir / "reviewed.yml"
    result = export([item("京享值怎么查看", "membership_tier", 1), item("发票抬头开错了咋改", "faq/invoice", 2),
                     item("京豆能抵多少钱，我手机13812345678", "points_balance", 3)], out)
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["version"] == "3.1"
    assert examples(out) == {"faq/invoice": ["发票抬头开错了咋改"], "membership_tier": ["京享值怎么查看"],
                             "points_balance": ["京豆能抵多少钱，我手机138****5678"]}
    assert "13812345678" not in out.read_text(encoding="utf-8")
    assert (len(result.written), result.new) == (3, 3)


def test_export_is_idempotent_keeps_earlier_examples_and_a_later_label_wins(data_dir: Path) -> None:
    out = data_dir / "reviewed.yml"
    export([item("京享值怎么查看", "out_of_scope", 1), item("自提点在哪里", "faq/delivery_time", 2)], out)
    first = out.read_bytes()
    assert export([item("京享值怎么查看", "out_of_scope", 1), item("自提点在哪里", "faq/delivery_time", 2)], out).new == 0
    assert out.read_bytes() == first
    export([], out)  # the inbox items expired: the examples stay
    assert out.read_bytes() == first
    export([item("京享值 怎么查看？", "membership_tier", 3)], out)  # relabelled (the same words)
    assert examples(out) == {"faq/delivery_time": ["自提点在哪里"], "membership_tier": ["京享值 怎么查看？"]}


def test_duplicates_are_written_once(data_dir: Path) -> None:
    out = data_dir / "reviewed.yml"
    result = export([item("京享值怎么查看", "membership_tier", 1), item("京享值怎么查看！", "membership_tier", 2),
                     item("京享值怎么查看", "membership_tier", 3)], out)
    assert examples(out) == {"membership_tier": ["京享值怎么查看"]} and result.new == 1


def test_what_the_training_data_checks_would_refuse_is_left_out(data_dir: Path) -> None:
    held_out = str(load_data(str(PROJECT_ROOT / "tests" / "nlu" / "heldout.yml"), language="zh").nlu_examples[0].get("text"))
    out = data_dir / "reviewed.yml"
    result = export([
        item("我的快递到哪了？", "track_order", 1),             # already a training example of that intent
        item("你好", "track_order", 2),                        # a training example of another intent
        item(held_out, "greet", 3),                            # a held-out test message
        item("帮我看看包裹现在走到哪里了呀", "track_order", 4),  # nearly copies a training example of its intent
        item("[耳机](product)到哪了", "track_order", 5),        # entity markup
        item("？！…", "track_order", 6),                       # no words
        item("京享值怎么查看", "no_such_intent", 7),
        item("白条分期的订单能退吗", "return_request", 8),      # fine
    ], out)
    refused = {candidate.text: reason for candidate, reason in result.refused}
    assert refused == {"我的快递到哪了？": "known", "你好": "conflict", held_out: "held_out", "帮我看看包裹现在走到哪里了呀": "near_copy",
                       "[耳机](product)到哪了": "annotation", "？！…": "no_words", "京享值怎么查看": "unknown_intent"}
    assert examples(out) == {"return_request": ["白条分期的订单能退吗"]}


def test_near_copies_of_dev_set_messages_are_refused() -> None:
    checks = training_checks()
    if not hasattr(checks, "dev_set_copies"):
        pytest.skip("the training-data checks have no dev-set rule")
    dev = ["请问我的包裹今天能送到吗"]  # made up here, not a dev-set row
    candidates = [Candidate("請問我的包裹今天能送到嗎？", "track_order", "inbox"), Candidate("请问我的包裹今天能送到吗亲", "track_order", "inbox"),
                  Candidate("包裹到哪了", "track_order", "inbox")]
    result = select(candidates, ["track_order"], [], [], dev, checks)
    assert [c.text for c in result.written] == ["包裹到哪了"]
    assert {reason for _, reason in result.refused} == {"dev_set"}


def test_nothing_labelled_writes_no_file_and_a_file_emptied_stays_valid(data_dir: Path) -> None:
    out = data_dir / "reviewed.yml"
    assert export([], out).written == [] and not out.exists()
    export([item("你好", "greet", 1)], out)  # refused: already a training example
    assert not out.exists()
    out.write_text('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - 你好\n', encoding="utf-8")
    export([], out)  # its one example is now a training example elsewhere
    assert yaml.safe_load(out.read_text(encoding="utf-8")) == {"version": "3.1", "nlu": []}
    assert examples(out) == {}


def test_the_command_reads_the_labels_from_redis(redis_url: str, data_dir: Path) -> None:
    first, second = seed_inbox(redis_url, POLICY_FILE, [("京享值怎么查看", "out_of_scope", 0.99, ("correction",)),
                                                        ("优惠券用不了", "nlu_fallback", 0.45, ("fallback",))])

    async def label(ctx) -> str:
        from bot.nlu_inbox import label_item

        return await label_item(ctx.redis, first, "membership_tier", "supervisor")

    assert run(redis_url, POLICY_FILE, label) == "labelled"
    out = data_dir / "reviewed.yml"
    command = [sys.executable, "-m", "bot.nlu_export", "--out", str(out), "--redis-url", redis_url]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 labelled in the inbox; 1 examples in" in done.stdout and "(1 from the inbox)" in done.stdout
    assert examples(out) == {"membership_tier": ["京享值怎么查看"]}
    unreachable = subprocess.run([*command[:-1], "redis://127.0.0.1:1/0"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                                 timeout=300)
    assert unreachable.returncode == 1 and "cannot read the NLU inbox" in unreachable.stderr
