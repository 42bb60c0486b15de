"""Windows run on a monotonic clock and place rows by when their request arrived; late rows are counted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from test_label_flow import _baseline, _event, _samples, _value

from exporter.config import Config
from exporter.drift.windows import SlidingCounts, WindowClock
from exporter.worker.analysis import Analysis


class Clocks:
    """A wall clock and a monotonic one that tests move (and step) by hand."""

    def __init__(self) -> None:
        self.wall_time = 1_700_000_000.0
        self.mono_time = 5_000.0

    def wall(self) -> float:
        return self.wall_time

    def monotonic(self) -> float:
        return self.mono_time

    def tick(self, seconds: float) -> None:
        self.wall_time += seconds
        self.mono_time += seconds


def analysis(tmp_path: Path, clocks: Clocks) -> Analysis:
    a = Analysis(dataclasses.replace(Config(), baseline=_baseline(tmp_path)))
    a.clock = WindowClock(wall=clocks.wall, monotonic=clocks.monotonic)
    return a


def rows(a: Analysis, window: str) -> float:
    return _value(_samples(a), "model_window_rows", window=window)


def late(a: Analysis, window: str) -> float:
    return _value(_samples(a), "model_window_late_rows_total", window=window)


def test_a_wall_clock_step_back_does_not_stretch_the_window(tmp_path: Path) -> None:
    clocks = Clocks()
    a = analysis(tmp_path, clocks)
    for step in range(40):  # 20 minutes, 10 rows every 30 s; an hour back halfway
        if step == 20:
            clocks.wall_time -= 3600
        a.process([_event("m", "1", rows=10)._replace(time=clocks.wall_time, duration=0.01)])
        clocks.tick(30)
    # the 5m window holds 4.5 to 5 minutes of rows, whatever the wall clock did (by wall time: 13×)
    assert 90 <= rows(a, "5m") <= 100
    assert rows(a, "1h") == 400
    assert late(a, "5m") == 0


def test_a_wall_clock_step_forward_neither_empties_nor_stretches_the_window(tmp_path: Path) -> None:
    clocks = Clocks()
    a = analysis(tmp_path, clocks)
    for step in range(20):
        if step == 10:
            clocks.wall_time += 3600
        a.process([_event("m", "1", rows=10)._replace(time=clocks.wall_time, duration=0.01)])
        clocks.tick(30)
    assert 90 <= rows(a, "5m") <= 100
    assert rows(a, "1h") == 200


def test_a_backlog_lands_in_the_slices_its_requests_arrived_in(tmp_path: Path) -> None:
    """Ten minutes of traffic analysed in one go (a worker at nice 19 behind): placed by arrival, late ones counted."""
    clocks = Clocks()
    a = analysis(tmp_path, clocks)
    a.process([_event("m", "1", rows=1)._replace(time=clocks.wall_time)])  # the worker saw traffic before
    start = clocks.wall_time
    clocks.tick(600)
    # one exchange every 10 s over the last 10 minutes, each took 2 s: arrived 2 s before its time stamp
    backlog = [_event("m", "1", rows=1)._replace(time=start + 10 * i + 2.0, duration=2.0) for i in range(60)]
    a.process(backlog)
    in_5m = rows(a, "5m")
    assert 27 <= in_5m <= 30  # those that arrived in the last 4.5-5 minutes
    assert late(a, "5m") == 60 - in_5m  # the rest of the backlog: left out of the 5m window, counted
    assert rows(a, "1h") == 61 and late(a, "1h") == 0
    clocks.tick(5 * 60)  # and they leave the window when their slices expire, not 5 minutes after analysis
    assert rows(a, "5m") == 0


def test_add_past_lands_in_its_slice_or_reports_it_left_behind() -> None:
    w = SlidingCounts(300, 10, 1)
    w.add(1000.0, np.array([1]))
    assert w.add_past(800.0, 1000.0, np.array([2]))  # 200 s ago: inside
    assert not w.add_past(690.0, 1000.0, np.array([4]))  # 310 s ago: outside
    assert w.read(1000.0)[0] == 3
    assert w.read(1100.0 - 1e-9)[0] == 1  # the slice of 800 expired after 100 s more; 1000's did not
