"""Baseline columns shared by the drift tests: built by the real builder from seeded data."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.baseline import Baseline
from exporter.baseline.build import BuildOptions, build_baseline
from exporter.baseline.readers import Chunk

TRAIN_ROWS = 50_000
CATEGORY_PROBS = {"a": 0.3, "b": 0.2, "c": 0.15, "d": 0.1, "e": 0.08, "f": 0.07, "g": 0.06, "h": 0.04}


@pytest.fixture(scope="session")
def category_probs() -> dict[str, float]:
    return dict(CATEGORY_PROBS)


@pytest.fixture(scope="session")
def baseline() -> Baseline:
    rng = np.random.default_rng(2024)
    columns = {
        "x": rng.normal(10.0, 2.0, size=TRAIN_ROWS),
        "c": rng.choice(list(CATEGORY_PROBS), size=TRAIN_ROWS, p=list(CATEGORY_PROBS.values())).tolist(),
    }
    return build_baseline(lambda: iter([Chunk(columns, TRAIN_ROWS)]), BuildOptions(), files=["synthetic"],
                          created="2024-01-01T00:00:00Z").baseline
