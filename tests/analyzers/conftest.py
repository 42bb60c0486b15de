"""Cheaper critical values for every column monitor built in these tests.

Simulated critical values take 20,000 multinomial windows per (column, window size) by default;
2,000 keep each test's thresholds well above the practical ones where they must be, in a tenth
of the time. The exact values are tested in tests/drift.
"""

from __future__ import annotations

from functools import partial
from typing import Iterator

import pytest

from exporter.analyzers import columns
from exporter.drift.thresholds import CriticalValues


@pytest.fixture(autouse=True, scope="module")  # undone after each module: no leak into other tests
def _fewer_simulations() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(columns, "CriticalValues", partial(CriticalValues, simulations=2000))
        yield
