"""The drift methods: what each compares, on which bins, its default threshold, and how to score a window."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special  # not scipy.stats: ~50 MB more RSS in the worker

from exporter.baseline.format import CategoricalColumn, Column, NumericColumn
from exporter.drift import statistics as st

NUMERIC = frozenset({"numeric"})
CATEGORICAL = frozenset({"categorical"})
BOTH = NUMERIC | CATEGORICAL


@dataclass(frozen=True)
class Method:
    """A registered drift method.

    `threshold` is the default practical threshold (the exported threshold is the larger of it
    and the critical value under no drift); `bins` says which numeric bins it compares (coarse
    PSI groups or the fine quantile bins; categorical columns always use category + "other");
    the critical value shrinks like n^-`exponent` with the window's rows.
    """

    name: str
    column_types: frozenset[str]
    threshold: float
    bins: str
    exponent: float
    pvalue: bool
    summary: str


METHODS: Mapping[str, Method] = {
    m.name: m
    for m in (
        Method("psi", BOTH, 0.1, "coarse", 1.0, False, "population stability index (0.1 moderate, 0.25 major)"),
        Method(
            "kl",
            BOTH,
            0.05,
            "coarse",
            1.0,
            False,
            "Kullback-Leibler divergence KL(live||baseline), nats; ≈ PSI/2 for small shifts, hence half its threshold",
        ),
        Method("js", BOTH, 0.1, "coarse", 0.5, False, "Jensen-Shannon distance (natural log)"),
        Method("ks", NUMERIC, 0.1, "fine", 0.5, True, "Kolmogorov-Smirnov statistic on the fine bins"),
        Method(
            "wasserstein", NUMERIC, 0.1, "fine", 0.5, False, "Wasserstein-1 distance in baseline standard deviations"
        ),
        Method(
            "chisquare",
            CATEGORICAL,
            0.1,
            "fine",
            0.5,
            True,
            "Cohen's w = sqrt(X²/n) of Pearson's chi-square "
            "test (0.1 small, 0.3 medium, 0.5 large); the p-value is the test's",
        ),
        Method("linf", CATEGORICAL, 0.1, "fine", 0.5, False, "largest change of one category's share"),
    )
}

DEFAULT_METHOD = "psi"

# The default decision (model_drift_detected): per column type, the method whose score must pass
# both its effect-size floor (the practical threshold, in units a person reads: 0.1 baseline
# standard deviations of transport; Cohen's w 0.1, "small") and the no-drift critical value for
# the window's rows, so that small windows stay quiet and large ones ignore trivial effects.
DETECTORS: Mapping[str, str] = {"numeric": "wasserstein", "categorical": "chisquare"}


class Reference:
    """What a column's drift methods compare a window against: the baseline counts and bin geometry."""

    def __init__(
        self,
        fine: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        points: ArrayLike | None = None,
        scale: float = 1.0,
        kind: str = "numeric",
        name: str = "",
        rows: float | None = None,
    ) -> None:
        """`rows`: the baseline's row count N (default: the counts' sum); math.inf treats it as exact."""
        self.name = name
        self.kind = kind
        self.fine = np.asarray(fine, dtype=np.float64)
        self.groups = np.arange(len(self.fine)) if groups is None else np.asarray(groups, dtype=np.intp)
        self.coarse = np.add.reduceat(self.fine, self.groups)
        self.points = None if points is None else np.asarray(points, dtype=np.float64)
        self.scale = scale if scale > 0 else 1.0
        self.rows = float(self.fine.sum()) if rows is None else rows

    @classmethod
    def from_column(cls, col: Column) -> Reference:
        """The reference of a baseline column (fine bins, PSI groups, bin points, std).

        A fine bin's point is the mean of its training values (its midpoint in a baseline of
        format version 1 or 2, or where the bin is empty): with midpoints the binned Wasserstein
        distance overstated skewed and heavy-tailed data 1.5–5×, and halved a 0/1 column, whose
        last inner bin's midpoint moves with the sample max. The below and above bins sit one baseline standard
        deviation (one unit for a constant column) outside the first and last edge, so that
        Wasserstein counts a value outside the training range as at least that far away.
        """
        if isinstance(col, CategoricalColumn):
            return cls(col.counts_array, kind="categorical", name=col.name)
        assert isinstance(col, NumericColumn)
        e = col.edges_array
        scale = col.std if col.std > 0 else 1.0
        points = np.concatenate([[e[0] - scale], (e[:-1] + e[1:]) / 2, [e[-1] + scale]])
        if col.means:  # the training values' mean in each inner bin, where it has any (format version 3)
            inner = np.array([np.nan if m is None else m for m in col.means[1:-1]], dtype=np.float64)
            points[1:-1] = np.where(np.isnan(inner), points[1:-1], inner)
        return cls(col.counts_array, groups=col.psi_groups, points=points, scale=scale, kind="numeric", name=col.name)

    def expected(self, method: str) -> NDArray[np.float64]:
        """Baseline counts on the bins `method` compares."""
        return self.coarse if METHODS[method].bins == "coarse" else self.fine

    def observed(self, method: str, fine_counts: ArrayLike) -> NDArray[np.float64]:
        """A window's fine counts (..., fine bins) on the bins `method` compares."""
        c = np.asarray(fine_counts, dtype=np.float64)
        return np.add.reduceat(c, self.groups, axis=-1) if METHODS[method].bins == "coarse" else c


@dataclass(frozen=True)
class Score:
    value: st.Score
    pvalue: st.Score | None = None


def effective_rows(n_rows: Any, reference_rows: float) -> Any:
    """n·N/(n+N): a window of n rows against a baseline of N rows has the noise of n_eff rows on an exact one.

    Both the window and the baseline are samples; the variance of a bin's difference is
    p(1−p)(1/n + 1/N) (Yurdakul 2018 for PSI; the two-sample KS uses the same n_eff).
    """
    if not math.isfinite(reference_rows) or reference_rows <= 0:
        return n_rows
    return n_rows * reference_rows / (n_rows + reference_rows)


def stephens(n: Any) -> Any:
    """Stephens' (1970) scaling: D·(√n + 0.12 + 0.11/√n) follows Kolmogorov's limit law closely for n ≥ 10."""
    root = np.sqrt(np.maximum(n, 1))
    return root + 0.12 + 0.11 / root


def check_method(method: str, kind: str) -> Method:
    """The registered method, or ValueError naming the allowed ones for this column type."""
    m = METHODS.get(method)
    if m is None or kind not in m.column_types:
        allowed = [name for name, x in METHODS.items() if kind in x.column_types]
        raise ValueError(
            f"drift method {method!r} does not apply to {kind} columns (expected one of: {', '.join(allowed)})"
        )
    return m


def values(method: str, ref: Reference, binned: ArrayLike) -> st.Score:
    """The score of windows already on the method's bins (no p-value); used by the simulations."""
    p = ref.expected(method)
    if method == "psi":
        return st.psi(p, binned)
    if method == "kl":
        return st.kl_divergence(p, binned)
    if method == "js":
        return st.js_distance(p, binned)
    if method == "ks":
        return st.ks_statistic(p, binned)
    if method == "wasserstein":
        if ref.points is None:
            raise ValueError("wasserstein needs bin points (a numeric column)")
        return st.wasserstein(p, binned, ref.points, ref.scale)
    if method == "chisquare":
        b = np.asarray(binned, dtype=np.float64)
        x2, _ = st.chi_square(p, b)
        with np.errstate(invalid="ignore", divide="ignore"):
            cramer: st.Score = np.sqrt(x2 / st.known_rows(p, b))  # numpy's sqrt is typed Any here
            return cramer
    if method == "linf":
        return st.linf(p, binned)
    raise ValueError(f"unknown drift method {method!r}")


def score(method: str, ref: Reference, fine_counts: ArrayLike) -> Score:
    """Score (and p-value, for KS and chi-square) of window(s) given their fine bin counts.

    P-values are computed for the effective rows n·N/(n+N), the same noise model as the thresholds.
    """
    check_method(method, ref.kind)
    binned = ref.observed(method, fine_counts)
    value = values(method, ref, binned)
    if not METHODS[method].pvalue:
        return Score(value)
    rows = st.known_rows(ref.expected(method), binned) if method == "chisquare" else binned.sum(axis=-1)
    n_eff = effective_rows(rows, ref.rows)
    if method == "ks":
        pvalue = special.kolmogorov(np.asarray(value) * stephens(n_eff))  # = scipy.stats.kstwobign.sf
    else:
        dof = max(int(np.count_nonzero(ref.expected(method) > 0)) - 1, 1)
        pvalue = special.chdtrc(dof, np.square(value) * n_eff)  # = scipy.stats.chi2.sf(x, dof)
    return Score(value, float(pvalue) if np.ndim(pvalue) == 0 else pvalue)
