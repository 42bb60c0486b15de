"""The metrics port: /metrics, /-/healthy, /-/ready. Never shared with proxied traffic."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.health import UpstreamProbe
from exporter.metrics.exposition import render
from exporter.pipeline.link import WorkerLink
from exporter.reload import Reloader

INDEX = b"""<html><head><title>model-exporter</title></head><body>
<h1>model-exporter</h1><ul>
<li><a href="/metrics">/metrics</a></li><li><a href="/-/healthy">/-/healthy</a></li>
<li><a href="/-/ready">/-/ready</a></li></ul></body></html>
"""


def make_admin_app(registry: CollectorRegistry, probe: UpstreamProbe, link: WorkerLink | None,
                   reloader: Reloader | None = None) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        if link is not None:
            await link.collect()  # the worker's families, fetched before the registry renders
        body, content_type = render(registry, request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def ready(request: web.Request) -> web.Response:
        if probe.ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"model server not ready: {probe.last_error}\n")

    async def reload(request: web.Request) -> web.Response:
        if reloader is None:
            return web.Response(status=501, text="reload is not available\n")
        error = await reloader.reload()
        if error is None:
            return web.Response(text="configuration reloaded\n")
        return web.Response(status=400, text=f"reload failed, previous configuration kept: {error}\n")

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=INDEX, content_type="text/html")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.router.add_get("/", index)
    return app
