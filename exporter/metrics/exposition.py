"""The registry behind /metrics: every collector in one explicit list."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder

import exporter
from exporter.metrics.definitions import family
from exporter.metrics.render import render


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class BuildInfo:
    def collect(self) -> Iterable[Metric]:
        info = family("model_exporter_build_info")
        info.add_metric([exporter.__version__], 1)
        yield info


class Recent:
    """A collector whose families are reused for `max_age` seconds (the proxy's own process metrics)."""

    def __init__(self, collector: Collector, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.collector = collector
        self.max_age = max_age
        self.clock = clock
        self._at = -float("inf")
        self._families: list[Metric] = []

    def collect(self) -> list[Metric]:
        now = self.clock()
        if now - self._at >= self.max_age:
            self._families = list(self.collector.collect())
            self._at = now
        return self._families


class OrderedRegistry(CollectorRegistry):
    """A registry that keeps its collectors in order, so a scrape can render them one at a time."""

    def __init__(self) -> None:
        super().__init__(auto_describe=False)
        self.collectors: list[Collector] = []

    def register(self, collector: Any) -> None:
        super().register(collector)
        self.collectors.append(collector)

    def unregister(self, collector: Any) -> None:
        super().unregister(collector)
        self.collectors.remove(collector)


def build_registry(collectors: Iterable[Collector], max_age: float = 0.0) -> OrderedRegistry:
    """A fresh registry: the exporter's own process metrics plus the given collectors.

    `max_age`: the process and GC readings serve the scrapes of that many seconds (resources.interval)."""
    registry = OrderedRegistry()
    registry.register(Recent(ProcessCollector(registry=None), max_age))
    PlatformCollector(registry=registry)
    registry.register(Recent(GCCollector(registry=CollectorRegistry()), max_age))  # a registry of its own, unused
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
    """The exposition of `collector` in `fmt`; OpenMetrics ends with `# EOF`.

    The same bytes as prometheus_client's encoders, rendered faster (metrics/render.py)."""
    return render(collector.collect(), fmt == OPENMETRICS)


async def encode_in_turns(registry: OrderedRegistry, fmt: str) -> bytes:
    """encode(registry, fmt), the same bytes, giving the event loop a turn after each collector.

    On the proxy's loop the registry's ~40 families take most of a millisecond to collect and
    render; in one piece that is a millisecond every request arriving meanwhile waits, several
    times a second with several scrapers. In turns, the longest wait is one collector's."""
    openmetrics = fmt == OPENMETRICS
    parts = []
    for collector in list(registry.collectors):
        parts.append(render(collector.collect(), openmetrics, eof=False))
        await asyncio.sleep(0)
    if openmetrics:
        parts.append(_EOF)
    return b"".join(parts)


def join(fmt: str, *parts: bytes) -> bytes:
    """One exposition from several (the worker's and the proxy's own): one `# EOF`, at the end."""
    if fmt != OPENMETRICS:
        return b"".join(parts)
    return b"".join(strip_eof(p) for p in parts) + _EOF


def strip_eof(part: bytes) -> bytes:
    """An OpenMetrics exposition without its `# EOF`, so that more can follow it."""
    return part[: -len(_EOF)] if part.endswith(_EOF) else part


# ---------------------------------------------------------------- gzip, compressed where it is cheap
# Prometheus asks for gzip on every scrape. The worker's part is megabytes with a large baseline:
# the worker (niced, off the proxy's loop) compresses it into raw deflate blocks left open, with
# the CRC and length of what it compressed; the proxy appends its own small part to the same
# stream and closes it. One gzip member, as every client expects (curl reads only the first
# member of a multi-member body), and the proxy's loop moves a tenth of the bytes.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"  # deflate, no name, no mtime, fastest, unknown OS
GZIP_LEVEL = 1  # 14x smaller for an exposition at about 250 MB/s; higher levels buy little more


class Deflated(NamedTuple):
    """The start of a gzip member's body: raw deflate blocks, flushed to a byte boundary, not final."""

    blocks: bytes
    crc: int  # CRC-32 of the uncompressed bytes (for a continuation: of everything up to its end)
    size: int  # their length (for a continuation: its own)

    def then(self, more: Deflated) -> Deflated:
        """This part followed by `more`, a continuation of it (`deflate_more`)."""
        return Deflated(self.blocks + more.blocks, more.crc, self.size + more.size)


def deflate_open(data: bytes) -> Deflated:
    """Compress `data` as the first part of a gzip member that more data will follow."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return Deflated(compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH), zlib.crc32(data), len(data))


def deflate_more(head: Deflated, data: bytes) -> Deflated:
    """Compress `data` as what follows `head` in the same member (`head.then(...)` joins them)."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return Deflated(
        compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH), zlib.crc32(data, head.crc), len(data)
    )


def gzip_close(head: Deflated, tail: bytes) -> bytes:
    """One gzip member holding `head`'s data then `tail`.

    Deflate blocks may follow a sync flush from another compressor: its back-references never
    reach before its own start, and the CRC continues from `head`'s."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    rest = compressor.compress(tail) + compressor.flush(zlib.Z_FINISH)
    trailer = struct.pack("<II", zlib.crc32(tail, head.crc), (head.size + len(tail)) & 0xFFFFFFFF)
    return b"".join((GZIP_HEADER, head.blocks, rest, trailer))


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header (RFC 9110 §12.5.3) admits gzip (`gzip`, `x-gzip` or `*`, q > 0)."""
    if not accept_encoding:
        return False
    star = False
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding in ("gzip", "x-gzip"):
            return q > 0
        if coding == "*":
            star = q > 0
    return star
