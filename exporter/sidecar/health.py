"""Readiness probe of the model server: drives model_upstream_up, /-/ready and load time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

from exporter.proxy.stats import TrafficStats

log = logging.getLogger(__name__)


class UpstreamProbe:
    """Polls `url` every `interval` seconds; 2xx within `timeout` means ready."""

    def __init__(
        self,
        url: str,
        interval: float,
        timeout: float,
        stats: TrafficStats,
        started: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.stats = stats
        self.started = started
        self.clock = clock
        self.ready = False
        self.last_error = "not probed yet"

    async def probe_once(self) -> bool:
        try:
            status = await asyncio.wait_for(get_status(self.url), self.timeout)
            ok = 200 <= status < 300
            self.last_error = "" if ok else f"readiness probe answered HTTP {status}"
        except (TimeoutError, OSError, httptools.HttpParserError) as exc:
            ok = False
            self.last_error = f"readiness probe failed: {type(exc).__name__} {exc}".strip()
        if ok and self.stats.load_duration is None:
            self.stats.load_duration = self.clock() - self.started
            log.info("model server ready after %.2fs", self.stats.load_duration)
        if ok != self.ready:
            log.info("model server %s (%s)", "up" if ok else "down", self.url if ok else self.last_error)
        self.ready = ok
        self.stats.upstream_up = 1 if ok else 0
        return ok

    async def run(self) -> None:
        while True:
            await self.probe_once()
            await asyncio.sleep(self.interval)


class _Response:
    """httptools callbacks: the status once the head is in, done once the message is."""

    def __init__(self) -> None:
        self.head = False
        self.done = False

    def on_headers_complete(self) -> None:
        self.head = True

    def on_message_complete(self) -> None:
        self.done = True


async def get_status(url: str, max_bytes: int = 1 << 20) -> int:
    """GET `url` over a connection of its own (probes never queue behind proxied traffic).

    Returns the status code once the whole response is read; the body is discarded.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: model-exporter-probe\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n".encode("latin-1")
        )
        response = _Response()
        parser = httptools.HttpResponseParser(response)
        seen = 0
        while not response.done:
            data = await reader.read(65536)
            if not data:  # a body without a length ends when the connection closes
                if not response.head:
                    raise ConnectionError("connection closed before a response head")
                break
            seen += len(data)
            if seen > max_bytes:
                raise ConnectionError(f"readiness response larger than {max_bytes} bytes")
            parser.feed_data(data)
        return int(parser.get_status_code())
    finally:
        writer.close()
