"""A stand-in model server: a real aiohttp server on 127.0.0.1, run in a background thread.

Endpoints (what each proves about the proxy in front of it):
  /echo, /v2/models/..., any unknown path, any method
                      body echoed byte-exact; the request line and X-* headers echoed as
                      X-Echo-* response headers; fixed X-Custom and two Set-Cookie headers
  /status/{code}      that status with body `status_body(code)`
  /binary?size=N      `binary_body(N)` with Content-Length
  /gzip               `GZIP_BODY` (already gzip) with Content-Encoding: gzip
  /chunked            `CHUNKS`, one chunked-encoding chunk each
  /sse?gate=NAME      event `SSE_FIRST`, then waits for `release(NAME)`, then `SSE_LAST`
  /slow?delay=S       sleeps S seconds before sending headers
  /reset              TCP reset instead of a response
  /malformed          bytes that are not HTTP, then close
  /v2/health/ready    200

Every request is recorded (`requests`), so tests can check what reached the upstream.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import json
import logging
import random
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Self

from aiohttp import web

GATE_TIMEOUT_S = 30.0  # an unreleased gate must not hang the server forever

GZIP_PLAIN = json.dumps({"outputs": [{"name": "y", "data": list(range(200))}]}).encode()
GZIP_BODY = gzip.compress(GZIP_PLAIN, mtime=0)

CHUNKS: tuple[bytes, ...] = tuple(f"chunk {i}: ".encode() + bytes([65 + i]) * (1000 * i + 1) + b"\n" for i in range(6))

SSE_FIRST = b'data: {"id": 1, "text": "first"}\n\n'
SSE_LAST = b"data: [DONE]\n\n"

MALFORMED = b"NOT HTTP\r\n\r\n"

# Headers the echo endpoint always adds to its response (end-to-end, must reach the client).
ECHO_RESPONSE_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Custom", "abc"),
    ("Set-Cookie", "session=one; Path=/; HttpOnly"),
    ("Set-Cookie", "theme=dark; Path=/"),
)


@functools.lru_cache(maxsize=8)
def binary_body(size: int) -> bytes:
    """Deterministic pseudo-random bytes of the given size (the same in every process)."""
    return random.Random(size).randbytes(size)


def status_body(code: int) -> bytes:
    return f"stand-in says {code}\n".encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _RecordingHandler(logging.Handler):
    """Keeps aiohttp's server errors as one-line strings.

    Formatting a traceback parses source with `ast` on Python 3.11, and that is not
    thread-safe before 3.11.8 (gh-106905): done here in the server thread at the same time
    as pytest formats a failure, it crashes pytest. So no tracebacks are formatted here.
    """

    def __init__(self, sink: list[str]) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        self.sink.append(f"{record.getMessage()}: {exc!r}" if exc else record.getMessage())


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    raw_path: str  # path and query exactly as received
    headers: tuple[tuple[str, str], ...]
    body_sha256: str
    body_len: int

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class AppServer:
    """Any aiohttp application on 127.0.0.1, served from a background thread.

    For upstreams with their own handlers: a protocol-correct model server written in a test
    module, or the demo model server (`exporter.demo.model_server.make_app`). `runner_kwargs`
    go to `web.AppRunner` (e.g. `auto_decompress=False` to see request bodies as sent).
    """

    def __init__(self, app: web.Application, **runner_kwargs: object) -> None:
        self.app = app
        self.errors: list[str] = []  # what aiohttp logged; no tracebacks formatted (see _RecordingHandler)
        self._runner_kwargs = runner_kwargs
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(lambda _, ctx: self.errors.append(f"{ctx['message']}: {ctx.get('exception')!r}"))
        self._thread = threading.Thread(target=self._loop.run_forever, name="app-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        logger = logging.getLogger(f"app_server.{id(self)}")
        logger.propagate = False
        logger.addHandler(_RecordingHandler(self.errors))
        self._runner = web.AppRunner(self.app, shutdown_timeout=1.0, access_log=None, logger=logger,
                                     **self._runner_kwargs)  # type: ignore[arg-type]
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            await web.SockSite(self._runner, sock, backlog=512).start()
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]


class StandIn(AppServer):
    """The stand-in model server; `url` is ready once `start()` returns."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.sse_log: dict[str, list[str]] = {}  # gate name -> events started: ["first", "last"]
        self._gates: dict[str, asyncio.Event] = {}
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/status/{code:[0-9]{3}}", self._status)
        app.router.add_get("/binary", self._binary)
        app.router.add_get("/gzip", self._gzip)
        app.router.add_get("/chunked", self._chunked)
        app.router.add_get("/sse", self._sse)
        app.router.add_route("*", "/slow", self._slow)
        app.router.add_route("*", "/reset", self._reset)
        app.router.add_route("*", "/malformed", self._malformed)
        app.router.add_get("/v2/health/ready", self._ready)
        app.router.add_route("*", "/{tail:.*}", self._echo)
        # handler_cancellation: a handler whose client (the proxy) went away stops at once.
        super().__init__(app, handler_cancellation=True)

    # test controls ---------------------------------------------------------------------

    def release(self, gate: str) -> None:
        """Let the `/sse?gate=NAME` stream send its last event."""
        self._loop.call_soon_threadsafe(lambda: self._gate(gate).set())

    def requests_with(self, header: str, value: str) -> list[RecordedRequest]:
        """Requests the server received carrying `header: value` (e.g. an X-Test-Id)."""
        return [r for r in list(self.requests) if value in r.header_values(header)]

    def _gate(self, name: str) -> asyncio.Event:
        return self._gates.setdefault(name, asyncio.Event())

    # handlers --------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> bytes:
        body = await request.read()
        self.requests.append(RecordedRequest(
            method=request.method,
            raw_path=request.raw_path,
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers),
            body_sha256=sha256(body),
            body_len=len(body),
        ))
        return body

    async def _echo(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        resp = web.Response(body=body, content_type=None)
        resp.headers["Content-Type"] = request.headers.get("Content-Type", "application/octet-stream")
        resp.headers["X-Echo-Method"] = request.method
        resp.headers["X-Echo-Path"] = request.raw_path
        for name, value in request.headers.items():
            if name.lower().startswith("x-"):
                resp.headers.add(f"X-Echo-{name[2:]}", value)
        for name, value in ECHO_RESPONSE_HEADERS:
            resp.headers.add(name, value)
        return resp

    async def _status(self, request: web.Request) -> web.Response:
        await self._record(request)
        code = int(request.match_info["code"])
        return web.Response(status=code, body=status_body(code), content_type="text/plain")

    async def _binary(self, request: web.Request) -> web.Response:
        await self._record(request)
        body = binary_body(int(request.query.get("size", "1024")))
        return web.Response(body=body, content_type="application/octet-stream")

    async def _gzip(self, request: web.Request) -> web.Response:
        await self._record(request)
        resp = web.Response(body=GZIP_BODY, content_type="application/json")
        resp.headers["Content-Encoding"] = "gzip"
        return resp

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for chunk in CHUNKS:
            await resp.write(chunk)
            await asyncio.sleep(0.01)  # separate TCP segments, so the chunks arrive apart
        await resp.write_eof()
        return resp

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        gate = request.query.get("gate", "default")
        log = self.sse_log.setdefault(gate, [])
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        log.append("first")  # logged before the bytes go out: the log never runs behind the wire
        await resp.write(SSE_FIRST)
        try:
            await asyncio.wait_for(self._gate(gate).wait(), GATE_TIMEOUT_S)
        except TimeoutError:
            log.append("gate_timeout")
        log.append("last")
        await resp.write(SSE_LAST)
        await resp.write_eof()
        return resp

    async def _slow(self, request: web.Request) -> web.Response:
        await self._record(request)
        await asyncio.sleep(float(request.query.get("delay", "1")))
        return web.Response(text="slow done\n")

    async def _reset(self, request: web.Request) -> web.Response:
        await self._record(request)
        transport = request.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        # Linger 0: close() sends RST instead of FIN, so the peer sees ECONNRESET.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        await asyncio.sleep(GATE_TIMEOUT_S)  # cancelled when the connection is lost
        raise AssertionError("unreachable: the connection was aborted")

    async def _malformed(self, request: web.Request) -> web.Response:
        await self._record(request)
        transport = request.transport
        assert transport is not None
        transport.write(MALFORMED)
        transport.close()  # flushes the garbage, then FIN
        await asyncio.sleep(GATE_TIMEOUT_S)  # cancelled when the connection is lost
        raise AssertionError("unreachable: the connection was closed")

    async def _ready(self, request: web.Request) -> web.Response:
        return web.Response(text="ready\n")
