"""Each drift statistic against scipy or a hand-computed case on the same data; binned vs raw within tolerance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from exporter.drift import Reference
from exporter.drift import statistics as st
from exporter.drift.methods import values

P = np.array([10.0, 20.0, 30.0, 40.0])        # baseline counts
Q = np.array([15.0, 25.0, 20.0, 40.0])        # window counts (100 rows)
RNG = np.random.default_rng(11)
WINDOWS = RNG.multinomial(500, [0.1, 0.2, 0.3, 0.4], size=20)


def test_psi_hand_computed() -> None:
    p, q = P / 100, Q / 100
    expected = sum((b - a) * math.log(b / a) for a, b in zip(p, q))
    assert st.psi(P, Q) == pytest.approx(expected, rel=1e-12)
    assert st.psi(P, P) == 0.0


def test_psi_smooths_empty_bins_with_epsilon() -> None:
    # baseline bin 3 empty, window bin 1 empty: both proportions clamp to 1e-4, nothing renormalised
    value = st.psi([50, 50, 0], [0, 60, 40])
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (0.6 - 0.5) * math.log(0.6 / 0.5) \
        + (0.4 - 1e-4) * math.log(0.4 / 1e-4)
    assert value == pytest.approx(expected, rel=1e-12)


def test_kl_matches_scipy_entropy() -> None:
    assert st.kl_divergence(P, Q) == pytest.approx(stats.entropy(Q / 100, P / 100), rel=1e-12)
    q = np.array([0.0, 30.0, 30.0, 40.0])  # an empty window bin contributes nothing
    assert st.kl_divergence(P, q) == pytest.approx(stats.entropy(q, P), rel=1e-12)
    # an empty baseline bin: the window's mass there is compared with epsilon, and the mass so
    # added to the baseline counted (the generalised KL), not renormalised
    assert st.kl_divergence([50, 50, 0], [40, 40, 20]) == pytest.approx(
        0.4 * math.log(0.8) * 2 + 0.2 * math.log(0.2 / 1e-4) + 1e-4, rel=1e-12)


def test_kl_is_never_negative_next_to_an_empty_baseline_bin() -> None:
    """p̃ = max(p, ε) without its added mass made a window like the baseline score below 0."""
    rng = np.random.default_rng(1)
    p = np.array([0.0, 0.0, 300.0, 300.0, 400.0, 0.0])
    windows = rng.multinomial(100_000, [1e-5, 1e-5, 0.3, 0.3, 0.4 - 3e-5, 1e-5], size=2000)
    assert np.all(np.asarray(st.kl_divergence(p, windows)) >= 0)
    assert st.kl_divergence(p, [0, 1, 30_000, 30_000, 39_999, 0]) > 0


def test_js_distance_matches_scipy() -> None:
    assert st.js_distance(P, Q) == pytest.approx(jensenshannon(P, Q), rel=1e-12)
    assert st.js_distance([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)), rel=1e-12)


def test_ks_on_binned_data_is_exact_at_the_edges() -> None:
    # integer data binned at every integer: the edges are all the jump points, so binned = raw
    a, b = RNG.poisson(4, size=3000), RNG.poisson(4.6, size=800)
    edges = np.arange(0, 15)
    pa = np.bincount(np.searchsorted(edges, a, side="right"), minlength=16)
    pb = np.bincount(np.searchsorted(edges, b, side="right"), minlength=16)
    assert st.ks_statistic(pa, pb) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_ks_on_fine_quantile_bins_is_close_to_the_raw_statistic() -> None:
    a, b = RNG.normal(size=20000), RNG.normal(0.2, 1.0, size=5000)
    edges = np.quantile(a, np.linspace(0, 1, 51))
    pa = np.bincount(np.searchsorted(edges, a, side="right"), minlength=52)
    pb = np.bincount(np.searchsorted(edges, b, side="right"), minlength=52)
    raw = stats.ks_2samp(a, b).statistic
    binned = st.ks_statistic(pa, pb)
    # never above the raw statistic, and at most the largest bin share below it
    assert raw - max(pa.max() / pa.sum(), pb.max() / pb.sum()) <= binned <= raw + 1e-12


def test_wasserstein_matches_scipy_on_the_bin_points() -> None:
    x = np.array([-1.0, 0.5, 1.0, 3.0])
    assert st.wasserstein(P, Q, x, scale=2.0) == pytest.approx(
        stats.wasserstein_distance(x, x, P, Q) / 2.0, rel=1e-12)


def test_wasserstein_binned_is_within_10_percent_of_raw() -> None:
    # the wide outermost quantile bins put their mass at the midpoint: a few percent too much
    a, b = RNG.normal(size=50000), RNG.normal(0.3, 1.2, size=20000)
    edges = np.quantile(a, np.linspace(0, 1, 51))
    points = np.concatenate([[a.min()], (edges[:-1] + edges[1:]) / 2, [a.max()]])
    pa = np.bincount(np.searchsorted(edges, a, side="right"), minlength=52)
    pb = np.bincount(np.searchsorted(edges, b, side="right"), minlength=52)
    raw = stats.wasserstein_distance(a, b) / a.std()
    assert st.wasserstein(pa, pb, points, a.std()) == pytest.approx(raw, rel=0.10)


def test_chi_square_matches_scipy() -> None:
    x2, p = st.chi_square(P, Q)
    ref = stats.chisquare(Q, P / P.sum() * Q.sum())
    assert (x2, p) == (pytest.approx(ref.statistic, rel=1e-12), pytest.approx(ref.pvalue, rel=1e-9))


def test_chi_square_tests_the_known_categories_only() -> None:
    """An unseen category is a quality signal: one value of it moves nothing but n'."""
    base = np.array([500.0, 300.0, 200.0, 0.0])  # the last bin ("other") is empty in the baseline
    for n in (500, 10_000):
        window = np.array([0.5 * (n - 1), 0.3 * (n - 1), 0.2 * (n - 1), 1.0])
        x2, _ = st.chi_square(base, window)
        assert x2 == pytest.approx(0.0, abs=1e-9)
        assert float(values("chisquare", Reference(base, kind="categorical"), window)) < 0.01
    known = np.array([260.0, 140.0, 100.0])
    x2, p = st.chi_square(base, [*known, 40.0])
    ref = stats.chisquare(known, base[:3] / base.sum() * known.sum())
    assert (x2, p) == (pytest.approx(ref.statistic, rel=1e-12), pytest.approx(ref.pvalue, rel=1e-9))


def test_chi_square_skips_bins_empty_on_both_sides_and_counts_dof_on_baseline_bins() -> None:
    x2, p = st.chi_square([10, 20, 30, 40, 0], [15, 25, 20, 40, 0])
    ref = stats.chisquare(Q, P / P.sum() * Q.sum())
    assert (x2, p) == (pytest.approx(ref.statistic, rel=1e-12), pytest.approx(ref.pvalue, rel=1e-9))


def test_linf_hand_computed() -> None:
    assert st.linf(P, Q) == pytest.approx(0.1, rel=1e-12)


@pytest.mark.parametrize("fn", [st.psi, st.kl_divergence, st.js_distance, st.ks_statistic, st.linf,
                                lambda p, q: st.chi_square(p, q)[0],
                                lambda p, q: st.wasserstein(p, q, [0.0, 1.0, 2.0, 4.0], 1.5)])
def test_windows_are_scored_at_once(fn: object) -> None:
    assert callable(fn)
    together = np.asarray(fn(P, WINDOWS))
    one_by_one = np.array([fn(P, w) for w in WINDOWS])
    assert together.shape == (20,)
    np.testing.assert_allclose(together, one_by_one, rtol=1e-12)


@pytest.mark.parametrize("fn", [st.psi, st.kl_divergence, st.js_distance, st.ks_statistic, st.linf,
                                lambda p, q: st.chi_square(p, q)[0]])
def test_an_empty_window_scores_nan(fn: object) -> None:
    assert callable(fn)
    assert math.isnan(fn(P, [0, 0, 0, 0]))


def test_every_score_grows_with_drift() -> None:
    base = np.array([0.25, 0.25, 0.25, 0.25])
    small, large = np.array([0.3, 0.25, 0.25, 0.2]), np.array([0.45, 0.25, 0.2, 0.1])
    for fn in (st.psi, st.kl_divergence, st.js_distance, st.ks_statistic, st.linf):
        assert 0 == pytest.approx(fn(base, base), abs=1e-15) and fn(base, small) < fn(base, large)
    assert st.wasserstein(base, small, [0, 1, 2, 3]) < st.wasserstein(base, large, [0, 1, 2, 3])
