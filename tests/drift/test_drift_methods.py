"""The method registry, a column's reference, and scores of stable and shifted traffic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from exporter.baseline import Baseline, CategoricalColumn, NumericColumn, bin_categorical, bin_numeric
from exporter.drift import DEFAULT_METHOD, METHODS, CriticalValues, Reference, score
from exporter.drift.methods import stephens


def test_registry() -> None:
    assert DEFAULT_METHOD == "psi" and METHODS["psi"].threshold == 0.1
    assert {m for m, x in METHODS.items() if "numeric" in x.column_types} == {"psi", "kl", "js", "ks", "wasserstein"}
    assert {m for m, x in METHODS.items() if "categorical" in x.column_types} == {"psi", "kl", "js", "chisquare",
                                                                                 "linf"}
    assert {m for m, x in METHODS.items() if x.pvalue} == {"ks", "chisquare"}
    assert all(x.bins in ("coarse", "fine") and x.exponent in (0.5, 1.0) for x in METHODS.values())


def test_numeric_reference(baseline: Baseline) -> None:
    col = baseline.column("x")
    assert isinstance(col, NumericColumn)
    ref = Reference.from_column(col)
    assert ref.points is not None
    assert len(ref.points) == len(col.counts) and np.all(np.diff(ref.points) >= 0)
    assert ref.points[0] == col.min - col.std and ref.points[-1] == col.edges[-1] + col.std  # one sd outside
    assert ref.coarse.sum() == ref.fine.sum() == ref.rows == col.valid
    assert len(ref.coarse) == len(col.psi_groups) == 12 and ref.scale == col.std
    assert ref.coarse[0] == ref.coarse[-1] == 0  # below and above the training range


def test_categorical_reference(baseline: Baseline) -> None:
    col = baseline.column("c")
    ref = Reference.from_column(col)
    assert ref.kind == "categorical" and ref.fine.tolist() == [*col.counts, 0] and ref.coarse.tolist() == [
        *col.counts, 0]


def test_stable_traffic_stays_low_and_a_shift_crosses(baseline: Baseline) -> None:
    col = baseline.column("x")
    assert isinstance(col, NumericColumn)
    ref = Reference.from_column(col)
    rng = np.random.default_rng(9)
    cache = CriticalValues()
    stable = bin_numeric(col, rng.normal(10.0, 2.0, size=5000)).counts()
    shifted = bin_numeric(col, rng.normal(11.0, 2.0, size=5000)).counts()  # +0.5 sd
    for method in ("psi", "kl", "js", "ks", "wasserstein"):
        limit = cache.threshold(method, ref, 5000)
        assert score(method, ref, stable).value < limit < score(method, ref, shifted).value, method
    assert score("psi", ref, stable).value < 0.05


def test_a_swap_of_categories_crosses(baseline: Baseline, category_probs: dict[str, float]) -> None:
    col = baseline.column("c")
    assert isinstance(col, CategoricalColumn)
    ref = Reference.from_column(col)
    rng = np.random.default_rng(4)
    p = dict(category_probs)
    stable = bin_categorical(col, rng.choice(list(p), size=2000, p=list(p.values())).tolist()).counts()
    p["a"], p["c"] = p["c"], p["a"]
    swapped = bin_categorical(col, rng.choice(list(p), size=2000, p=list(p.values())).tolist()).counts()
    cache = CriticalValues()
    for method in ("psi", "kl", "js", "chisquare", "linf"):
        limit = cache.threshold(method, ref, 2000)
        assert score(method, ref, stable).value < limit < score(method, ref, swapped).value, method


def test_pvalues_use_the_effective_rows(baseline: Baseline) -> None:
    x, c = Reference.from_column(baseline.column("x")), Reference.from_column(baseline.column("c"))
    window = np.random.default_rng(1).multinomial(800, x.fine / x.fine.sum())
    ks = score("ks", x, window)
    n_eff = 800 * x.rows / (800 + x.rows)
    assert ks.pvalue == pytest.approx(stats.kstwobign.sf(ks.value * stephens(n_eff)))
    counts = np.array([250, 150, 120, 90, 60, 60, 45, 25, 0])
    chi = score("chisquare", Reference(c.fine, kind="categorical", rows=math.inf), counts)
    ref = stats.chisquare(counts[:-1], c.fine[:-1] / c.fine.sum() * counts.sum())
    assert chi.value == pytest.approx(math.sqrt(ref.statistic / counts.sum()))
    assert chi.pvalue == pytest.approx(ref.pvalue)
    assert score("psi", x, window).pvalue is None


def test_kolmogorov_scaling_matches_the_exact_distribution() -> None:
    for n in (10, 200, 5000):
        assert stats.kstwobign.isf(0.001) / stephens(n) == pytest.approx(stats.kstwo.isf(0.001, n), rel=0.02)


def test_scores_of_many_windows_at_once(baseline: Baseline) -> None:
    ref = Reference.from_column(baseline.column("x"))
    windows = np.random.default_rng(2).multinomial(500, ref.fine / ref.fine.sum(), size=5)
    for method in ("psi", "ks", "wasserstein"):
        s = score(method, ref, windows)
        assert np.asarray(s.value).shape == (5,)
        assert np.allclose(s.value, np.array([score(method, ref, w).value for w in windows]))
