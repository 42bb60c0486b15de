"""The registry behind /metrics: every collector in one explicit list."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

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
        registry.register(collector)
    return registry


TEXT, OPENMETRICS = "text", "openmetrics"
_EOF = b"# EOF\n"


def negotiate(accept: str | None) -> tuple[str, str]:
    """(format, content type) for an Accept header: OpenMetrics when asked for, else text 0.0.4."""
    _, content_type = choose_encoder(accept or "")
    return (
        (OPENMETRICS, content_type) if content_type.startswith("application/openmetrics-text") else (TEXT, content_type)
    )


def encode(collector: Collector | CollectorRegistry, fmt: str) -> bytes:
    """The exposition of `collector` in `fmt`; OpenMetrics ends with `# EOF`."""
    encoder = openmetrics_latest if fmt == OPENMETRICS else generate_latest
    return encoder(collector)


def join(fmt: str, *parts: bytes) -> bytes:
    """One exposition from several (the proxy's own and the worker's): one `# EOF`, at the end."""
    if fmt != OPENMETRICS:
        return b"".join(parts)
    return b"".join(p[: -len(_EOF)] if p.endswith(_EOF) else p for p in parts) + _EOF
