"""The printed table, the targets and the JSON file of a bench run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from bench.systems import OTHERS
from bot.settings import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "results"
BUSY_MACHINE_CORES = 0.25
THROUGHPUT_FACTOR = 3.0
ACTION_P95_MS = 30.0
CPU_PER_REQUEST_MS = 15.0
"""Target: CPU milliseconds per request over all of our stack's processes (the load generator and
other processes not counted), at the bench's concurrency."""

LOAD_GENERATOR = "bench (load generator)"

COLUMNS = ("system", "concurrency", "requests/s", "replies/s", "p50 ms", "p95 ms", "p99 ms", "errors")


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table_rows(results: Dict[str, Any]) -> List[Tuple[str, ...]]:
    """One row per measured series, in the order they matter."""
    rows: List[Tuple[str, ...]] = []
    series = [
        ("stock", "all", "stock rasa init (REST)"),
        ("ours", "all", "ours (app channel, full stack)"),
        ("ours", "action_turns", "  ours: action turns of that run"),
        ("ours_single", "action_turns", "ours: action turns, 1 shopper"),
        ("ours_stock_rasa", "all", "ours, RASA_SPEEDUPS=0 (stock Rasa)"),
        ("ours_stock_rasa", "action_turns", "  ours, RASA_SPEEDUPS=0: action turns"),
        ("ours_stock_rasa_single", "action_turns", "ours, RASA_SPEEDUPS=0: action turns, 1 shopper"),
        ("fleet", "all", "fleet: 2 Rasa x 1 worker, HAProxy"),
        ("fleet", "action_turns", "  fleet: action turns of that run"),
    ]
    for system, key, label in series:
        run = results.get(system)
        if not run or key not in run.get("summary", {}):
            continue
        s = run["summary"][key]
        rows.append((label, str(run["concurrency"]), _fmt(s["requests_per_s"]), _fmt(s["replies_per_s"]),
                     _fmt(s["p50_ms"]), _fmt(s["p95_ms"]), _fmt(s["p99_ms"]), str(s["errors"])))
    return rows


def render_table(rows: List[Tuple[str, ...]]) -> str:
    widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) if rows else len(COLUMNS[i]) for i in range(len(COLUMNS))]
    def line(cells: Tuple[str, ...]) -> str:
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))
    out = [line(COLUMNS), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def evaluate_targets(results: Dict[str, Any], stock_reference: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Ratios to the stock bot and the three targets, each MET, NOT MET or NOT MEASURED."""
    targets: Dict[str, Any] = {}
    ours = results.get("ours", {}).get("summary", {}).get("all")
    stock = stock_reference["summary"]["all"] if stock_reference else None
    if ours and stock and stock["replies_per_s"] > 0:
        ratio = ours["replies_per_s"] / stock["replies_per_s"]
        targets["replies_ratio"] = round(ratio, 2)
        stock_requests = stock["requests_per_s"]
        targets["requests_ratio"] = round(ours["requests_per_s"] / stock_requests, 2) if stock_requests else None
        targets["throughput"] = {
            "target": f"replies/s >= {THROUGHPUT_FACTOR:g}x stock",
            "required_replies_per_s": round(THROUGHPUT_FACTOR * stock["replies_per_s"], 2),
            "measured_replies_per_s": ours["replies_per_s"],
            "status": "MET" if ratio >= THROUGHPUT_FACTOR else "NOT MET",
            "stock_source": (stock_reference or {}).get("source", "this run"),
        }
    else:
        targets["throughput"] = {"target": f"replies/s >= {THROUGHPUT_FACTOR:g}x stock", "status": "NOT MEASURED"}
    single = results.get("ours_single", {}).get("summary", {}).get("action_turns")
    if single and single["p95_ms"] is not None:
        targets["action_latency"] = {
            "target": f"action-turn p95 <= {ACTION_P95_MS:g} ms, one shopper",
            "measured_p95_ms": single["p95_ms"],
            "status": "MET" if single["p95_ms"] <= ACTION_P95_MS else "NOT MET",
        }
    else:
        targets["action_latency"] = {"target": f"action-turn p95 <= {ACTION_P95_MS:g} ms, one shopper",
                                     "status": "NOT MEASURED"}
    cpu = stack_cpu_per_request_ms(results.get("ours"))
    cpu_target = f"CPU per request, all our processes <= {CPU_PER_REQUEST_MS:g} ms"
    if cpu is None:
        targets["cpu_per_request"] = {"target": cpu_target, "status": "NOT MEASURED"}
    else:
        targets["cpu_per_request"] = {"target": cpu_target, "measured_ms": round(cpu, 2),
                                      "status": "MET" if cpu <= CPU_PER_REQUEST_MS else "NOT MET"}
    return targets


def stack_cpu_per_request_ms(run: Optional[Dict[str, Any]]) -> Optional[float]:
    """CPU ms per successful request summed over the stack's processes (not the load generator, not others)."""
    if not run or not run.get("cpu_cores"):
        return None
    requests_per_s = run.get("summary", {}).get("all", {}).get("requests_per_s")
    if not requests_per_s:
        return None
    cores = sum(value for name, value in run["cpu_cores"].items() if name not in (OTHERS, LOAD_GENERATOR))
    return 1000 * cores / requests_per_s


def render_targets(targets: Dict[str, Any]) -> str:
    lines = []
    if "replies_ratio" in targets:
        source = targets["throughput"]["stock_source"]
        suffix = "" if source == "this run" else f"  (stock figures from {source})"
        lines.append(f"ours / stock: replies/s {targets['replies_ratio']:.2f}x, "
                     f"requests/s {_fmt(targets['requests_ratio'], 2)}x{suffix}")
    t = targets["throughput"]
    if t["status"] == "NOT MEASURED":
        lines.append(f"target {t['target']}: NOT MEASURED (no stock figures)")
    else:
        lines.append(f"target {t['target']} (>= {t['required_replies_per_s']:.1f}): "
                     f"{t['measured_replies_per_s']:.1f} -> {t['status']}")
    a = targets["action_latency"]
    if a["status"] == "NOT MEASURED":
        lines.append(f"target {a['target']}: NOT MEASURED")
    else:
        lines.append(f"target {a['target']}: {a['measured_p95_ms']:.1f} ms -> {a['status']}")
    c = targets.get("cpu_per_request")
    if c is not None:
        measured = "NOT MEASURED" if c["status"] == "NOT MEASURED" else f"{c['measured_ms']:.1f} ms -> {c['status']}"
        lines.append(f"target {c['target']}: {measured}")
    return "\n".join(lines)


def render_details(results: Dict[str, Any]) -> str:
    """Errors, sanity checks and CPU use of each run."""
    lines: List[str] = []
    for name, run in results.items():
        if not isinstance(run, dict) or "summary" not in run:
            continue
        everything = run["summary"]["all"]
        if everything["error_kinds"]:
            kinds = ", ".join(f"{k}: {v}" for k, v in sorted(everything["error_kinds"].items()))
            lines.append(f"{name}: errors {kinds}")
        if everything.get("empty_replies"):
            lines.append(f"{name}: {everything['empty_replies']} requests answered with no message")
        check = run.get("action_check")
        if check and (check["not_tracking_reply"] or check["crm_unavailable"]):
            lines.append(f"{name}: action turns not answered from the CRM: {check['crm_unavailable']} 'CRM unavailable', "
                         f"{check['not_tracking_reply']} other replies (of {check['action_turns']})")
        if run.get("cpu_cores"):
            cpu = ", ".join(f"{k} {v:.2f}" for k, v in sorted(run["cpu_cores"].items(), key=lambda kv: -kv[1]))
            lines.append(f"{name}: CPU cores used during the window: {cpu}")
            requests_per_s = everything["requests_per_s"]
            if requests_per_s:
                per_request = ", ".join(f"{k} {v * 1000 / requests_per_s:.1f}" for k, v in
                                        sorted(run["cpu_cores"].items(), key=lambda kv: -kv[1]) if k != OTHERS and v > 0)
                lines.append(f"{name}: CPU ms per request: {per_request}")
            others = run["cpu_cores"].get(OTHERS, 0.0)
            if others >= BUSY_MACHINE_CORES:
                lines.append(f"{name}: WARNING: other processes kept {others:.2f} cores busy during the window; "
                             "its figures understate what the machine can do")
        if run.get("budget_exhausted"):
            lines.append(f"{name}: the request budget ran out before the end of the window")
    return "\n".join(lines)


def fleet_comparison(results: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The fleet's figures beside the one-instance run's (same mix, same concurrency), or None."""
    fleet, one = results.get("fleet"), results.get("ours")
    if not fleet or not one:
        return None
    mine, theirs = fleet["summary"]["all"], one["summary"]["all"]

    def ratio(key: str) -> Optional[float]:
        return round(mine[key] / theirs[key], 2) if mine.get(key) is not None and theirs.get(key) else None

    return {
        "one_instance": {"rasa_servers": 1, "rasa_workers": one.get("rasa_workers"), "action_servers": 1},
        "fleet": {"rasa_servers": fleet.get("instances"), "rasa_workers": fleet.get("rasa_workers"),
                  "action_servers": fleet.get("instances"), "balancer": "haproxy roundrobin"},
        "concurrency": fleet["concurrency"],
        "ratios": {key: ratio(key) for key in ("requests_per_s", "replies_per_s", "p50_ms", "p95_ms")},
        "errors": {"fleet": mine["errors"], "one_instance": theirs["errors"]},
        "haproxy_servers": fleet.get("haproxy_servers", {}),
    }


def render_fleet(comparison: Optional[Dict[str, Any]]) -> str:
    """The fleet beside one instance, and how HAProxy spread the requests."""
    if comparison is None:
        return ""
    one, fleet = comparison["one_instance"], comparison["fleet"]
    r = comparison["ratios"]
    lines = [f"fleet ({fleet['rasa_servers']} Rasa x {fleet['rasa_workers']} worker, {fleet['action_servers']} action servers) / "
             f"one instance (1 Rasa x {one['rasa_workers']} workers, 1 action server), {comparison['concurrency']} shoppers: "
             f"requests/s {_fmt(r['requests_per_s'], 2)}x, replies/s {_fmt(r['replies_per_s'], 2)}x, "
             f"p50 {_fmt(r['p50_ms'], 2)}x, p95 {_fmt(r['p95_ms'], 2)}x"]
    servers = comparison["haproxy_servers"]
    if servers:
        spread = ", ".join(f"{name} {s['requests']} ({s['status']})" for name, s in sorted(servers.items()))
        lines.append(f"fleet: HAProxy sent {spread} requests during the run (warm-up included)")
    return "\n".join(lines)


def latest_stock_result(concurrency: int) -> Optional[Dict[str, Any]]:
    """Stock figures at the same concurrency from the newest earlier results file, if any."""
    for path in sorted(RESULTS_DIR.glob("bench-*.json"), reverse=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        stock = data.get("results", {}).get("stock")
        if stock and stock.get("concurrency") == concurrency and stock.get("summary", {}).get("all"):
            return {**stock, "source": str(path.relative_to(PROJECT_ROOT))}
    return None


def write_json(document: Dict[str, Any], timestamp: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"bench-{timestamp}.json"
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    return path
