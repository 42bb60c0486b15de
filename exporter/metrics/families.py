"""Samples to metric families: an analyzer computes (metric, label values, value), this renders the families."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import Metric

from exporter.metrics.definitions import BY_NAME, ValueFamily, family

# (metric name as defined, label values in label_names order, value)
Sample = tuple[str, Sequence[str], float]

_ORDER = {name: i for i, name in enumerate(BY_NAME)}


def families(samples: Iterable[Sample]) -> Iterator[Metric]:
    """One family per metric named in `samples`, holding its samples in their order; families in definition order."""
    out: dict[str, ValueFamily] = {}
    for name, labels, value in samples:
        metric = out.get(name)
        if metric is None:
            metric = out[name] = family(name)
        metric.add_metric(labels, value)
    for name in sorted(out, key=_ORDER.__getitem__):
        yield out[name]
