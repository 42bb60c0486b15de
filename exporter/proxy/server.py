"""The client side of the proxy: parse requests with httptools, hand each to an Exchange."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from time import perf_counter
from typing import cast

import httptools

from exporter.config import ClientConfig
from exporter.events import EventSink
from exporter.proxy.exchange import REQUEST_TIMEOUT, Exchange
from exporter.proxy.routes import RouteTable
from exporter.proxy.stats import TrafficStats, trace_id_from_traceparent
from exporter.proxy.upstream import HOP_BY_HOP, NOT_TRAILERS, UpstreamPool, nominated

log = logging.getLogger(__name__)

# A request head larger than this is refused (431) so a client cannot grow our memory.
MAX_HEAD_BYTES = 64 * 1024
# A closing connection drains what the client still sends for at most this long (close()).
LINGER_SECONDS = 2.0
# Pipelined requests are read ahead at most this far before reading pauses.
MAX_PIPELINED = 16
# Request bytes read but not yet handed to an upstream connection (bodies waiting for a pooled
# connection or for their turn behind a pipelined request, heads of queued requests): past this,
# the client is not read until they leave. One read (up to 256 KiB with uvloop) may overshoot it.
READ_AHEAD_LIMIT = 256 * 1024

# What a client is told when its request cannot be taken (code, reason phrase, plain-text body).
Refusal = tuple[int, bytes, bytes]
MALFORMED: Refusal = (400, b"Bad Request", b"malformed HTTP request\n")
HOST_COUNT: Refusal = (400, b"Bad Request", b"an HTTP/1.1 request needs exactly one Host header\n")
BAD_TARGET: Refusal = (400, b"Bad Request", b"malformed request target\n")
HEAD_TOO_LARGE: Refusal = (431, b"Request Header Fields Too Large", b"request head too large\n")
UPGRADE: Refusal = (501, b"Not Implemented", b"protocol upgrades (WebSocket) are not proxied by model-exporter\n")
INTERNAL: Refusal = (500, b"Internal Server Error", b"model-exporter internal error\n")
VERSION: Refusal = (505, b"HTTP Version Not Supported", b"model-exporter speaks HTTP/1.0 and HTTP/1.1\n")
METHOD: Refusal = (501, b"Not Implemented", b"request method not implemented by model-exporter\n")
HTTP10_TRANSFER_ENCODING: Refusal = (
    400,
    b"Bad Request",
    b"an HTTP/1.0 request cannot use Transfer-Encoding (RFC 9112 section 6.1)\n",
)
# A request line of a well-formed method the parser does not know (RFC 9110 §9.1: 501, not 400).
_KNOWN_METHODS = frozenset((b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH"))
# (Unanchored: after a body the next request line follows its last byte directly.)
_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) [^ \r\n]+ HTTP/1\.[01]\r?\n")


@dataclass
class ProxyContext:
    """What every connection shares: pool, stats, routes, settings."""

    pool: UpstreamPool
    stats: TrafficStats
    routes: RouteTable
    read_timeout: float
    upstream_host_header: bytes
    link: EventSink | None = None  # None: payload capture is off
    capture_routes: frozenset[str] = frozenset()
    capture_headers: frozenset[bytes] = frozenset()
    capture_limit: int = 1 << 20
    client: ClientConfig = field(default_factory=ClientConfig)  # client-side timeouts and the connection limit
    connections: set[ClientConnection] = field(default_factory=set)


def _simple_response(code: int, phrase: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 %d %b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%b" % (code, phrase, len(body), body)
    )


class ClientConnection(asyncio.Protocol):
    """One downstream client connection; requests on it are answered in order."""

    transport: asyncio.Transport  # set by connection_made, which comes before any other call

    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self.parser = httptools.HttpRequestParser(self)
        self.current: Exchange | None = None  # the request whose body is being read
        self.active: Exchange | None = None  # the request being answered
        self.queue: deque[Exchange] = deque()  # pipelined requests waiting their turn
        # the request head being parsed
        self.t0 = 0.0
        self.url = b""
        self.parts: list[bytes] = []
        self.head_bytes = 0  # and of its trailers, if any
        self.hosts = 0  # Host fields: exactly one, or none from an HTTP/1.0 client
        self.chunked = False
        self.transfer_encoding = False  # any Transfer-Encoding field: refused from an HTTP/1.0 client
        self.trace_id: str | None = None
        self.captured: dict[bytes, bytes] = {}  # the capture_headers it has
        self.nominated: list[bytes] | None = None  # fields the Connection header names: not forwarded
        self.trailers: list[bytes] | None = None  # trailer fields of a chunked body, forwarded on its last chunk
        self.error: Refusal | None = None  # why a parser callback stopped the parse
        self.refusal: Refusal | None = None  # owed once the requests read whole before a broken one are answered
        self.closing = False
        self.lingering = False  # half-closed after the last answer, draining the client (close())
        # bit 1: upstream backpressure, bit 2: pipelined requests, bit 4: read_ahead, bit 8: the stream broke
        self.paused_for = 0
        self.read_ahead = 0  # request bytes read and held here (READ_AHEAD_LIMIT); exchanges add to it
        self.ready: Exchange | None = None  # parsed head, to start once this read is parsed
        # what the sweeper times (check_client); no timer per connection
        self.in_head = True  # a request head is being read, or awaited on a fresh connection
        self.since = 0.0  # when the client's current turn began: connection, head, last body bytes seen, idle
        self.body_seen = -1  # the body's size at the sweeper's last look
        self.close_reason = ""  # one of exchange.CLOSE_REASONS once the proxy closes; "" if the client did
        self.write_paused = 0.0  # since when the client has not read what we wrote (0: it has)
        self.draining = False  # the proxy is shutting down

    # ------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (write, pause_reading); uvloop's do not subclass asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)
        self.since = perf_counter()
        ctx = self.ctx
        if len(ctx.connections) >= ctx.client.max_connections:
            # over the limit: answered at once and closed, so the client learns why (and file
            # descriptors stay free for the model server's connections and the metrics port)
            self.close_reason = "limit"
            self.closing = True
            self.transport.write(_simple_response(503, b"Service Unavailable", b"too many client connections\n"))
            self.transport.close()
            return
        ctx.connections.add(self)
        ctx.stats.client_connections += 1

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # after the answer that closes: read and dropped, see close()
        try:
            self.parser.feed_data(data)
            # started after the whole read is parsed, so head and body leave in one write
            ready = self.ready
            if ready is not None:
                self.ready = None
                ready.start()
            if self.read_ahead > READ_AHEAD_LIMIT:
                self._pause(4)
        except httptools.HttpParserUpgrade:
            # WebSocket and other upgrades are refused, not tunnelled: say so plainly
            self._reject(UPGRADE)
        except httptools.HttpParserCallbackError:
            if self.error is None and self.refusal is None:  # a bug of ours, not the client's: say so loudly
                log.exception("internal error while handling a request")
            self._reject(self.error or INTERNAL)
        except httptools.HttpParserInvalidMethodError:
            lines = _REQUEST_LINE.findall(data)
            self._reject(METHOD if lines and lines[-1] not in _KNOWN_METHODS else MALFORMED)
        except httptools.HttpParserError as exc:
            if self.head_bytes > MAX_HEAD_BYTES:
                self._reject(HEAD_TOO_LARGE)
            else:
                self._reject(VERSION if "HTTP version" in str(exc) else MALFORMED)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.ready = None
        ctx = self.ctx
        if self in ctx.connections:
            ctx.connections.remove(self)
            ctx.stats.client_connections -= 1
        reason = self.close_reason or ("shutdown" if self.draining else "client_closed")
        ctx.stats.client_closed[reason] += 1
        active = self.active
        self.active = None
        self.queue.clear()
        if active is not None:
            active.client_gone()

    def pause_writing(self) -> None:
        # the client reads slower than the model server writes: stop reading upstream
        self.write_paused = perf_counter()
        active = self.active
        if active is not None and active.upstream is not None and active.upstream.transport is not None:
            active.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = 0.0
        active = self.active
        if active is not None and active.upstream is not None and active.upstream.transport is not None:
            active.upstream.transport.resume_reading()
            active.last_activity = perf_counter()  # the model server's silence counts from now

    def forwarded(self, size: int) -> None:
        """`size` bytes of the read-ahead went upstream (or were dropped): read on once under the limit."""
        self.read_ahead -= size
        if self.paused_for & 4 and self.read_ahead <= READ_AHEAD_LIMIT:
            self._resume(4)

    def pause_for_upstream(self) -> None:
        self._pause(1)

    def resume_for_upstream(self) -> None:
        self._resume(1)

    def _pause(self, bit: int) -> None:
        if not self.paused_for and not self.closing:
            self.transport.pause_reading()
        self.paused_for |= bit

    def _resume(self, bit: int) -> None:
        was = self.paused_for
        self.paused_for &= ~bit
        if was and not self.paused_for and not self.closing:
            self.transport.resume_reading()
            # the client's waits start again from now: it was not read in the meantime
            self.body_seen = -1
            if self.in_head:
                self.since = perf_counter()

    def write(self, data: bytes) -> None:
        if not self.closing:
            self.transport.write(data)

    def writelines(self, data: list[bytes]) -> None:
        if not self.closing:
            self.transport.writelines(data)

    def close(self, reason: str) -> None:
        """Close once what is buffered is written; `reason`: one of exchange.CLOSE_REASONS.

        While reading is paused the client may have sent bytes we never read: then a lingering
        close (RFC 9112 §9.6): half-close, discard what the client still sends, and close when it
        does or after LINGER_SECONDS. Closing with unread input would make the kernel send a reset
        that can destroy the end of the answer before the client reads it.
        """
        self.close_reason = self.close_reason or reason
        self.closing = True
        self.queue.clear()
        transport = self.transport
        if self.lingering:
            return
        if not self.paused_for:  # everything the client sent so far was read: a plain close
            transport.close()
            return
        try:
            transport.write_eof()  # sent once what is buffered is written
            loop = asyncio.get_running_loop()
        except (NotImplementedError, RuntimeError, OSError):
            transport.close()
            return
        self.lingering = True
        transport.resume_reading()
        loop.call_later(LINGER_SECONDS, transport.close)

    def abort(self, reason: str) -> None:
        """Close now, dropping what is buffered; what is in flight ends as 499 (connection_lost)."""
        self.close_reason = self.close_reason or reason
        self.closing = True
        self.transport.abort()

    # ------------------------------------------------------------ httptools request callbacks

    def on_message_begin(self) -> None:
        self.t0 = perf_counter()
        if not self.in_head:  # a fresh connection's header_timeout runs from the connection
            self.in_head = True
            self.since = self.t0
        self.url = b""
        self.parts = []
        self.head_bytes = 0
        self.hosts = 0
        self.chunked = False
        self.transfer_encoding = False
        self.trace_id = None
        self.captured = {}
        self.nominated = None
        self.trailers = None

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_bytes += len(url)
        if self.head_bytes > MAX_HEAD_BYTES:
            self.error = HEAD_TOO_LARGE
            raise ValueError("request head too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_HEAD_BYTES:
            self.error = HEAD_TOO_LARGE
            raise ValueError("request head too large")
        lname = name.lower()
        if not self.in_head:  # a trailer field, after a chunked body
            if lname not in NOT_TRAILERS:
                if self.trailers is None:
                    self.trailers = []
                self.trailers.append(b"%b: %b\r\n" % (name, value))
            return
        if lname in HOP_BY_HOP:
            if lname == b"connection":
                self.nominated = nominated(value, self.nominated)
            return
        if lname == b"host":
            self.hosts += 1
        elif lname == b"transfer-encoding":
            self.chunked = value.lower().rstrip().endswith(b"chunked")
            self.transfer_encoding = True
        elif lname == b"traceparent":
            self.trace_id = trace_id_from_traceparent(value)
        elif lname in self.ctx.capture_headers:
            self.captured[lname] = value
        self.parts.append(b"%b: %b\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.body_seen = -1
        parser = self.parser
        if parser.should_upgrade():
            return  # feed_data raises HttpParserUpgrade next; answered there
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):  # HTTP/2.0 in an HTTP/1 request line: 505, never forwarded
            self.error = VERSION
            raise ValueError("unsupported HTTP version")
        http11 = version == "1.1"
        if not http11 and self.transfer_encoding:  # RFC 9112 §6.1: faulty framing, a smuggling vector
            self.error = HTTP10_TRANSFER_ENCODING
            raise ValueError("Transfer-Encoding in an HTTP/1.0 request")
        if self.hosts > 1 or (http11 and not self.hosts):  # RFC 9112 §3.2: 400, never forwarded
            self.error = HOST_COUNT
            raise ValueError("not exactly one Host header")
        method = parser.get_method()
        url = self.url
        if url[:1] != b"/" and url != b"*":
            url = self._origin_form(url)
        elif not self.hosts:  # HTTP/1.0 without one: the model server's
            self.parts.append(b"Host: %b\r\n" % self.ctx.upstream_host_header)
        parts = self.parts
        if self.nominated is not None:  # RFC 9110 §7.6.1: options of this connection only
            parts = [p for p in parts if p[: p.index(b":")].lower() not in self.nominated]
        ex = self.current = Exchange(
            self,
            self.t0,
            method,
            url,
            b"%b %b HTTP/1.1\r\n%b\r\n" % (method, url, b"".join(parts)),
            http11,
            parser.should_keep_alive(),
            self.chunked,
            self.trace_id,
            self.captured,
        )
        if self.active is None:
            self.active = ex
            self.ready = ex
        else:
            self.queue.append(ex)
            self.read_ahead += len(ex.head)
            if len(self.queue) >= MAX_PIPELINED:
                self._pause(2)

    def _origin_form(self, url: bytes) -> bytes:
        """An absolute-form target (RFC 9112 §3.2.2): its path and query go upstream, its authority as Host."""
        try:
            target = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            target = None
        if target is None or target.schema not in (b"http", b"https") or not target.host:
            self.error = BAD_TARGET
            raise ValueError("malformed request target")
        host = b"[%b]" % target.host if b":" in target.host else target.host
        authority = host if target.port is None else b"%b:%d" % (host, target.port)
        self.parts = [p for p in self.parts if p[:5].lower() != b"host:"]
        self.parts.append(b"Host: %b\r\n" % authority)
        # the path and query exactly as sent (an empty `?` included), from the first / or ? after the authority
        rest = url[url.index(b"://") + 3 :]
        cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
        path = rest[cut:].split(b"#", 1)[0]
        return path if path.startswith(b"/") else b"/" + path

    def on_body(self, body: bytes) -> None:
        ex = self.current
        assert ex is not None  # set by on_headers_complete, which httptools calls before any body
        ex.request_body(body)

    def on_message_complete(self) -> None:
        ex = self.current
        if ex is not None:
            self.current = None  # no reference cycle outlives the exchange
            ex.request_complete(self.trailers)

    # ------------------------------------------------------------ exchange lifecycle

    def exchange_finished(self, ex: Exchange) -> None:
        if self.active is not ex:
            return
        self.active = None
        if self.paused_for & 1:  # its upstream connection will never say resume_writing now
            self._resume(1)
        if not ex.keep_client:
            self.close(ex.close_reason)
            return
        if self.queue:
            nxt = self.queue.popleft()
            self.active = nxt
            self._resume(2)
            self.forwarded(len(nxt.head))
            nxt.start()
        elif self.refusal is not None:
            self._refuse(self.refusal)
        elif not self.in_head:
            self.since = perf_counter()  # idle: keepalive_timeout from now

    def _reject(self, refusal: Refusal) -> None:
        """The request stream broke here: answer the requests read whole before it, then refuse, then close."""
        if self.refusal is not None or self.closing:
            return  # refused already: nothing after the break is read
        self.refusal = refusal
        self._pause(8)
        broken = self.current  # a request whose body the break cut short
        self.current = None
        if broken is not None:
            if broken is self.ready:
                self.ready = self.active = None
                broken.discard()
            elif self.queue and broken is self.queue[-1]:
                self.queue.pop()
                broken.discard()
            else:  # in flight, forwarded in part: it gets the refusal (and closes the connection)
                broken.request_failed(*refusal, "protocol_error")
                return
        ready = self.ready
        if ready is not None:
            self.ready = None
            ready.start()
        if self.active is None:
            self._refuse(refusal)

    def _refuse(self, refusal: Refusal) -> None:
        code, phrase, body = refusal
        self.ctx.stats.record("other", b"", code, 0.0, None, 0, len(body), None)
        self.write(_simple_response(code, phrase, body))
        self.close("protocol_error")

    def shutdown(self) -> None:
        """Close when idle; an in-flight exchange finishes first, then the connection closes."""
        self.draining = True
        if self.active is None:
            self.close("shutdown")
        else:
            self.active.shutdown()
            self.queue.clear()

    # ------------------------------------------------------------ timeouts

    def check_client(self, now: float) -> None:
        """The sweeper's look at the client: close it if it kept us waiting past its timeout."""
        if self.write_paused:
            # the client reads none of what we send: its fault, not the model server's (which
            # we stopped reading: check_upstreams leaves it alone), and no other wait matters now
            if now - self.write_paused >= self.ctx.client.send_timeout:
                self.close_reason = "send_timeout"  # even if it was closing: what it holds never drained
                self.abort("send_timeout")  # what is buffered is dropped; the exchange ends as 499
            return
        active = self.active
        if self.paused_for or self.closing:
            return  # the client is not being read: none of its silence is its fault
        limits = self.ctx.client
        current = self.current
        if current is not None:  # its request body is being read
            if current.request_size != self.body_seen:
                self.body_seen = current.request_size
                self.since = now
            elif now - self.since >= limits.body_timeout:
                if current is active:
                    current.request_failed(*REQUEST_TIMEOUT, "body_timeout")  # 408, then closed
                else:
                    self.abort("body_timeout")
        elif active is None and not self.queue:
            if self.in_head:
                if now - self.since >= limits.header_timeout:
                    self.write(_simple_response(408, b"Request Timeout", b"request head not received in time\n"))
                    self.close("header_timeout")
            elif now - self.since >= limits.keepalive_timeout:
                self.close("keepalive_timeout")


def open_files_for(connections: int) -> None:
    """Raise the soft open-files limit to hold `connections` and room for the rest, as far as the hard limit allows.

    Past the soft limit accept() fails (EMFILE) and new clients are left waiting or reset, answered
    and counted by nothing, before client.max_connections could turn them away with a 503.
    """
    try:
        import resource
    except ImportError:  # not a POSIX system
        return
    needed = connections + 256  # the listening sockets, the metrics port, the worker, logs
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        log.warning(
            "open files are limited to %d (ulimit -n): lower client.max_connections and upstream.max_connections "
            "to %d in all, or raise the limit",
            target,
            target - 256,
        )


def check_upstreams(connections: Iterable[ClientConnection], now: float, read_timeout: float) -> None:
    """Fail the exchanges whose model server stayed silent for read_timeout (not while their client reads nothing)."""
    for conn in connections:
        active = conn.active
        if active is not None and not conn.write_paused:
            active.check_timeout(now, read_timeout)


async def sweep_timeouts(ctx: ProxyContext) -> None:
    """Fail or close what waited too long, with one timer for all connections.

    The model servers' silence is looked at 4 times a second (or read_timeout / 4). The clients'
    waits last tens of seconds: each connection is looked at every tenth of the shortest client
    timeout (at most every 5 s), a slice of them at each tick, so 4,096 connections cost the
    loop about 0.3 ms a tick instead of 5 ms.
    """
    ticks = 0
    while True:
        tick = min(ctx.read_timeout / 4, 0.25)
        c = ctx.client
        shortest = min(c.header_timeout, c.body_timeout, c.keepalive_timeout, c.send_timeout, 50.0)
        slices = max(1, round(shortest / 10 / tick))
        await asyncio.sleep(tick)
        now = perf_counter()
        connections = list(ctx.connections)
        check_upstreams(connections, now, ctx.read_timeout)
        ticks += 1
        for conn in connections[ticks % slices :: slices]:
            conn.check_client(now)
