"""Realised performance: every score against scikit-learn on the same data; windows on an injected clock."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as sk

from exporter.adapters import Rows
from exporter.analyzers.performance import OTHER_CLASS, Performance, Prediction
from exporter.baseline.load import load_baseline
from exporter.config import from_dict
from exporter.demo.training import build_demo_baseline

T0 = 1_700_000_000.0


def perf(**section: Any) -> Performance:
    return Performance(from_dict({"performance": {"min_labels": 1, **section}}), None)


def samples(p: Performance, now: float = T0) -> dict[tuple[str, ...], float]:
    return {(name, *labels): value for name, labels, value in p.samples(now, ["m", "1"])}


def score(p: Performance, metric: str, window: str = "5m", now: float = T0) -> float:
    return samples(p, now)[("model_performance_score", metric, window, "m", "1")]


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 2000)
    s = np.clip(0.35 * y + rng.uniform(0, 0.65, 2000), 0, 1)
    return y, s


def test_binary_scores_match_sklearn(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = binary
    p = perf(score="probability", threshold=0.5)
    preds = p.read(Rows({"probability": s.tolist()}, len(s)))
    assert p.add(list(zip(preds, y.tolist())), T0) == len(y)
    yhat = (s >= 0.5).astype(int)
    assert score(p, "accuracy") == pytest.approx(sk.accuracy_score(y, yhat))
    assert score(p, "precision") == pytest.approx(sk.precision_score(y, yhat))
    assert score(p, "recall") == pytest.approx(sk.recall_score(y, yhat))
    assert score(p, "f1") == pytest.approx(sk.f1_score(y, yhat))
    assert score(p, "log_loss") == pytest.approx(sk.log_loss(y, s))
    # binned to 0.001: off by at most the share of pairs tied within a bin
    assert score(p, "roc_auc") == pytest.approx(sk.roc_auc_score(y, s), abs=2e-3)


def test_roc_auc_is_exact_when_scores_fall_in_distinct_bins() -> None:
    y = [0, 1, 0, 1, 1, 0, 1, 0]
    s = [0.1005, 0.8005, 0.4005, 0.3505, 0.9005, 0.2005, 0.6005, 0.7005]
    p = perf(score="s")
    p.add(list(zip(p.read(Rows({"s": s}, len(s))), y)), T0)
    assert score(p, "roc_auc") == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)


def test_multiclass_macro_scores_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    classes = np.array(["cat", "dog", "bird"])
    y = classes[rng.integers(0, 3, 900)]
    yhat = np.where(rng.random(900) < 0.7, y, classes[rng.integers(0, 3, 900)])
    p = perf(prediction="label")
    preds = p.read(Rows({"label": yhat.tolist(), "other": [0] * 900}, 900))
    p.add(list(zip(preds, y.tolist())), T0)
    assert score(p, "accuracy") == pytest.approx(sk.accuracy_score(y, yhat))
    for metric, fn in (("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)):
        assert score(p, metric) == pytest.approx(fn(y, yhat, average="macro")), metric
    assert ("model_performance_score", "roc_auc", "5m", "m", "1") not in samples(p)


def test_binary_with_class_predictions_and_numeric_labels() -> None:
    y = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1]
    yhat = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]  # 1.0 and 1 are the same class
    p = perf()
    p.add(list(zip(p.read(Rows({"predictions": yhat}, 10)), y)), T0)
    assert score(p, "f1") == pytest.approx(sk.f1_score(y, [int(v) for v in yhat]))
    assert score(p, "precision") == pytest.approx(sk.precision_score(y, [int(v) for v in yhat]))


def test_regression_scores_match_sklearn() -> None:
    rng = np.random.default_rng(5)
    y = rng.uniform(10, 100, 500)
    yhat = y + rng.normal(0, 5, 500)
    p = perf(task="regression")
    p.add(list(zip(p.read(Rows({"price": yhat.tolist()}, 500)), y.tolist())), T0)
    assert score(p, "mae") == pytest.approx(sk.mean_absolute_error(y, yhat))
    assert score(p, "rmse") == pytest.approx(math.sqrt(sk.mean_squared_error(y, yhat)))
    assert score(p, "mape") == pytest.approx(sk.mean_absolute_percentage_error(y, yhat))
    s = samples(p)
    assert s[("model_performance_absolute_error_total", "m", "1")] == pytest.approx(np.abs(yhat - y).sum())
    assert s[("model_performance_squared_error_total", "m", "1")] == pytest.approx(((yhat - y) ** 2).sum())
    assert s[("model_performance_labels_scored_total", "m", "1")] == 500


def test_unusable_pairs_are_not_scored() -> None:
    p = perf(task="regression")
    pairs = [(Prediction(None, None), 1.0), (Prediction(2.0, None), "x"), (Prediction(2.0, None), 1.0)]
    assert p.add(pairs, T0) == 1


def test_confusion_counters_and_class_cap() -> None:
    p = perf(prediction="c", max_classes=2)
    labels = ["a", "b", "c", "a", "d"]
    predicted = ["a", "a", "c", "b", "d"]
    p.add(list(zip(p.read(Rows({"c": predicted}, 5)), labels)), T0)
    s = samples(p)
    cell = {(k[1], k[2]): v for k, v in s.items() if k[0] == "model_performance_class_total"}
    assert {c for c, _ in cell} == {"a", "b", OTHER_CLASS}  # c and d share __other__
    assert cell[("a", "tp")] == 1 and cell[("a", "fp")] == 1 and cell[("a", "fn")] == 1
    assert cell[("b", "tp")] == 0 and cell[("b", "fp")] == 1 and cell[("b", "fn")] == 1
    assert cell[(OTHER_CLASS, "tp")] == 2


def test_windows_expire_on_the_clock_and_min_labels_holds_scores_back() -> None:
    p = perf(score="s", min_labels=3)
    p.add(list(zip(p.read(Rows({"s": [0.9, 0.1]}, 2)), [1, 0])), T0)
    s = samples(p)
    assert s[("model_window_labels", "5m", "m", "1")] == 2
    assert ("model_performance_score", "accuracy", "5m", "m", "1") not in s
    p.add(list(zip(p.read(Rows({"s": [0.9]}, 1)), [0])), T0 + 10)
    assert score(p, "accuracy", now=T0 + 10) == pytest.approx(2 / 3)
    later = samples(p, T0 + 400)  # past the 5m window, inside the 1h one
    assert later[("model_window_labels", "5m", "m", "1")] == 0
    assert later[("model_window_labels", "1h", "m", "1")] == 3
    assert later[("model_performance_labels_scored_total", "m", "1")] == 3


def test_threshold_narrows_with_the_label_count() -> None:
    p = perf(score="s", tolerance=0.01)
    p.reference = {"accuracy": 0.9}
    few = p.threshold("accuracy", 50, np.zeros(p.size))
    many = p.threshold("accuracy", 5000, np.zeros(p.size))
    assert few is not None and many is not None
    # a 2-point drop (0.88) is noise on 50 labels and news on 5,000
    assert few < 0.88 < many < 0.9
    z = p.z
    assert many == pytest.approx(0.9 - z * math.sqrt(0.9 * 0.1 / 5000))
    assert p.threshold("accuracy", 10**9, np.zeros(p.size)) == pytest.approx(0.89)  # the tolerance floor
    assert p.threshold("log_loss", 50, np.zeros(p.size)) is None


def test_regression_threshold_from_the_window_spread() -> None:
    p = perf(task="regression", tolerance=0.0)
    p.reference = {"mae": 4.0}
    errors = np.array([1.0, 3.0, 5.0, 7.0])
    v = np.array([4, errors.sum(), (errors**2).sum(), (errors**4).sum(), 0, 0], dtype=float)
    expected = 4.0 + p.z * errors.std() / 2  # population std / sqrt(4)
    assert p.threshold("mae", 4, v) == pytest.approx(expected)


def test_reload_keeps_windows_and_counters() -> None:
    p = perf(score="s")
    p.add(list(zip(p.read(Rows({"s": [0.9, 0.2]}, 2)), [1, 1])), T0)
    q = Performance(from_dict({"performance": {"min_labels": 1, "score": "s", "threshold": 0.3}}), None, previous=p)
    assert score(q, "accuracy") == 0.5
    assert samples(q)[("model_performance_labels_scored_total", "m", "1")] == 2


def test_unconfigured_columns_come_from_the_baseline(tmp_path: Path) -> None:
    """The demo's baseline: outputs probability (numeric, in [0, 1]) and label (categorical), label outcome."""
    baseline = load_baseline(build_demo_baseline(tmp_path))
    p = Performance(from_dict({"performance": {"min_labels": 1}}), baseline)
    assert (p.task, p.baseline_predictions[0], p.score) == ("classification", "label", "probability")
    assert sorted(p.classes) == ["0", "1"]
    preds = p.read(Rows({"probability": [0.8, 0.3], "label": [1, 0]}, 2))
    assert preds == [Prediction("1", 0.8), Prediction("0", 0.3)]
    p.add(list(zip(preds, [1, 1])), T0)
    assert score(p, "accuracy") == 0.5
    assert score(p, "log_loss") == pytest.approx(sk.log_loss([1, 1], [0.8, 0.3], labels=[0, 1]))
    s = samples(p)
    assert s[("model_performance_baseline", "accuracy", "m", "1")] == baseline.performance["accuracy"]
    assert ("model_performance_threshold", "accuracy", "5m", "m", "1") in s


def test_business_kpis_per_predicted_class() -> None:
    p = perf(prediction="decision")
    decisions = ["1", "1", "1", "0", "0"]  # approve, approve, approve, decline, decline
    outcomes = [1, 0, 1, 1, 0]  # repaid?
    values = [120.0, None, 80.0, 0.0, None]  # revenue where known
    p.add(list(zip(p.read(Rows({"decision": decisions}, 5)), outcomes)), T0, values)
    s = samples(p)
    assert s[("model_outcome_rate", "1", "5m", "m", "1")] == pytest.approx(2 / 3)
    assert s[("model_outcome_rate", "0", "5m", "m", "1")] == pytest.approx(1 / 2)
    assert s[("model_outcome_value_mean", "1", "5m", "m", "1")] == pytest.approx(100.0)
    assert s[("model_outcome_value_mean", "0", "5m", "m", "1")] == 0.0
    assert s[("model_outcome_positive_total", "1", "m", "1")] == 2
    assert s[("model_outcome_value_total", "1", "m", "1")] == 200.0
    assert s[("model_outcome_values_total", "1", "m", "1")] == 2
    assert s[("model_performance_labels_scored_total", "m", "1")] == 5  # values are not labels
    assert score(p, "accuracy") == pytest.approx(3 / 5)
    assert ("model_outcome_value_mean", OTHER_CLASS, "5m", "m", "1") not in s


def test_calibration_error_against_a_direct_computation() -> None:
    rng = np.random.default_rng(11)
    s = (rng.integers(0, 1000, 5000) + 0.5) / 1000  # at fine-bin centres: the histogram loses nothing
    y = (rng.random(5000) < s**2).astype(int)  # over-confident scores
    p = perf(score="s")
    p.add(list(zip(p.read(Rows({"s": s.tolist()}, len(s))), y.tolist())), T0)
    bins = np.minimum((s * 10).astype(int), 9)
    direct = sum(abs(y[bins == b].sum() - s[bins == b].sum()) for b in range(10)) / len(s)
    assert score(p, "calibration_error") == pytest.approx(direct)
    assert direct > 0.1


def _cbpe(labels_from: Any, n: int = 20_000) -> tuple[Performance, float]:
    """A binary model with scores s; labels drawn by `labels_from(s)`; returns it and the realised accuracy."""
    rng = np.random.default_rng(5)
    s = rng.beta(2, 2, n)
    y = (rng.random(n) < labels_from(s)).astype(int)
    p = perf(score="s")
    preds = p.read(Rows({"s": s.tolist()}, n))
    p.observe(preds, T0)
    # the labels of the first 1,000 predictions arrive; the estimate covers all 20,000
    p.add(list(zip(preds[:1000], y[:1000].tolist())), T0)
    return p, float(((s >= 0.5).astype(int) == y).mean())


def test_the_estimate_is_within_two_points_of_the_realised_accuracy_when_calibrated() -> None:
    p, realised = _cbpe(lambda s: s)
    s = samples(p)
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert ("model_performance_estimated", metric, "1h", "m", "1") in s
    assert abs(s[("model_performance_estimated", "accuracy", "1h", "m", "1")] - realised) < 0.02


def test_the_estimate_is_withheld_when_scores_are_not_calibrated() -> None:
    p, _ = _cbpe(lambda s: 1 - s)  # scores point the wrong way
    assert not p.calibrated()
    assert not [k for k in samples(p) if k[0] == "model_performance_estimated"]
    # a calibration error recorded in the baseline file decides instead of the labels
    p.reference = {"calibration_error": 0.01}
    assert [k for k in samples(p) if k[0] == "model_performance_estimated"]


def test_no_estimate_before_enough_labels_show_calibration() -> None:
    p = perf(score="s", min_labels=50)
    preds = p.read(Rows({"s": [0.9] * 100}, 100))
    p.observe(preds, T0)
    assert not p.calibrated()  # no labels yet, nothing in the baseline
    assert not [k for k in samples(p) if k[0] == "model_performance_estimated"]


def test_label_drift_against_the_baseline_labels(tmp_path: Path) -> None:
    """Prior shift: the demo baseline's outcome is about 46 % positive; a window of 80 % positives drifts."""
    from exporter.drift.methods import Reference
    from exporter.drift.methods import score as drift_score

    baseline = load_baseline(build_demo_baseline(tmp_path))
    config = from_dict({"performance": {"min_labels": 1}, "drift": {"min_rows": 100}})
    p = Performance(config, baseline)
    label_col = baseline.column("outcome")
    y = [1] * 800 + [0] * 200
    preds = p.read(Rows({"probability": [0.7] * 1000, "label": [1] * 1000}, 1000))
    p.add(list(zip(preds, y)), T0)
    s = samples(p)
    key = ("model_drift_score", "label", "outcome", "chisquare", "5m", "m", "1")
    fine = np.zeros(len(label_col.categories) + 1)
    for value, n in (("1", 800), ("0", 200)):
        fine[list(label_col.categories).index(value)] = n
    assert s[key] == pytest.approx(float(drift_score("chisquare", Reference.from_column(label_col), fine).value))
    assert s[("model_drift_detected", "label", "outcome", "chisquare", "5m", "m", "1")] == 1
    assert ("model_drift_score", "label", "outcome", "psi", "5m", "m", "1") in s
    # the same class mix as the baseline: no drift
    q = Performance(config, baseline)
    share = label_col.counts[list(label_col.categories).index("1")] / sum(label_col.counts)
    ones = round(1000 * share)
    q.add(list(zip(preds, [1] * ones + [0] * (1000 - ones))), T0)
    assert samples(q)[("model_drift_detected", "label", "outcome", "chisquare", "5m", "m", "1")] == 0
