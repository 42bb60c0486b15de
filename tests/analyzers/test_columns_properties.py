"""Whatever a client sends, the column monitor neither raises nor makes a label value out of it."""

from __future__ import annotations

from typing import Any

import numpy as np
from columns_support import baseline, categorical, config, ex, numeric
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from exporter.adapters import Rows
from exporter.analyzers.columns import SCHEMA_KINDS, ColumnMonitor, _bin_categorical, coarse_bin_labels
from exporter.baseline.binning import bin_categorical
from exporter.baseline.format import CategoricalColumn
from exporter.drift.thresholds import CriticalValues

BASELINE = baseline(numeric("x"), numeric("ümlaut 列"), categorical("c", categories=("a", "1", "true"), counts=(40, 30, 20)),
                    categorical("label", "prediction", categories=("cat", "dog"), counts=(50, 40)),
                    numeric("p", "prediction", lo=0.0, hi=1.0, edges=(0.5,), counts=(50, 50)))
WINDOWS = (("5m", 300.0), ("1h", 3600.0), ("tiny", 1.0))
BIN_LABELS = {label for col in BASELINE.columns for label in coarse_bin_labels(col)}
NAMES = {col.name for col in BASELINE.columns}
ALLOWED = {
    "column": NAMES, "kind": set(SCHEMA_KINDS), "side": {"low", "high"}, "bin": BIN_LABELS,
    "window": {name for name, _ in WINDOWS}, "role": {"feature", "prediction"}, "method": {"psi", "wasserstein", "chisquare"},
    "model": {"unknown"}, "version": {"unknown"}, "sha256": {BASELINE.sha256}, "created": {BASELINE.created},
}

CRITICAL = CriticalValues(simulations=1000)  # shared by every example, and cheap: thresholds are not checked here

huge_text = st.builds(lambda c, k: c * k, st.characters(), st.integers(1000, 20_000))
texts = st.text() | huge_text | st.sampled_from(["", "a", "1", "1.0", "nan", "inf", "-1e400", "__other__", "true"])
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | texts
           | st.sampled_from([10**4000, -(10**300), 2**53 + 1]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
column_names = st.sampled_from(sorted(NAMES)) | st.text() | huge_text | st.sampled_from(["x0", "x1", "c "])
datatypes = st.sampled_from(["FP32", "INT64", "BYTES", "BOOL", "weird", ""])


@st.composite
def columns(draw: st.DrawFn, n: int) -> Any:
    """n values of any JSON type, or a numpy array of n values."""
    kind = draw(st.sampled_from(["json", "json", "float", "int", "str", "bool"]))
    if kind == "json":
        return draw(st.lists(json_values, min_size=n, max_size=n))
    if kind == "float":
        return np.array(draw(st.lists(st.floats(width=32), min_size=n, max_size=n)), dtype=np.float32)
    if kind == "int":
        return np.array(draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)), dtype=np.int64)
    if kind == "bool":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    return np.array(draw(st.lists(st.text(max_size=8), min_size=n, max_size=n)), dtype=str)


@st.composite
def random_rows(draw: st.DrawFn) -> Rows:
    n = draw(st.integers(0, 6))
    names = draw(st.lists(column_names, max_size=5, unique=True))
    cols = {name: draw(columns(n)) for name in names}
    types = {name: draw(datatypes) for name in names if draw(st.booleans())}
    return Rows(cols, n, positional=draw(st.booleans()), datatypes=types,
                model=draw(st.none() | st.text()), version=draw(st.none() | st.text()))


class At:
    def __init__(self, monitor: ColumnMonitor, now: float) -> None:
        self.monitor, self.now = monitor, now

    def collect(self) -> Any:
        return self.monitor.collect(self.now)


batches = st.lists(st.tuples(st.none() | random_rows(), st.none() | random_rows()), max_size=3)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(batches, st.floats(0, 7200)), min_size=1, max_size=2))
def test_random_rows_never_make_label_values_or_raise(steps: list[tuple[list[Any], float]]) -> None:
    monitor = ColumnMonitor(BASELINE, config(windows=WINDOWS, min_rows=1), critical=CRITICAL)
    for batch, now in steps:
        monitor.update([ex(f, p) for f, p in batch], now)
        metrics = list(monitor.collect(now))
        for metric in metrics:
            for sample in metric.samples:
                for label, value in sample.labels.items():
                    assert value in ALLOWED[label], (metric.name, label, value[:80])
    registry = CollectorRegistry()
    registry.register(At(monitor, steps[-1][1]))
    text = generate_latest(registry).decode()  # the exposition renders whatever went in
    assert text.count("model_schema_errors_total{") == len(SCHEMA_KINDS)


def test_bin_labels_of_the_property_baseline_are_distinct() -> None:
    for col in BASELINE.columns:
        labels = coarse_bin_labels(col)
        assert len(set(labels)) == len(labels)


def counters(monitor: ColumnMonitor, now: float) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter sample, and the window gauges, by name and labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in monitor.collect(now) for s in m.samples
            if m.type == "counter" or s.name in ("model_window_rows", "model_missing_ratio", "model_out_of_range_ratio")}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.none() | random_rows(), st.none() | random_rows()), min_size=2, max_size=5))
def test_counts_do_not_depend_on_how_payloads_are_batched(batch: list[Any]) -> None:
    together = ColumnMonitor(BASELINE, config(windows=WINDOWS), critical=CRITICAL)
    apart = ColumnMonitor(BASELINE, config(windows=WINDOWS), critical=CRITICAL)
    together.update([ex(f, p) for f, p in batch], 10.0)
    for f, p in batch:
        apart.update([ex(f, p)], 10.0)
    assert counters(together, 10.0) == counters(apart, 10.0)


pool = st.sampled_from(["a", "1", "1.0", "01", "true", "", "zebra", "Ä", "nan", "1e400", "-0"])


@given(st.lists(pool, max_size=60) | st.lists(pool | json_values, max_size=20))
def test_looking_up_known_strings_first_equals_bin_categorical(values: list[Any]) -> None:
    col = BASELINE.column("c")
    assert isinstance(col, CategoricalColumn)
    fast, plain = _bin_categorical(col, values), bin_categorical(col, values)
    assert fast.counts().tolist() == plain.counts().tolist()
    assert (fast.missing, fast.unseen, fast.type_errors) == (plain.missing, plain.unseen, plain.type_errors)


def test_strings_and_numbers_that_compare_equal_keep_their_own_categories() -> None:
    col = BASELINE.column("c")  # categories a, 1, true
    assert isinstance(col, CategoricalColumn)
    values = [True, 1, 1.0, True, True, True, True, True, 10**20, 1e20]
    result = _bin_categorical(col, values)
    assert result.counts().tolist() == [0, 2, 6, 2]
    assert result.unseen == 2
