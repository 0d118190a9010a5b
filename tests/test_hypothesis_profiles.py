"""The Hypothesis profile is chosen from the environment (tests/strategies/__init__.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.strategies import database_examples, profile_name


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "dev"),
        ({"CI": "true"}, "ci"),
        ({"CI": "1"}, "ci"),
        ({"CI": "false"}, "dev"),
        ({"HYPOTHESIS_PROFILE": "ci"}, "ci"),
        ({"HYPOTHESIS_PROFILE": "dev", "CI": "true"}, "dev"),
    ],
)
def test_profile_follows_the_environment(environ: dict[str, str], expected: str) -> None:
    assert profile_name(environ) == expected


def test_the_loaded_profile_is_the_one_the_environment_names() -> None:
    loaded = settings.get_profile(profile_name(os.environ))
    assert settings().max_examples == loaded.max_examples
    assert settings.get_profile("ci").max_examples > settings.get_profile("dev").max_examples
    assert 5 <= database_examples() < settings().max_examples
