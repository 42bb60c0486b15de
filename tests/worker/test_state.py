"""Snapshots of the worker's windows and counters: written atomically, restored onto the same baseline only."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_label_flow import _baseline, _event, _samples, _value

from exporter.config import Config
from exporter.worker import state
from exporter.worker.analysis import Analysis


def _analysis(tmp_path: Path, state_dir: Path, baseline: str | None = None) -> Analysis:
    return Analysis(dataclasses.replace(Config(), baseline=baseline or _baseline(tmp_path), state_dir=str(state_dir)))


def _window_rows(analysis: Analysis, window: str = "1h") -> float:
    return _value(_samples(analysis), "model_window_rows", window=window)


def test_a_clean_stop_restores_windows_and_counters(tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = _analysis(tmp_path, states)
    first.process([_event("m", "1", rows=3) for _ in range(10)])
    assert _window_rows(first) == 30
    rows_before = _value(_samples(first), "model_rows_total")
    first.save_state(clean=True)
    assert (states / state.FILE_NAME).stat().st_mode & 0o777 == 0o644
    assert not [p for p in states.iterdir() if p.name != state.FILE_NAME]  # no temporary file left

    second = _analysis(tmp_path, states, first.config.baseline)
    samples = _samples(second)
    assert _window_rows(second) == 30
    assert _value(samples, "model_rows_total") == rows_before == 30
    assert _value(samples, "model_column_values_total", column="x") == 30
    assert _value(samples, "model_exporter_state_restored") == 1
    assert second.bound == ("m", "1")


def test_after_a_crash_only_windows_come_back(tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = _analysis(tmp_path, states)
    first.process([_event("m", "1", rows=2) for _ in range(5)])
    first.save_state(clean=False)  # a periodic snapshot: the last one before a crash
    second = _analysis(tmp_path, states, first.config.baseline)
    assert _window_rows(second) == 10
    assert _value(_samples(second), "model_rows_total") == 0  # a counter going back would read as a reset


def test_windows_expire_across_the_downtime(tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = _analysis(tmp_path, states)
    first.process([_event("m", "1") for _ in range(4)])
    first.save_state(clean=True)
    doc = json.loads((states / state.FILE_NAME).read_text())
    for window in doc["windows"].values():  # as if written two hours ago
        window["head"] -= 2 * 3600 // 300 + 100
    (states / state.FILE_NAME).write_text(json.dumps(doc))
    second = _analysis(tmp_path, states, first.config.baseline)
    assert _window_rows(second, "1h") == 0 and _window_rows(second, "5m") == 0


def test_another_baseline_or_a_broken_file_is_not_restored(tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = _analysis(tmp_path, states)
    first.process([_event("m", "1") for _ in range(4)])
    first.save_state(clean=True)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = _baseline(other_dir)
    doc: dict[str, Any] = json.loads((states / state.FILE_NAME).read_text())
    doc["baseline_sha256"] = "0" * 64
    (states / state.FILE_NAME).write_text(json.dumps(doc))
    assert _window_rows(_analysis(tmp_path, states, other)) == 0
    (states / state.FILE_NAME).write_text("{ not json")
    fresh = _analysis(tmp_path, states, first.config.baseline)
    assert _window_rows(fresh) == 0 and _value(_samples(fresh), "model_exporter_state_restored") == 0


def test_a_failed_write_is_counted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    analysis = _analysis(tmp_path, blocker)
    analysis.save_state(clean=False)
    assert _value(_samples(analysis), "model_exporter_state_snapshot_failures_total") == 1
    ok = _analysis(tmp_path, tmp_path / "state")
    before = time.time()
    ok.save_state(clean=False)
    assert _value(_samples(ok), "model_exporter_state_snapshot_timestamp_seconds") >= before
    assert os.path.exists(tmp_path / "state" / state.FILE_NAME)


def _break_counters(doc: dict[str, Any]) -> None:
    doc["counters"]["rows"] = [["m", "1"]]  # a row without its count


def _break_joins(doc: dict[str, Any]) -> None:
    doc["ground_truth"]["joins"]["entries"] = [["id-1"]]


def _break_a_column(doc: dict[str, Any]) -> None:
    doc["columns"] = {"feature/x": {"quality": "none"}}


def _break_the_windows(doc: dict[str, Any]) -> None:
    doc["windows"]["1h"] = {"head": 3}  # no ring


@pytest.mark.parametrize("damage", [_break_counters, _break_joins, _break_a_column, _break_the_windows])
def test_a_snapshot_malformed_half_way_through_starts_the_worker_empty(
    tmp_path: Path, damage: Callable[[dict[str, Any]], None], caplog: pytest.LogCaptureFixture
) -> None:
    states = tmp_path / "state"
    first = _analysis(tmp_path, states)
    first.process([_event("m", "1", rows=3) for _ in range(10)])
    first.save_state(clean=True)
    doc: dict[str, Any] = json.loads((states / state.FILE_NAME).read_text())
    damage(doc)  # after the parts restored first (the windows come first), so some went in before it broke
    (states / state.FILE_NAME).write_text(json.dumps(doc))

    with caplog.at_level("WARNING"):
        second = _analysis(tmp_path, states, first.config.baseline)  # never an exception: the worker starts
    assert "not restored, starting empty: malformed" in caplog.text
    samples = _samples(second)
    assert _value(samples, "model_exporter_state_restored") == 0
    assert _window_rows(second) == 0  # nothing half restored
    assert _value(samples, "model_rows_total") == 0
    second.process([_event("m", "1", rows=2)])  # and it works as a fresh one
    assert _window_rows(second) == 2
