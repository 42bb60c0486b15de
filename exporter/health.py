"""Readiness probe of the model server: drives model_upstream_up, /-/ready and load time."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from exporter.proxy.stats import TrafficStats

log = logging.getLogger(__name__)


class UpstreamProbe:
    """Polls `url` every `interval` seconds; 2xx within `timeout` means ready."""

    def __init__(self, url: str, interval: float, timeout: float, stats: TrafficStats,
                 started: float, clock=time.monotonic) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.stats = stats
        self.started = started
        self.clock = clock
        self.ready = False
        self.last_error = "not probed yet"

    async def probe_once(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(self.url, timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                await resp.read()
                ok = 200 <= resp.status < 300
                self.last_error = "" if ok else f"readiness probe answered HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
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
        # its own single connection: probes must not queue behind proxied traffic
        connector = aiohttp.TCPConnector(limit=1, force_close=True)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            while True:
                await self.probe_once(session)
                await asyncio.sleep(self.interval)
