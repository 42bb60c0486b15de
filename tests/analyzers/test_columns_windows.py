"""Rolling windows of the column monitor: ratios, expiry by the injected clock, drift scores, reload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from columns_support import (
    Scrape,
    baseline,
    built_baseline,
    categorical,
    config,
    critical_values,
    ex,
    features,
    numeric,
    rows,
    small_baseline,
)

from exporter.analyzers.columns import ColumnMonitor, coarse_bin_labels
from exporter.baseline.build import BuildOptions, build_baseline
from exporter.baseline.readers import open_source
from exporter.events import Extraction


def test_window_ratios_of_missing_and_out_of_range_values() -> None:
    m = ColumnMonitor(small_baseline(), config(), critical=critical_values())
    m.update([ex(features(4, x=[None, 1.0, 20.0, -1.0]))], 0.0)
    m.update([ex(features(4, x=[1.0, 2.0, "", 3.0]))], 400.0)  # the first batch has left 5m by now
    s = Scrape(m, 400.0)
    for window, missing, oor in (("5m", 1 / 4, 0.0), ("1h", 2 / 8, 2 / 8)):
        lab = {"role": "feature", "column": "x", "window": window}
        assert s.value("model_missing_ratio", **lab) == pytest.approx(missing)
        assert s.value("model_out_of_range_ratio", **lab) == pytest.approx(oor)
    assert s.value("model_missing_ratio", role="feature", column="z", window="1h") == 0.0


def test_absent_column_counts_in_the_missing_ratio() -> None:
    m = ColumnMonitor(small_baseline(), config(), critical=critical_values())
    m.update([ex(features(3, c=None)), ex(features(1))], 0.0)
    assert Scrape(m, 0.0).value("model_missing_ratio", role="feature", column="c", window="5m") == pytest.approx(3 / 4)


def test_rows_leave_the_5m_window_after_5_minutes_and_stay_in_1h() -> None:
    m = ColumnMonitor(small_baseline(), config(), critical=critical_values())

    def rows_in(now: float) -> tuple[float | None, float | None]:
        s = Scrape(m, now)
        return s.value("model_window_rows", window="5m"), s.value("model_window_rows", window="1h")

    m.update([ex(features(5, x=[None] * 5))], 1000.0)
    assert rows_in(1000.0) == (5, 5)
    m.update([ex(features(2))], 1150.0)
    assert rows_in(1150.0) == (7, 7)
    assert rows_in(1260.0) == (7, 7)  # 5m is 10 slices of 30 s: the slice [990, 1020) lasts until 1290
    assert rows_in(1290.0) == (2, 7)
    assert rows_in(1439.0) == (2, 7)
    assert rows_in(1440.0) == (0, 7)  # [1140, 1170) expires at 1440
    s = Scrape(m, 1440.0)
    assert s.value("model_missing_ratio", role="feature", column="x", window="5m") is None  # empty window: no ratio
    assert s.value("model_missing_ratio", role="feature", column="x", window="1h") == pytest.approx(5 / 7)
    assert rows_in(4499.0) == (0, 7)  # 1h is 12 slices of 300 s: [900, 1200) lasts until 4500
    assert rows_in(4500.0) == (0, 0)
    assert Scrape(m, 4500.0).value("model_column_missing_total", role="feature", column="x") == 5  # counters stay


def test_configured_windows_are_the_only_window_labels() -> None:
    m = ColumnMonitor(small_baseline(), config(windows=(("short", 60.0), ("1d", 86400.0)), min_rows=1),
                      critical=critical_values())
    m.update([ex(features(3))], 0.0)
    assert Scrape(m, 0.0).label_values("window") == {"short", "1d"}
    assert Scrape(m, 61.0).value("model_window_rows", window="short") == 0


def test_score_only_once_the_window_holds_min_rows() -> None:
    m = ColumnMonitor(small_baseline(), config(min_rows=50), critical=critical_values())
    m.update([ex(features(49, x=np.linspace(0.5, 9.5, 49)))], 0.0)
    s = Scrape(m, 0.0)
    assert s.samples("model_drift_score") == []
    assert s.value("model_drift_threshold", role="feature", column="x", method="psi", window="5m") is not None
    m.update([ex(features(1, x=[5.0]))], 1.0)
    s = Scrape(m, 1.0)
    assert s.value("model_drift_score", role="feature", column="x", method="psi", window="5m") is not None
    assert s.value("model_drift_score", role="feature", column="x", method="psi", window="1h") is not None
    # min_rows counts valid values of the column: 50 missing values are no score
    m.update([ex(features(50, z=[None] * 50))], 400.0)
    s = Scrape(m, 400.0)
    assert s.value("model_drift_score", role="feature", column="z", method="psi", window="5m") is None
    assert s.value("model_drift_score", role="feature", column="x", method="psi", window="5m") is not None


@pytest.fixture(scope="module")
def trained() -> ColumnMonitor:
    """Baseline of 20,000 training rows: f ~ N(3, 2), k with frequencies 0.5/0.3/0.2."""
    rng = np.random.default_rng(7)
    k = rng.choice(np.array(["red", "green", "blue"]), size=20_000, p=[0.5, 0.3, 0.2])
    b = built_baseline({"f": rng.normal(3.0, 2.0, 20_000), "k": k.tolist()})
    return ColumnMonitor(b, config(), critical=critical_values())


def live(seed: int, n: int, shift: float = 0.0, p: tuple[float, float, float] = (0.5, 0.3, 0.2)) -> list[Extraction]:
    rng = np.random.default_rng(seed)
    return [ex(rows({"f": rng.normal(3.0 + shift, 2.0, 8),
                     "k": rng.choice(np.array(["red", "green", "blue"]), size=8, p=p).tolist()})) for _ in range(n // 8)]


def scores(b: ColumnMonitor, batches: list[Extraction], now: float) -> Scrape:
    m = ColumnMonitor(b.baseline, config(), critical=b.critical)  # critical values depend only on the baseline: share the cache
    m.update(batches, now)
    return Scrape(m, now)


def test_stable_traffic_stays_below_threshold(trained: ColumnMonitor) -> None:
    s = scores(trained, live(1, 5000), 0.0)
    for column in ("f", "k"):
        for window in ("5m", "1h"):
            lab = {"role": "feature", "column": column, "method": "psi", "window": window}
            score = s.value("model_drift_score", **lab)
            assert score is not None and score < 0.05
            assert score < s.value("model_drift_threshold", **lab)  # type: ignore[operator]


def test_shifted_feature_crosses_threshold(trained: ColumnMonitor) -> None:
    s = scores(trained, live(2, 5000, shift=2.0, p=(0.2, 0.3, 0.5)), 0.0)  # mean + 1 sd; red/blue swapped
    for column in ("f", "k"):
        lab = {"role": "feature", "column": column, "method": "psi", "window": "5m"}
        assert s.value("model_drift_score", **lab) > s.value("model_drift_threshold", **lab)  # type: ignore[operator]


def test_threshold_is_the_practical_one_on_large_windows_and_higher_on_small_ones(trained: ColumnMonitor) -> None:
    lab = {"role": "feature", "column": "f", "method": "psi", "window": "5m"}
    large = scores(trained, live(3, 5000), 0.0).value("model_drift_threshold", **lab)
    small = scores(trained, live(3, 200), 0.0).value("model_drift_threshold", **lab)
    assert large == pytest.approx(0.1)
    assert small is not None and small > 0.1


def test_bin_labels_are_unique_when_edges_agree_in_six_digits() -> None:
    col = numeric("ts", lo=1.7e9, hi=1.7e9 + 60, edges=(1.7e9 + 10, 1.7e9 + 20, 1.7e9 + 30))
    labels = coarse_bin_labels(col)
    assert len(set(labels)) == len(labels) == 6
    assert labels[0] == "below" and labels[-1] == "above" and labels[-2] == "[1.70000003e+09, 1.70000006e+09]"
    m = ColumnMonitor(baseline(col), config(), critical=critical_values())
    m.update([ex(rows({"ts": [1.7e9 + 5, 1.7e9 + 15, 1.7e9 + 25, 1.7e9 + 35]}))], 0.0)
    assert [v for _, v in Scrape(m, 0.0).samples("model_column_bin_total")] == [0, 1, 1, 1, 1, 0]


# ---------------------------------------------------------------- reload


def test_counters_and_windows_survive_a_reload_with_the_same_columns() -> None:
    old = ColumnMonitor(small_baseline(), config(), critical=critical_values())
    old.update([ex(features(3, x=[None, 20.0, 1.0], extra=[0, 0, 0]), rows({"y": [0.1, 0.9, 0.9]}))], 0.0)
    new = ColumnMonitor(small_baseline(), config(), previous=old, critical=critical_values())
    new.update([ex(features(2, x=[None, 1.0]), rows({"y": [0.1, 0.2]}))], 10.0)
    s = Scrape(new, 10.0)
    assert s.value("model_column_missing_total", role="feature", column="x") == 2
    assert s.value("model_column_out_of_range_total", role="feature", column="x", side="high") == 1
    assert s.value("model_column_values_total", role="prediction", column="y") == 5
    assert s.value("model_column_bin_total", role="prediction", column="y", bin="[0, 0.5)") == 3
    assert s.value("model_schema_errors_total", kind="unexpected_column") == 1
    assert s.value("model_window_rows", window="5m") == 5
    assert s.value("model_missing_ratio", role="feature", column="x", window="1h") == pytest.approx(2 / 5)


def test_reload_with_new_edges_keeps_quality_counters_and_restarts_windows_and_bins() -> None:
    old = ColumnMonitor(small_baseline(), config(), critical=critical_values())
    old.update([ex(features(3, x=[None, 20.0, 1.0]))], 0.0)
    retrained = baseline(numeric("x", edges=(3.0, 6.0, 9.0)), numeric("z"), categorical("c"),
                         numeric("y", "prediction", lo=0.0, hi=1.0, edges=(0.5,), counts=(50, 50)))
    new = ColumnMonitor(retrained, config(), previous=old, critical=critical_values())
    s = Scrape(new, 1.0)
    assert s.value("model_column_missing_total", role="feature", column="x") == 1
    assert s.value("model_column_out_of_range_total", role="feature", column="x", side="high") == 1
    assert s.sum("model_column_bin_total", column="x") == 0  # new bins, new series
    assert s.value("model_column_bin_total", role="feature", column="c", bin="a") == 3  # unchanged column keeps its bins
    assert s.value("model_window_rows", window="5m") == 0  # counts binned on the old edges are not compared with the new


def test_reload_with_columns_in_another_order_does_not_mix_window_counts() -> None:
    old = ColumnMonitor(baseline(numeric("p"), numeric("q")), config(), critical=critical_values())
    old.update([ex(rows({"p": [None, None], "q": [1.0, 2.0]}))], 0.0)
    new = ColumnMonitor(baseline(numeric("q"), numeric("p")), config(), previous=old,
                        critical=critical_values())
    s = Scrape(new, 1.0)
    assert s.value("model_missing_ratio", role="feature", column="q", window="5m") in (None, 0.0)
    assert s.value("model_column_missing_total", role="feature", column="p") == 2


def test_training_rows_replayed_live_land_in_the_baseline_bins(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    lines = ["amount,kind,score"] + [f"{rng.gamma(2.0, 10.0):.3f},{rng.choice(['a', 'b', 'c'], p=[0.6, 0.3, 0.1])},"
                                     f"{rng.random():.4f}" for _ in range(400)]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    result = build_baseline(open_source([str(path)]), BuildOptions(predictions=("score",)), files=(str(path),),
                            created="2024-05-01T12:00:00Z")
    m = ColumnMonitor(result.baseline, config(), critical=critical_values())
    for chunk in open_source([str(path)])():  # CSV values are strings: "12.5" parses as a number
        cols = chunk.columns
        m.update([ex(rows({"amount": cols["amount"], "kind": cols["kind"]}), rows({"score": cols["score"]}))], 0.0)
    s = Scrape(m, 0.0)
    for col in result.baseline.columns:
        lab = {"role": col.role, "column": col.name}
        live = {b["bin"]: v for b, v in s.samples("model_column_bin_total") if b["column"] == col.name}
        share = {b["bin"]: v for b, v in s.samples("model_column_baseline_ratio") if b["column"] == col.name}
        assert live == {k: pytest.approx(v * 400) for k, v in share.items()}
        assert s.value("model_drift_score", **lab, method="psi", window="1h") == pytest.approx(0.0, abs=1e-9)
        assert s.value("model_column_type_errors_total", **lab) == 0
