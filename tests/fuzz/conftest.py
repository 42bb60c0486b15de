"""The fuzz suite's report (cases tried per property, printed at the end of every run), and the
golden payloads' helpers (tests/adapters) on the import path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ADAPTER_TESTS = Path(__file__).resolve().parents[1] / "adapters"
if str(ADAPTER_TESTS) not in sys.path:
    sys.path.insert(0, str(ADAPTER_TESTS))

from fuzz_budget import CASES, CI_MINIMUM_CASES, CI_SIZES, SCALE, examples  # noqa: E402


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not CASES:
        return
    terminalreporter.section(f"fuzz cases (FUZZ_SCALE={SCALE:g})")
    for name in CI_SIZES:
        if name in CASES:
            terminalreporter.write_line(f"{name}: {CASES[name]} cases (max_examples {examples(name)})")
    total = sum(CASES.values())
    terminalreporter.write_line(f"total: {total} cases (CI budget: at least {CI_MINIMUM_CASES} at FUZZ_SCALE=1)")
