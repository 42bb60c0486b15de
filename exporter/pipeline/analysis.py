"""Everything the worker does with a batch of events, and the metrics it answers scrapes with."""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import Metric

import time

from exporter.analyzers.columns import ColumnMonitor
from exporter.analyzers.content import ContentStats
from exporter.baseline.format import BaselineError
from exporter.baseline.load import load_baseline
from exporter.config import Config
from exporter.pipeline.event import Event
from exporter.pipeline.extract import Extractor


class Analysis:
    """Extraction plus the analyzers; state carries over a reload where the config allows."""

    def __init__(self, config: Config, previous: Analysis | None = None) -> None:
        self.config = config
        self.extractor = Extractor(config)
        # counters never go backwards across a reload
        self.content = previous.content if previous is not None else ContentStats()
        self.columns: ColumnMonitor | None = None
        if config.baseline is not None:
            try:
                baseline = load_baseline(config.baseline)
            except BaselineError as exc:
                raise ValueError(str(exc)) from None
            self.columns = ColumnMonitor(baseline, config, previous.columns if previous is not None else None)

    def process(self, events: list[Event]) -> None:
        extract = self.extractor.extract
        content = self.content
        extractions = [extract(event) for event in events]
        for ex in extractions:
            content.update(ex)
        if self.columns is not None:
            self.columns.update(extractions, time.time())

    def collect(self) -> Iterator[Metric]:
        yield from self.content.collect(self.config.model.name, self.config.model.version)
        if self.columns is not None:
            yield from self.columns.collect(time.time())
