"""Wire the sidecar together and run it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Callable

from exporter.collectors.base import Background, Isolated, Source
from exporter.collectors.gpu import GPUCollector, load_nvml
from exporter.collectors.process import ProcessCollector, find_by_cmdline, find_listener
from exporter.config import Config
from exporter.labels import LabelPolicy, default_labels
from exporter.metrics.exposition import (
    Collector,
    Deflated,
    accepts_gzip,
    build_registry,
    deflate_open,
    encode,
    encode_in_turns,
    gzip_close,
    join,
    negotiate,
)
from exporter.proxy.server import ClientConnection, ProxyContext, open_files_for, sweep_timeouts
from exporter.proxy.stats import TrafficStats
from exporter.proxy.upstream import UpstreamPool
from exporter.sidecar.admin import make_admin_router
from exporter.sidecar.feedback import LabelsDropped
from exporter.sidecar.health import UpstreamProbe
from exporter.sidecar.http import AdminServer
from exporter.sidecar.link import WorkerLink
from exporter.sidecar.push import PushSource
from exporter.sidecar.reload import Reloader
from exporter.sidecar.settings import ProxySettings
from exporter.sidecar.web_config import BasicAuth, WebConfig, load_web_config, ssl_context
from exporter.sidecar.worker_metrics import PipelineCollector, PipelineHealth
from exporter.sources.tail import Tailer

log = logging.getLogger(__name__)


async def serve(config: Config, load: Callable[[], Config] | None = None, stop: asyncio.Event | None = None) -> None:
    """Start the proxy and metrics ports; return after a graceful stop. `load` re-reads the config."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    # SIGTERM (Kubernetes, docker stop) drains gracefully: readiness off, shutdown.delay of serving,
    # then shutdown.grace_period for what is in flight. SIGINT (Ctrl-C) skips the delay.
    interactive = asyncio.Event()
    # set by the signal itself, wherever start-up is: /-/ready answers 503 from that moment (a
    # SIGTERM while the analysis worker still loads its baseline must not wait for it)
    draining = asyncio.Event()

    def on_sigterm() -> None:
        draining.set()
        stop.set()

    def on_sigint() -> None:
        interactive.set()
        on_sigterm()

    for sig, handler in ((signal.SIGTERM, on_sigterm), (signal.SIGINT, on_sigint)):
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):
            pass

    web = load_web_config(config.web_config) if config.web_config is not None else WebConfig()
    auth = BasicAuth(web.users) if web.users else None
    up = config.upstream
    stats = TrafficStats(
        config.metrics.duration_buckets, config.metrics.size_buckets, labels=LabelPolicy.from_config(config.model)
    )
    link: WorkerLink | None = None
    collectors: list[Collector] = [stats]
    if config.capture.enabled:
        link = WorkerLink(config)  # started once the ports are up; until then events count as worker_down
        collectors.append(PipelineCollector(link))
        collectors.append(LabelsDropped(lambda: link.labels_dropped if link is not None else {}))
    settings = ProxySettings.of(config)
    pool = UpstreamPool(up.host, up.port, settings.max_connections, settings.connect_timeout)
    host_header = up.url.split("://", 1)[1].encode("latin-1") if up.url else b""
    ctx = ProxyContext(
        pool=pool,
        stats=stats,
        routes=settings.routes,
        read_timeout=settings.read_timeout,
        upstream_host_header=host_header,
        link=link,
    )
    probe = UpstreamProbe(settings.probe_url, settings.probe_interval, settings.probe_timeout, stats, started)
    settings.apply(ctx, probe)  # the same function a reload uses
    open_files_for(settings.client.max_connections + settings.max_connections)
    sources = resource_sources(config)
    for source in sources:
        if isinstance(source, Background):
            source.start()  # its first reading is ready by the first scrape
    if link is not None:
        sources.insert(0, PipelineHealth(link))
    collectors.append(Isolated(sources, max_age=config.resources.interval))
    reloader = Reloader(config, load, ctx, link, probe)
    collectors.append(reloader)
    tailer: Tailer | None = None
    if config.tail.sources:  # `run --tail`: log lines through the same stats and link as proxied traffic
        tailer = Tailer(config, stats, lambda: ctx.routes, link)  # the route table in force after any reload
        collectors.append(tailer)
    stats.has_upstream = bool(up.url)
    push: PushSource | None = None
    if link is not None and config.push.enabled:
        push = PushSource(
            link, lambda: ctx.stats.labels, lambda: reloader.config.push, config.capture.id_header
        )  # the label policy and the caps in force, after any reload
        collectors.append(push)
    # the counters are rendered apart
    registry = build_registry([c for c in collectors if c is not stats], config.resources.interval)
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reloader.reload()))
    except (NotImplementedError, RuntimeError, AttributeError):
        pass

    async def render_metrics(accept: str | None, accept_encoding: str | None) -> tuple[bytes, str, str | None]:
        """(body, content type, content encoding) of a scrape: the worker's part, then the proxy's own.

        The worker also renders the traffic counters, from the snapshot sent with the request; when
        its answer is late (or it is down) the proxy renders them itself."""
        fmt, content_type = negotiate(accept)
        gzip = accepts_gzip(accept_encoding)
        # the worker's part first: its answer (or its absence) decides collector_success{pipeline}
        counters: bytes | Deflated | None = None
        if link is None:
            worker: bytes | Deflated = deflate_open(b"") if gzip else b""
        else:
            worker, counters = await link.collect(fmt, gzip, stats)
        own = await encode_in_turns(registry, fmt)  # in turns: requests need not wait for all of it
        if counters is None:
            own = join(fmt, encode(stats, fmt), own)
        if isinstance(worker, Deflated):
            head = worker.then(counters) if isinstance(counters, Deflated) else worker
            return gzip_close(head, own), content_type, "gzip"
        return join(fmt, worker, counters if isinstance(counters, bytes) else b"", own), content_type, None

    def readiness() -> tuple[bool, str]:
        if draining.is_set():
            return False, "the sidecar is shutting down"
        if not up.url:  # tail only: nothing to wait for
            return True, ""
        return probe.ready, probe.last_error

    admin = AdminServer(
        make_admin_router(
            render_metrics,
            readiness,
            reloader.reload,
            auth,
            labels=link.submit_labels if link is not None else None,
            push_path=config.push.path if config.push.enabled else None,
            push=push,
        )
    )
    await admin.start(config.metrics_listen.host, config.metrics_listen.port, ssl_context(web, config.web_config or ""))
    proxy: asyncio.AbstractServer | None = None
    tasks: list[asyncio.Task[None]] = []
    if up.url:
        proxy = await loop.create_server(
            lambda: ClientConnection(ctx), config.listen.host, config.listen.port, backlog=2048, reuse_address=True
        )
        tasks += [loop.create_task(probe.run()), loop.create_task(sweep_timeouts(ctx))]
    if push is not None:
        tasks.append(loop.create_task(push.run()))
    # Everything allocated so far lives as long as the process: move it out of the cyclic
    # collector's reach, so a full collection does not stall the proxy for milliseconds.
    gc.collect()
    gc.freeze()
    if up.url:
        log.info("proxying %s -> %s; metrics on http://%s/metrics", config.listen, up.url, config.metrics_listen)
    else:
        log.info("tailing only (no upstream: no proxy port); metrics on http://%s/metrics", config.metrics_listen)
    try:
        if link is not None:
            await link.start()
        if tailer is not None:  # after the worker is up: the first lines are not dropped as worker_down
            tasks.append(loop.create_task(tailer.run()))
        await stop.wait()
        # A rollout: leave the load balancer first (readiness 503, traffic still served for
        # shutdown.delay), then refuse new connections and let requests in flight finish.
        draining.set()
        stop.clear()
        delay = 0.0 if interactive.is_set() else reloader.config.shutdown.delay
        log.info("stopping: /-/ready answers 503; serving for %.1fs more (a second signal skips the wait)", delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
    finally:
        grace = reloader.config.shutdown.grace_period
        log.info(
            "shutting down: refusing new connections, draining %d connection(s) for up to %.1fs",
            len(ctx.connections),
            grace,
        )
        if proxy is not None:
            proxy.close()
        for conn in list(ctx.connections):
            conn.shutdown()
        deadline = loop.time() + grace
        while ctx.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(ctx.connections):
            conn.transport.abort()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)  # the tailer writes its offsets on the way out
        pool.close()
        for source in sources:
            if isinstance(source, Background):
                source.close()
        if link is not None:
            await link.close()
        await admin.close()


LOOPBACK = {"127.0.0.1", "localhost", "::1"}
GPU_MIN_INTERVAL = 0.5  # resources.interval 0 (every scrape) still reads NVML at most this often, in its thread


def resource_sources(config: Config) -> list[Source]:
    """The model server's process (when it is on this host) and its GPUs."""
    res = config.resources
    name, version = default_labels(config.model)  # resources belong to no one exchange
    sources: list[Source] = []
    if res.pid is not None:
        pid = res.pid
        sources.append(ProcessCollector(lambda: pid, name, version))
    elif res.match is not None:
        pattern = res.match
        sources.append(ProcessCollector(lambda: find_by_cmdline(pattern), name, version, background=True))
    elif config.upstream.host in LOOPBACK:
        port = config.upstream.port
        sources.append(ProcessCollector(lambda: find_listener(port), name, version, background=True))
    if res.gpu != "off":
        try:
            nvml = load_nvml()
        except ImportError:
            log.warning("nvidia-ml-py is not installed: GPU metrics off")
        else:
            # NVML can hang (a GPU fallen off the bus): read in a thread of its own, never on the loop
            every = max(res.interval, GPU_MIN_INTERVAL)
            sources.append(Background(GPUCollector(nvml, name, version, mode=res.gpu), every, max(10 * every, 10.0)))
    return sources


def run(config: Config, load: Callable[[], Config] | None = None) -> None:
    """Run on uvloop where available."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config, load))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(config, load))
