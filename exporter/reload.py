"""Configuration reload (SIGHUP, POST /-/reload): build the new config, swap only on success."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from exporter.config import Config, ConfigError
from exporter.metrics.definitions import BY_NAME
from exporter.pipeline.link import WorkerLink
from exporter.proxy.server import ProxyContext

log = logging.getLogger(__name__)

# Settings bound to sockets at start: a reload that changes them is refused, not half-applied.
RESTART_ONLY = ("listen", "metrics_listen")


class Reloader:
    """Holds the config in force and the outcome of the last reload."""

    def __init__(self, config: Config, load: Callable[[], Config] | None, ctx: ProxyContext,
                 link: WorkerLink | None, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.load = load
        self.ctx = ctx
        self.link = link
        self.clock = clock
        self.successful = True
        self.success_time = clock()
        self._lock = asyncio.Lock()

    async def reload(self) -> str | None:
        """Apply the config file anew; None on success, else why the old config stays."""
        async with self._lock:
            error = await self._reload()
        self.successful = error is None
        if error is None:
            self.success_time = self.clock()
            log.info("configuration reloaded")
        else:
            log.error("reload failed, keeping the previous configuration: %s", error)
        return error

    async def _reload(self) -> str | None:
        if self.load is None:
            return "no configuration file to reload (started without --config); flags are fixed at start"
        try:
            new = self.load()
        except ConfigError as exc:
            return str(exc)
        for key in RESTART_ONLY:
            if getattr(new, key) != getattr(self.config, key):
                return f"{key}: changed from {getattr(self.config, key)} to {getattr(new, key)}; this needs a restart"
        if new.upstream.url != self.config.upstream.url:
            return f"upstream.url: changed from {self.config.upstream.url} to {new.upstream.url}; this needs a restart"
        if self.link is not None:
            try:
                error = await self.link.reload(new)
            except (ConnectionError, asyncio.TimeoutError) as exc:
                return f"analysis worker did not take the new configuration: {exc or type(exc).__name__}"
            if error is not None:
                return error
        stats = self.ctx.stats
        stats.model, stats.version = new.model.name, new.model.version
        self.ctx.read_timeout = new.upstream.read_timeout
        self.config = new
        return None

    def collect(self) -> Iterator[Metric]:
        m = BY_NAME["model_exporter_config_last_reload_successful"]
        ok = GaugeMetricFamily(m.name, m.help, value=1 if self.successful else 0)
        m = BY_NAME["model_exporter_config_last_reload_success_timestamp_seconds"]
        yield ok
        yield GaugeMetricFamily(m.name, m.help, value=self.success_time)
