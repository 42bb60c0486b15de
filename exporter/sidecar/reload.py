"""Configuration reload (SIGHUP, POST /-/reload): build the new config, swap only on success."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import Metric

from exporter.config import Config, ConfigError
from exporter.labels import LabelPolicy
from exporter.metrics.definitions import family
from exporter.proxy.server import ProxyContext
from exporter.sidecar.health import UpstreamProbe
from exporter.sidecar.link import WorkerLink
from exporter.sidecar.settings import ProxySettings, RestartOnly

log = logging.getLogger(__name__)

READ_TIMEOUT_SECONDS = 10.0  # reading and parsing the config file


class Reloader:
    """Holds the config in force and the outcome of the last reload."""

    def __init__(
        self,
        config: Config,
        load: Callable[[], Config] | None,
        ctx: ProxyContext,
        link: WorkerLink | None,
        probe: UpstreamProbe | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.probe = probe
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
            # off the loop and bounded: a config path whose read hangs (a FIFO, a stuck mount)
            # must not freeze the proxy; the thread is left to finish on its own
            new = await asyncio.wait_for(asyncio.to_thread(self.load), READ_TIMEOUT_SECONDS)
        except ConfigError as exc:
            return str(exc)
        except TimeoutError:
            return f"the configuration file could not be read within {READ_TIMEOUT_SECONDS:g}s"
        restart = RestartOnly.of(new).change_from(RestartOnly.of(self.config))
        if restart is not None:
            return restart
        if self.link is not None:
            try:
                error = await self.link.reload(new)
            except (TimeoutError, ConnectionError) as exc:
                return f"analysis worker did not take the new configuration: {exc or type(exc).__name__}"
            if error is not None:
                return error
        self._apply(new)
        self.config = new
        return None

    def _apply(self, new: Config) -> None:
        """Swap the proxy-side settings (the worker already has its part)."""
        # new exchanges get the new model name/version; names kept so far stay kept
        self.ctx.stats.labels = LabelPolicy.from_config(new.model, previous=self.ctx.stats.labels)
        ProxySettings.of(new).apply(self.ctx, self.probe)

    def collect(self) -> Iterator[Metric]:
        ok = family("model_exporter_config_last_reload_successful")
        ok.add_metric([], 1 if self.successful else 0)
        yield ok
        when = family("model_exporter_config_last_reload_success_timestamp_seconds")
        when.add_metric([], self.success_time)
        yield when
