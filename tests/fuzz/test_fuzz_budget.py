"""The fuzz budget itself: a CI run tries at least the issue's number of cases."""

from __future__ import annotations

from fuzz_budget import CI_MINIMUM_CASES, CI_SIZES


def test_ci_budget_is_at_least_the_minimum() -> None:
    assert sum(CI_SIZES.values()) >= CI_MINIMUM_CASES
