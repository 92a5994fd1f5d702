"""``python -m bench.cpu`` divides each process's CPU time over the measured turns."""

from __future__ import annotations

import pytest

from bench.cpu import per_turn_ms
from bench.systems import MACHINE_BUSY


def test_cpu_per_turn_is_the_difference_over_the_turns() -> None:
    before = {"rasa": 10.0, "crm": 1.0, MACHINE_BUSY: 100.0}
    after = {"rasa": 12.0, "crm": 1.5, "redis": 0.2, MACHINE_BUSY: 110.0}
    shares = per_turn_ms(before, after, 100)
    assert shares == pytest.approx({"rasa": 20.0, "crm": 5.0, "redis": 2.0})


def test_no_turns_no_figures() -> None:
    assert per_turn_ms({"rasa": 1.0}, {"rasa": 2.0}, 0) == {}
