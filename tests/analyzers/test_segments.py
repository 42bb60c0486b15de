"""Fairness segments: rates per segment against sklearn's confusion matrix, gaps, and caps under random values."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from exporter.adapters import Rows
from exporter.analyzers.performance import Performance
from exporter.analyzers.segments import MISSING_SEGMENT, OTHER_SEGMENT, rates
from exporter.config import from_dict

T0 = 1_700_000_000.0


def perf(**section: Any) -> Performance:
    return Performance(from_dict({"performance": {"min_labels": 1, "prediction": "label", **section}}), None)


def _samples(p: Performance, name: str) -> dict[tuple[str, ...], float]:
    return {tuple(labels[:-2]): value for n, labels, value in p.samples(T0, ["m", "1"]) if n == name}


def test_rates_per_segment_and_gaps_to_the_whole() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    region = rng.choice(["north", "south", "west"], n)
    y = rng.integers(0, 2, n)
    # the model is worse in the west: it flips 40 % of its answers there
    yhat = np.where((region == "west") & (rng.random(n) < 0.4), 1 - y, np.where(rng.random(n) < 0.1, 1 - y, y))
    p = perf(segments=["region"])
    preds = p.read(Rows({"label": yhat.tolist()}, n), Rows({"region": region.tolist()}, n))
    p.add(list(zip(preds, y.tolist())), T0)
    scores = _samples(p, "model_segment_score")
    gaps = _samples(p, "model_segment_gap")
    overall = rates(*[float(v) for v in confusion_matrix(y, yhat, labels=[1, 0]).ravel()[[0, 2, 1, 3]]])
    for segment in ("north", "south", "west"):
        m = region == segment
        (tp, fn), (fp, tn) = confusion_matrix(y[m], yhat[m], labels=[1, 0])
        assert scores[("region", segment, "accuracy", "5m")] == pytest.approx((tp + tn) / m.sum())
        assert scores[("region", segment, "action_rate", "5m")] == pytest.approx((tp + fp) / m.sum())
        assert scores[("region", segment, "false_positive_rate", "5m")] == pytest.approx(fp / (fp + tn))
        assert scores[("region", segment, "false_negative_rate", "5m")] == pytest.approx(fn / (fn + tp))
        assert gaps[("region", segment, "accuracy", "5m")] == pytest.approx(
            scores[("region", segment, "accuracy", "5m")] - overall["accuracy"])
    assert gaps[("region", "west", "accuracy", "5m")] < -0.1 < gaps[("region", "north", "accuracy", "5m")] - 0.2
    assert _samples(p, "model_segment_labels")[("region", "west", "5m")] == (region == "west").sum()


def test_segment_values_are_capped_under_random_values() -> None:
    p = perf(segments=["user"], max_segment_values=5)
    rnd = random.Random(4)
    for _ in range(20):
        users = [f"u{rnd.getrandbits(64)}" for _ in range(100)]
        users[0] = None  # type: ignore[call-overload]
        preds = p.read(Rows({"label": [1] * 100}, 100), Rows({"user": users}, 100))
        p.add(list(zip(preds, [1] * 100)), T0)
    segments = {key[1] for key in _samples(p, "model_segment_labels")}
    assert len(segments) == 7 and {OTHER_SEGMENT, MISSING_SEGMENT} <= segments
    assert sum(_samples(p, "model_segment_labels").values()) == 2 * 2000  # both windows


def test_rows_without_features_fall_in_missing_and_min_labels_holds_back() -> None:
    p = perf(segments=["region"], min_labels=10)
    preds = p.read(Rows({"label": [1, 0]}, 2), None)
    p.add(list(zip(preds, [1, 1])), T0)
    assert not _samples(p, "model_segment_score")
    q = perf(segments=["region"])
    q.add(list(zip(q.read(Rows({"label": [1, 0]}, 2), None), [1, 1])), T0)
    assert set(_samples(q, "model_segment_labels")) == {("region", MISSING_SEGMENT, "5m"), ("region", MISSING_SEGMENT, "1h")}


def test_the_gap_threshold_widens_for_small_segments() -> None:
    p = perf(segments=["region"], false_alarm_rate=0.001)
    region = ["big"] * 1000 + ["small"] * 20
    y = [1, 0] * 510
    preds = p.read(Rows({"label": y}, 1020), Rows({"region": region}, 1020))
    p.add(list(zip(preds, y)), T0)
    thresholds = _samples(p, "model_segment_gap_threshold")
    big = thresholds[("region", "big", "accuracy", "5m")]
    small = thresholds[("region", "small", "accuracy", "5m")]
    assert big == 0.1  # the floor: 1,000 labels of a perfect model
    assert small == 0.1  # p = 1: no noise either
    q = perf(segments=["region"])
    noisy = [1, 0, 0, 1] * 255  # accuracy 0.5 overall
    q.add(list(zip(q.read(Rows({"label": [1, 0] * 510}, 1020), Rows({"region": region}, 1020)), noisy)), T0)
    t = _samples(q, "model_segment_gap_threshold")
    assert t[("region", "small", "accuracy", "5m")] == pytest.approx(q.segments.z * (0.25 / 20) ** 0.5)
    assert t[("region", "big", "accuracy", "5m")] == 0.1
