"""The labels join: outcomes for out-of-order, duplicate, late, expired and unknown ids; a bounded cache."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from typing import Any

import pytest

from exporter.config import Config, LabelsConfig, PerformanceConfig
from exporter.events import Event, Feedback, Label
from exporter.worker.analysis import Analysis
from exporter.worker.labels_join import JoinCache

JSON = {b"content-type": b"application/json"}
T0 = 1_700_000_000.0


def test_outcomes() -> None:
    cache: JoinCache[str] = JoinCache(size=10, ttl=60)
    cache.add("a", T0, "A")
    cache.add("b", T0 + 1, "B")
    assert cache.join("b", T0 + 5) == ("matched", cache.entries["b"])  # out of order: b before a
    assert cache.join("a", T0 + 30)[0] == "matched"
    assert cache.join("a", T0 + 31) == ("duplicate", None)
    assert cache.join("zz", T0 + 31) == ("unknown_id", None)
    cache.add("c", T0 + 2, "C")
    assert cache.join("c", T0 + 2 + 61) == ("expired", None)  # later than the ttl
    assert cache.outcomes == {"matched": 2, "duplicate": 1, "unknown_id": 1, "expired": 1, "invalid": 0}


def test_the_cache_is_bounded_and_counts_what_it_forgets() -> None:
    cache: JoinCache[int] = JoinCache(size=100, ttl=10)
    for i in range(1000):
        cache.add(str(i), T0, i)
    assert len(cache.entries) == 100
    assert cache.evictions["full"] == 900
    assert cache.join("0", T0)[0] == "unknown_id"  # pushed out by newer predictions
    assert cache.join("999", T0)[0] == "matched"
    cache.add("late", T0 + 25, 0)  # everything older than two ttls is forgotten
    assert list(cache.entries) == ["late"]
    assert cache.evictions["expired"] == 100
    cache.resize(1, 10)
    assert len(cache.entries) == 1


def test_a_retried_id_replaces_the_prediction() -> None:
    cache: JoinCache[str] = JoinCache(size=10, ttl=60)
    cache.add("a", T0, "old")
    cache.add("a", T0 + 1, "new")
    outcome, entry = cache.join("a", T0 + 2)
    assert outcome == "matched" and entry is not None and entry.prediction == "new"


def test_random_ids_never_grow_the_cache() -> None:
    rng = random.Random(1)
    cache: JoinCache[int] = JoinCache(size=50, ttl=5)
    for i in range(5000):
        cache.add(f"{rng.random()}", T0 + i / 100, i)
        cache.join(f"{rng.random()}", T0 + i / 100)
        assert len(cache.entries) <= 50
    assert sum(cache.outcomes.values()) == 5000


# ---------------------------------------------------------------- through the worker's Analysis


def _event(rid: str, probabilities: list[float], at: float) -> Event:
    n = len(probabilities)
    request = {"id": rid, "inputs": [{"name": "x", "shape": [n], "datatype": "FP32", "data": [1.0] * n}]}
    response = {
        "id": rid,
        "outputs": [
            {"name": "probability", "shape": [n], "datatype": "FP32", "data": probabilities},
            {"name": "label", "shape": [n], "datatype": "INT64", "data": [int(p >= 0.5) for p in probabilities]},
        ],
    }
    return Event(at, "/v2/models/{model}/infer", b"/v2/models/m/infer", 200, 0.01, JSON,
                 json.dumps(request).encode(), JSON, json.dumps(response).encode(), "m", "1")


def _analysis(**perf: Any) -> Analysis:
    config = dataclasses.replace(
        Config(),
        labels=LabelsConfig(cache_size=1000, ttl=3600),
        performance=PerformanceConfig(prediction="label", score="probability", min_labels=1, **perf),
    )
    return Analysis(config)


def _values(analysis: Analysis, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in analysis.collect()
        for s in family.samples
        if s.name == name
    }


def _one(analysis: Analysis, name: str, **labels: str) -> float:
    found = [v for k, v in _values(analysis, name).items() if labels.items() <= dict(k).items()]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_predictions_joined_to_labels_are_scored() -> None:
    import time

    now = time.time()
    analysis = _analysis()
    analysis.process([_event("r1", [0.9, 0.2, 0.7], now - 30), _event("r2", [0.1], now - 20)])
    labels = [Label("r1:0", 1, None, None), Label("r1:1", 1, None, None), Label("r1:2", 0, None, None),
              Label("r2", 0, now - 5, 3.5), Label("r1:0", 1, None, None), Label("nope", 1, None, None)]
    analysis.labels(Feedback(now, labels, invalid=2))
    assert _one(analysis, "model_labels_total", outcome="matched") == 4
    assert _one(analysis, "model_labels_total", outcome="duplicate") == 1
    assert _one(analysis, "model_labels_total", outcome="unknown_id") == 1
    assert _one(analysis, "model_labels_total", outcome="invalid") == 2
    assert _one(analysis, "model_performance_score", metric="accuracy", window="5m") == pytest.approx(0.5)
    assert _one(analysis, "model_performance_labels_scored_total") == 4
    assert _one(analysis, "model_labels_cache_entries") == 4
    # delays: 30, 30, 30 (arrival) and 15 (the label's own time)
    assert _one(analysis, "model_label_delay_seconds_sum") == pytest.approx(105, abs=0.5)
    assert _one(analysis, "model_label_delay_seconds_count") == 4
    assert _one(analysis, "model_label_delay_seconds_bucket", le="10.0") == 0
    assert _one(analysis, "model_label_delay_seconds_bucket", le="60.0") == 4
    assert _one(analysis, "model_window_labels", window="1h") == 4


def test_a_label_later_than_the_ttl_is_expired() -> None:
    analysis = _analysis()
    analysis.joins.resize(1000, 60)
    analysis.process([_event("r", [0.9], T0)])
    analysis.labels(Feedback(T0 + 61, [Label("r", 1, None, None)], 0))
    assert _one(analysis, "model_labels_total", outcome="expired") == 1
    assert _one(analysis, "model_performance_labels_scored_total") == 0


def test_the_cache_and_counters_survive_a_reload() -> None:
    first = _analysis()
    first.process([_event("r", [0.9], T0)])
    second = Analysis(first.config, previous=first)
    second.labels(Feedback(T0 + 1, [Label("r", 1, None, None)], 0))
    assert _one(second, "model_labels_total", outcome="matched") == 1
    assert not math.isnan(_one(second, "model_performance_labels_scored_total"))


def test_segments_come_from_the_request_features() -> None:
    config = dataclasses.replace(
        Config(),
        performance=PerformanceConfig(prediction="label", score="probability", min_labels=1, segments=("x",)),
    )
    analysis = Analysis(config)
    analysis.process([_event("r", [0.9, 0.2], T0)])
    analysis.labels(Feedback(T0 + 1, [Label("r:0", 1, None, None), Label("r:1", 1, None, None)], 0))
    assert _one(analysis, "model_segment_score", column="x", segment="1", metric="accuracy", window="1h") == 0.5
    assert _one(analysis, "model_segment_labels", column="x", segment="1", window="1h") == 2


def test_performance_windows_run_on_the_windows_clock_not_the_wall_clock() -> None:
    """Like the drift windows: a step of the wall clock (NTP, a resumed VM) neither empties nor
    stretches them; monotonic time passing does expire them."""
    from exporter.drift.windows import WindowClock

    wall, mono = [T0], [1000.0]
    analysis = _analysis()
    analysis.clock = WindowClock(wall=lambda: wall[0], monotonic=lambda: mono[0])
    analysis.process([_event("a", [0.9, 0.2], T0 - 5)])
    analysis.labels(Feedback(T0, [Label("a:0", 1, None, None), Label("a:1", 1, None, None)], 0))
    assert _one(analysis, "model_window_labels", window="5m") == 2
    wall[0] += 7200  # the wall clock jumps two hours: the windows still hold the labels
    assert _one(analysis, "model_window_labels", window="5m") == 2
    assert _one(analysis, "model_performance_score", metric="accuracy", window="5m") == pytest.approx(0.5)
    mono[0] += 600  # ten minutes pass: out of the 5m window, still in the 1h one
    assert _one(analysis, "model_window_labels", window="5m") == 0
    assert _one(analysis, "model_window_labels", window="1h") == 2
