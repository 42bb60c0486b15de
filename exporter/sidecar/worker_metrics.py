"""The proxy process's view of the analysis pipeline at scrape time: queue health and the worker's answer.

The worker's own metrics arrive rendered (sidecar/link.py) and are joined to the exposition
by the metrics endpoint; these are the proxy-side ones.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from exporter.metrics.definitions import family
from exporter.sidecar.link import WorkerLink


class PipelineCollector:
    """Drops, queue depth and capacity of the link to the worker."""

    def __init__(self, link: WorkerLink) -> None:
        self.link = link

    def collect(self) -> Iterator[Metric]:
        link = self.link
        dropped = family("model_exporter_events_dropped_total")
        for reason, n in link.dropped.items():
            dropped.add_metric([reason], n)
        yield dropped
        depth = family("model_exporter_queue_depth")
        depth.add_metric([], link.queue_depth)
        yield depth
        restarts = family("model_exporter_worker_restarts_total")
        restarts.add_metric([], link.restarts)
        yield restarts
        capacity = family("model_exporter_queue_capacity")
        capacity.add_metric([], link.max_queue)
        yield capacity


class PipelineHealth:
    """The worker's answer to the last scrape, as an isolated source named "pipeline"."""

    name = "pipeline"
    live = True  # the answer to this scrape: never a reading kept from an earlier one

    def __init__(self, link: WorkerLink) -> None:
        self.link = link

    @property
    def last_duration(self) -> float:
        return self.link.last_collect_seconds

    def collect(self) -> Iterator[Metric]:
        if not self.link.last_collect_ok:
            raise RuntimeError("the analysis worker did not answer the last scrape")
        return iter(())
