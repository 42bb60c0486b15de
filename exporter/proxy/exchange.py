"""One request/response exchange: the state it goes through, and the only code that changes it.

server.py parses requests and upstream.py responses; both report what they saw by calling one
of the transitions below, never by setting a field. The request side is `request_done`: the
constructor (head parsed), then `request_body` per chunk, then `request_complete`. The
response side is `state`:

    WAITING ── response_head ──► STREAMING ── complete ─────────────────────► FINISHED
       │                            └── upstream_failed (cut), client_gone (499),
       │                                request_failed (cut: 499) ──────────────►
       └── upstream_failed (502/504; check_timeout, the pool's timer), client_gone (499),
           request_failed (400/408: the request body broke or stalled),
           discard (refused before its turn: never counted) ─────────────────────────►

upstream_lost becomes complete (a close-delimited body), a retry (stays WAITING) or
upstream_failed; from FINISHED every transition is a no-op.

`keep_client` (whether the client connection stays open afterwards) starts as the client
asked and is only ever turned off: by a close-delimited response, a failure with the response
cut or the request body unread, a client gone, a request failed, or a shutdown; `close_reason`
says which (the label of model_exporter_client_connections_closed_total).

`upstream` is the pooled connection carrying the exchange, from `attach` until it finishes or
that connection is lost. Request bytes read before then wait in `pending`; they count against
the client connection's read-ahead (server.READ_AHEAD_LIMIT), which stops reading the client
until they leave, so a body is never read faster than it can be forwarded.

Four meters are plain fields the UpstreamConnection updates as response bytes arrive, so the
per-chunk path makes no extra call: `ttfb`, `last_activity`, `response_size` and, on the LLM
routes of a captured exchange, `marks` (when each read of the body arrived, for the worker to
time tokens by: events.Event.marks). The model
server's silence (`check_timeout`) is not timed while the client reads nothing: the proxy then
stops reading the model server, and the client answers for it (client.send_timeout).
"""

from __future__ import annotations

import asyncio
import time
from time import perf_counter
from typing import TYPE_CHECKING

from exporter.events import Event
from exporter.proxy.body_model import body_model
from exporter.proxy.routes import LLM_ROUTES

if TYPE_CHECKING:
    from exporter.proxy.server import ClientConnection
    from exporter.proxy.upstream import UpstreamConnection

# Where the response stands (Exchange.state).
WAITING = 0  # nothing sent to the client yet: waiting its turn, a connection, or the response head
STREAMING = 1  # the response head went to the client; the body follows
FINISHED = 2  # counted (or discarded unanswered); nothing changes any more

# Why the model server did not answer: the label values of model_upstream_errors_total (in this
# order) and what the client is told when no part of the response has gone out yet.
ERROR_STATUS = {
    "refused": (502, b"Bad Gateway", b"model server refused the connection\n"),
    "connect_error": (502, b"Bad Gateway", b"cannot connect to the model server\n"),
    "connect_timeout": (504, b"Gateway Timeout", b"timed out connecting to the model server\n"),
    "timeout": (504, b"Gateway Timeout", b"model server did not answer in time\n"),
    "reset": (502, b"Bad Gateway", b"model server closed the connection without a complete response\n"),
    "malformed": (502, b"Bad Gateway", b"model server sent a malformed response\n"),
}
CLIENT_GONE = 499
REQUEST_TIMEOUT = (408, b"Request Timeout", b"request body not received in time\n")

# Why a client connection closed: the label values of model_exporter_client_connections_closed_total.
# The exchange names the last four when it turns keep_client off; server.py the others.
CLOSE_REASONS = (
    "client_closed",
    "keepalive_timeout",
    "header_timeout",
    "send_timeout",
    "limit",
    "protocol_error",
    "no_keepalive",
    "body_timeout",
    "upstream_error",
    "shutdown",
)

# A request whose body fits is kept whole so it can be re-sent once when a pooled
# connection turns out to have been closed by the server (the keep-alive race).
RETRY_BODY_LIMIT = 1 << 20


class Exchange:
    """One request and its response, from the parsed head to the count (states: module docstring)."""

    __slots__ = (
        "client",
        "ctx",
        "t0",
        "method",
        "target",
        "route",
        "model",
        "version",
        "labels",
        "trace_id",
        "head",
        "chunked_request",
        "client_http11",
        "pending",
        "pending_size",
        "retry_body",
        "retry_size",
        "request_done",
        "request_size",
        "upstream",
        "state",
        "status",
        "close_delimited",
        "keep_client",
        "close_reason",
        "timer",
        "retried",
        "capture",
        "capture_size",
        "request_headers",
        "ttfb",
        "last_activity",
        "response_size",
        "marks",
    )

    def __init__(
        self,
        client: ClientConnection,
        t0: float,
        method: bytes,
        target: bytes,
        head: bytes,
        http11: bool,
        keep_alive: bool,
        chunked: bool,
        trace_id: str | None,
        request_headers: dict[bytes, bytes],
    ) -> None:
        """Request head parsed: the exchange begins (`t0`: when its first byte was read)."""
        self.client = client
        ctx = self.ctx = client.ctx
        self.t0 = t0
        self.method = method
        self.target = target
        self.route, self.model, self.version = ctx.routes.match(target)  # model, version: raw path segments
        self.labels: tuple[str, str] | None = None  # (model, version) label values, decided at the end
        self.trace_id = trace_id
        self.head = head  # as forwarded: HTTP/1.1, hop-by-hop fields left out, Host added if missing
        self.chunked_request = chunked
        self.client_http11 = http11
        self.pending: list[bytes] = []  # request bytes not yet written upstream
        self.pending_size = 0  # of them, read from the client (counted in its read-ahead)
        self.retry_body: list[bytes] | None = []
        self.retry_size = 0
        self.request_done = False
        self.request_size = 0
        self.upstream: UpstreamConnection | None = None
        self.state = WAITING
        self.status = 0
        self.close_delimited = False
        self.keep_client = keep_alive  # False for HTTP/1.0 without keep-alive, or Connection: close
        self.close_reason = "no_keepalive"  # why, once keep_client is off (one of CLOSE_REASONS)
        self.timer: asyncio.TimerHandle | None = None  # only while waiting for a pooled connection
        self.retried = False
        # request body kept for analysis (None: not captured)
        self.capture: list[bytes] | None = [] if self.route in ctx.capture_routes else None
        self.capture_size = 0
        self.request_headers = request_headers
        # meters (see the module docstring)
        self.ttfb: float | None = None
        self.last_activity = 0.0
        self.response_size = 0
        self.marks: bytearray | None = bytearray() if self.capture is not None and self.route in LLM_ROUTES else None

    # ------------------------------------------------------------ request side

    def start(self) -> None:
        """Its turn on the client connection: in flight, and forwarded as soon as a connection is free."""
        self.ctx.stats.in_flight += 1
        self.ctx.pool.acquire(self)

    def discard(self) -> None:
        """The client connection was refused before this exchange started: never forwarded, never counted."""
        self.state = FINISHED
        self._drop_pending()

    def request_body(self, data: bytes) -> None:
        """A body chunk: forward it (buffered until attached), keep it for a retry and for analysis."""
        self.request_size += len(data)
        capture = self.capture
        if capture is not None:
            self.capture_size += len(data)
            if self.capture_size <= self.ctx.capture_limit:
                capture.append(data)
            else:
                self.drop_capture()
        piece = b"%x\r\n%b\r\n" % (len(data), data) if self.chunked_request else data
        if self.retry_body is not None:
            self.retry_size += len(piece)
            if self.retry_size <= RETRY_BODY_LIMIT:
                self.retry_body.append(piece)
            else:
                self.retry_body = None
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(piece)
        elif self.state != FINISHED:
            self.pending.append(piece)
            self.pending_size += len(piece)
            self.client.read_ahead += len(piece)  # the client stops being read past its cap

    def request_complete(self, trailers: list[bytes] | None = None) -> None:
        """The whole request was read; from now on the model server's silence counts (read timeout).

        `trailers`: the trailer fields of a chunked body, forwarded on its last chunk.
        """
        self.request_done = True
        if self.marks is not None and self.model is None and self.capture:
            # an LLM request names its model in the body: the label policy decides from it as
            # from a path segment (exporter/labels.py); a compressed body is not looked into
            if b"content-encoding" not in self.request_headers:
                body = b"".join(self.capture)
                self.capture = [body]
                self.model = body_model(body)
        if self.chunked_request:
            end = b"0\r\n%b\r\n" % b"".join(trailers) if trailers else b"0\r\n\r\n"
            if self.retry_body is not None:
                self.retry_body.append(end)
            if self.upstream is not None and self.upstream.transport is not None:
                self.upstream.transport.write(end)
            elif self.state != FINISHED:
                self.pending.append(end)
        if self.upstream is not None:
            self.last_activity = perf_counter()

    def drop_capture(self) -> None:
        """A body too large to analyse: the exchange goes on, left out of analysis (counted once)."""
        self.capture = None
        link = self.ctx.link
        assert link is not None  # capture is only ever on with a link to the worker
        link.drop("body_too_large")

    # ------------------------------------------------------------ upstream side

    def wait_for_pool(self, timeout: float) -> None:
        """No connection free: fail with connect_timeout unless one is attached within `timeout`."""
        self.timer = asyncio.get_running_loop().call_later(timeout, self._pool_timeout)

    def _pool_timeout(self) -> None:
        self.timer = None
        self.upstream_failed("connect_timeout")

    def attach(self, conn: UpstreamConnection) -> None:
        """Attached to a connection from the pool: send the head and any buffered body."""
        if self.timer is not None:  # was waiting for a free connection
            self.timer.cancel()
            self.timer = None
        self.upstream = conn
        if self.client.write_paused and conn.transport is not None:
            # the client has not read what went before: this response waits in the model
            # server's socket, not in our memory (pause_writing will not come again)
            conn.transport.pause_reading()
        data = [self.head, *self.pending] if self.pending else [self.head]
        self.pending = []
        conn.send(self, data)  # from here on, the upstream connection's own backpressure applies
        if self.pending_size:
            self._drop_pending()
        if self.request_done:
            self.last_activity = perf_counter()

    def response_head(self, status: int, close_delimited: bool) -> bool:
        """The response head goes to the client; returns whether the client connection stays open.

        `close_delimited`: the body ends when the model server closes, so the client's must close too.
        """
        self.status = status
        if close_delimited:
            self.close_delimited = True
            self.keep_client = False
        self.state = STREAMING
        if self.marks is not None:
            self.ctx.stats.llm_streams += 1
        return self.keep_client

    def connection_header(self) -> bytes:
        """What the response tells the client of its connection: it closes, or (HTTP/1.0) it stays open."""
        if not self.keep_client:
            return b"Connection: close\r\n"
        return b"" if self.client_http11 else b"Connection: keep-alive\r\n"

    def check_timeout(self, now: float, read_timeout: float) -> None:
        """Timed out: fail once the whole request went out and the model server stayed silent."""
        if self.request_done and self.upstream is not None and now - self.last_activity >= read_timeout:
            self.upstream_failed("timeout")

    # ------------------------------------------------------------ outcomes

    def complete(self, keep_alive: bool) -> None:
        """The response went out whole; park the upstream connection if it can be reused."""
        if self.state == FINISHED:
            return
        conn = self.upstream
        self.upstream = None
        if conn is not None:
            captured, headers = conn.capture, conn.response_headers
            if keep_alive and self.request_done and not conn.closed:
                conn.capture = None
                self.ctx.pool.release(conn)
            else:
                conn.abort()
            if captured is not None and self.capture is not None:
                self._hand_off(captured, headers)
        self._finish(self.status)

    def upstream_lost(self, conn: UpstreamConnection) -> None:
        """The upstream connection closed while this exchange used it."""
        if self.state == FINISHED:
            return
        if self.close_delimited and self.state == STREAMING:
            self.complete(False)
            return
        if conn.reused and self.ttfb is None and not self.retried and self.retry_body is not None:
            # the server closed an idle pooled connection as we sent: re-send once on a fresh one
            self.retried = True
            self.upstream = None
            self.pending = list(self.retry_body)
            self.ctx.pool.acquire(self, fresh=True)
            return
        self.upstream_failed("reset")

    def upstream_failed(self, reason: str) -> None:
        """No complete response (one of ERROR_STATUS): answer 502/504, or cut what already went out."""
        if self.state == FINISHED:
            return
        streaming = self.state == STREAMING
        self.ctx.stats.upstream_error(reason, self.decide_labels(self.status if streaming else ERROR_STATUS[reason][0]))
        if self.upstream is not None:
            self.upstream.abort()
            self.upstream = None
        if streaming:
            # part of the response is already with the client: all we can do is cut it
            self.keep_client = False
            self.close_reason = "upstream_error"
            self._finish(self.status)
            self.client.abort("upstream_error")
            return
        code, phrase, body = ERROR_STATUS[reason]
        if not self.request_done:
            # the rest of the request body would be read as a new request
            self.keep_client = False
            self.close_reason = "upstream_error"
        self._answer(code, phrase, body)

    def request_failed(self, code: int, phrase: bytes, body: bytes, reason: str) -> None:
        """The request cannot be read to its end (its body stalled or is malformed): the model server's
        request is cancelled, the client answered `code` (or, if a response began, cut: 499), then closed."""
        if self.state == FINISHED:
            return
        if self.upstream is not None:
            self.upstream.abort()
            self.upstream = None
        self.keep_client = False
        self.close_reason = reason
        if self.state == STREAMING:
            self._finish(CLIENT_GONE)
            self.client.abort(reason)
            return
        self._answer(code, phrase, body)

    def client_gone(self) -> None:
        """The client disconnected before the response was complete: cancel upstream, count 499."""
        if self.state == FINISHED:
            return
        if self.upstream is not None:
            self.upstream.abort()
            self.upstream = None
        self.keep_client = False
        self._finish(CLIENT_GONE)

    def shutdown(self) -> None:
        """The proxy is shutting down: answer this exchange, then close the client connection."""
        self.keep_client = False
        self.close_reason = "shutdown"

    # ------------------------------------------------------------ completion

    def decide_labels(self, code: int) -> tuple[str, str]:
        """The exchange's (model, version), decided once; only a 2xx answer may admit a new name."""
        labels = self.labels
        if labels is None:
            labels = self.labels = self.ctx.stats.labels.decide(self.model, self.version, 200 <= code < 300)
        return labels

    def _hand_off(self, response_body: list[bytes], response_headers: dict[bytes, bytes]) -> None:
        link = self.ctx.link
        assert link is not None  # capture is only ever on with a link to the worker
        body = b"".join(response_body)
        model, version = self.decide_labels(self.status)
        link.submit(
            Event(
                time.time(),
                self.route,
                self.target,
                self.status,
                perf_counter() - self.t0,
                self.request_headers,
                b"".join(self.capture or ()),
                response_headers,
                body,
                model,
                version,
                bytes(self.marks) if self.marks else b"",
            )
        )

    def _answer(self, code: int, phrase: bytes, body: bytes) -> None:
        """Answer with a short text of the proxy's own (nothing went to the client yet) and finish."""
        self.client.write(
            b"HTTP/1.1 %d %b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%b\r\n%b"
            % (code, phrase, len(body), self.connection_header(), body)
        )
        self.response_size = len(body)
        self._finish(code)

    def _drop_pending(self) -> None:
        """The buffered request bytes went upstream or will never go: off the client's read-ahead."""
        self.pending = []
        if self.pending_size:
            self.client.forwarded(self.pending_size)
            self.pending_size = 0

    def _finish(self, code: int) -> None:
        stats = self.ctx.stats
        if self.marks is not None and self.state == STREAMING:
            stats.llm_streams -= 1
        self.state = FINISHED
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.pending_size:
            self._drop_pending()
        stats.in_flight -= 1
        stats.record(
            self.route,
            self.method,
            code,
            perf_counter() - self.t0,
            self.ttfb,
            self.request_size,
            self.response_size,
            self.trace_id,
            self.decide_labels(code),
        )
        self.client.exchange_finished(self)
