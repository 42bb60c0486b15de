"""Collector isolation: a failing collector costs its own metrics, never the scrape."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client.core import Metric

from exporter.metrics.definitions import family

log = logging.getLogger(__name__)


class Source(Protocol):
    name: str

    def collect(self) -> Iterable[Metric]: ...


class Isolated:
    """Runs each source's collect() at scrape time and reports success and duration per source."""

    def __init__(self, sources: Iterable[Source], clock: Callable[[], float] = time.perf_counter) -> None:
        self.sources = list(sources)
        self.clock = clock
        self._failing: set[str] = set()

    def collect(self) -> Iterator[Metric]:
        success = family("model_exporter_collector_success")
        duration = family("model_exporter_collector_duration_seconds")
        for source in self.sources:
            started = self.clock()
            try:
                families = list(source.collect())
            except Exception as exc:  # isolation is the point: any failure stays here
                ok = False
                if source.name not in self._failing:
                    log.warning("collector %s failed: %s", source.name, exc)
                self._failing.add(source.name)
            else:
                ok = True
                self._failing.discard(source.name)
                yield from families
            success.add_metric([source.name], 1 if ok else 0)
            # a source fetched elsewhere (the analysis worker) reports its own fetch time
            took = getattr(source, "last_duration", None)
            duration.add_metric([source.name], took if took is not None else self.clock() - started)
        yield success
        yield duration
