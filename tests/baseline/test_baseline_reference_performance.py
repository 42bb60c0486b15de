"""The baseline's reference performance against scikit-learn, and against the performance windows on the same data.

`baseline build` records every metric ModelPerformanceDrop can compare (accuracy, precision,
recall, F1, ROC AUC, log-loss, calibration error; MAE, RMSE, MAPE), by the definitions the
worker's windows use, so a model that performs as in training is not "below its baseline".
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from exporter.analyzers.performance import Performance, Prediction
from exporter.baseline.build import BuildOptions, build_baseline
from exporter.baseline.readers import Chunk
from exporter.config import Config, PerformanceConfig


def _build(data: dict[str, list[object]], chunks: int = 3, **options: object) -> dict[str, float]:
    rows = len(next(iter(data.values())))
    step = -(-rows // chunks)

    def source():  # type: ignore[no-untyped-def]
        for start in range(0, rows, step):
            part = {k: v[start : start + step] for k, v in data.items()}
            yield Chunk(part, len(next(iter(part.values()))))

    result = build_baseline(source, BuildOptions(**options), files=("memory",), created="2024-05-01T12:00:00Z")  # type: ignore[arg-type]
    return dict(result.baseline.performance)


def _binary(n: int = 4000, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.uniform(size=n)
    label = (rng.uniform(size=n) < score).astype(int)  # calibrated: P(y=1 | s) = s
    pred = (score >= 0.5).astype(int)
    return score, label, pred


def test_binary_classifier_with_a_score_matches_scikit_learn() -> None:
    score, label, pred = _binary()
    perf = _build({"x": list(score * 3), "pred": list(pred), "proba": list(score), "y": list(label)},
                  predictions=("pred", "proba"), label="y", categorical=("pred", "y"))
    assert perf["accuracy"] == pytest.approx(skm.accuracy_score(label, pred), abs=1e-12)
    assert perf["precision"] == pytest.approx(skm.precision_score(label, pred), abs=1e-12)
    assert perf["recall"] == pytest.approx(skm.recall_score(label, pred), abs=1e-12)
    assert perf["f1"] == pytest.approx(skm.f1_score(label, pred), abs=1e-12)
    assert perf["roc_auc"] == pytest.approx(skm.roc_auc_score(label, score), abs=1e-3)  # scores binned to 0.001
    assert perf["log_loss"] == pytest.approx(skm.log_loss(label, score), abs=1e-9)
    # calibrated by construction: ECE small; a miscalibrated score: large
    assert perf["calibration_error"] < 0.05
    skewed = _build({"pred": list(pred), "proba": list(score**3), "y": list(label)},
                    predictions=("pred", "proba"), label="y", categorical=("pred", "y"))
    assert skewed["calibration_error"] > 0.15


def test_the_positive_class_is_configurable() -> None:
    _, label, pred = _binary()
    names = np.array(["no", "yes"])
    perf = _build({"pred": list(names[pred]), "y": list(names[label])}, predictions=("pred",), label="y", positive="yes")
    assert perf["precision"] == pytest.approx(skm.precision_score(names[label], names[pred], pos_label="yes"))
    flipped = _build({"pred": list(names[pred]), "y": list(names[label])}, predictions=("pred",), label="y",
                     positive="no")
    assert flipped["precision"] == pytest.approx(skm.precision_score(names[label], names[pred], pos_label="no"))


def test_multiclass_is_macro_averaged_like_scikit_learn() -> None:
    rng = np.random.default_rng(5)
    label = rng.choice(["setosa", "versicolor", "virginica"], size=3000)
    pred = np.where(rng.uniform(size=3000) < 0.8, label, rng.choice(["setosa", "versicolor", "virginica"], size=3000))
    perf = _build({"pred": list(pred), "y": list(label)}, predictions=("pred",), label="y")
    assert perf["accuracy"] == pytest.approx(skm.accuracy_score(label, pred))
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert perf[name] == pytest.approx(fn(label, pred, average="macro"), abs=1e-12), name
    assert "roc_auc" not in perf and "log_loss" not in perf


def test_regression_matches_scikit_learn() -> None:
    rng = np.random.default_rng(9)
    y = rng.normal(50, 10, size=5000)
    y[:10] = 0.0  # left out of MAPE, as in the windows
    p = y + rng.normal(0, 3, size=5000)
    perf = _build({"p": list(p), "y": list(y)}, predictions=("p",), label="y")
    assert perf["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert perf["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    nz = y != 0
    assert perf["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y[nz], p[nz]))


def test_a_window_of_the_training_data_scores_as_the_baseline(tmp_path: Path) -> None:
    """The worker's windows and the baseline agree on the same rows: no drop where there is none."""
    score, label, pred = _binary(2000, seed=11)
    data = {"x": list(score), "pred": list(pred), "proba": list(score), "y": list(label)}
    rows = len(label)
    result = build_baseline(lambda: iter([Chunk(data, rows)]),
                            BuildOptions(predictions=("pred", "proba"), label="y", categorical=("pred", "y")),
                            files=("memory",), created="2024-05-01T12:00:00Z")
    config = dataclasses.replace(Config(), performance=dataclasses.replace(PerformanceConfig(), min_labels=1))
    analyzer = Performance(config, result.baseline)
    now = time.time()
    pairs = [(Prediction(str(p), float(s)), int(y)) for p, s, y in zip(pred, score, label)]
    assert analyzer.add(pairs, now) == rows
    n, window, _ = analyzer.scores(analyzer.cumulative)
    assert n == rows
    for metric, value in result.baseline.performance.items():
        assert window[metric] == pytest.approx(value, abs=1e-12), metric


def test_a_merged_baseline_keeps_the_additive_metrics_exactly_and_drops_the_others() -> None:
    from exporter.baseline import merge_all

    score, label, pred = _binary(3000, seed=21)
    options = BuildOptions(predictions=("pred", "proba"), label="y", categorical=("pred", "y"))
    whole = {"pred": list(pred), "proba": list(score), "y": list(label)}

    def one(part: slice, like=None):  # type: ignore[no-untyped-def]
        data = {k: v[part] for k, v in whole.items()}
        rows = len(data["y"])
        opts = options if like is None else BuildOptions(like=like)  # roles and types come from the reference
        return build_baseline(lambda: iter([Chunk(data, rows)]), opts, files=("m",), created="2024-05-01T12:00:00Z")

    full = one(slice(None)).baseline.performance
    reference = one(slice(None)).baseline  # partitions share its edges and categories (--edges-from)
    first = one(slice(0, 1000), reference).baseline
    merged = merge_all([first, one(slice(1000, None), reference).baseline]).performance
    assert set(merged) == {"accuracy", "log_loss"}
    assert merged["accuracy"] == pytest.approx(full["accuracy"], abs=1e-12)
    assert merged["log_loss"] == pytest.approx(full["log_loss"], abs=1e-12)
    assert "f1" in first.performance  # each part has it; the merge cannot add it up
