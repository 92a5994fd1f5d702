"""Fuzz campaign: the channels and the normaliser under hypothesis, the CRM's and the desk's HTTP APIs
under schemathesis, with the figures of what was tried and what came back.

Usage::

    make fuzz
    PYTHONPATH=. .venv/bin/python -m bench.fuzz [--examples N] [--max-seconds S] [--api-examples N]
        [--only channels|api] [--seed N]

1. Channel and text fuzzers (the strategies and checks of ``tests/fuzz``, hypothesis profile
   ``campaign``): the app channel (webhook conversations, reading pushed messages, any method and
   path) and the web channel (socket.io sessions with junk events and raw packets) on real Sanic
   servers over a redis-server of the campaign's own, a stub in place of Rasa; the normaliser and the
   identifier patterns, and the NLU components, on any text. Each fuzzer runs ``--examples``
   (``FUZZ_EXAMPLES``, default 1000) times its share of examples, or until ``--max-seconds``
   (``FUZZ_MAX_S``, default 900) are spent. Nothing stops at a problem: every broken promise is
   counted (5xx, exceptions logged by the server or raised, hangs, answers without a known error
   code) and every accepted message is looked for where it belongs: the bot's calls (Rasa's place)
   or the handoff's transcript, exactly once, its reply back at the client.
2. API fuzzers: the CRM (a freshly seeded SQLite database) and the desk (over the campaign's Redis,
   the shipped agents, a policy open around the clock) started as ``make run`` starts them, and the
   installed schemathesis CLI against each ``GET /openapi.json`` (every phase; its default examples
   per operation unless ``--api-examples``), with the CRM's ``X-API-Key`` and a supervisor's bearer
   token at the desk (``POST /api/logout`` alone in a run of its own, since it ends that session).
   Checks: ``not_a_server_error``, ``status_code_conformance``, ``content_type_conformance``,
   ``response_schema_conformance``; the requests sent and their statuses are read from the HAR report.

Prints a table per target (inputs tried, answers by status class, 5xx, exceptions, hangs, messages
accepted and delivered, lost, duplicated) and writes ``results/fuzz-<time>.json``; schemathesis'
reports are under ``var/bench/fuzz/reports``. Exit status 1 when anything broke a promise. Loopback
only; about half an hour with the defaults on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
import urllib.request
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple

from hypothesis import given
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from bench.handoff import bench_policy
from bot import launcher
from bot.redis_server import RedisServer, free_port
from bot.settings import PROJECT_ROOT, Settings, load_settings
from tests.fuzz.channels import AppChannelUnderFuzz, Tally, conversations, fetches, other_requests
from tests.fuzz.nlu import component_problems, nlu_problems
from tests.fuzz.profiles import CAMPAIGN_PROFILE, campaign_examples, fuzz_settings
from tests.fuzz.strategies import shopper_texts
from tests.fuzz.web import WebChannelUnderFuzz, sessions

VAR_DIR = PROJECT_ROOT / "var" / "bench" / "fuzz"
RESULTS_DIR = PROJECT_ROOT / "results"
MAX_S_ENV = "FUZZ_MAX_S"
DEFAULT_MAX_S = 900.0
API_CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance")
SCHEMATHESIS_TIMEOUT_S = 3600.0
SEED_CUSTOMERS = 100
"""Customers of the CRM's database under fuzz (its demo customers among them)."""
DESK_USER = ("supervisor", "supervisor-pass")
"""The shipped demo supervisor: every desk route is open to it."""


class TimeUp(Exception):
    """Raised inside a fuzzer's property once its time is spent (ends hypothesis' run, not a failure)."""


@dataclass(frozen=True)
class Fuzzer:
    """One hypothesis fuzzer of the campaign.

    Attributes:
        name: the target as the table names it.
        under: what it runs against: ``app``, ``web`` or ``text`` (a pure function).
        strategy: the inputs.
        check: sends one input and counts what it saw (returns the broken promises).
        share: its part of the examples (as in ``tests/fuzz``; a web session is slow).
    """

    name: str
    under: str
    strategy: Callable[[], st.SearchStrategy[Any]]
    check: Callable[[Any, Any], List[str]]
    share: float


class TextUnderFuzz:
    """A pure text function under fuzz: counts the texts, the exceptions raised and broken promises.

    Args:
        function: returns the broken promises for one text (raising counts as an exception).
        tally: where it counts.
    """

    def __init__(self, function: Callable[[str], List[str]], tally: Tally) -> None:
        self.function = function
        self.tally = tally

    def check(self, text: str) -> List[str]:
        """Run the function on ``text`` and count what it did."""
        self.tally.inputs += 1
        try:
            found = self.function(text)
        except Exception as error:  # every exception of the product code is a finding
            return [self.tally.record("exceptions", f"{type(error).__name__}: {error}", text)]
        return [self.tally.record("other", problem, text) for problem in found]


FUZZERS: Tuple[Fuzzer, ...] = (
    Fuzzer("normaliser + identifier patterns", "text", shopper_texts, lambda under, text: under.check(text), 4),
    Fuzzer("NLU components (spans)", "text", lambda: shopper_texts(max_chars=400), lambda under, text: under.check(text), 4),
    Fuzzer("app channel: webhook conversations", "app", conversations, lambda under, steps: under.conversation(steps), 2),
    Fuzzer("app channel: GET messages", "app", fetches, lambda under, fetch: under.fetch(*fetch), 2),
    Fuzzer("app channel: any method and path", "app", other_requests, lambda under, request: under.other_request(*request), 1),
    Fuzzer("web channel: socket.io sessions", "web", sessions, lambda under, steps: under.session(steps), 0.4),
)
TEXT_FUNCTIONS = {FUZZERS[0].name: nlu_problems, FUZZERS[1].name: component_problems}


def run_fuzzer(fuzzer: Fuzzer, under: Any, examples: int, max_s: float, seed: Optional[int]) -> Dict[str, Any]:
    """Run one fuzzer for its share of ``examples`` or ``max_s`` seconds; its tally is ``under.tally``.

    Returns:
        How many examples ran, for how long, and whether the time ran out first.
    """
    deadline = time.monotonic() + max_s
    ran = 0

    @fuzz_settings(fuzzer.share, CAMPAIGN_PROFILE, examples)
    @given(fuzzer.strategy())
    def fuzz(example: Any) -> None:
        nonlocal ran
        if time.monotonic() > deadline:
            raise TimeUp
        ran += 1
        try:
            fuzzer.check(under, example)
        except Exception as error:  # the harness's own failure: counted and shown, the campaign goes on
            under.tally.record("other", f"harness error {type(error).__name__}: {error}", example)

    if seed is not None:
        fuzz = hypothesis_seed(seed)(fuzz)
    started = time.monotonic()
    timed_out = False
    try:
        fuzz()
    except TimeUp:
        timed_out = True
    return {"examples": ran, "seconds": round(time.monotonic() - started, 1), "time_ran_out": timed_out}


def tally_figures(tally: Tally, run: Dict[str, Any]) -> Dict[str, Any]:
    """A tally as the table and the results file show it."""
    classes: Counter = Counter()
    events: Counter = Counter()
    for status, count in tally.statuses.items():
        if isinstance(status, int):
            classes[f"{status // 100}xx" if status >= 100 else ("no answer" if status == 0 else "closed by the framework")] += count
        else:
            events[str(status)] += count
    return {
        "target": tally.target, **run, "inputs": tally.inputs, "responses": dict(sorted(classes.items())), "events": dict(events),
        "statuses": {str(key): value for key, value in sorted(tally.statuses.items(), key=str)},
        "server_errors": tally.server_errors, "exceptions": tally.exceptions, "hangs": tally.hangs, "accepted": tally.accepted,
        "delivered": tally.delivered, "lost": tally.lost, "duplicated": tally.duplicated, "framework": tally.framework,
        "other": tally.other, "examples_of_problems": tally.examples,
    }


def served(kind: str, redis_url: str) -> ContextManager[Any]:
    """The channel a kind of fuzzer runs against, served while its fuzzers run (each channel's error log
    then holds its own server's records only); nothing for the text fuzzers."""
    if kind == "app":
        return AppChannelUnderFuzz(redis_url)
    if kind == "web":
        return WebChannelUnderFuzz(redis_url)
    return contextlib.nullcontext()


def run_channel_fuzzers(redis_url: str, examples: int, max_s: float, seed: Optional[int]) -> List[Dict[str, Any]]:
    """Every hypothesis fuzzer, each with a tally of its own."""
    figures = []
    for kind in ("text", "app", "web"):
        with served(kind, redis_url) as channel:
            for fuzzer in (fuzzer for fuzzer in FUZZERS if fuzzer.under == kind):
                tally = Tally(fuzzer.name)
                under: Any
                if kind == "text":
                    under = TextUnderFuzz(TEXT_FUNCTIONS[fuzzer.name], tally)
                else:
                    under = channel
                    under.tally = tally
                progress(f"{fuzzer.name}: up to {max(1, round(examples * fuzzer.share))} examples or {max_s:.0f} s ...")
                run = run_fuzzer(fuzzer, under, examples, max_s, seed)
                if kind != "text":
                    for record in under.errors.take():  # logged after the fuzzer's last answer: still its own
                        tally.record("exceptions", f"logged after the run: {record}", None)
                figures.append(tally_figures(tally, run))
                progress(f"  {tally.inputs} inputs in {run['seconds']} s; problems: {problem_count(figures[-1])}")
    return figures


# -- the HTTP APIs under schemathesis ------------------------------------------------------------


def http_json(method: str, url: str, body: Any) -> Any:
    """One JSON request; the decoded answer (raises on an HTTP error)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def schemathesis_bin() -> str:
    """The schemathesis CLI of this interpreter's environment."""
    found = Path(sys.executable).parent / "schemathesis"
    return str(found) if found.exists() else "schemathesis"


def run_schemathesis(name: str, base_url: str, header: str, report_dir: Path, extra: Sequence[str], api_examples: Optional[int],
                     seed: Optional[int]) -> Dict[str, Any]:
    """``schemathesis run <base_url>/openapi.json`` with the campaign's checks; the figures of its reports."""
    shutil.rmtree(report_dir, ignore_errors=True)
    command = [schemathesis_bin(), "run", f"{base_url}/openapi.json", "--checks", ",".join(API_CHECKS), "--workers", "1", "--no-color",
               "--report", "json,har", "--report-dir", str(report_dir), "--report-json-path", str(report_dir / "run.json"),
               "--report-har-path", str(report_dir / "requests.har"), "-H", header, *extra]
    if api_examples:
        command += ["--max-examples", str(api_examples)]
    if seed is not None:
        command += ["--seed", str(seed)]
    progress(f"{name}: schemathesis against {base_url}/openapi.json ...")
    started = time.monotonic()
    log_path = report_dir.with_suffix(".log")
    report_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        completed = subprocess.run(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=SCHEMATHESIS_TIMEOUT_S,
                                   check=False)
    figures = schemathesis_figures(name, report_dir)
    figures.update(seconds=round(time.monotonic() - started, 1), exit_code=completed.returncode,
                   output=str(log_path.relative_to(PROJECT_ROOT)))
    progress(f"  {figures['inputs']} requests in {figures['seconds']} s; 5xx: {figures['server_errors']}; "
             f"failed checks: {len(figures['failures'])}")
    return figures


def schemathesis_figures(name: str, report_dir: Path) -> Dict[str, Any]:
    """What one schemathesis run sent (its HAR report) and found (its JSON report)."""
    statuses: Counter = Counter()
    har = report_dir / "requests.har"
    if har.exists():
        for entry in json.loads(har.read_text(encoding="utf-8"))["log"]["entries"]:
            statuses[int(entry["response"]["status"])] += 1
    report = json.loads((report_dir / "run.json").read_text(encoding="utf-8")) if (report_dir / "run.json").exists() else {}
    cases = report.get("test_cases", {})
    classes: Counter = Counter()
    for status, count in statuses.items():
        classes[f"{status // 100}xx" if status >= 100 else "no answer"] += count
    failures = [{key: failure.get(key) for key in ("operation", "title", "check", "status_code", "message") if key in failure}
                for failure in report.get("failures", [])]
    return {
        "target": name, "inputs": sum(statuses.values()), "responses": dict(sorted(classes.items())),
        "statuses": {str(key): value for key, value in sorted(statuses.items())}, "server_errors": classes.get("5xx", 0),
        "generated": cases.get("generated", 0), "errored": cases.get("errored", 0), "failures": failures,
        "errors": report.get("errors", []), "warnings": {key: value for key, value in report.get("warnings", {}).items() if value},
        "complete": report.get("complete", False),
    }


def start_api_services(settings: Settings, stack: launcher.Stack, redis_url: str) -> Dict[str, str]:
    """The CRM (seeded SQLite) and the desk, as ``make run`` starts them; their URLs."""
    env = launcher.base_env(settings, redis_url)
    py = launcher.python_bin()
    subprocess.run([py, "-m", "crm", "seed", "--customers", str(SEED_CUSTOMERS)], cwd=PROJECT_ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    crm_url = f"http://127.0.0.1:{settings.crm_port}"
    desk_url = f"http://127.0.0.1:{settings.desk_port}"
    stack.start_child(launcher.Child("crm", [py, "-m", "crm", "serve", "--host", "127.0.0.1", "--port", str(settings.crm_port)],
                                     f"{crm_url}/health"), env, 60)
    stack.start_child(launcher.Child("desk", [py, "-m", "desk", "serve", "--host", "127.0.0.1", "--port", str(settings.desk_port)],
                                     f"{desk_url}/health"), env, 60)
    return {"crm": crm_url, "desk": desk_url}


def run_api_fuzzers(redis_url: str, api_examples: Optional[int], seed: Optional[int]) -> List[Dict[str, Any]]:
    """schemathesis against the CRM and the desk (and the desk's logout alone)."""
    settings = dataclasses.replace(load_settings({}), var_dir=VAR_DIR, redis_url=redis_url, crm_port=free_port(), desk_port=free_port(),
                                   handoff_policy_file=bench_policy(VAR_DIR / "service.yml", 10))
    stack = launcher.Stack(settings)
    reports = VAR_DIR / "reports"
    try:
        urls = start_api_services(settings, stack, redis_url)
        figures = [run_schemathesis("CRM API (schemathesis)", urls["crm"], f"X-API-Key: {settings.crm_api_key}", reports / "crm", [],
                                    api_examples, seed)]
        # both sessions first: fuzzing /api/login uses up this address's login attempts
        tokens = [http_json("POST", f"{urls['desk']}/api/login", {"username": DESK_USER[0], "password": DESK_USER[1]})["token"]
                  for _ in range(2)]
        figures.append(run_schemathesis("desk API (schemathesis)", urls["desk"], f"Authorization: Bearer {tokens[0]}", reports / "desk",
                                        ["--exclude-path", "/api/logout"], api_examples, seed))
        figures.append(run_schemathesis("desk API: logout (schemathesis)", urls["desk"], f"Authorization: Bearer {tokens[1]}",
                                        reports / "desk-logout", ["--include-path", "/api/logout"], api_examples, seed))
        return figures
    finally:
        stack.stop()


# -- the figures ---------------------------------------------------------------------------------


def problem_count(figures: Dict[str, Any]) -> int:
    """Every broken promise of one target (framework refusals and schemathesis warnings aside)."""
    counted = ("server_errors", "exceptions", "hangs", "lost", "duplicated", "other")
    return sum(int(figures.get(key, 0)) for key in counted) + len(figures.get("failures", [])) + len(figures.get("errors", []))


def render_table(targets: List[Dict[str, Any]]) -> str:
    """One row per target."""
    header = ("target", "inputs", "2xx", "4xx", "5xx", "other answers", "exceptions", "hangs", "accepted", "delivered", "lost", "dup",
              "failed checks")
    rows = []
    for t in targets:
        responses = dict(t.get("responses", {}))
        others = {key: value for key, value in responses.items() if key not in ("2xx", "4xx", "5xx")}
        other_text = ", ".join(f"{key} {value}" for key, value in others.items())
        if t.get("events"):
            other_text = ", ".join(f"{key} {value}" for key, value in sorted(t["events"].items(), key=lambda kv: -kv[1])[:4])
        channel = "accepted" in t and t["target"].startswith(("app", "web"))
        rows.append((t["target"], str(t["inputs"]), str(responses.get("2xx", "-")), str(responses.get("4xx", "-")), str(t["server_errors"]),
                     other_text or "-", str(t.get("exceptions", "-")), str(t.get("hangs", "-")),
                     str(t["accepted"]) if channel else "-", str(t["delivered"]) if channel else "-",
                     str(t.get("lost", "-")), str(t.get("duplicated", "-")), str(len(t.get("failures", [])) + int(t.get("other", 0)))))
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(widths[i]) if i in (0, 5) else cell.rjust(widths[i]) for i, cell in enumerate(cells))

    return "\n".join([line(header), "  ".join("-" * width for width in widths), *(line(row) for row in rows)])


def progress(text: str) -> None:
    """One line of progress, at once."""
    print(text, flush=True)


def quiet_servers() -> None:
    """Keep the served channels' own banners and access lines out of the campaign's output."""
    for name in ("sanic.root", "sanic.access", "sanic.error"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the campaign, print the figures and write them to results/."""
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=None, help="examples of a share of 1 (default FUZZ_EXAMPLES or 1000)")
    parser.add_argument("--max-seconds", type=float, default=float(os.environ.get(MAX_S_ENV) or DEFAULT_MAX_S),
                        help=f"most seconds per hypothesis fuzzer (default {MAX_S_ENV} or {DEFAULT_MAX_S:.0f})")
    parser.add_argument("--api-examples", type=int, default=None, help="schemathesis examples per operation (default: its own)")
    parser.add_argument("--only", choices=["channels", "api"], help="run one half of the campaign")
    parser.add_argument("--seed", type=int, default=None, help="random seed of hypothesis and schemathesis")
    args = parser.parse_args(argv)
    examples = args.examples or campaign_examples()
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the libraries' own, once per socket

    shutil.rmtree(VAR_DIR, ignore_errors=True)
    VAR_DIR.mkdir(parents=True)
    quiet_servers()
    redis = RedisServer(free_port(), VAR_DIR / "redis").start()
    started = time.time()
    targets: List[Dict[str, Any]] = []
    try:
        if args.only != "api":
            targets += run_channel_fuzzers(redis.url, examples, args.max_seconds, args.seed)
        if args.only != "channels":
            targets += run_api_fuzzers(redis.url.rsplit("/", 1)[0] + "/1", args.api_examples, args.seed)
    finally:
        redis.stop()
    problems = sum(problem_count(target) for target in targets)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
    document = {
        "command": "python -m bench.fuzz " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "seconds": round(time.time() - started),
        "examples_per_share": examples, "max_seconds_per_fuzzer": args.max_seconds, "api_examples": args.api_examples or "default",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()}, "targets": targets, "problems": problems,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"fuzz-{stamp}.json"
    out.write_text(json.dumps(document, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    print()
    print(render_table(targets))
    print(f"\n{problems} broken promises in {document['seconds']} s; figures in {out.relative_to(PROJECT_ROOT)}")
    for target in targets:
        for example in target.get("examples_of_problems", [])[:5] + [json.dumps(f, ensure_ascii=False) for f in target.get("failures", [])[:5]]:
            print(f"  {target['target']}: {example[:300]}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
