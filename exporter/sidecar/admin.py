"""The metrics port's endpoints: /metrics, /-/healthy, /-/ready, POST /-/reload, POST /feedback, POST push.path. Never the proxy port."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from exporter.events import Feedback
from exporter.sidecar.feedback import answer, parse_feedback
from exporter.sidecar.http import Handler, Request, Response, Router, text
from exporter.sidecar.push import PushSource
from exporter.sidecar.web_config import BasicAuth

INDEX = b"""<html><head><title>model-exporter</title></head><body>
<h1>model-exporter</h1><ul>
<li><a href="/metrics">/metrics</a></li><li><a href="/-/healthy">/-/healthy</a></li>
<li><a href="/-/ready">/-/ready</a></li></ul></body></html>
"""

# A browser can send these cross-origin without a CORS preflight: a state-changing endpoint
# that accepted them could be triggered by any web page the operator visits.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


def refuses_form(request: Request) -> Response | None:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type in FORM_TYPES:
        return text(415, f"{content_type} is not accepted here (a browser form could send it cross-origin)\n")
    return None


def make_admin_router(
    render_metrics: Callable[[str | None, str | None], Awaitable[tuple[bytes, str, str | None]]],
    ready: Callable[[], tuple[bool, str]],
    reload: Callable[[], Awaitable[str | None]] | None,
    auth: BasicAuth | None = None,
    labels: Callable[[Feedback], int] | None = None,
    push_path: str | None = None,
    push: PushSource | None = None,
) -> Router:
    """The metrics port's endpoints, given how to render, how to tell readiness and how to reload.

    With `auth`, every endpoint but the liveness and readiness probes asks for basic auth.
    `labels` hands the labels of a POST /feedback to the worker and returns how many it dropped.
    `push_path`: where CloudEvents are accepted (push.enabled), taken by `push` (None: the worker is off).
    """
    router = Router()

    def guarded(handler: Handler) -> Handler:
        if auth is None:
            return handler

        async def check(request: Request) -> Response:
            if not await auth.check(request.headers.get("authorization")):
                return Response(401, b"unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="model-exporter"'})
            return await handler(request)

        return check

    async def metrics(request: Request) -> Response:
        body, content_type, encoding = await render_metrics(
            request.headers.get("accept"), request.headers.get("accept-encoding")
        )
        headers = {"Vary": "Accept-Encoding"}
        if encoding is not None:
            headers["Content-Encoding"] = encoding
        return Response(200, body, content_type, headers)

    async def healthy(request: Request) -> Response:
        return text(200, "OK\n")

    async def readiness(request: Request) -> Response:
        ok, why = ready()
        return text(200, "ready\n") if ok else text(503, f"model server not ready: {why}\n")

    async def do_reload(request: Request) -> Response:
        refused = refuses_form(request)
        if refused is not None:
            return refused
        if reload is None:
            return text(501, "reload is not available\n")
        error = await reload()
        if error is None:
            return text(200, "configuration reloaded\n")
        return text(400, f"reload failed, previous configuration kept: {error}\n")

    async def feedback(request: Request) -> Response:
        refused = refuses_form(request)
        if refused is not None:
            return refused
        if labels is None:
            return text(501, "feedback is not available: the analysis worker is off (capture.enabled: false)\n")
        records, failures = parse_feedback(request.body)
        dropped = labels(Feedback(time.time(), records, len(failures))) if records or failures else 0
        status, body = answer(len(records) - dropped, failures, dropped)
        return Response(status, body, "application/json")

    async def cloudevent(request: Request) -> Response:
        # No refuses_form here: binary mode needs ce-* headers and structured mode its own media
        # type, neither of which a cross-origin browser form can send without a CORS preflight.
        if push is None:
            return text(501, "push is not available: the analysis worker is off (capture.enabled: false)\n")
        status, message = push.receive(request.headers, request.body)
        return text(status, message)

    async def index(request: Request) -> Response:
        return Response(200, INDEX, "text/html; charset=utf-8")

    router.add("GET", "/metrics", guarded(metrics))
    router.add("GET", "/-/healthy", healthy)
    router.add("GET", "/-/ready", readiness)
    router.add("POST", "/-/reload", guarded(do_reload))
    router.add("POST", "/feedback", guarded(feedback))
    router.add("GET", "/", guarded(index))
    if push_path is not None:
        router.add(
            "POST",
            push_path,
            guarded(cloudevent),
            max_body=(lambda: push.settings().max_body_bytes) if push is not None else None,
            on_too_large=push.too_large if push is not None else None,
        )
    return router
