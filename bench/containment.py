"""Containment: the share of scripted shopper conversations the assistant completes without a human.

Usage::

    make containment                    # starts its own stack on free ports (fresh seeded CRM)
    PYTHONPATH=. .venv/bin/python -m bench.containment [--only tracking] [--verbose]

``bench/conversations.yml`` holds the scripts: each has a flow, a customer (a demo id from
crm/DEMO_CUSTOMERS.md, or ``anonymous``), the shopper's goal and turns. A turn either says a text
or presses the button whose title contains ``press``; ``expect`` lists texts that must all appear
in the bot's replies to that turn. A script may list ``variants``: alternative first messages,
each played as a conversation of its own. A conversation counts as contained when every
expectation holds and it never went to a human (no handoff reply, no 202 "with agent").
Printed: the share per flow and overall (target ≥ 90%), and every failure with the turn that
failed; written to results/containment-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from bench.systems import OurStack
from bot import launcher
from bot.identity import identity_token_for
from bot.settings import PROJECT_ROOT

SCRIPTS = Path(__file__).with_name("conversations.yml")
HANDOFF_MARKERS = ("正在为您转接人工客服", "已为您转接到客服", "为您预约")
TARGET = 0.9


@dataclass
class Outcome:
    """One played conversation."""

    script_id: str
    flow: str
    contained: bool
    failure: Optional[str] = None
    transcript: List[Tuple[str, str]] = field(default_factory=list)


def expand(scripts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One conversation per script variant (the first turn's text replaced)."""
    conversations = []
    for script in scripts:
        variants = script.get("variants") or [None]
        for index, variant in enumerate(variants):
            turns = [dict(turn) for turn in script["turns"]]
            if variant is not None:
                turns[0]["say"] = variant
            conversations.append({**script, "id": f"{script['id']}#{index + 1}", "turns": turns})
    return conversations


def post(url: str, body: Dict[str, Any], headers: Dict[str, str]) -> Tuple[int, Any]:
    """POST JSON; returns (status, decoded body). An anonymous conversation's token lands in ``headers``."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if response.headers.get("X-Conversation-Token"):
                headers["X-Conversation-Token"] = response.headers["X-Conversation-Token"]
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def play(conversation: Dict[str, Any], webhook: str, secret: str) -> Outcome:
    """Play one conversation through the app channel and judge it."""
    customer = conversation.get("customer", "anonymous")
    metadata = {} if customer == "anonymous" else {"identity_token": identity_token_for(secret, customer)}
    headers: Dict[str, str] = {}
    sender = f"contain-{uuid.uuid4().hex[:16]}"
    outcome = Outcome(conversation["id"], conversation["flow"], contained=False)
    buttons: List[Dict[str, str]] = []
    for number, turn in enumerate(conversation["turns"], start=1):
        if "press" in turn:
            match = next((b for b in buttons if turn["press"] in b.get("title", "")), None)
            if match is None:
                outcome.failure = f"turn {number}: no button containing {turn['press']!r} (had {[b.get('title') for b in buttons]})"
                return outcome
            text = match["payload"]
        else:
            text = turn["say"]
        status, body = post(webhook, {"sender": sender, "message": text, "metadata": metadata}, headers)
        replies = body if isinstance(body, list) else []
        reply_text = "\n".join(reply.get("text", "") or "" for reply in replies)
        outcome.transcript.append((text, reply_text))
        if status == 202 or any(marker in reply_text for marker in HANDOFF_MARKERS):
            outcome.failure = f"turn {number}: went to a human"
            return outcome
        if status != 200:
            outcome.failure = f"turn {number}: HTTP {status} {body}"
            return outcome
        missing = [expected for expected in turn.get("expect", []) if expected not in reply_text]
        if missing:
            outcome.failure = f"turn {number}: {text!r} → missing {missing} in {reply_text[:160]!r}"
            return outcome
        buttons = [button for reply in replies for button in reply.get("buttons") or []]
    outcome.contained = True
    return outcome


def report(outcomes: List[Outcome], verbose: bool) -> Dict[str, Any]:
    """Print the share per flow and overall; returns the figures."""
    flows: Dict[str, List[Outcome]] = {}
    for outcome in outcomes:
        flows.setdefault(outcome.flow, []).append(outcome)
    figures: Dict[str, Any] = {"per_flow": {}, "failures": []}
    print(f"\n{'flow':<14}{'conversations':>14}{'contained':>11}{'share':>8}")
    for flow, items in sorted(flows.items()):
        contained = sum(item.contained for item in items)
        share = contained / len(items)
        figures["per_flow"][flow] = {"conversations": len(items), "contained": contained, "share": round(share, 3)}
        print(f"{flow:<14}{len(items):>14}{contained:>11}{share:>8.0%}")
    total = sum(item.contained for item in outcomes) / max(len(outcomes), 1)
    figures["overall"] = {"conversations": len(outcomes), "share": round(total, 3), "target": TARGET,
                          "status": "MET" if total >= TARGET else "NOT MET"}
    print(f"{'overall':<14}{len(outcomes):>14}{sum(o.contained for o in outcomes):>11}{total:>8.0%}   "
          f"target ≥ {TARGET:.0%}: {figures['overall']['status']}")
    for outcome in outcomes:
        if not outcome.contained:
            figures["failures"].append({"id": outcome.script_id, "failure": outcome.failure})
            print(f"  FAIL {outcome.script_id}: {outcome.failure}")
            if verbose:
                for said, answered in outcome.transcript:
                    print(f"      您: {said}\n      助手: {answered}")
    return figures


def main(argv: Optional[List[str]] = None) -> int:
    """Start a stack, play every conversation, print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.containment", description=__doc__)
    parser.add_argument("--only", help="play only this flow")
    parser.add_argument("--verbose", action="store_true", help="print the transcript of each failure")
    args = parser.parse_args(argv)
    scripts = yaml.safe_load(SCRIPTS.read_text(encoding="utf-8"))["conversations"]
    conversations = [c for c in expand(scripts) if not args.only or c["flow"] == args.only]
    stack = OurStack(launcher.train_if_needed(), PROJECT_ROOT / "var" / "containment")
    try:
        stack.start()
        outcomes = [play(c, stack.webhook_url, stack.settings.shop_identity_secret) for c in conversations]
    finally:
        stack.stop()
    figures = report(outcomes, args.verbose)
    out = PROJECT_ROOT / "results" / f"containment-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nwritten to {out.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
