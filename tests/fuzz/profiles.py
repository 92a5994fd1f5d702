"""Hypothesis profiles of the fuzz tests: ``fuzz``, a small budget for ``make test``, and ``campaign``,
the large one of ``python -m bench.fuzz`` (``make fuzz``).

Each fuzz test takes a share of its profile's ``max_examples`` (a slow web session counts more than
a text): ``FUZZ_PROFILE=campaign`` runs the pytest versions with the campaign's budget, and
``FUZZ_EXAMPLES`` sets that budget (examples of a share of 1).
"""

from __future__ import annotations

import os
from typing import Optional

from hypothesis import HealthCheck, Phase, Verbosity, settings

PROFILE_ENV = "FUZZ_PROFILE"
"""Environment variable naming the profile the fuzz tests run with (default :data:`TEST_PROFILE`)."""

EXAMPLES_ENV = "FUZZ_EXAMPLES"
"""Environment variable with the examples of a share of 1 in the campaign profile."""

TEST_PROFILE = "fuzz"
CAMPAIGN_PROFILE = "campaign"

TEST_EXAMPLES = 50
"""Examples of a share of 1 in ``make test`` (the whole of ``tests/fuzz`` well under a minute)."""

CAMPAIGN_EXAMPLES = 1000
"""Examples of a share of 1 in the campaign unless ``FUZZ_EXAMPLES`` says otherwise."""


def campaign_examples() -> int:
    """The campaign's examples of a share of 1: ``FUZZ_EXAMPLES`` or :data:`CAMPAIGN_EXAMPLES`.

    Raises:
        ValueError: ``FUZZ_EXAMPLES`` is not a positive integer.
    """
    raw = os.environ.get(EXAMPLES_ENV, "").strip()
    examples = int(raw) if raw else CAMPAIGN_EXAMPLES
    if examples < 1:
        raise ValueError(f"{EXAMPLES_ENV} must be a positive integer, not {raw!r}")
    return examples


settings.register_profile(TEST_PROFILE, max_examples=TEST_EXAMPLES, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
settings.register_profile(CAMPAIGN_PROFILE, settings.get_profile(TEST_PROFILE), max_examples=campaign_examples(),
                          phases=(Phase.explicit, Phase.generate), verbosity=Verbosity.quiet)


def fuzz_settings(share: float = 1.0, profile: str = "", examples: Optional[int] = None) -> settings:
    """The settings of one fuzzer: the profile (``profile``, else ``FUZZ_PROFILE``, else ``fuzz``) with
    ``share`` times its examples (at least one).

    Args:
        share: the fuzzer's part of the profile's budget.
        profile: a registered profile name; empty for the one the environment names.
        examples: the examples of a share of 1, instead of the profile's.
    """
    base = settings.get_profile(profile or os.environ.get(PROFILE_ENV, "") or TEST_PROFILE)
    return settings(base, max_examples=max(1, round((examples or base.max_examples) * share)))
