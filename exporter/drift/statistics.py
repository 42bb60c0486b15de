"""Drift statistics: pure functions of a baseline distribution and live bin counts.

Every function takes `expected`, the baseline's counts (or proportions) over k bins, shape (k,),
and `observed`, live counts over the same bins, shape (..., k): leading axes are independent
windows, which is how the Monte-Carlo thresholds score thousands of windows in one call. Both
are normalised to proportions inside (p for the baseline, q for the window). Every score reads
"higher means more drift"; a window with no rows scores NaN.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special  # not scipy.stats: ~50 MB more RSS in the worker

# Floor for empty bins in PSI and KL (Evidently uses the same value). Without it one
# empty bin makes the score infinite; a Prometheus rule reproduces it with clamp_min(…, 1e-4).
EPSILON = 1e-4

Score = float | NDArray[np.float64]


def proportions(counts: ArrayLike) -> NDArray[np.float64]:
    """Counts → proportions along the last axis (NaN where a window is empty)."""
    c = np.asarray(counts, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: NDArray[np.float64] = c / c.sum(axis=-1, keepdims=True)
    return out


def _pq(expected: ArrayLike, observed: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    p, q = proportions(expected), proportions(observed)
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"expected {p.shape[-1]} bins, observed {q.shape[-1]}")
    return p, q


def _out(values: NDArray[np.float64]) -> Score:
    return float(values) if values.ndim == 0 else values


def psi(expected: ArrayLike, observed: ArrayLike, epsilon: float = EPSILON) -> Score:
    """Population stability index.

        PSI = Σᵢ (qᵢ − pᵢ) · ln(qᵢ / pᵢ),   pᵢ, qᵢ clamped to at least ε = 1e-4 (not renormalised)

    The symmetrised Kullback–Leibler divergence KL(q‖p) + KL(p‖q). Conventional reading:
    < 0.1 no significant shift, 0.1–0.25 moderate, ≥ 0.25 major. With no drift, n·PSI is
    approximately χ² with k−1 degrees of freedom for a window of n rows (multiplied by 1 + n/N
    when the baseline itself has N rows).
    References: Siddiqi (2006), Credit Risk Scorecards, ch. 8; Yurdakul (2018), "Statistical
    properties of population stability index", Western Michigan University.
    """
    p, q = _pq(expected, observed)
    p, q = np.maximum(p, epsilon), np.maximum(q, epsilon)
    return _out(np.sum((q - p) * np.log(q / p), axis=-1))


def kl_divergence(expected: ArrayLike, observed: ArrayLike, epsilon: float = EPSILON) -> Score:
    """Kullback–Leibler divergence of the window from the baseline, in nats; never negative.

        KL(q‖p) = Σ_{qᵢ>0} qᵢ · ln(qᵢ / p̃ᵢ) + Σ_{qᵢ>0} (p̃ᵢ − pᵢ),   p̃ᵢ = max(pᵢ, ε)

    Where the window has mass on a bin the baseline (nearly) never saw, p is raised to ε; the
    second sum is the mass so added. The whole is the generalised KL divergence of q from the
    measure p̃ (Σ qᵢ ln(qᵢ/p̃ᵢ) − qᵢ + p̃ᵢ, each term ≥ 0): without it the raised bins would make
    Σ p̃ > 1 and the score of a window like the baseline negative; renormalising p̃ instead
    would add ln Σp̃ to every window's score. 2n·KL(q‖p) is the G (log-likelihood ratio)
    statistic of the window against the baseline, approximately χ² with k−1 degrees of
    freedom under no drift (Wilks 1938).
    References: Kullback & Leibler (1951), "On information and sufficiency", Ann. Math. Stat. 22.
    Equals scipy.stats.entropy(q, p) when no bin the window reaches is below ε in the baseline.
    """
    p, q = _pq(expected, observed)
    raised = np.maximum(p, epsilon)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log(q / raised) + (raised - p), 0.0)
    return _out(np.where(np.isnan(q).any(axis=-1), np.nan, terms.sum(axis=-1)))


def js_distance(expected: ArrayLike, observed: ArrayLike) -> Score:
    """Jensen–Shannon distance (natural log), between 0 and √ln 2 ≈ 0.833.

        JS = √( ½ KL(p‖m) + ½ KL(q‖m) ),   m = (p + q) / 2

    Needs no smoothing (m > 0 wherever p or q is). Under no drift 8n·JS² is approximately
    χ² with k−1 degrees of freedom (second-order expansion: JS² ≈ Σ (qᵢ − pᵢ)² / (8pᵢ)).
    References: Lin (1991), "Divergence measures based on the Shannon entropy", IEEE Trans. Inf.
    Theory 37; Endres & Schindelin (2003), "A new metric for probability distributions".
    Equals scipy.spatial.distance.jensenshannon(p, q).
    """
    p, q = _pq(expected, observed)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log(p / m), 0.0).sum(axis=-1)
        kq = np.where(q > 0, q * np.log(q / m), 0.0).sum(axis=-1)
    js2 = np.maximum((kp + kq) / 2, 0.0)
    return _out(np.where(np.isnan(q).any(axis=-1), np.nan, np.sqrt(js2)))


def ks_statistic(expected: ArrayLike, observed: ArrayLike) -> Score:
    """Kolmogorov–Smirnov statistic on binned data.

        D = maxⱼ | Σ_{i≤j} pᵢ − Σ_{i≤j} qᵢ |

    The largest distance between the two cumulative distributions, evaluated at the bin edges,
    where it is exact: the binned D is never above the KS statistic of the raw values, and at
    most the larger bin proportion below it (fine quantile bins keep that small).
    References: Kolmogorov (1933); Smirnov (1948), "Table for estimating the goodness of fit of
    empirical distributions", Ann. Math. Stat. 19.
    """
    p, q = _pq(expected, observed)
    return _out(np.max(np.abs(np.cumsum(p, axis=-1) - np.cumsum(q, axis=-1)), axis=-1))


def wasserstein(expected: ArrayLike, observed: ArrayLike, points: ArrayLike, scale: float = 1.0) -> Score:
    """Wasserstein-1 (earth mover's) distance on binned data, divided by `scale` (the baseline std).

        W₁ = Σⱼ | Σ_{i≤j} pᵢ − Σ_{i≤j} qᵢ | · (xⱼ₊₁ − xⱼ) / scale

    with each bin's mass placed at its representative point xⱼ (non-decreasing). For the
    baseline's fine bins the exporter uses the bin midpoints, and for the bins below and above
    the training range one baseline std beyond its ends, so live mass outside the range adds
    at least its share (in std units) however narrow the range: a constant column drifts too.
    A value of 0.1 reads "the distribution moved by a tenth of a standard deviation". On 50
    quantile bins it is within about 10 % of W₁ of the raw values for light-tailed data (the
    wide outermost bins add a little); heavy tails make the binned value larger.
    References: Vallender (1973), "Calculation of the Wasserstein distance between probability
    distributions on the line", Theory Probab. Appl. 18. Equals
    scipy.stats.wasserstein_distance(x, x, p, q) / scale.
    """
    p, q = _pq(expected, observed)
    x = np.asarray(points, dtype=np.float64)
    if x.shape[-1] != p.shape[-1]:
        raise ValueError(f"expected {p.shape[-1]} points, got {x.shape[-1]}")
    gaps = np.diff(x)
    cdf_gap = np.abs(np.cumsum(p, axis=-1) - np.cumsum(q, axis=-1))[..., :-1]
    return _out(np.sum(cdf_gap * gaps, axis=-1) / scale)


def chi_square(expected: ArrayLike, observed: ArrayLike) -> tuple[Score, Score]:
    """Pearson's chi-square goodness-of-fit statistic of the window against the baseline, and its p-value.

        X² = Σ_{pᵢ>0} (Oᵢ − n'·pᵢ)² / (n'·pᵢ),   n' = Σ_{pᵢ>0} Oᵢ
        p-value = P(χ²_{k'−1} > X²),            k' = number of bins with pᵢ > 0

    A test of the known bins' proportions: values in a bin the baseline never saw (an unseen
    category) are left out, with no smoothing constant to decide how loud one of them is;
    they are a data-quality signal (model_column_unseen_total), and on the known bins they
    still shift n'. `known_rows` gives n'.
    References: Pearson (1900), "On the criterion that a given system of deviations…", Phil. Mag.
    50. Equals scipy.stats.chisquare(O[p>0], n'·p[p>0]).
    """
    p0 = proportions(expected)
    known = p0 > 0
    o = np.asarray(observed, dtype=np.float64)
    n = known_rows(p0, o)[..., None]
    e = n * p0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(known, (o - e) ** 2 / e, 0.0)
    x2 = np.where(n[..., 0] > 0, terms.sum(axis=-1), np.nan)
    dof = max(int(np.count_nonzero(known)) - 1, 1)
    return _out(x2), _out(special.chdtrc(dof, x2))  # = scipy.stats.chi2.sf(x2, dof)


def known_rows(expected: ArrayLike, observed: ArrayLike) -> NDArray[np.float64]:
    """The window's rows on bins the baseline has (pᵢ > 0), per window."""
    o = np.asarray(observed, dtype=np.float64)
    out: NDArray[np.float64] = np.where(np.asarray(expected) > 0, o, 0.0).sum(axis=-1)
    return out


def linf(expected: ArrayLike, observed: ArrayLike) -> Score:
    """L-infinity (Chebyshev) distance between the proportions: the largest change of any one bin.

        L∞ = maxᵢ | qᵢ − pᵢ |

    For categories it reads directly: "the share of the most changed category moved by L∞".
    """
    p, q = _pq(expected, observed)
    return _out(np.max(np.abs(q - p), axis=-1))
