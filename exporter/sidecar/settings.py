"""The proxy-side settings derived from a config, once: startup and reload use the same function.

`RestartOnly` holds the settings fixed at start (sockets, the upstream, histogram layouts,
the worker's existence, the resource collectors): a reload that changes one is refused as a
whole, never half-applied. Everything in `ProxySettings` is applied on reload.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from exporter.config import ClientConfig, Config, HostPort, ResourcesConfig, TailConfig
from exporter.events import REQUEST_HEADERS
from exporter.proxy.routes import RouteTable
from exporter.proxy.server import ProxyContext
from exporter.sidecar.health import UpstreamProbe


@dataclass(frozen=True)
class RestartOnly:
    listen: HostPort
    metrics_listen: HostPort
    upstream_url: str
    duration_buckets: tuple[float, ...]
    size_buckets: tuple[float, ...]
    capture_enabled: bool
    resources: ResourcesConfig
    web_config: str | None
    state_dir: str | None
    push_enabled: bool
    push_path: str
    tail: TailConfig  # the tailer follows its files from the start (sources/tail.py)

    @classmethod
    def of(cls, config: Config) -> RestartOnly:
        return cls(
            config.listen,
            config.metrics_listen,
            config.upstream.url,
            config.metrics.duration_buckets,
            config.metrics.size_buckets,
            config.capture.enabled,
            config.resources,
            config.web_config,
            config.state_dir,
            config.push.enabled,
            config.push.path,
            config.tail,
        )

    def change_from(self, old: RestartOnly) -> str | None:
        """Why a reload from `old` to this needs a restart, or None."""
        for f in dataclasses.fields(self):
            before, after = getattr(old, f.name), getattr(self, f.name)
            if before != after:
                return f"{f.name}: changed from {before} to {after}; this needs a restart"
        return None


@dataclass(frozen=True)
class ProxySettings:
    """What the proxy, its pool and the readiness probe take from a config."""

    read_timeout: float
    connect_timeout: float
    max_connections: int
    routes: RouteTable
    capture_routes: frozenset[str]  # empty when payload capture is off
    capture_headers: frozenset[bytes]  # the request/response headers the adapters read, and the id header
    capture_limit: int
    probe_url: str
    probe_interval: float
    probe_timeout: float
    client: ClientConfig  # client-side timeouts and the connection limit

    @classmethod
    def of(cls, config: Config) -> ProxySettings:
        up, capture = config.upstream, config.capture
        routes = RouteTable(config.metrics.routes)
        return cls(
            read_timeout=up.read_timeout,
            connect_timeout=up.connect_timeout,
            max_connections=up.max_connections,
            routes=routes,
            capture_routes=routes.inference if capture.enabled else frozenset(),
            capture_headers=REQUEST_HEADERS | {capture.id_header.encode("latin-1")},
            capture_limit=capture.max_body_bytes,
            probe_url=up.url + config.health_path,
            probe_interval=up.health.interval,
            probe_timeout=up.health.timeout,
            client=config.client,
        )

    def apply(self, ctx: ProxyContext, probe: UpstreamProbe | None) -> None:
        """Put these settings in force for the exchanges that start from now on."""
        ctx.read_timeout = self.read_timeout
        ctx.routes = self.routes
        ctx.capture_routes = self.capture_routes
        ctx.capture_headers = self.capture_headers
        ctx.capture_limit = self.capture_limit
        ctx.client = self.client
        pool = ctx.pool
        pool.connect_timeout = self.connect_timeout
        pool.max_connections = self.max_connections
        pool.capture_headers = self.capture_headers
        pool.capture_limit = self.capture_limit
        if probe is not None:
            probe.url = self.probe_url
            probe.interval = self.probe_interval
            probe.timeout = self.probe_timeout
