"""The main process's view of the pipeline at scrape time: the worker's families plus queue health."""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import Metric

from exporter.metrics.definitions import family
from exporter.sidecar.link import WorkerLink


class PipelineCollector:
    """Yields what the last `WorkerLink.collect()` fetched; the fetch itself is async, in /metrics."""

    def __init__(self, link: WorkerLink) -> None:
        self.link = link

    def collect(self) -> Iterator[Metric]:
        link = self.link
        yield from link.families
        dropped = family("model_exporter_events_dropped_total")
        for reason, n in link.dropped.items():
            dropped.add_metric([reason], n)
        yield dropped
        depth = family("model_exporter_queue_depth")
        depth.add_metric([], link.queue_depth)
        yield depth
        capacity = family("model_exporter_queue_capacity")
        capacity.add_metric([], link.max_queue)
        yield capacity


class PipelineHealth:
    """The worker's answer to the last scrape, as an isolated source named "pipeline"."""

    name = "pipeline"

    def __init__(self, link: WorkerLink) -> None:
        self.link = link

    @property
    def last_duration(self) -> float:
        return self.link.last_collect_seconds

    def collect(self) -> Iterator[Metric]:
        if not self.link.last_collect_ok:
            raise RuntimeError("the analysis worker did not answer the last scrape")
        return iter(())
