"""Fixtures of the simulator's tests: one simulator process for the module, reset before each test."""

from __future__ import annotations

import pytest

from wechat_sim.tests.helpers import SimProcess, sim_server_fixture  # noqa: F401  (the sim_server fixture)


@pytest.fixture()
def sim(sim_server: SimProcess) -> SimProcess:
    """The simulator with no tokens, shoppers or counters, WeChat's timeout and retries, in plaintext mode."""
    sim_server.call("POST", "/sim/reset")
    sim_server.configure(timeout_s=5.0, retries=3, token_ttl_s=7200, token_grace_s=300, encoding_aes_key="")
    return sim_server
