"""Critical values: every method's false-alarm rate checked by simulation, the baseline-size correction, the cache."""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest

from exporter.baseline import Baseline
from exporter.drift import METHODS, CriticalValues, Reference, critical_value, score, thresholds
from exporter.drift.statistics import proportions

ALPHA = 0.01  # large enough to measure with a few thousand windows
WINDOWS = 8000


def exact(baseline: Baseline, name: str) -> Reference:
    """The column's reference with the baseline taken as exact (the windows below come from it)."""
    ref = Reference.from_column(baseline.column(name))
    return Reference(ref.fine, groups=ref.groups, points=ref.points, scale=ref.scale, kind=ref.kind, rows=math.inf)


CASES = [(name, method) for name, kind in (("x", "numeric"), ("c", "categorical"))
         for method, m in METHODS.items() if kind in m.column_types]


@pytest.mark.parametrize("n", [200, 2000])
@pytest.mark.parametrize(("column", "method"), CASES)
def test_false_alarm_rate_is_alpha(baseline: Baseline, column: str, method: str, n: int) -> None:
    ref = exact(baseline, column)
    limit = critical_value(method, ref, n, ALPHA)
    rng = np.random.default_rng([n, len(method), len(column)])
    windows = rng.multinomial(n, proportions(ref.fine), size=WINDOWS)
    rate = float(np.mean(np.asarray(score(method, ref, windows).value) > limit))
    # KS uses Kolmogorov's bound, which binned data never reach: it is conservative by design. On
    # small windows the others are discrete (permutations of equal bins tie), so "> limit" errs low.
    low, high = (0.2, 1.25) if method == "ks" else (0.4, 1.45)
    assert low * ALPHA <= rate <= high * ALPHA, f"{method} on {column} at n={n}: {rate:.4f} vs {ALPHA}"


@pytest.mark.parametrize(("column", "method"), [("x", "psi"), ("x", "kl"), ("x", "js"), ("c", "chisquare"),
                                                ("c", "psi")])
def test_closed_forms_agree_with_the_simulation(baseline: Baseline, column: str, method: str) -> None:
    ref = exact(baseline, column)
    closed = thresholds.closed_form(method, ref, 3000, ALPHA)
    assert closed is not None
    assert closed == pytest.approx(thresholds.simulate(method, ref, 3000, ALPHA), rel=0.08)


def test_closed_forms_give_way_to_simulation_on_small_expected_counts(baseline: Baseline) -> None:
    ref = exact(baseline, "x")  # ~10 % per coarse bin: PSI needs n·p >= 50
    assert thresholds.closed_form("psi", ref, 300, ALPHA) is None
    assert thresholds.closed_form("psi", ref, 600, ALPHA) is not None
    assert thresholds.closed_form("linf", ref, 10**6, ALPHA) is None


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.lognormal(0, 0.8, 50_000),
        lambda rng: rng.standard_t(3, 50_000),
        lambda rng: np.where(rng.random(50_000) < 0.6, 0.0, rng.exponential(1, 50_000)),
        lambda rng: rng.poisson(3, 50_000).astype(float),
        lambda rng: rng.normal(0, 1, 50_000),
    ],
    ids=["lognormal", "student_t3", "zero_inflated", "poisson", "normal"],
)
@pytest.mark.parametrize("n", [200, 5000])
def test_wasserstein_closed_form_is_the_simulation_or_a_little_quieter(draw: object, n: int) -> None:
    """The log-normal fit of Wasserstein's Gaussian limit: at or up to 20 % above the simulated critical value."""
    from exporter.baseline.build import BuildOptions, build_baseline
    from exporter.baseline.readers import Chunk

    assert callable(draw)
    values = draw(np.random.default_rng(n))
    built = build_baseline(lambda: iter([Chunk({"v": values}, len(values))]), BuildOptions(), files=["t"], created="")
    ref = exact(built.baseline, "v")
    for alpha in (0.001, 0.01):
        closed = thresholds.closed_form("wasserstein", ref, n, alpha)
        simulated = thresholds.simulate("wasserstein", ref, n, alpha, simulations=60_000)
        assert closed is not None
        assert 0.97 * simulated <= closed <= 1.25 * simulated, f"alpha {alpha}: {closed:.4f} vs {simulated:.4f}"


def test_the_baseline_sample_is_noise_too() -> None:
    """A baseline of N rows and a window of n rows, both fresh from one distribution: PSI alarms at alpha."""
    rng = np.random.default_rng(5)
    p = np.full(10, 0.1)
    n = n_base = 3000
    corrected = naive = 0
    trials = 2000
    base = rng.multinomial(n_base, p, size=trials)
    windows = rng.multinomial(n, p, size=trials)
    for counts, window in zip(base, windows):
        value = score("psi", Reference(counts, kind="categorical"), window).value
        corrected += int(value > critical_value("psi", Reference(counts, kind="categorical"), n, ALPHA))
        naive += int(value > critical_value("psi", Reference(counts, kind="categorical", rows=math.inf), n, ALPHA))
    assert 0.6 * ALPHA <= corrected / trials <= 1.45 * ALPHA
    assert naive / trials > 5 * ALPHA  # n_eff = n·N/(n+N) is what keeps it quiet


def test_cache_steps_and_rescales(baseline: Baseline, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = Reference.from_column(baseline.column("x"))
    cat = Reference.from_column(baseline.column("c"))
    calls: list[tuple[str, float]] = []
    real = thresholds.simulate

    def counting(*args: object, **kwargs: object) -> float:
        calls.append((str(args[0]), float(args[2])))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(thresholds, "simulate", counting)
    cache = CriticalValues()
    n_eff = lambda n: n * 50_000 / (n + 50_000)  # noqa: E731  (the baseline has 50,000 rows)

    # a method with a closed form is computed per grid step (4 per doubling) and rescaled within it
    first = cache.critical("ks", ref, 1000, ALPHA)
    again = cache.critical("ks", ref, 1010, ALPHA)
    grid = 2 ** (math.floor(math.log2(n_eff(1000)) * 4) / 4)
    assert again == pytest.approx(first * math.sqrt(n_eff(1000) / n_eff(1010)))
    assert first == pytest.approx(thresholds.closed_form("ks", ref, grid, ALPHA) * math.sqrt(grid / n_eff(1000)))

    # one without is simulated once, at REFERENCE_ROWS, and scaled by n^-exponent for every n
    l1000 = cache.critical("linf", cat, 1000, ALPHA)
    l5000 = cache.critical("linf", cat, 5000, ALPHA)
    assert calls == [("linf", thresholds.REFERENCE_ROWS)]
    assert l5000 == pytest.approx(l1000 * math.sqrt(n_eff(1000) / n_eff(5000)))

    # wasserstein's closed form is computed for each n, without a simulation
    w1000 = cache.critical("wasserstein", ref, 1000, ALPHA)
    assert w1000 == critical_value("wasserstein", ref, 1000, ALPHA)
    assert len(calls) == 1

    assert cache.threshold("wasserstein", ref, 1000, ALPHA) == max(0.1, w1000)
    assert cache.threshold("wasserstein", ref, 1000, ALPHA, practical=0.0) == w1000
    assert cache.critical("wasserstein", ref, 0, ALPHA) == math.inf
    del ref, cat
    gc.collect()
    assert len(cache._cache) == 0  # a reference dropped on reload takes its entries with it


def test_methods_refuse_the_wrong_column_type(baseline: Baseline) -> None:
    with pytest.raises(ValueError, match=r"drift method 'chisquare' does not apply to numeric columns \(expected "
                                         "one of: psi, kl, js, ks, wasserstein\\)"):
        critical_value("chisquare", Reference.from_column(baseline.column("x")), 100)


def test_background_mode_never_simulates_on_the_callers_thread(baseline: Baseline,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    ref = exact(baseline, "x")
    threads: list[str] = []
    real = thresholds.simulate

    def recording(*args: object, **kwargs: object) -> float:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)  # type: ignore[arg-type]  # the recorded call's own arguments

    monkeypatch.setattr(thresholds, "simulate", recording)
    cache = CriticalValues(background=True, simulations=4000)
    assert cache.critical("psi", ref, 150, ALPHA) == math.inf  # unknown yet: no alarm
    assert cache.threshold("psi", ref, 150, ALPHA) == math.inf
    assert cache.critical("wasserstein", ref, 150, ALPHA) < math.inf  # closed forms are at hand at once
    assert cache.wait(timeout=60)
    known = cache.critical("psi", ref, 150, ALPHA)
    assert threads == ["critical-values"]
    assert known == CriticalValues(simulations=4000).critical("psi", ref, 150, ALPHA)


@pytest.mark.parametrize("shape", ["lognormal", "zero_inflated", "poisson"])
@pytest.mark.parametrize("method", ["wasserstein", "psi", "kl", "js", "ks"])
def test_false_alarm_rate_holds_at_small_n_on_skewed_and_discrete_data(shape: str, method: str) -> None:
    """At n = drift.min_rows (200) every numeric method alarms at most 1.5× alpha on skewed and discrete shapes."""
    from exporter.baseline.build import BuildOptions, build_baseline
    from exporter.baseline.readers import Chunk

    rng = np.random.default_rng(len(shape))
    values = {"lognormal": lambda: rng.lognormal(0, 1.0, 50_000),
              "zero_inflated": lambda: np.where(rng.random(50_000) < 0.6, 0.0, rng.exponential(1, 50_000)),
              "poisson": lambda: rng.poisson(2, 50_000).astype(float)}[shape]()
    built = build_baseline(lambda: iter([Chunk({"v": values}, len(values))]), BuildOptions(), files=["t"], created="")
    ref = exact(built.baseline, "v")
    limit = CriticalValues().critical(method, ref, 200, ALPHA)
    windows = rng.multinomial(200, proportions(ref.fine), size=WINDOWS)
    rate = float(np.mean(np.asarray(score(method, ref, windows).value) > limit))
    assert rate <= 1.5 * ALPHA, f"{method} on {shape}: {rate:.4f} vs {ALPHA}"
    assert rate >= (0.05 if method == "ks" else 0.2) * ALPHA, f"{method} on {shape} is needlessly deaf: {rate:.4f}"


@pytest.mark.parametrize("n", [200, 1000])
@pytest.mark.parametrize("method", ["chisquare", "linf", "psi", "kl", "js"])
def test_false_alarm_rate_holds_on_skewed_categories(method: str, n: int) -> None:
    """Zipf-like categories with rare ones (expected counts below 1 at n = 200): at most 1.5× alpha."""
    shares = 1.0 / np.arange(1, 31) ** 1.3
    counts = np.round(shares / shares.sum() * 100_000)
    ref = Reference(np.append(counts, 0.0), kind="categorical", rows=math.inf)
    limit = CriticalValues().critical(method, ref, n, ALPHA)
    rng = np.random.default_rng([n, len(method)])
    windows = rng.multinomial(n, proportions(ref.fine), size=WINDOWS)
    rate = float(np.mean(np.asarray(score(method, ref, windows).value) > limit))
    assert rate <= 1.5 * ALPHA, f"{method} at n={n}: {rate:.4f} vs {ALPHA}"
