"""Shared helpers for the column monitor tests: tiny baselines, configs, extractions and scrapes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from exporter.adapters import Rows
from exporter.analyzers.columns import ColumnMonitor
from exporter.baseline.build import BuildOptions, build_baseline
from exporter.baseline.format import Baseline, CategoricalColumn, Column, NumericColumn, Source, above_edge
from exporter.baseline.readers import Chunk
from exporter.config import Config, DriftConfig, QualityConfig
from exporter.drift.thresholds import CriticalValues
from exporter.events import Extraction

MODEL = {"model": "unknown", "version": "unknown"}  # Config()'s model labels


def numeric(name: str, role: str = "feature", *, lo: float = 0.0, hi: float = 10.0,
            edges: Sequence[float] = (2.5, 5.0, 7.5), counts: Sequence[int] | None = None,
            groups: Sequence[int] | None = None) -> NumericColumn:
    """A numeric column on [lo, hi] split at `edges` (inner bins with `counts`), as the builder lays it out.

    The file's edges are lo, `edges` and the next double above hi; the bins below lo and above hi
    are empty. Every fine bin is a PSI bin unless `groups` says otherwise.
    """
    inner = tuple(counts) if counts is not None else (25,) * (len(edges) + 1)
    assert len(inner) == len(edges) + 1
    full = (0, *inner, 0)
    groups = tuple(groups) if groups is not None else tuple(range(len(full)))
    mean = (lo + hi) / 2
    return NumericColumn(name, role, sum(full), 0, lo, hi, mean, (hi - lo) / 4, (lo, *edges, above_edge(hi)), full,
                         groups)


def categorical(name: str, role: str = "feature", categories: Sequence[str] = ("a", "b"),
                counts: Sequence[int] = (60, 30), other: int = 10) -> CategoricalColumn:
    return CategoricalColumn(name, role, sum(counts) + other, 0, tuple(categories), tuple(counts), other)


def critical_values() -> CriticalValues:
    """Cheaper critical values for the monitors of these tests.

    Simulated critical values take 50,000 multinomial windows per (column, window size) by default;
    2,000 keep each test's thresholds well above the practical ones where they must be, in a tenth
    of the time. The exact values are tested in tests/drift.
    """
    return CriticalValues(simulations=2000)


def baseline(*columns: Column) -> Baseline:
    return Baseline("2024-05-01T12:00:00Z", Source(("train.csv",), columns[0].count), tuple(columns), sha256="f" * 64)


def small_baseline() -> Baseline:
    """Features x, z (numeric on [0, 10]) and c (categorical a/b), and one numeric prediction y on [0, 1]."""
    return baseline(numeric("x"), numeric("z"), categorical("c"),
                    numeric("y", "prediction", lo=0.0, hi=1.0, edges=(0.5,), counts=(50, 50)))


def config(*, windows: tuple[tuple[str, float], ...] | None = None, min_rows: int | None = None,
           tolerance: float | None = None, bounds: dict[str, tuple[float | None, float | None]] | None = None,
           **drift: Any) -> Config:
    """Config() with drift and quality settings replaced."""
    base = Config()
    d: dict[str, Any] = dict(drift)
    if windows is not None:
        d["windows"] = windows
    if min_rows is not None:
        d["min_rows"] = min_rows
    q: dict[str, Any] = {}
    if tolerance is not None:
        q["range_tolerance"] = tolerance
    if bounds is not None:
        q["bounds"] = tuple(bounds.items())
    return dataclasses.replace(base, drift=dataclasses.replace(DriftConfig(), **d),
                               quality=dataclasses.replace(QualityConfig(), **q))


def rows(columns: dict[str, Any], **kw: Any) -> Rows:
    """Rows with n taken from the columns (all of one length)."""
    lengths = {len(v) for v in columns.values()}
    assert len(lengths) <= 1, lengths
    return Rows(columns, lengths.pop() if lengths else kw.pop("n"), **kw)


def ex(features: Rows | None = None, predictions: Rows | None = None) -> Extraction:
    return Extraction("unknown", "unknown", features, predictions)


def features(n: int, **overrides: Any) -> Rows:
    """n rows of valid x, z, c (in range, known categories), with columns replaced or dropped (None)."""
    cols: dict[str, Any] = {"x": [1.0] * n, "z": [6.0] * n, "c": ["a"] * n}
    for name, values in overrides.items():
        if values is None:
            del cols[name]
        else:
            cols[name] = values
    return rows(cols)


class Scrape:
    """One collect() of the monitor registered in a CollectorRegistry; samples read by name and labels."""

    def __init__(self, monitor: ColumnMonitor, now: float) -> None:
        self.metrics: list[Metric] = list(monitor.collect(now))
        self.registry = CollectorRegistry()
        self.registry.register(_Fixed(self.metrics))

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, {**labels, **MODEL})

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(s.labels, s.value) for m in self.metrics for s in m.samples if s.name == name]

    def label_values(self, label: str) -> set[str]:
        return {s.labels[label] for m in self.metrics for s in m.samples if label in s.labels}

    def all_label_values(self) -> set[str]:
        return {v for m in self.metrics for s in m.samples for v in s.labels.values()}

    def sum(self, name: str, **labels: str) -> float:
        return sum(v for lab, v in self.samples(name) if all(lab.get(k) == x for k, x in labels.items()))


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return iter(self.metrics)


def built_baseline(data: dict[str, np.ndarray | list[Any]], **options: Any) -> Baseline:
    """A baseline built in memory by exporter.baseline.build from columns of equal length."""
    n = len(next(iter(data.values())))
    chunks = [Chunk(dict(data), n)]
    result = build_baseline(lambda: iter(chunks), BuildOptions(**options), files=("memory",),
                            created="2024-05-01T12:00:00Z")
    return result.baseline
