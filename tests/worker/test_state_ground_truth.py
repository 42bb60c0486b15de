"""Snapshots carry ground truth too: performance windows, the predictions waiting for labels, and the label counters."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from test_labels_join import _event

from exporter.config import Config, LabelsConfig, PerformanceConfig
from exporter.events import Feedback, Label
from exporter.worker import state
from exporter.worker.analysis import Analysis


def _analysis(states: Path, **perf: Any) -> Analysis:
    config = dataclasses.replace(
        Config(),
        state_dir=str(states),
        labels=LabelsConfig(cache_size=1000, ttl=3600),
        performance=PerformanceConfig(prediction="label", score="probability", min_labels=1, **perf),
    )
    return Analysis(config)


def _value(analysis: Analysis, name: str, **labels: str) -> float:
    return sum(s.value for family in analysis.collect() for s in family.samples
               if s.name == name and labels.items() <= s.labels.items())


def _first_half_labelled(analysis: Analysis) -> float:
    now = time.time()
    analysis.process([_event(f"r{i}", [0.9, 0.2], now - 30) for i in range(10)])
    # r0..r4 labelled now (half right), r5..r9 still waiting for their labels
    labels = [Label(f"r{i}:{j}", 1 if j == 0 else i % 2, None, None) for i in range(5) for j in range(2)]
    analysis.labels(Feedback(now, labels, 0))
    return now


def test_a_clean_stop_keeps_windows_counters_and_the_predictions_waiting_for_labels(tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = _analysis(states)
    now = _first_half_labelled(first)
    measures = [
        ("model_window_labels", {"window": "1h"}),
        ("model_performance_score", {"metric": "accuracy", "window": "5m"}),
        ("model_performance_score", {"metric": "roc_auc", "window": "1h"}),
        ("model_labels_total", {"outcome": "matched"}),
        ("model_performance_labels_scored_total", {}),
        ("model_label_delay_seconds_count", {}),
        ("model_labels_cache_entries", {}),
    ]
    before = [_value(first, name, **labels) for name, labels in measures]
    assert before[0] == 10 and 0 < before[1] < 1 and 0 < before[2] <= 1
    first.save_state(clean=True)

    second = _analysis(states)
    assert second.restored
    assert [_value(second, name, **labels) for name, labels in measures] == before
    # the labels of the predictions made before the restart still find them
    second.labels(Feedback(now + 1, [Label(f"r{i}:0", 1, None, None) for i in range(5, 10)], 0))
    assert _value(second, "model_labels_total", outcome="matched") == 15
    assert _value(second, "model_labels_total", outcome="unknown_id") == 0
    assert _value(second, "model_window_labels", window="1h") == 15


def test_after_a_crash_windows_and_waiting_predictions_return_but_counters_start_at_zero(tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = _analysis(states)
    now = _first_half_labelled(first)
    first.save_state(clean=False)
    second = _analysis(states)
    assert _value(second, "model_window_labels", window="1h") == 10
    assert _value(second, "model_labels_total", outcome="matched") == 0
    assert _value(second, "model_performance_labels_scored_total") == 0
    second.labels(Feedback(now + 1, [Label("r9:1", 0, None, None)], 0))
    assert _value(second, "model_labels_total", outcome="matched") == 1


def test_another_class_set_or_task_restores_no_performance_state(tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = _analysis(states)
    _first_half_labelled(first)
    first.save_state(clean=True)
    other = Analysis(dataclasses.replace(
        Config(), state_dir=str(states), labels=LabelsConfig(cache_size=1000, ttl=3600),
        performance=PerformanceConfig(task="regression", prediction="probability", min_labels=1)))
    assert _value(other, "model_window_labels", window="1h") == 0
    assert _value(other, "model_labels_cache_entries") == 0  # class predictions would score wrong as numbers


def test_the_snapshot_stays_small_with_sparse_windows(tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = _analysis(states)
    _first_half_labelled(first)
    first.save_state(clean=True)
    # a binary classifier's performance vector has thousands of cells (score bins) per slice
    assert (states / state.FILE_NAME).stat().st_size < 200_000
