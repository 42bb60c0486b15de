"""The registry behind /metrics: every collector in one explicit list."""

from __future__ import annotations

from typing import Iterable, Protocol

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder

import exporter
from exporter.metrics.definitions import family


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class BuildInfo:
    def collect(self) -> Iterable[Metric]:
        info = family("model_exporter_build_info")
        info.add_metric([exporter.__version__], 1)
        yield info


def build_registry(collectors: Iterable[Collector]) -> CollectorRegistry:
    """A fresh registry: the exporter's own process metrics plus the given collectors."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(BuildInfo())
    for collector in collectors:
        registry.register(collector)  # type: ignore[arg-type]
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """Exposition body and content type, negotiated from the Accept header."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
