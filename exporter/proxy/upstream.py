"""Pooled keep-alive connections to the model server; each parses its own responses.

The response parser lives as long as the connection (llhttp resets between keep-alive
messages), so a response costs a handful of Python callbacks and no allocations beyond
the bytes it forwards.
"""

from __future__ import annotations

import asyncio
from collections import deque
from time import perf_counter
from typing import cast

import httptools

from exporter.events import MARK, MAX_MARKS
from exporter.proxy.exchange import FINISHED, STREAMING, Exchange

# RFC 9110 §7.6.1: connection-specific fields a proxy must not forward, and those the Connection
# header names (`nominated`). Transfer-Encoding is handled apart: chunked bodies are de-chunked by
# the parser and re-chunked on the way out, trailer fields on the last chunk (Trailer announces them).
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade"})
# Trailer fields not forwarded: hop-by-hop ones and framing (RFC 9110 §6.5.1).
NOT_TRAILERS = HOP_BY_HOP | {b"transfer-encoding", b"content-length", b"trailer", b"host"}
# Connection options that name no field to drop: close and keep-alive, and the fields the proxy
# frames and routes by (dropping them would change what the forwarded message means).
_OPTIONS = frozenset({b"", b"close", b"keep-alive", b"host", b"content-length", b"transfer-encoding"})


_pack_mark = MARK.pack
_MARK_SIZE = MARK.size
_MARKS_BYTES = MAX_MARKS * MARK.size


def nominated(value: bytes, names: list[bytes] | None) -> list[bytes] | None:
    """`names` plus the field names a Connection header value lists (None while there are none)."""
    for token in value.split(b","):
        name = token.strip().lower()
        if name not in _OPTIONS:
            names = [*(names or ()), name]
    return names


class UpstreamConnection(asyncio.Protocol):
    """One connection to the model server; carries one exchange at a time."""

    __slots__ = (
        "pool",
        "transport",
        "exchange",
        "reused",
        "closed",
        "parser",
        "reason",
        "headers",
        "chunked",
        "interim",
        "nominated",
        "trailers",
        "out",
        "capture",
        "capture_size",
        "response_headers",
        "read_at",
        "read_marked",
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.reused = False
        self.closed = False
        self.parser = httptools.HttpResponseParser(self)
        self.reason = b""
        self.headers: list[bytes] = []
        self.chunked = False
        self.interim = False
        self.nominated: list[bytes] | None = None  # fields the response's Connection header names
        self.trailers: list[bytes] | None = None  # once the head of a chunked response is in: its trailer fields
        self.out: list[bytes] = []  # what one read produced for the client, written in one go
        self.capture: list[bytes] | None = None  # response body kept for analysis
        self.capture_size = 0
        self.response_headers: dict[bytes, bytes] = {}  # the capture_headers of a captured response
        self.read_at = 0.0  # LLM routes: when the read being parsed arrived (seconds since the request began)
        self.read_marked = False  # whether that read has its mark yet

    # ------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (write, pause_reading); uvloop's do not subclass asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is None:  # bytes nobody asked for: the connection is unusable
            self.abort()
            return
        now = perf_counter()
        ex.last_activity = now
        if ex.ttfb is None:
            ex.ttfb = now - ex.t0
        if ex.marks is not None:
            self.read_at = now - ex.t0
            self.read_marked = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.out = []
            ex.upstream_failed("malformed")
            return
        if self.out:
            out, self.out = self.out, []
            ex.client.writelines(out)
        if ex.state == STREAMING and ex.method == b"HEAD":
            # a HEAD response has no body whatever its Content-Length says; the parser
            # would wait for one, so it is replaced
            self.parser = httptools.HttpResponseParser(self)
            ex.complete(self.parser.should_keep_alive())

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.lost(self)
        ex = self.exchange
        if ex is not None:
            self.exchange = None
            ex.upstream_lost(self)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.pause_for_upstream()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.resume_for_upstream()

    def send(self, ex: Exchange, data: list[bytes]) -> None:
        self.exchange = ex
        self.reason = b""
        self.headers = []
        self.chunked = False
        self.nominated = self.trailers = None
        if ex.capture is not None:
            self.capture = []
            self.response_headers = {}
        else:
            self.capture = None
        self.capture_size = 0
        transport = self.transport
        assert transport is not None  # the pool attaches exchanges to connected connections only
        transport.writelines(data)

    def abort(self) -> None:
        self.exchange = None
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # ------------------------------------------------------------ httptools response callbacks

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if self.trailers is not None:  # after the body
            if lname not in NOT_TRAILERS:
                self.trailers.append(b"%b: %b\r\n" % (name, value))
            return
        if lname in HOP_BY_HOP:
            if lname == b"connection":
                self.nominated = nominated(value, self.nominated)
            return
        if lname == b"transfer-encoding":
            self.chunked = value.lower().rstrip().endswith(b"chunked")
            ex = self.exchange
            assert ex is not None  # parser callbacks run only in data_received, which has one
            if not ex.client_http11:
                return  # an HTTP/1.0 client gets the de-chunked body, delimited by close
        elif lname in self.pool.capture_headers and self.capture is not None:
            self.response_headers[lname] = value
        self.headers.append(b"%b: %b\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        ex = self.exchange
        assert ex is not None
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # interim response (100 Continue, 103 Early Hints): relay it, wait for the final one
            self.interim = True
            self.out.append(b"HTTP/1.1 %d %b\r\n%b\r\n" % (status, self.reason, b"".join(self.headers)))
            self.reason = b""
            self.headers = []
            self.chunked = False
            self.nominated = None
            return
        headers = self.headers
        if self.nominated is not None:  # RFC 9110 §7.6.1: options of the model server's connection only
            headers = [h for h in headers if h[: h.index(b":")].lower() not in self.nominated]
        if self.chunked:
            self.trailers = []
        # the body ends only when the server closes: no length and not chunked, or chunked to an
        # HTTP/1.0 client, which gets it de-chunked
        close_delimited = (
            ex.method != b"HEAD"
            and status != 204
            and status != 304
            and not self.chunked
            and not any(h[:15].lower() == b"content-length:" for h in headers)
        ) or (self.chunked and not ex.client_http11)
        ex.response_head(status, close_delimited)
        if not ex.keep_client or not ex.client_http11:
            headers.append(ex.connection_header())
        self.out.append(b"HTTP/1.1 %d %b\r\n%b\r\n" % (status, self.reason, b"".join(headers)))

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        assert ex is not None  # parser callbacks run only in data_received, which has one
        ex.response_size += len(body)
        if self.capture is not None:
            self.capture_size += len(body)
            if ex.capture is None:  # the request was left out of analysis already (and counted)
                self.capture = None
            elif self.capture_size <= self.pool.capture_limit:
                self.capture.append(body)
                marks = ex.marks
                if marks is not None:
                    # an LLM route: when this read's body bytes arrived (events.Event.marks), one
                    # mark per read; capped, the last one moves on so the end stays timed
                    if self.read_marked or len(marks) >= _MARKS_BYTES:
                        marks[-_MARK_SIZE:] = _pack_mark(self.capture_size, self.read_at)
                    else:
                        marks += _pack_mark(self.capture_size, self.read_at)
                        self.read_marked = True
            else:  # too large to analyse: stop keeping it, the response streams on
                self.capture = None
                ex.drop_capture()
        if self.chunked and ex.client_http11:
            self.out += (b"%x\r\n" % len(body), body, b"\r\n")
        else:
            self.out.append(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        ex = self.exchange
        assert ex is not None
        if self.chunked and ex.client_http11:
            self.out.append(b"0\r\n%b\r\n" % b"".join(self.trailers) if self.trailers else b"0\r\n\r\n")
        self.trailers = None
        out, self.out = self.out, []
        ex.client.writelines(out)
        ex.complete(self.parser.should_keep_alive())


class UpstreamPool:
    """At most `max_connections` to one host:port; idle ones are reused LIFO (warmest first)."""

    def __init__(
        self,
        host: str,
        port: int,
        max_connections: int,
        connect_timeout: float,
        capture_headers: frozenset[bytes] = frozenset(),
        capture_limit: int = 1 << 20,
    ) -> None:
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.capture_headers = capture_headers
        self.capture_limit = capture_limit
        self.idle: list[UpstreamConnection] = []
        self.open = 0  # connected + connecting
        self.waiting: deque[Exchange] = deque()
        self._tasks: set[asyncio.Task[None]] = set()

    def acquire(self, exchange: Exchange, fresh: bool = False) -> None:
        """Attach the exchange to an idle connection, a new one, or queue it for the next free one."""
        if not fresh:
            while self.idle:
                conn = self.idle.pop()
                if not conn.closed:
                    conn.reused = True
                    exchange.attach(conn)
                    return
        if self.open < self.max_connections:
            self.open += 1
            task = asyncio.get_running_loop().create_task(self._connect(exchange))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            exchange.wait_for_pool(self.connect_timeout)
            self.waiting.append(exchange)

    async def _connect(self, exchange: Exchange) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port),
                self.connect_timeout,
            )
        except TimeoutError:
            self._connect_failed(exchange, "connect_timeout")
        except ConnectionRefusedError:
            self._connect_failed(exchange, "refused")
        except OSError:
            self._connect_failed(exchange, "connect_error")
        else:
            if exchange.state == FINISHED:  # the client left while we connected
                self.release(conn)
            else:
                exchange.attach(conn)

    def _connect_failed(self, exchange: Exchange, reason: str) -> None:
        self.open -= 1
        exchange.upstream_failed(reason)
        self._serve_waiting()

    def release(self, conn: UpstreamConnection) -> None:
        """Return a healthy keep-alive connection: hand it to a waiter or park it idle."""
        conn.exchange = None
        if conn.transport is not None:
            # a slow client may have paused it with the response's last write
            conn.transport.resume_reading()
        while self.waiting:
            exchange = self.waiting.popleft()
            if exchange.state != FINISHED:
                conn.reused = True
                exchange.attach(conn)
                return
        self.idle.append(conn)

    def lost(self, conn: UpstreamConnection) -> None:
        self.open -= 1
        if conn.exchange is None:
            try:
                self.idle.remove(conn)
            except ValueError:
                pass
        self._serve_waiting()

    def _serve_waiting(self) -> None:
        while self.waiting and self.waiting[0].state == FINISHED:
            self.waiting.popleft()
        if self.waiting and self.open < self.max_connections:
            self.acquire(self.waiting.popleft(), fresh=True)

    def close(self) -> None:
        for conn in self.idle:
            conn.abort()
        self.idle.clear()
        for task in self._tasks:
            task.cancel()
