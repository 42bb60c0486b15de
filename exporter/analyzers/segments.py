"""Fairness: realised performance per segment of the traffic, and each segment's gap to the whole.

Segments are the values of configured feature columns (performance.segments), capped: the
baseline's categories of a categorical column, else the first performance.max_segment_values
values seen, then "__other__". Per segment and window, a binary confusion matrix relative to
performance.positive: the action rate (share predicted positive), accuracy, false-positive and
false-negative rates, and each one's gap to the same figure over all segments, with the gap
that would be news: the larger of 0.1 and z·sqrt(p(1 − p)/n) for the overall rate p and the
segment's n labels behind the rate (z at performance.false_alarm_rate).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from exporter.adapters import Rows
from exporter.baseline.binning import category_key
from exporter.baseline.format import Baseline, CategoricalColumn
from exporter.config import Config
from exporter.drift.windows import SlidingCounts, parse_windows
from exporter.metrics.families import Sample

OTHER_SEGMENT = "__other__"
MISSING_SEGMENT = "__missing__"  # the row had no value for the column
CELLS = 4  # tp, fp, fn, tn relative to the positive class
METRICS = ("action_rate", "accuracy", "false_positive_rate", "false_negative_rate")


GAP_FLOOR = 0.1  # a gap smaller than this is never an alarm, however many labels


def denominators(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    """The label count each rate is a share of (its noise shrinks with it)."""
    n = tp + fp + fn + tn
    return {"action_rate": n, "accuracy": n, "false_positive_rate": fp + tn, "false_negative_rate": fn + tp}


def rates(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    """The fairness figures of one confusion matrix (a rate is left out when its denominator is 0)."""
    n = tp + fp + fn + tn
    out: dict[str, float] = {}
    if n:
        out["action_rate"] = (tp + fp) / n
        out["accuracy"] = (tp + tn) / n
    if fp + tn:
        out["false_positive_rate"] = fp / (fp + tn)
    if fn + tp:
        out["false_negative_rate"] = fn / (fn + tp)
    return out


class Segments:
    """Windows of per-segment confusion cells; memory fixed by columns × (max values + 2) × 4 × slices."""

    def __init__(self, config: Config, baseline: Baseline | None, previous: Segments | None = None) -> None:
        perf = config.performance
        self.columns = list(perf.segments)
        self.cap = perf.max_segment_values
        self.min_labels = perf.min_labels
        self.z = NormalDist().inv_cdf(1 - perf.false_alarm_rate)
        self.values: list[list[str]] = []
        self.fixed: list[bool] = []
        for name in self.columns:
            col = next((c for c in baseline.columns if c.name == name), None) if baseline is not None else None
            if isinstance(col, CategoricalColumn):
                self.values.append([str(c) for c in col.categories][: self.cap])
                self.fixed.append(True)
            else:
                self.values.append([])
                self.fixed.append(False)
        self.width = self.cap + 2  # values, __other__, __missing__
        self.size = len(self.columns) * self.width * CELLS
        specs = parse_windows(dict(config.drift.windows))
        self.windows = {
            name: SlidingCounts(width, slices, max(self.size, 1)) for name, (width, slices) in specs.items()
        }
        if previous is not None and previous.columns == self.columns and previous.cap == self.cap:
            if all(f or not p for f, p in zip(self.fixed, previous.fixed)) and (
                [v for v, f in zip(self.values, self.fixed) if f]
                == [v for v, f in zip(previous.values, self.fixed) if f]
            ):
                self.values = [v if f else pv for v, pv, f in zip(self.values, previous.values, self.fixed)]
                for name, window in self.windows.items():
                    old = previous.windows.get(name)
                    if old is not None and old.width == window.width:
                        self.windows[name] = old
        self._lookup = [{v: i for i, v in enumerate(values)} for values in self.values]

    def keys(self, features: Rows | None, n: int) -> list[tuple[int, ...]]:
        """Each row's segment per configured column, as an index (the cache stores small ints)."""
        if not self.columns:
            return [()] * n
        per_column: list[list[int]] = []
        for c, name in enumerate(self.columns):
            raw: Any = ()
            if features is not None and features.n == n:
                raw = features.columns.get(name, ())
                if isinstance(raw, np.ndarray):
                    raw = raw.tolist()
            per_column.append([self._index(c, raw[i] if i < len(raw) else None) for i in range(n)])
        return list(zip(*per_column))

    def _index(self, c: int, value: Any) -> int:
        if value is None:
            return self.cap + 1
        try:
            key = category_key(value)
        except TypeError:
            key = None
        if key is None:
            return self.cap + 1
        found = self._lookup[c].get(key)
        if found is not None:
            return found
        values = self.values[c]
        if not self.fixed[c] and len(values) < self.cap:
            values.append(key)
            self._lookup[c][key] = len(values) - 1
            return len(values) - 1
        return self.cap

    def add(self, rows: Sequence[tuple[tuple[int, ...], bool, bool]], now: float) -> None:
        """Count (segments, label is positive, predicted positive) of scored labels at `now`."""
        if not self.columns or not rows:
            return
        cells = []
        known = [len(values) for values in self.values]
        width = len(self.columns)
        for segments, actual, predicted in rows:
            cell = (0 if actual else 1) if predicted else (2 if actual else 3)
            for c, value in enumerate(segments[:width]):
                if known[c] <= value < self.cap:  # cached before a reload changed the column's values
                    value = self.cap
                cells.append((c * self.width + value) * CELLS + cell)
        if cells:
            counts = np.bincount(cells, minlength=self.size).astype(np.int64)
            for window in self.windows.values():
                window.add(now, counts)

    def _name(self, c: int, index: int) -> str:
        if index == self.cap:
            return OTHER_SEGMENT
        if index == self.cap + 1:
            return MISSING_SEGMENT
        return self.values[c][index]

    def samples(self, now: float, mv: list[str]) -> Iterator[Sample]:
        for window_name, window in self.windows.items():
            if not self.columns:
                return
            total = window.read(now)[: self.size].reshape(len(self.columns), self.width, CELLS)
            for c, column in enumerate(self.columns):
                cells = total[c]
                overall_cells = cells.sum(axis=0)
                if overall_cells.sum() < self.min_labels:
                    continue
                overall = rates(*overall_cells.tolist())
                for index in range(self.width):
                    n = int(cells[index].sum())
                    if n == 0:
                        continue
                    segment = self._name(c, index)
                    yield "model_segment_labels", [column, segment, window_name, *mv], float(n)
                    sizes = denominators(*cells[index].tolist())
                    for metric, value in rates(*cells[index].tolist()).items():
                        labels = [column, segment, metric, window_name, *mv]
                        yield "model_segment_score", labels, value
                        if metric in overall:
                            p = overall[metric]
                            yield "model_segment_gap", labels, value - p
                            noise = self.z * math.sqrt(p * (1 - p) / sizes[metric])
                            yield "model_segment_gap_threshold", labels, max(GAP_FLOOR, noise)
