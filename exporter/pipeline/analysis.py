"""Everything the worker does with a batch of events, and the metrics it answers scrapes with."""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import Metric

from exporter.analyzers.content import ContentStats
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

    def process(self, events: list[Event]) -> None:
        extract = self.extractor.extract
        content = self.content
        for event in events:
            content.update(extract(event))

    def collect(self) -> Iterator[Metric]:
        yield from self.content.collect(self.config.model.name, self.config.model.version)
