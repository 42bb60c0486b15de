"""The default drift decision (model_drift_detected): quiet on stable traffic, sharp on real shifts, deaf to trivial ones."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.analyzers.columns import ColumnMonitor
from exporter.baseline import Baseline
from tests.analyzers.columns_support import Scrape, built_baseline, config, critical_values, ex, rows

T0 = 1_000_000.0


@pytest.fixture(scope="module")
def monitor_baseline() -> Baseline:
    rng = np.random.default_rng(3)
    n = 200_000
    return built_baseline({"x": rng.lognormal(0, 0.5, n), "c": rng.choice(["a", "b", "c", "d"], n,
                                                                            p=[0.4, 0.3, 0.2, 0.1]).tolist()})


def decide(base: Baseline, x: np.ndarray, c: list[str]) -> dict[str, tuple[float, float, float, str]]:
    monitor = ColumnMonitor(base, config(windows=(("5m", 300.0),)), critical=critical_values())
    monitor.update([ex(rows({"x": x.tolist(), "c": c}))], T0)
    scrape = Scrape(monitor, T0)
    out: dict[str, tuple[float, float, float, str]] = {}
    for labels, value in scrape.samples("model_drift_detected"):
        method = labels["method"]
        score = scrape.value("model_drift_score", role="feature", column=labels["column"], method=method, window="5m")
        limit = scrape.value("model_drift_threshold", role="feature", column=labels["column"], method=method,
                             window="5m")
        assert score is not None and limit is not None
        out[labels["column"]] = (value, score, limit, method)
    return out


def test_decision_uses_wasserstein_and_chisquare_next_to_psi(monitor_baseline: Baseline) -> None:
    rng = np.random.default_rng(4)
    got = decide(monitor_baseline, rng.lognormal(0, 0.5, 500), rng.choice(["a", "b", "c", "d"], 500).tolist())
    assert {col: m for col, (_, _, _, m) in got.items()} == {"x": "wasserstein", "c": "chisquare"}
    for detected, score, limit, _ in got.values():
        assert detected == float(score > limit)


@pytest.mark.parametrize(("n", "shift", "expected"), [
    (500, 0.0, 0.0),        # stable, small window: quiet
    (100_000, 0.0, 0.0),    # stable, large window
    (5000, 0.25, 1.0),      # a quarter sd: caught at 5,000 rows
    (100_000, 0.25, 1.0),
    (100_000, 0.05, 0.0),   # significant at 100,000 rows, but below the 0.1 sd floor: not flagged
])
def test_numeric_decision_needs_significance_and_effect(monitor_baseline: Baseline, n: int, shift: float,
                                                        expected: float) -> None:
    rng = np.random.default_rng([n, int(shift * 100)])
    raw = rng.lognormal(0, 0.5, n)
    x = raw + shift * float(np.std(raw))
    stable_c = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    detected, score, limit, _ = decide(monitor_baseline, x, stable_c)["x"]
    assert detected == expected, f"n={n} shift={shift}: wasserstein {score:.4f} vs threshold {limit:.4f}"
    assert decide(monitor_baseline, x, stable_c)["c"][0] == 0.0


def test_categorical_swap_is_detected_at_500_rows(monitor_baseline: Baseline) -> None:
    rng = np.random.default_rng(7)
    c = rng.choice(["a", "b", "c", "d"], 500, p=[0.2, 0.3, 0.4, 0.1]).tolist()  # first and third swapped
    detected, score, limit, _ = decide(monitor_baseline, rng.lognormal(0, 0.5, 500), c)["c"]
    assert detected == 1.0, f"chisquare {score:.3f} vs {limit:.3f}"
