"""Per-column monitoring against the baseline: drift windows and data-quality counts.

State is fixed by the baseline and the config: per column, its fine bins and six quality
slots in every window (a ring of slices), plus cumulative counters. Traffic never adds
state, and no value a client sends becomes a label.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np
from prometheus_client.core import Metric

from exporter.adapters import Rows
from exporter.baseline.binning import BinResult, bin_categorical, bin_numeric, parse_floats
from exporter.baseline.format import Baseline, CategoricalColumn, Column, NumericColumn
from exporter.config import Config
from exporter.drift.methods import DETECTORS, METHODS, Reference, check_method, score
from exporter.drift.thresholds import CriticalValues
from exporter.drift.windows import SlidingCounts
from exporter.events import Extraction
from exporter.labels import default_labels
from exporter.metrics.families import Sample, families

SCHEMA_KINDS = ("missing_column", "unexpected_column", "column_count", "datatype")
QUALITY = ("values", "missing", "low", "high", "unseen", "type_errors")
OTHER_BIN = "__other__"
BELOW_BIN, ABOVE_BIN = "below", "above"  # numeric values below / above the training range
ROLES = ("feature", "prediction")
NUMERIC_DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BF16"}
)


def coarse_bin_labels(col: Column) -> list[str]:
    """Label values of the PSI bins: intervals for numeric columns, categories (+ other) for categorical.

    A numeric column's bins below and above the training range are "below" and "above" (the same
    words for every column and every rebuild); the bins between are intervals, the last one closed
    at the training max: "[18, 30)" … "[45, 70]". Bounds get 6 significant digits, more where 6
    would print two bounds alike (1.7e9 and 1.7e9 + 10), so that no two bins of a column share a label.
    """
    if isinstance(col, CategoricalColumn):
        return [*col.categories, OTHER_BIN]
    n = len(col.counts)
    spans = list(zip(col.psi_groups, [*col.psi_groups[1:], n]))
    lower = [-math.inf, *col.edges]  # lower bound of each fine bin
    top = float(np.nextafter(col.edges[-1], -math.inf))  # the largest value of the last bin before "above"
    labels: list[str] = []
    for digits in (6, 9, 12, 17):  # 17 digits tell any two doubles apart
        labels = []
        for start, end in spans:
            if (start, end) == (0, 1) and n > 1:
                labels.append(BELOW_BIN)
            elif (start, end) == (n - 1, n) and n > 1:
                labels.append(ABOVE_BIN)
            else:
                upper = "inf)" if end == n else f"{top:.{digits}g}]" if end == n - 1 else f"{lower[end]:.{digits}g})"
                labels.append(f"[{lower[start]:.{digits}g}, {upper}")
        if len(set(labels)) == len(labels):
            break
    return labels


@dataclass
class Tracked:
    """One baseline column: where it lives in the window vector, its reference and its counters."""

    col: Column
    offset: int
    ref: Reference
    methods: tuple[str, ...]
    practical: dict[str, float]
    bounds: tuple[float | None, float | None] | None
    labels: list[str]
    coarse_total: np.ndarray
    quality: dict[str, int] = field(default_factory=lambda: dict.fromkeys(QUALITY, 0))
    chunks: list[Any] = field(default_factory=list)  # values gathered from one batch
    absent: int = 0  # rows of this batch whose payload lacked the column

    @property
    def n_bins(self) -> int:
        return len(self.ref.fine)

    @property
    def qoffset(self) -> int:
        return self.offset + self.n_bins


def _gather(chunks: list[Any]) -> Sequence[Any] | np.ndarray:
    if len(chunks) == 1:
        only: Sequence[Any] | np.ndarray = chunks[0]
        return only
    types = set(map(type, chunks))
    if types == {list}:
        return list(chain.from_iterable(chunks))
    # arrays of one kind concatenate losslessly; across kinds numpy would turn True into "True" or 1.0
    if types == {np.ndarray} and len({dtype.kind for dtype in set(map(attrgetter("dtype"), chunks))}) == 1:
        return np.concatenate(chunks)
    out: list[Any] = []
    for c in chunks:
        out.extend(c.tolist() if isinstance(c, np.ndarray) else c)
    return out


def _bin_categorical(col: CategoricalColumn, values: Sequence[Any] | np.ndarray) -> BinResult:
    """bin_categorical, with the strings that are categories verbatim (the usual case) looked up in one C-level pass.

    Everything else (missing, unseen, numbers, nested values) goes through bin_categorical itself.
    """
    items = values.tolist() if isinstance(values, np.ndarray) else values
    try:
        found = list(map(col.lookup.get, items))
    except TypeError:  # an unhashable value (a nested list or object)
        return bin_categorical(col, items)
    n_bins = len(col.categories) + 1
    if None not in found:
        return BinResult(bins=np.asarray(found, dtype=np.intp), n_bins=n_bins)
    rest = bin_categorical(col, [v for v, i in zip(items, found) if i is None])
    known = np.asarray([i for i in found if i is not None], dtype=np.intp)
    return BinResult(
        bins=np.concatenate([known, rest.bins]),
        n_bins=n_bins,
        missing=rest.missing,
        type_errors=rest.type_errors,
        unseen=rest.unseen,
    )


def _full_layout(features: int, baseline: Baseline) -> tuple[int, tuple[int, ...]] | None:
    """(width, the features' indexes) of a positional payload with the ignored columns of known position in it.

    None when no ignored column has a position, or the positions do not fit (a hand-built baseline).
    """
    placed = [c.position for c in baseline.ignored if c.position is not None]
    width = features + len(placed)
    if not placed or len(set(placed)) != len(placed) or max(placed) >= width:
        return None
    skip = set(placed)
    return width, tuple(i for i in range(width) if i not in skip)


class ColumnMonitor:
    """Drift and data quality of every baseline column over rolling windows.

    `critical` computes and caches the no-drift critical values behind model_drift_threshold;
    the caller owns it (the worker builds the default, tests a cheaper one).
    """

    def __init__(
        self, baseline: Baseline, config: Config, previous: ColumnMonitor | None = None, *, critical: CriticalValues
    ) -> None:
        self.baseline = baseline
        self.drift = config.drift
        self.tolerance = config.quality.range_tolerance
        # label values: configured ones, else "unknown" until Analysis binds the monitor to its exchanges' labels
        self.model = list(default_labels(config.model))
        bounds = dict(config.quality.bounds)
        self.columns: dict[str, list[Tracked]] = {role: [] for role in ROLES}
        offset = 0
        layout: list[tuple[str, str, tuple[Any, ...]]] = []  # what each window slot means
        for col in baseline.columns:
            if col.role not in ROLES:
                continue  # labels are joined by the performance work, not monitored here
            spec = self.drift.column(col.name)
            default = self.drift.numeric_methods if col.type == "numeric" else self.drift.categorical_methods
            methods = spec.methods or default
            for method in methods:
                try:
                    check_method(method, col.type)
                except ValueError as exc:
                    raise ValueError(f"drift.columns.{col.name}: {exc}") from None
            detector = DETECTORS[col.type]
            if detector not in methods:  # the default decision's score and threshold are always exported
                methods = (*methods, detector)
            practical = {m: METHODS[m].threshold for m in methods} | dict(spec.thresholds)
            ref = Reference.from_column(col)
            labels = coarse_bin_labels(col)
            tracked = Tracked(
                col,
                offset,
                ref,
                methods,
                practical,
                bounds.get(col.name),
                labels,
                np.zeros(len(labels), dtype=np.int64),
            )
            if previous is not None:  # counters never go backwards across a reload
                old = previous.find(col.role, col.name)
                if old is not None:
                    tracked.quality = old.quality
                    if old.labels == labels:  # new bins are new series
                        tracked.coarse_total = old.coarse_total
            self.columns[col.role].append(tracked)
            layout.append((col.role, col.name, col.edges if isinstance(col, NumericColumn) else col.categories))
            offset += tracked.n_bins + len(QUALITY)
        self.size = offset + 1  # the last slot counts rows
        self.windows = {
            name: SlidingCounts(width, 12 if width >= 3600 else 10, self.size) for name, width in self.drift.windows
        }
        self.layout = tuple(layout)
        if previous is not None and previous.layout == self.layout and previous.window_spec == self.drift.windows:
            self.windows = previous.windows  # the same slots with the same bins: windows carry over
        self.window_spec: tuple[tuple[str, float], ...] = self.drift.windows
        # rows that arrived after a window had moved past them, per window (counters: kept over a reload)
        self.late: dict[str, int] = {name: previous.late.get(name, 0) if previous else 0 for name in self.windows}
        self.schema_errors: dict[str, int] = (
            dict.fromkeys(SCHEMA_KINDS, 0) if previous is None else previous.schema_errors
        )
        self.critical = critical
        self.by_name = {(t.col.role, t.col.name): t for role in ROLES for t in self.columns[role]}
        self.names = {role: {t.col.name for t in self.columns[role]} for role in ROLES}
        # training columns the baseline left out on purpose (--exclude, all null): expected, not schema errors
        self.ignored = frozenset(c.name for c in baseline.ignored)
        self.known = {role: self.names[role] | self.ignored for role in ROLES}
        # a positional payload may carry the features with the ignored columns between them, in the
        # training file's order: (its width, each feature's index in it), when the baseline knows where
        self.full_layout = _full_layout(len(self.columns["feature"]), baseline)
        self.numeric_names = {
            role: {t.col.name for t in self.columns[role] if t.col.type == "numeric"} for role in ROLES
        }

    def find(self, role: str, name: str) -> Tracked | None:
        return self.by_name.get((role, name))

    # ------------------------------------------------------------ ingest

    def update(self, extractions: list[Extraction], now: float, when: Sequence[float] | None = None) -> None:
        """Bin a micro-batch into the windows ending `now`; values are gathered per column first, then binned once each.

        `when`: each extraction's time on the windows' axis (when its request arrived; default
        `now`). Extractions are binned together per slice of the finest window; rows older than a
        window are left out of it and counted in model_window_late_rows_total.
        """
        if when is None:
            groups = [(now, extractions)]
        else:
            width = min(w.slice_width for w in self.windows.values())
            by_slice: dict[int, tuple[float, list[Extraction]]] = {}
            for ex, at in zip(extractions, when):
                at = min(at, now)
                key = math.floor(at / width)
                by_slice.setdefault(key, (at, []))[1].append(ex)
            groups = list(by_slice.values())
        for at, group in groups:
            vector = self._vector(group)
            if not vector.any():
                continue
            for name, window in self.windows.items():
                if at >= now:
                    window.add(now, vector)
                elif not window.add_past(at, now, vector):
                    self.late[name] = self.late.get(name, 0) + int(vector[-1])

    def _vector(self, extractions: list[Extraction]) -> np.ndarray:
        """The window slots of a group of extractions: each column's fine bins and quality counts, then rows."""
        rows = 0
        whole: dict[str, list[dict[str, Any]]] = {role: [] for role in ROLES}
        for ex in extractions:
            if ex.features is not None:
                rows += ex.features.n
                self._assign(ex.features, "feature", whole["feature"])
            if ex.predictions is not None:
                self._assign(ex.predictions, "prediction", whole["prediction"])
        vector = np.zeros(self.size, dtype=np.int64)
        vector[-1] = rows
        for role in ROLES:
            for t in self.columns[role]:
                if whole[role]:
                    name = t.col.name
                    t.chunks.extend([columns[name] for columns in whole[role]])
                self._bin(t, vector)
        return vector

    def _assign(self, rows: Rows, role: str, whole: list[dict[str, Any]]) -> None:
        """Hand each baseline column its values from one payload, counting schema errors.

        A payload with exactly the baseline's column names (the usual case), or those and every
        column the baseline ignores, goes to `whole`, whose columns are picked per column in one pass.
        Columns the baseline ignores (excluded or all null in training) are no unexpected columns.
        Positional features are matched by order: the features alone, or the features with the
        ignored columns of known position in between (their values skipped).
        """
        tracked = self.columns[role]
        if not tracked or rows.n == 0:
            return
        keys = rows.columns.keys()
        if not rows.positional and (keys == self.names[role] or (self.ignored and keys == self.known[role])):
            whole.append(rows.columns)
            if rows.datatypes and any(
                declared not in NUMERIC_DATATYPES
                for name, declared in rows.datatypes.items()
                if name in self.numeric_names[role]
            ):
                self.schema_errors["datatype"] += 1
            return
        strict = role == "feature"
        names = list(rows.columns)
        if rows.positional:
            full = self.full_layout if strict else None
            if full is not None and len(names) == full[0]:
                pairs = [(t, names[i]) for t, i in zip(tracked, full[1])]
            else:
                if len(names) != len(tracked):
                    self.schema_errors["column_count"] += 1
                pairs = list(zip(tracked, names))
                for t in tracked[len(names) :]:
                    t.absent += rows.n
        else:
            if strict and any(name not in self.known[role] for name in names):
                self.schema_errors["unexpected_column"] += 1
            pairs = []
            missing = False
            for t in tracked:
                if t.col.name in rows.columns:
                    pairs.append((t, t.col.name))
                elif not strict and len(tracked) == 1 and len(names) == 1:
                    pairs.append((t, names[0]))  # a single prediction, whatever the server calls it
                else:
                    t.absent += rows.n
                    missing = True
            if missing and strict:
                self.schema_errors["missing_column"] += 1
        datatype_error = False
        for t, name in pairs:
            t.chunks.append(rows.columns[name])
            declared = rows.datatypes.get(name)
            if declared is not None and t.col.type == "numeric" and declared not in NUMERIC_DATATYPES:
                datatype_error = True
        if datatype_error:
            self.schema_errors["datatype"] += 1

    def _bin(self, t: Tracked, vector: np.ndarray) -> None:
        if not t.chunks and not t.absent:
            return
        q = dict.fromkeys(QUALITY, 0)
        if t.chunks:
            values = _gather(t.chunks)
            t.chunks = []
            result: BinResult
            if isinstance(t.col, NumericColumn):
                result = bin_numeric(t.col, values, self.tolerance)
            else:
                result = _bin_categorical(t.col, values)
            fine = result.counts()
            vector[t.offset : t.offset + t.n_bins] += fine
            t.coarse_total += np.add.reduceat(fine, t.ref.groups)
            q["values"] = len(values)
            q["missing"] = result.missing
            q["type_errors"] = result.type_errors
            q["unseen"] = result.unseen
            q["low"], q["high"] = result.below, result.above
            if t.bounds is not None:  # a configured side replaces the baseline's; an unset side keeps it
                low, high = self._outside(values, t.bounds)
                if t.bounds[0] is not None:
                    q["low"] = low
                if t.bounds[1] is not None:
                    q["high"] = high
        q["values"] += t.absent
        q["missing"] += t.absent
        t.absent = 0
        for i, key in enumerate(QUALITY):
            t.quality[key] += q[key]
            vector[t.qoffset + i] += q[key]

    @staticmethod
    def _outside(values: Sequence[Any] | np.ndarray, bounds: tuple[float | None, float | None]) -> tuple[int, int]:
        floats = parse_floats(values).values
        lo, hi = bounds
        low = int(np.count_nonzero(floats < lo)) if lo is not None else 0
        high = int(np.count_nonzero(floats > hi)) if hi is not None else 0
        return low, high

    # ------------------------------------------------------------ scrape

    def collect(self, now: float) -> Iterator[Metric]:
        return families(self.samples(now))

    def samples(self, now: float) -> Iterator[Sample]:
        """Every series at time `now`: the baseline, window rows, each column's counts and scores, schema errors."""
        mv = self.model
        yield "model_baseline_info", [self.baseline.sha256, self.baseline.created, *mv], 1
        totals = {name: window.read(now).copy() for name, window in self.windows.items()}
        for name, total in totals.items():
            yield "model_window_rows", [name, *mv], float(total[-1])
            yield "model_window_late_rows_total", [name, *mv], self.late.get(name, 0)
        for role in ROLES:
            for t in self.columns[role]:
                yield from self._column_samples(t, totals, mv)
        for kind, n in self.schema_errors.items():
            yield "model_schema_errors_total", [kind, *mv], n

    def _column_samples(self, t: Tracked, totals: dict[str, np.ndarray], mv: list[str]) -> Iterator[Sample]:
        role, name = t.col.role, t.col.name
        base = t.ref.coarse / t.ref.coarse.sum() if t.ref.coarse.sum() else t.ref.coarse
        for label, share, count in zip(t.labels, base, t.coarse_total):
            yield "model_column_baseline_ratio", [role, name, label, *mv], float(share)
            yield "model_column_bin_total", [role, name, label, *mv], int(count)
        q = t.quality
        labels = [role, name, *mv]
        yield "model_column_values_total", labels, q["values"]
        yield "model_column_missing_total", labels, q["missing"]
        yield "model_column_out_of_range_total", [role, name, "low", *mv], q["low"]
        yield "model_column_out_of_range_total", [role, name, "high", *mv], q["high"]
        yield "model_column_type_errors_total", labels, q["type_errors"]
        if isinstance(t.col, CategoricalColumn):
            yield "model_column_unseen_total", labels, q["unseen"]
        for window, total in totals.items():
            slots = total[t.qoffset : t.qoffset + len(QUALITY)]
            seen = int(slots[0])
            if seen:
                wl = [role, name, window, *mv]
                yield "model_missing_ratio", wl, slots[1] / seen
                yield "model_out_of_range_ratio", wl, (slots[2] + slots[3]) / seen
            fine = total[t.offset : t.offset + t.n_bins]
            n = int(fine.sum())
            for method in t.methods:
                ml = [role, name, method, window, *mv]
                practical = t.practical[method]
                threshold = (
                    self.critical.threshold(method, t.ref, n, self.drift.false_alarm_rate, practical)
                    if n
                    else practical
                )
                yield "model_drift_threshold", ml, threshold
                if n < self.drift.min_rows:
                    continue  # too few rows for a score that means anything
                result = score(method, t.ref, fine)
                yield "model_drift_score", ml, float(result.value)
                if result.pvalue is not None:
                    yield "model_drift_pvalue", ml, float(result.pvalue)
                if method == DETECTORS[t.col.type]:
                    yield "model_drift_detected", ml, int(float(result.value) > threshold)
