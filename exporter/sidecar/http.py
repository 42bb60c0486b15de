"""The metrics port's HTTP/1.1 server: routes, limits, keep-alive.

A small server on httptools (the parser the proxy already uses) rather than a web framework:
the proxy process stays lean, and every limit here is explicit.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import httptools

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024  # admin requests are small: a scrape, a probe, a reload
MAX_BODY_BYTES = 1 << 20  # state-changing endpoints take small bodies
WRITE_SLICE = 256 * 1024  # a larger response goes out in slices of this, the loop taking a turn between them
IDLE_SECONDS = 120.0  # a keep-alive connection with no request for this long is closed

PHRASES = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Content Too Large",
    415: b"Unsupported Media Type",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    503: b"Service Unavailable",
}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def text(status: int, message: str) -> Response:
    return Response(status, message.encode())


Handler = Callable[[Request], Awaitable[Response]]


class Router:
    """(method, path) → handler; a known path with another method is 405."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        # a path that takes larger bodies than MAX_BODY_BYTES: its cap, and what to call when it is hit
        self.limits: dict[str, tuple[Callable[[], int], Callable[[], None] | None]] = {}

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        max_body: Callable[[], int] | None = None,
        on_too_large: Callable[[], None] | None = None,
    ) -> None:
        self.routes[(method, path)] = handler
        if method == "GET":
            self.routes[("HEAD", path)] = handler
        if max_body is not None or on_too_large is not None:
            self.limits[path] = (max_body or (lambda: MAX_BODY_BYTES), on_too_large)

    def body_limit(self, path: str) -> tuple[int, Callable[[], None] | None]:
        """The body cap of a path (read per request: a reload may change it) and its hook."""
        limit = self.limits.get(path.split("?", 1)[0])
        return (MAX_BODY_BYTES, None) if limit is None else (limit[0](), limit[1])

    async def handle(self, request: Request) -> Response:
        handler = self.routes.get((request.method, request.path))
        if handler is not None:
            return await handler(request)
        allowed = sorted({m for m, p in self.routes if p == request.path})
        if allowed:
            return Response(405, b"method not allowed\n", headers={"Allow": ", ".join(allowed)})
        return text(404, "not found\n")


def encode_response(response: Response, keep_alive: bool, head_only: bool) -> list[bytes]:
    """The response head and body as buffers to write (a large body is not copied onto the head)."""
    phrase = PHRASES.get(response.status, b"Unknown")
    lines = [
        b"HTTP/1.1 %d %b" % (response.status, phrase),
        b"Content-Type: " + response.content_type.encode("latin-1"),
        b"Content-Length: %d" % len(response.body),
    ]
    lines += [f"{k}: {v}".encode("latin-1") for k, v in response.headers.items()]
    if not keep_alive:
        lines.append(b"Connection: close")
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    return [head] if head_only or not response.body else [head, response.body]


class AdminConnection(asyncio.Protocol):
    """One admin client connection: requests are parsed, answered one at a time, in order."""

    def __init__(self, router: Router, connections: set[AdminConnection]) -> None:
        self.router = router
        self.connections = connections
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: asyncio.Queue[tuple[Request, bool] | None] = asyncio.Queue()
        self.request: Request | None = None
        self.head_bytes = 0
        self.body = bytearray()
        self.error: tuple[int, str] | None = None
        self.task: asyncio.Task[None] | None = None
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.connections.add(self)
        self.task = asyncio.get_running_loop().create_task(self._serve())
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.connections.discard(self)
        if self.idle is not None:
            self.idle.cancel()
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(501, "protocol upgrades are not supported\n")
        except httptools.HttpParserCallbackError:
            self._fail(*(self.error or (400, "malformed HTTP request\n")))
        except httptools.HttpParserError:
            self._fail(431 if self.head_bytes > MAX_HEAD_BYTES else 400, "malformed HTTP request\n")

    def _fail(self, status: int, message: str) -> None:
        """Answer after the requests already queued, then close: the stream cannot be trusted."""
        if self.transport is None:
            return
        self.transport.pause_reading()
        self.pending.put_nowait((Request("ERROR", str(status), body=message.encode()), False))
        self.pending.put_nowait(None)

    def _arm_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.idle = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._idle_timeout)

    def _idle_timeout(self) -> None:
        if self.transport is not None and self.pending.empty():
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.request = Request("", "")
        self.head_bytes = 0
        self.body = bytearray()

    def on_url(self, url: bytes) -> None:
        self.head_bytes += len(url)
        if self.head_bytes > MAX_HEAD_BYTES:
            self.error = (431, "request head too large\n")
            raise ValueError("head too large")
        assert self.request is not None
        self.request.path += url.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_HEAD_BYTES:
            self.error = (431, "request head too large\n")
            raise ValueError("head too large")
        assert self.request is not None
        self.request.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        assert self.request is not None
        limit, on_too_large = self.router.body_limit(self.request.path)
        if len(self.body) + len(body) > limit:
            self.error = (413, f"request body larger than {limit} bytes\n")
            if on_too_large is not None:
                on_too_large()
            raise ValueError("body too large")
        self.body += body

    def on_message_complete(self) -> None:
        request = self.request
        assert request is not None
        request.method = self.parser.get_method().decode("latin-1")
        request.path = request.path.split("?", 1)[0]
        request.body = bytes(self.body)
        self.request = None
        self.pending.put_nowait((request, self.parser.should_keep_alive()))

    def _current_transport(self) -> asyncio.Transport | None:
        return self.transport

    async def _serve(self) -> None:
        while True:
            item = await self.pending.get()
            if item is None or self.transport is None:
                if self.transport is not None:
                    self.transport.close()
                return
            request, keep_alive = item
            if request.method == "ERROR":
                response, keep_alive = Response(int(request.path), request.body), False
            else:
                try:
                    response = await self.router.handle(request)
                except Exception:  # a bug of ours must cost one answer, not the port
                    log.exception("admin handler failed for %s %s", request.method, request.path)
                    response = text(500, "model-exporter internal error\n")
            transport = self._current_transport()  # the client may have gone while the handler ran
            if transport is None:
                return
            await self._write(transport, encode_response(response, keep_alive, request.method == "HEAD"))
            if self._current_transport() is None:  # gone while a large answer went out
                return
            if not keep_alive:
                transport.close()
                return
            self._arm_idle()

    async def _write(self, transport: asyncio.Transport, buffers: list[bytes]) -> None:
        """Write a response; a large body in slices, the loop taking a turn after each.

        A scrape not compressed is megabytes: handed to the socket in one piece, the kernel's
        copy (and on loopback the receiver's side too) runs inside that one call, milliseconds
        that every proxied request arriving meanwhile would wait."""
        if sum(map(len, buffers)) <= WRITE_SLICE:
            transport.writelines(buffers)
            return
        for buffer in buffers:
            view = memoryview(buffer)  # slices, not copies; the transport may keep one it could not send yet
            for at in range(0, len(view), WRITE_SLICE):
                if self.transport is None:  # the client went: the rest has nowhere to go
                    return
                transport.write(view[at : at + WRITE_SLICE])
                await asyncio.sleep(0)


class AdminServer:
    """Serves a Router on HOST:PORT until close()."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.connections: set[AdminConnection] = set()
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: AdminConnection(self.router, self.connections), host, port, reuse_address=True, ssl=tls
        )

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        if self.server is not None:
            await self.server.wait_closed()
