"""Values outside the training range land in the below/above bins, and every numeric drift method sees them."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.baseline import Baseline, NumericColumn, bin_numeric
from exporter.baseline.build import BuildOptions, build_baseline
from exporter.baseline.readers import Chunk
from exporter.drift import METHODS, CriticalValues, Reference, score

NUMERIC_METHODS = [m for m, x in METHODS.items() if "numeric" in x.column_types]
N = 1000  # live rows per window


@pytest.fixture(scope="module")
def narrow() -> Baseline:
    """A constant column, a 0/1 column and a normal one, 4,000 training rows."""
    rng = np.random.default_rng(11)
    columns = {"const": np.full(4000, 5.0), "bit": (rng.random(4000) < 0.3).astype(float),
               "x": rng.normal(0.0, 1.0, 4000)}
    return build_baseline(lambda: iter([Chunk(columns, 4000)]), BuildOptions(), files=["memory"],
                          created="2024-05-01T12:00:00Z").baseline


def verdicts(col: NumericColumn, live: np.ndarray) -> dict[str, bool]:
    """Per method: does this window of live values score above its threshold?"""
    ref = Reference.from_column(col)
    counts = bin_numeric(col, live).counts()
    cache = CriticalValues(simulations=2000)
    return {m: bool(score(m, ref, counts).value > cache.threshold(m, ref, len(live))) for m in NUMERIC_METHODS}


@pytest.mark.parametrize("moved", [5.5, 4.0, 1e6])
def test_a_constant_column_whose_values_move_drifts_for_every_method(narrow: Baseline, moved: float) -> None:
    col = narrow.column("const")
    assert isinstance(col, NumericColumn)
    assert verdicts(col, np.full(N, 5.0)) == dict.fromkeys(NUMERIC_METHODS, False)
    assert verdicts(col, np.full(N, moved)) == dict.fromkeys(NUMERIC_METHODS, True)


def test_live_values_above_a_0_1_column_drift_for_every_method(narrow: Baseline) -> None:
    col = narrow.column("bit")
    assert isinstance(col, NumericColumn)
    rng = np.random.default_rng(3)
    stable = (rng.random(N) < 0.3).astype(float)
    assert verdicts(col, stable) == dict.fromkeys(NUMERIC_METHODS, False)
    sevens = stable.copy()
    sevens[rng.random(N) < 0.2] = 7.0  # 7 is not 1: it lands above the range, not in 1's bin
    assert bin_numeric(col, [7.0, 1.0]).bins.tolist() == [len(col.counts) - 1, len(col.counts) - 2]
    assert verdicts(col, sevens) == dict.fromkeys(NUMERIC_METHODS, True)


def test_stable_continuous_traffic_past_the_training_max_stays_quiet(narrow: Baseline) -> None:
    """The baseline's outer bins are empty, smoothed with the PSI epsilon: a few live values beyond do not alarm."""
    col = narrow.column("x")
    assert isinstance(col, NumericColumn)
    live = np.random.default_rng(8).normal(0.0, 1.0, N)
    live[:2] = [col.max + 1.0, col.min - 1.0]
    assert verdicts(col, live) == dict.fromkeys(NUMERIC_METHODS, False)


def test_the_outer_bins_are_coarse_bins_with_no_baseline_rows(narrow: Baseline) -> None:
    for name in ("const", "bit", "x"):
        ref = Reference.from_column(narrow.column(name))
        assert ref.coarse[0] == ref.coarse[-1] == 0 and ref.fine[0] == ref.fine[-1] == 0
        assert ref.groups[1] == 1 and ref.groups[-1] == len(ref.fine) - 1
