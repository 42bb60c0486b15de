"""Everything the worker does with a batch of events, and the metrics it answers scrapes with."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import Metric

from exporter.analyzers.columns import ColumnMonitor
from exporter.analyzers.content import ContentStats
from exporter.config import Config
from exporter.drift.thresholds import CriticalValues
from exporter.events import Event, Extraction
from exporter.labels import default_labels
from exporter.metrics.definitions import family
from exporter.worker.checks import load_checked_baseline
from exporter.worker.extract import Extractor


class Analysis:
    """Extraction plus the analyzers; state carries over a reload where the config allows.

    Labels: every series of an exchange carries the (model, version) the proxy decided for it.
    The baseline describes one model, so drift and quality are labelled with one pair: the
    configured name and version when both are set, else the pair of the first exchange with rows
    (until then the configured values or "unknown"). Exchanges of any other pair are left out of
    drift and quality and counted in model_baseline_skipped_rows_total under their own labels.
    """

    def __init__(self, config: Config, previous: Analysis | None = None) -> None:
        self.config = config
        self.default = default_labels(config.model)
        self.extractor = Extractor(config)
        # counters never go backwards across a reload
        self.content: ContentStats = previous.content if previous is not None else ContentStats()
        self.skipped: dict[tuple[str, str], int] = previous.skipped if previous is not None else {}
        # the pair drift and quality are labelled with: fixed when configured; else the first seen,
        # kept over a reload that leaves model.name and model.version as they were
        self.bound: tuple[str, str] | None = None
        if config.model.name is not None and config.model.version is not None:
            self.bound = self.default
        elif previous is not None and (previous.config.model.name, previous.config.model.version) == (
            config.model.name,
            config.model.version,
        ):
            self.bound = previous.bound
        self.columns: ColumnMonitor | None = None
        baseline = load_checked_baseline(config)  # ConfigError: the worker answers the reload with it
        if baseline is not None:
            self.columns = ColumnMonitor(
                baseline, config, previous.columns if previous is not None else None, critical=CriticalValues()
            )
            if self.bound is not None:
                self.columns.model = list(self.bound)

    def process(self, events: list[Event]) -> None:
        extract = self.extractor.extract
        content = self.content
        extractions = [extract(event) for event in events]
        for ex in extractions:
            content.update(ex)
        if self.columns is not None:
            self.columns.update(self._bound(extractions), time.time())

    def _bound(self, extractions: list[Extraction]) -> list[Extraction]:
        """The extractions of the monitor's (model, version); the others are counted as skipped."""
        bound = self.bound
        if bound is None:
            first = next((ex for ex in extractions if ex.features is not None or ex.predictions is not None), None)
            if first is None:
                return extractions  # nothing to bin (payload errors at most): stay unbound
            bound = self.bound = (first.model, first.version)
            assert self.columns is not None  # only called with a baseline
            self.columns.model = list(bound)
        model, version = bound
        if all(ex.model == model and ex.version == version for ex in extractions):
            return extractions  # the usual case: one model behind the sidecar
        kept = []
        for ex in extractions:
            if ex.model == model and ex.version == version:
                kept.append(ex)
            elif ex.features is not None or ex.predictions is not None:
                mv = (ex.model, ex.version)
                self.skipped[mv] = self.skipped.get(mv, 0) + (ex.features.n if ex.features is not None else 0)
        return kept

    def collect(self) -> Iterator[Metric]:
        yield from self.content.collect(*self.default)
        if self.columns is not None:
            yield from self.columns.collect(time.time())
            if self.skipped:
                skipped = family("model_baseline_skipped_rows_total")
                for mv, n in sorted(self.skipped.items()):
                    skipped.add_metric(list(mv), n)
                yield skipped
