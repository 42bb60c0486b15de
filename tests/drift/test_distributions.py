"""The distributions behind p-values and critical values: scipy.special, equal to scipy.stats; no scipy.stats in the worker.

scipy.stats costs the worker ~50 MB of RSS on import (scipy.special ~24 MB); the worker and the
proxy together must fit in 120 MB. The tests use scipy.stats as the reference: they run in the
test process, not the worker.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from exporter.baseline import Baseline
from exporter.drift import Reference, score, thresholds
from exporter.drift.methods import effective_rows, stephens
from exporter.drift.statistics import chi_square, proportions

ALPHAS = (1e-9, 1e-6, 0.001, 0.01, 0.05, 0.5)


def test_the_worker_never_imports_scipy_stats() -> None:
    code = "import exporter.worker.analysis, sys; print('scipy.stats' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("alpha", ALPHAS)
def test_ks_critical_value_is_the_kolmogorov_quantile(baseline: Baseline, alpha: float) -> None:
    ref = Reference.from_column(baseline.column("x"))
    for n in (10.0, 200.0, 12345.6):
        expected = stats.kstwobign.isf(alpha) / stephens(n)
        assert thresholds.closed_form("ks", ref, n, alpha) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_chi_square_critical_values_use_the_chi2_quantile(baseline: Baseline, alpha: float) -> None:
    ref = Reference.from_column(baseline.column("c"))
    p = proportions(ref.expected("chisquare"))
    k = int(np.count_nonzero(p > 0))
    n = 1e6  # every closed form applies
    c = stats.chi2.isf(alpha, k - 1)
    assert thresholds.closed_form("chisquare", ref, n, alpha) == pytest.approx(math.sqrt(c / n), rel=1e-12)
    s = float(np.sum(1 / p[p > 0]))
    psi = c * (1 + (s - k) / (2 * n * (k - 1))) / n
    assert thresholds.closed_form("psi", ref, n, alpha) == pytest.approx(psi, rel=1e-12)


def test_pvalues_are_scipy_stats_survival_functions(baseline: Baseline) -> None:
    x = Reference.from_column(baseline.column("x"))
    c = Reference.from_column(baseline.column("c"))
    rng = np.random.default_rng(11)
    for rows in (50, 500, 5000):
        ks = score("ks", x, rng.multinomial(rows, proportions(x.fine) * 0.9 + 0.1 / len(x.fine)))
        n_eff = effective_rows(rows, x.rows)
        assert ks.pvalue == pytest.approx(stats.kstwobign.sf(ks.value * stephens(n_eff)), rel=1e-12, abs=1e-300)
        window = rng.multinomial(rows, proportions(c.fine))
        chi = score("chisquare", c, window)
        dof = int(np.count_nonzero(c.fine > 0)) - 1
        x2 = np.square(chi.value) * effective_rows(rows, c.rows)
        assert chi.pvalue == pytest.approx(stats.chi2.sf(x2, dof), rel=1e-12, abs=1e-300)
        x2_raw, p_raw = chi_square(c.fine, window)
        assert p_raw == pytest.approx(stats.chi2.sf(x2_raw, dof), rel=1e-12, abs=1e-300)


def test_vectorised_pvalues_match_scipy_stats(baseline: Baseline) -> None:
    x = Reference.from_column(baseline.column("x"))
    windows = np.random.default_rng(3).multinomial(400, proportions(x.fine), size=64)
    ks = score("ks", x, windows)
    assert isinstance(ks.pvalue, np.ndarray) and ks.pvalue.shape == (64,)
    expected = stats.kstwobign.sf(np.asarray(ks.value) * stephens(effective_rows(400, x.rows)))
    np.testing.assert_allclose(ks.pvalue, expected, rtol=1e-12)
