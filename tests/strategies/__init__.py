"""The Hypothesis strategies of the property tests, and the two profiles they run under.

- ``dev`` (the default): few examples, so the property tests take seconds while you work.
- ``ci``: thorough; selected by ``HYPOTHESIS_PROFILE=ci`` or by ``CI=true`` (``.ci/run`` sets
  it, as most CI services do). ``HYPOTHESIS_PROFILE`` wins when both are set.

A property test states no example count of its own unless its examples are costly: those that
load a real database per example take :func:`database_examples` (a fifth of the profile's),
so that each profile scales every test alike. Neither profile has a deadline: the machine a
test runs on may be busy, and a slow example is not a wrong one.

The strategies live in :mod:`tests.strategies.filters` (filter trees and documents),
:mod:`tests.strategies.patch` (PATCH bodies) and :mod:`tests.strategies.stores` (stored users
and groups with their queries).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    print_blob=True,  # a failure prints the line that replays it
    suppress_health_check=[HealthCheck.too_slow],
)


def profile_name(environ: Mapping[str, str] = os.environ) -> str:
    """``HYPOTHESIS_PROFILE`` if set, else ``ci`` under ``CI=true`` (or ``1``), else ``dev``."""
    chosen = environ.get("HYPOTHESIS_PROFILE")
    if chosen:
        return chosen
    return "ci" if environ.get("CI", "").lower() in ("true", "1") else "dev"


def load_profile() -> None:
    """Load the profile :func:`profile_name` picks (tests/conftest.py calls this first)."""
    settings.load_profile(profile_name())


def database_examples() -> int:
    """The example count for a property test that loads a real database per example."""
    return max(5, settings().max_examples // 5)
