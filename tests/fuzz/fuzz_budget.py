"""How many cases each fuzz property runs, and how many it did.

`CI_SIZES` is the one table of budgets: cases per property in a CI run (`make test`), which
`FUZZ_SCALE` multiplies (`make fuzz`, the nightly run, sets 20). Counts are kept per property
and printed by conftest's terminal summary, so a run says how much it tried, not only that it
passed.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

from hypothesis import HealthCheck, Phase, settings

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
# FUZZ_SHRINK=0 reports the first failing case as found, without minimising it (when a case
# costs a round trip through the sidecar, shrinking can take minutes)
SHRINK = os.environ.get("FUZZ_SHRINK", "1") != "0"
CI_MINIMUM_CASES = 10_000  # the budget for one CI run, all properties together

CI_SIZES = {
    # payloads (tests/fuzz/test_fuzz_adapters.py): about half a millisecond a case
    "adapters_random_bytes": 1000,
    "adapters_random_json": 1500,
    "adapters_mutated_golden": 2500,
    "adapters_byte_mutated_golden": 1500,
    "adapters_v2_binary": 800,
    "extractor_events": 1500,
    # raw HTTP through a running sidecar (tests/fuzz/test_fuzz_proxy.py): a few milliseconds a case
    "proxy_exchange": 1000,
    "proxy_pipelined": 400,
    "proxy_malformed": 500,
    "proxy_mutated": 600,
    # LLM streams through a running sidecar (tests/fuzz/test_fuzz_llm_streams.py)
    "llm_streams": 300,
}

CASES: Counter[str] = Counter()  # property name -> cases that ran to their end


def examples(name: str) -> int:
    """A property's max_examples: its CI size times FUZZ_SCALE."""
    return max(1, round(CI_SIZES[name] * SCALE))


def fuzz_settings(name: str) -> settings:
    """Fresh randomness every run (no example database to replay), no per-example deadline:
    a case's time is the machine's, not a property of the code under test. too_slow is the
    one health check off: a case that crosses two processes is slow by nature."""
    phases = [p for p in Phase if p is not Phase.explain and (SHRINK or p is not Phase.shrink)]
    return settings(max_examples=examples(name), database=None, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow], phases=phases)


def count(name: str) -> None:
    """One more case of `name` ran to its end."""
    CASES[name] += 1


def run_property(name: str, prop: Callable[[], None]) -> None:
    """Run a @given property and check it really tried the cases it was given."""
    planned = examples(name)
    before = CASES[name]
    prop()
    ran = CASES[name] - before
    assert ran >= planned, f"{name}: only {ran} of {planned} cases ran"
