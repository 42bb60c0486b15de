"""A batch job's records through the worker's analyzers: drift, quality and (with labels) performance.

The records are read in chunks (baseline/readers.py; the prediction log through predlog.py and
the worker's adapters), each chunk becomes one `Extraction` per role, and the analyzers the
sidecar runs (analyzers/columns.py, analyzers/performance.py) bin it into one window, "batch",
that holds the whole run. Memory is the chunk plus the analyzers' fixed counts, whatever the
number of rows.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from exporter.adapters import Rows
from exporter.analyzers.columns import ColumnMonitor
from exporter.analyzers.performance import Performance
from exporter.baseline.format import Baseline, BaselineError
from exporter.baseline.readers import Chunk, read_chunks
from exporter.config import Config, ConfigError, DriftConfig
from exporter.drift.thresholds import CriticalValues
from exporter.events import Extraction
from exporter.metrics.families import Sample
from exporter.worker.checks import load_checked_baseline

WINDOW = "batch"  # the window label of a batch job's drift and quality series
WINDOW_SECONDS = 10 * 365 * 86400.0  # one window holds the whole run


class JobError(Exception):
    """An error that ends the job with exit status 2; the message names the file, row or column."""


@dataclass
class Progress:
    """What the progress bar shows."""

    path: str = ""
    file_index: int = 0
    files: int = 0
    rows: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass
class JobResult:
    records: int
    duration: float
    samples: list[Sample]  # the analyzers' series, window "batch"
    unexpected: list[str]  # data columns neither in the baseline nor excluded
    labels: int  # records with a label scored
    payload_errors: dict[str, int]  # prediction log records whose payload the adapters could not read


def batch_config(config: Config, baseline: str) -> Config:
    """The config the analyzers get: the given one, with the baseline and one window for the whole run."""
    drift: DriftConfig = dataclasses.replace(config.drift, windows=((WINDOW, WINDOW_SECONDS),))
    return dataclasses.replace(config, baseline=baseline, drift=drift)


class BatchJob:
    """Feeds chunks of records to the analyzers; `samples()` is the run's result."""

    def __init__(self, config: Config, label: str | None = None, exclude: Sequence[str] = ()) -> None:
        self.config = config
        try:
            baseline = load_checked_baseline(config)
        except ConfigError as exc:
            raise JobError(f"--baseline: {exc}") from None
        assert baseline is not None  # batch_config always sets one
        self.baseline: Baseline = baseline
        self.now = time.time()  # every record lands in the one window, at this time
        self.monitor = ColumnMonitor(baseline, config, critical=CriticalValues())
        self.model = list(self.monitor.model)
        self.performance = Performance(config, baseline, None)
        roles = {c.name: c.role for c in baseline.columns}
        self.features = {n for n, r in roles.items() if r == "feature"}
        self.predictions = {n for n, r in roles.items() if r == "prediction"}
        baseline_label = next((n for n, r in roles.items() if r == "label"), None)
        self.label = label or baseline_label
        self.known = set(roles) | {c.name for c in baseline.ignored} | set(exclude)
        if self.label is not None:
            self.known.add(self.label)
        self.unexpected: dict[str, None] = {}  # in the order first seen
        self.missing: dict[tuple[str, str], None] = {}
        self.payload_errors: dict[str, int] = {}  # prediction log records: "side reason" → records
        self.records = 0
        self.scored = 0

    def add_chunk(self, chunk: Chunk) -> None:
        """One chunk of a table file: its columns split by the baseline's roles."""
        columns = cast(dict[str, Sequence[Any]], chunk.columns)  # numpy arrays are sequences to the analyzers
        features = {n: v for n, v in columns.items() if n in self.features}
        predictions = {n: v for n, v in columns.items() if n in self.predictions}
        for name in columns:
            if name not in self.known:
                self.unexpected.setdefault(name)
        # a file without predictions is a file of inputs; a feature, or one of several predictions, is missing
        for role, names, present in (
            ("feature", self.features, features),
            ("prediction", self.predictions, predictions),
        ):
            if role == "feature" or present:
                for name in sorted(names - present.keys()):
                    self.missing.setdefault((role, name))
        labels = columns.get(self.label) if self.label is not None else None
        self.add_rows(
            Rows(features, chunk.rows),
            Rows(predictions, chunk.rows) if predictions else None,
            labels,
        )

    def add_rows(self, features: Rows | None, predictions: Rows | None, labels: Sequence[Any] | None = None) -> None:
        n = features.n if features is not None else predictions.n if predictions is not None else 0
        if features is not None and not features.columns and predictions is not None:
            features = None  # a file of predictions only: no feature was missing from it
        model, version = self.model
        self.monitor.update([Extraction(model, version, features=features, predictions=predictions)], self.now)
        self.records += n
        if labels is not None and predictions is not None and predictions.n:
            made = self.performance.read(predictions, features)
            values = labels.tolist() if isinstance(labels, np.ndarray) else list(labels)  # type: ignore[unreachable]
            pairs = [(p, y) for p, y in zip(made, values) if y is not None and y == y]  # None and NaN: no label yet
            self.scored += self.performance.add(pairs, self.now)

    def add_extraction(self, extraction: Extraction) -> None:
        """An exchange of the prediction log, through the worker's adapters; unreadable payloads are counted."""
        for side, reason in extraction.errors:
            key = f"{side} {reason}"
            self.payload_errors[key] = self.payload_errors.get(key, 0) + 1
        self.monitor.update([dataclasses.replace(extraction, model=self.model[0], version=self.model[1])], self.now)
        if extraction.features is not None:
            self.records += extraction.features.n
        elif extraction.predictions is not None:
            self.records += extraction.predictions.n

    def missing_columns(self) -> list[tuple[str, str]]:
        """(role, name) of the baseline columns absent from a table file read."""
        return list(self.missing)

    def samples(self) -> list[Sample]:
        out = list(self.monitor.samples(self.now))
        if self.scored:
            out += list(self.performance.samples(self.now, self.model, self.monitor.critical))
        return out


def run_job(
    job: BatchJob,
    paths: Sequence[str],
    chunk_rows: int,
    progress: Callable[[Progress], None] | None = None,
    read_predlog: Callable[[str], Iterator[Extraction]] | None = None,
) -> JobResult:
    """Read every file in order, feeding `job`; JobError names the file (and row) that failed."""
    state = Progress(files=len(paths))
    for index, path in enumerate(paths):
        state.path, state.file_index = path, index + 1
        try:
            if read_predlog is not None and is_predlog(path):
                for extraction in read_predlog(path):
                    job.add_extraction(extraction)
                    state.rows = job.records
                    if progress is not None:
                        progress(state)
            else:
                for chunk in read_chunks(path, chunk_rows):
                    job.add_chunk(chunk)
                    state.rows = job.records
                    if progress is not None:
                        progress(state)
        except BaselineError as exc:  # the readers' errors name the file, line and column
            raise JobError(str(exc)) from None
    return JobResult(
        job.records,
        time.monotonic() - state.started,
        job.samples(),
        list(job.unexpected),
        job.scored,
        dict(job.payload_errors),
    )


def is_predlog(path: str) -> bool:
    from exporter.predlog import SUFFIXES

    return path.lower().endswith(SUFFIXES)
