"""Critical values under no drift, so the exported threshold is quiet on small windows, sharp on large ones.

    exported threshold = max(practical threshold, critical value(method, baseline, n rows, alpha))

The critical value is the score a window of n rows drawn from the baseline itself exceeds with
probability alpha (default 0.0002 per column per window: 20 columns alarm together on at most 0.4 %
of stable windows). It uses the effective rows
n_eff = n·N/(n+N) (the baseline of N rows is a sample too), a closed form where one is accurate,
and otherwise a seeded Monte-Carlo simulation of multinomial windows from the baseline.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import weakref
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
from scipy import special  # not scipy.stats: ~50 MB more RSS in the worker

from exporter.drift.methods import METHODS, Reference, check_method, effective_rows, stephens, values
from exporter.drift.statistics import proportions

log = logging.getLogger(__name__)

DEFAULT_ALPHA = 0.0002
# Smallest expected count n·pᵢ (over bins with pᵢ > 0) at which each chi-square closed form keeps
# the false-alarm rate within about 20 % of alpha (measured by simulation, tests/drift); below
# it, or for methods without a closed form, the critical value is simulated.
MIN_EXPECTED = {"psi": 50.0, "js": 50.0, "kl": 5.0, "chisquare": 5.0}
STEPS_PER_DOUBLING = 4
REFERENCE_ROWS = 1024.0  # where methods without a closed form are simulated (see CriticalValues)
_BATCH = 5000
_BACKGROUND_BATCH = 500  # ~1 ms of numpy per call: the scrape thread waits at most that for the GIL


def critical_value(
    method: str,
    ref: Reference,
    n_rows: float,
    alpha: float = DEFAULT_ALPHA,
    *,
    simulations: int | None = None,
    seed: int = 0,
) -> float:
    """The no-drift critical value of `method` for a window of `n_rows` rows at false-alarm rate `alpha`."""
    check_method(method, ref.kind)
    n = effective_rows(n_rows, ref.rows)
    if n < 1:
        return math.inf
    closed = closed_form(method, ref, n, alpha)
    return closed if closed is not None else simulate(method, ref, n, alpha, simulations=simulations, seed=seed)


def closed_form(method: str, ref: Reference, n: float, alpha: float) -> float | None:
    """The closed-form critical value for `n` effective rows, or None where there is none or it is inaccurate.

    With k bins of baseline proportion pᵢ > 0, c = χ²_{k−1} quantile at 1−alpha and S = Σ 1/pᵢ:
        PSI  c·(1 + (S − k)/(2n(k−1))) / n            n·PSI ≈ χ²_{k−1}
        KL   c·(1 + (S − 1)/(6n(k−1))) / (2n)         2n·KL = G ≈ χ²_{k−1} (Williams 1976 correction)
        JS   √( c·(1 + (3S − 2k − 1)/(8n(k−1))) / (8n) )   8n·JS² ≈ χ²_{k−1}
        chi-square (Cohen's w)   √(c / n)              X² ≈ χ²_{k−1}
        KS   K_{1−alpha} / (√n + 0.12 + 0.11/√n), K the Kolmogorov distribution (Stephens 1970;
             within 2 % of the exact finite-n quantile for n ≥ 10): for continuous data the
             level-alpha test, for binned D (never above the raw D) a bound, so KS alarms at
             most at rate alpha (about half of it on 50 fine bins).
    The (1 + …) factors are the O(1/n) terms of each statistic's expected value under no drift
    (second-order Taylor expansion of the divergence), applied as a Williams-type scale factor.
    """
    if method == "ks":
        return float(special.kolmogi(alpha) / stephens(n))  # = scipy.stats.kstwobign.isf(alpha)
    if method == "wasserstein":
        return wasserstein_critical(ref, n, alpha)
    if method not in MIN_EXPECTED:
        return None
    p = proportions(ref.expected(method))
    pos = p[p > 0]
    k = len(pos)
    if k < 2:
        return 0.0  # one bin holds the whole baseline: every window drawn from it scores 0
    if n * pos.min() < MIN_EXPECTED[method]:
        return None
    dof = k - 1
    c = float(special.chdtri(dof, alpha))  # = scipy.stats.chi2.isf(alpha, dof)
    s = float(np.sum(1 / pos))
    if method == "psi":
        return c * (1 + (s - k) / (2 * n * dof)) / n
    if method == "kl":
        return c * (1 + (s - 1) / (6 * n * dof)) / (2 * n)
    if method == "js":
        return math.sqrt(c * (1 + (3 * s - 2 * k - 1) / (8 * n * dof)) / (8 * n))
    return math.sqrt(c / n)


def wasserstein_critical(ref: Reference, n: float, alpha: float) -> float:
    """Wasserstein's no-drift critical value from its Gaussian limit, fitted by a log-normal (no simulation).

    Under no drift √n·(F̂ⱼ − Fⱼ) → Bⱼ, a Brownian bridge at the baseline's cumulative shares Fⱼ
    (Cov = min(Fᵢ, Fⱼ) − FᵢFⱼ), so √n·W → Σⱼ gⱼ|Bⱼ| with gⱼ the gap to the next point / scale.
    Its mean and variance are exact, from E|X||Y| = (2/π)σₓσᵧ(√(1−ρ²) + ρ·arcsin ρ) for a
    bivariate normal; the quantile is that of the log-normal with the same two moments. That
    tail is a little heavier than the true one: the value is 0–15 % above a 100,000-window
    simulation from n = 200 to 20,000 on skewed, heavy-tailed and discrete data (tests/drift),
    so it errs on the quiet side, and costs O(k²) arithmetic instead of a 0.3 s simulation.
    """
    if ref.points is None:
        raise ValueError("wasserstein needs bin points (a numeric column)")
    cdf = np.cumsum(proportions(ref.fine))[:-1]
    gaps = np.diff(ref.points) / ref.scale
    keep = (cdf > 1e-12) & (cdf < 1 - 1e-12) & (gaps > 0)
    f, g = cdf[keep], gaps[keep]
    if len(f) == 0:
        return 0.0  # one bin holds the whole baseline: every window drawn from it scores 0
    sd = np.sqrt(f * (1 - f))
    mean = float(np.sum(g * sd)) * math.sqrt(2 / math.pi)
    rho = np.clip((np.minimum.outer(f, f) - np.outer(f, f)) / np.outer(sd, sd), -1.0, 1.0)
    moment = (2 / math.pi) * (np.sqrt(1 - rho**2) + rho * np.arcsin(rho)) * np.outer(sd, sd)
    variance = max(float(g @ moment @ g) - mean * mean, 0.0)
    s2 = math.log1p(variance / (mean * mean))
    quantile = math.exp(math.log(mean) - s2 / 2 - math.sqrt(s2) * float(special.ndtri(alpha)))
    return quantile / math.sqrt(n)


def simulate(
    method: str,
    ref: Reference,
    n: float,
    alpha: float,
    *,
    simulations: int | None = None,
    seed: int = 0,
    batch: int = _BATCH,
) -> float:
    """The no-drift critical value from seeded multinomial windows of round(n) rows from the baseline.

    S = max(10000, 10/alpha) windows by default (50 000 at alpha = 0.0002, about 0.2 s for 10
    bins), drawn in batches of 5000 to bound memory (smaller ones in a background thread, which
    holds the GIL for the length of one). The value is the order statistic with
    S·alpha − √(S·alpha) scores above it rather than S·alpha: a one-sigma upper confidence bound
    on the quantile, so the simulation's own noise errs towards fewer false alarms (about 0.7·alpha
    with 10 expected exceedances).
    """
    rows = max(int(round(n)), 1)
    sims = simulations or max(10_000, math.ceil(10 / alpha))
    p = proportions(ref.expected(method))
    rng = np.random.default_rng([seed, rows, list(METHODS).index(method)])
    scores = []
    for start in range(0, sims, batch):
        counts = rng.multinomial(rows, p, size=min(batch, sims - start))
        scores.append(np.asarray(values(method, ref, counts), dtype=np.float64))
    expected = sims * alpha
    above = max(int(expected - math.sqrt(expected)), 0)
    return float(np.partition(np.concatenate(scores), sims - 1 - above)[sims - 1 - above])


class CriticalValues:
    """Critical values cached per (reference, method, alpha, n step); the drift analyzer keeps one.

    Effective rows are rounded down to a grid of 4 steps per doubling and the grid point's value
    is rescaled by (n_grid/n)^exponent (exact for the chi-square forms, asymptotically for the
    rest; rounding down keeps it on the quiet side). A growing window thus costs one computation
    per step, and a Reference dropped on reload takes its entries with it.

    With `background=True` (the worker) no simulation runs on the caller's thread: a value that
    needs one is queued for a background thread and reads +inf (no alarm) until it is known,
    a few tenths of a second per value later, so a scrape never waits on a simulation.
    """

    def __init__(self, *, simulations: int | None = None, seed: int = 0, background: bool = False) -> None:
        self.simulations = simulations
        self.seed = seed
        self.background = background
        self._cache: WeakKeyDictionary[Reference, dict[tuple[Any, ...], float]] = WeakKeyDictionary()
        self._queue: queue.SimpleQueue[
            tuple[tuple[int, tuple[Any, ...]], weakref.ref[Reference], str, float, float]
        ] = queue.SimpleQueue()
        self._pending: set[tuple[int, tuple[Any, ...]]] = set()
        self._thread: threading.Thread | None = None

    def critical(self, method: str, ref: Reference, n_rows: float, alpha: float = DEFAULT_ALPHA) -> float:
        """critical_value, cached."""
        m = check_method(method, ref.kind)
        n = effective_rows(n_rows, ref.rows)
        if n < 1:
            return math.inf
        table = self._cache.setdefault(ref, {})
        if method == "wasserstein":  # closed form: its n-free quantile, cached, over √n
            key: tuple[Any, ...] = (method, alpha)
            unit = table.get(key)
            if unit is None:
                unit = table[key] = wasserstein_critical(ref, 1.0, alpha)
            return unit / math.sqrt(n)
        if method == "linf":
            # no closed form at any n: simulate once, at REFERENCE_ROWS, and scale by n^-exponent,
            # so a growing window never needs a fresh simulation
            key, grid = (method, alpha, "reference"), REFERENCE_ROWS
        else:
            grid = 2 ** (math.floor(math.log2(n) * STEPS_PER_DOUBLING) / STEPS_PER_DOUBLING)
            key = (method, alpha, grid)
        value = table.get(key)
        if value is None:
            closed = None if method == "linf" else closed_form(method, ref, grid, alpha)
            if closed is not None:
                value = table[key] = closed
            elif self.background:
                self._submit(ref, key, method, grid, alpha)
                return math.inf
            else:
                value = table[key] = self._simulate(method, ref, grid, alpha)
        return float(value * (grid / n) ** m.exponent)

    def _simulate(self, method: str, ref: Reference, n: float, alpha: float, batch: int = _BATCH) -> float:
        return simulate(method, ref, n, alpha, simulations=self.simulations, seed=self.seed, batch=batch)

    def _submit(self, ref: Reference, key: tuple[Any, ...], method: str, n: float, alpha: float) -> None:
        tag = (id(ref), key)
        if tag in self._pending:
            return
        self._pending.add(tag)
        self._queue.put((tag, weakref.ref(ref), method, n, alpha))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="critical-values", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            tag, target, method, n, alpha = self._queue.get()
            ref = target()
            try:
                if ref is not None:  # a reference dropped on reload is not worth simulating
                    self._cache.setdefault(ref, {})[tag[1]] = self._simulate(method, ref, n, alpha, _BACKGROUND_BATCH)
            except Exception:  # the value stays unknown (+inf: no alarm); the thread serves the others
                log.exception("simulating the critical value of %s at n=%s failed", method, n)
            finally:
                self._pending.discard(tag)
                del ref

    def wait(self, timeout: float | None = None) -> bool:
        """Until no value is pending (for benchmarks and tests); False if `timeout` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._pending:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def threshold(
        self, method: str, ref: Reference, n_rows: float, alpha: float = DEFAULT_ALPHA, practical: float | None = None
    ) -> float:
        """max(practical threshold (the method's default unless given), critical value)."""
        floor = METHODS[method].threshold if practical is None else practical
        return max(floor, self.critical(method, ref, n_rows, alpha))
