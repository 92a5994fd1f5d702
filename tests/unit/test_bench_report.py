"""The bench's targets from a run's figures: MET, NOT MET or NOT MEASURED, without running anything."""

from __future__ import annotations

from typing import Any, Dict, Optional

import pytest

from bench import report
from bench.systems import OTHERS


def run(requests_per_s: float, replies_per_s: float, p95_ms: Optional[float] = None, **cores: float) -> Dict[str, Any]:
    summary = {"requests_per_s": requests_per_s, "replies_per_s": replies_per_s, "p95_ms": p95_ms}
    return {"concurrency": 20, "summary": {"all": summary, "action_turns": summary},
            "cpu_cores": {name.replace("_", " "): value for name, value in cores.items()}}


def figures(ours_rps: float, stock_rps: float, single_p95: Optional[float], **cores: float) -> Dict[str, Any]:
    return {"ours": run(ours_rps, ours_rps, **cores), "stock": run(stock_rps, stock_rps),
            "ours_single": run(50.0, 50.0, p95_ms=single_p95)}


@pytest.mark.parametrize("ours_rps, stock_rps, p95, cores, expected", [
    # 200 requests/s with 2.0 cores of ours = 10 ms per request
    (200.0, 50.0, 20.0, {"rasa": 1.4, "crm": 0.3, "redis": 0.1, "action_server": 0.2}, ("MET", "MET", "MET")),
    (140.0, 50.0, 31.0, {"rasa": 1.5, "crm": 0.3, "redis": 0.1, "action_server": 0.3}, ("NOT MET", "NOT MET", "NOT MET")),
    (150.0, 50.0, 30.0, {"rasa": 2.25}, ("MET", "MET", "MET")),  # the bounds themselves: 3.0x, 30 ms, 15 ms
])
def test_each_target_from_the_figures(ours_rps: float, stock_rps: float, p95: float, cores: Dict[str, float],
                                      expected: tuple) -> None:
    results = figures(ours_rps, stock_rps, p95, **cores)
    targets = report.evaluate_targets(results, results["stock"])
    assert (targets["throughput"]["status"], targets["action_latency"]["status"],
            targets["cpu_per_request"]["status"]) == expected


def test_cpu_per_request_counts_our_processes_only() -> None:
    ours = run(100.0, 100.0, rasa=1.0, crm=0.2)
    ours["cpu_cores"][report.LOAD_GENERATOR] = 0.5
    ours["cpu_cores"][OTHERS] = 0.8
    assert report.stack_cpu_per_request_ms(ours) == pytest.approx(12.0)
    targets = report.evaluate_targets({"ours": ours}, None)
    assert targets["cpu_per_request"] == {"target": "CPU per request, all our processes <= 15 ms",
                                          "measured_ms": 12.0, "status": "MET"}
    assert "CPU per request, all our processes <= 15 ms: 12.0 ms -> MET" in report.render_targets(targets)


def test_targets_without_figures_are_not_measured() -> None:
    targets = report.evaluate_targets({}, None)
    assert {name: targets[name]["status"] for name in ("throughput", "action_latency", "cpu_per_request")} == {
        "throughput": "NOT MEASURED", "action_latency": "NOT MEASURED", "cpu_per_request": "NOT MEASURED"}
    assert report.stack_cpu_per_request_ms(run(0.0, 0.0, rasa=1.0)) is None
    rendered = report.render_targets(targets)
    assert "action-turn p95 <= 30 ms, one shopper: NOT MEASURED" in rendered
    assert "CPU per request, all our processes <= 15 ms: NOT MEASURED" in rendered


def test_the_fleet_runs_unless_asked_not_to() -> None:
    from bench.__main__ import parse_args

    assert parse_args([]).fleet is True
    assert parse_args(["--no-fleet"]).fleet is False
    assert parse_args(["--only", "ours", "--fleet"]).fleet is True
