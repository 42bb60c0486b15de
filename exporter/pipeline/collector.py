"""The main process's view of the pipeline at scrape time: the worker's families plus queue health."""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.metrics.definitions import BY_NAME
from exporter.pipeline.link import WorkerLink


def _family(name: str, cls: type = GaugeMetricFamily, labels: tuple[str, ...] = ()) -> Metric:
    m = BY_NAME[name]
    return cls(m.name, m.help, labels=list(labels))


class PipelineCollector:
    """Yields what the last `WorkerLink.collect()` fetched; the fetch itself is async, in /metrics."""

    def __init__(self, link: WorkerLink) -> None:
        self.link = link

    def collect(self) -> Iterator[Metric]:
        link = self.link
        yield from link.families
        dropped = _family("model_exporter_events_dropped_total", CounterMetricFamily, ("reason",))
        for reason, n in link.dropped.items():
            dropped.add_metric([reason], n)
        yield dropped
        depth = _family("model_exporter_queue_depth")
        depth.add_metric([], link.queue_depth)
        yield depth
        capacity = _family("model_exporter_queue_capacity")
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
