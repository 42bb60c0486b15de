"""One request/response exchange: forward, stream back, time, account.

The response parser calls back into the Exchange (httptools protocol methods), so a
response costs a handful of Python calls: no tasks, no futures, no per-chunk timers.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING

import httptools

if TYPE_CHECKING:
    from exporter.proxy.server import ClientConnection
    from exporter.proxy.upstream import UpstreamConnection

# RFC 9110 §7.6.1: connection-specific fields a proxy must not forward. Transfer-Encoding
# is handled apart: chunked bodies are de-chunked by the parser and re-chunked on the way out.
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"})

ERROR_STATUS = {
    "refused": (502, b"Bad Gateway", b"model server refused the connection\n"),
    "connect_error": (502, b"Bad Gateway", b"cannot connect to the model server\n"),
    "connect_timeout": (504, b"Gateway Timeout", b"timed out connecting to the model server\n"),
    "timeout": (504, b"Gateway Timeout", b"model server did not answer in time\n"),
    "reset": (502, b"Bad Gateway", b"model server closed the connection without a complete response\n"),
    "malformed": (502, b"Bad Gateway", b"model server sent a malformed response\n"),
}
CLIENT_GONE = 499

# A request whose body fits is kept whole so it can be re-sent once when a pooled
# connection turns out to have been closed by the server (the keep-alive race).
RETRY_BODY_LIMIT = 1 << 20


class Exchange:
    __slots__ = (
        "client", "ctx", "t0", "method", "target", "route", "trace_id", "head", "chunked_request",
        "pending", "retry_body", "retry_size", "request_done", "request_size", "upstream", "parser",
        "status", "reason", "resp_headers", "resp_chunked", "resp_close_delimited", "head_sent",
        "response_size", "ttfb", "finished", "keep_client", "client_http11", "interim", "last_activity",
        "timer", "retried",
    )

    def __init__(self, client: ClientConnection, t0: float) -> None:
        self.client = client
        self.ctx = client.ctx
        self.t0 = t0
        self.method = b""
        self.target = b""
        self.route = "other"
        self.trace_id: str | None = None
        self.head = b""
        self.chunked_request = False
        self.pending: list[bytes] = []  # request body bytes not yet written upstream
        self.retry_body: list[bytes] | None = []
        self.retry_size = 0
        self.request_done = False
        self.request_size = 0
        self.upstream: UpstreamConnection | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.status = 0
        self.reason = b""
        self.resp_headers: list[bytes] = []
        self.resp_chunked = False
        self.resp_close_delimited = False
        self.head_sent = False
        self.response_size = 0
        self.ttfb: float | None = None
        self.finished = False
        self.keep_client = True
        self.client_http11 = True
        self.interim = False
        self.last_activity = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.retried = False

    # ------------------------------------------------------------ request side

    def start(self) -> None:
        self.ctx.stats.in_flight += 1
        self.ctx.pool.acquire(self)

    def attach(self, conn: UpstreamConnection) -> None:
        """Send the head and any buffered body on a connection from the pool."""
        if self.timer is not None:  # was waiting for a free connection
            self.timer.cancel()
            self.timer = None
        self.upstream = conn
        conn.exchange = self
        self.parser = httptools.HttpResponseParser(self)
        transport = conn.transport
        assert transport is not None
        if self.pending:
            transport.writelines([self.head, *self.pending])
            self.pending = []
        else:
            transport.write(self.head)
        if self.request_done:
            self._arm_timer()

    def request_body(self, data: bytes) -> None:
        self.request_size += len(data)
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
        elif not self.finished:
            self.pending.append(piece)

    def request_complete(self) -> None:
        self.request_done = True
        if self.chunked_request:
            self.request_body_end()
        if self.upstream is not None:
            self._arm_timer()

    def request_body_end(self) -> None:
        end = b"0\r\n\r\n"
        if self.retry_body is not None:
            self.retry_body.append(end)
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(end)
        elif not self.finished:
            self.pending.append(end)

    # ------------------------------------------------------------ upstream side

    def upstream_data(self, data: bytes) -> None:
        now = perf_counter()
        self.last_activity = now
        if self.ttfb is None:
            self.ttfb = now - self.t0
        try:
            self.parser.feed_data(data)  # type: ignore[union-attr]
        except httptools.HttpParserError:
            self.upstream_failed("malformed")
            return
        if self.head_sent and self.method == b"HEAD" and not self.finished:
            self._complete()  # a HEAD response has no body whatever its Content-Length says

    # httptools response-parser callbacks

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname in HOP_BY_HOP:
            if lname == b"connection" and value.lower() not in (b"close", b"keep-alive"):
                self.ctx.log_connection_tokens(value)
            return
        if lname == b"transfer-encoding":
            self.resp_chunked = value.lower().rstrip().endswith(b"chunked")
            if not self.client_http11:
                return  # an HTTP/1.0 client gets the de-chunked body, delimited by close
        self.resp_headers.append(b"%b: %b\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None
        status = parser.get_status_code()
        self.status = status
        if 100 <= status < 200 and status != 101:
            # interim response (100 Continue, 103 Early Hints): relay it, wait for the final one
            self.interim = True
            self.client.write(b"HTTP/1.1 %d %b\r\n%b\r\n" % (status, self.reason, b"".join(self.resp_headers)))
            self.reason = b""
            self.resp_headers = []
            self.resp_chunked = False
            return
        headers = self.resp_headers
        no_body = self.method == b"HEAD" or status in (204, 304)
        has_length = any(h[:15].lower() == b"content-length:" for h in headers)
        if not no_body and not self.resp_chunked and not has_length:
            self.resp_close_delimited = True
            self.keep_client = False
        if self.resp_chunked and not self.client_http11:
            self.resp_close_delimited = True
            self.keep_client = False
        if not self.keep_client:
            headers.append(b"Connection: close\r\n")
        self.head_sent = True
        self.client.write(b"HTTP/1.1 %d %b\r\n%b\r\n" % (status, self.reason, b"".join(headers)))

    def on_body(self, body: bytes) -> None:
        self.response_size += len(body)
        transport = self.client.transport
        if self.resp_chunked and self.client_http11:
            transport.writelines([b"%x\r\n" % len(body), body, b"\r\n"])
        else:
            transport.write(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.resp_chunked and self.client_http11:
            self.client.transport.write(b"0\r\n\r\n")
        self._complete()

    def upstream_lost(self, conn: UpstreamConnection) -> None:
        """The upstream connection closed while this exchange used it."""
        if self.finished:
            return
        if self.resp_close_delimited and self.head_sent:
            self._complete(reuse=False)
            return
        if conn.reused and self.ttfb is None and not self.retried and self.retry_body is not None:
            # the server closed an idle pooled connection as we sent: re-send once on a fresh one
            self.retried = True
            self.upstream = None
            self.parser = None
            self.pending = list(self.retry_body)
            self.ctx.pool.acquire(self, fresh=True)
            return
        self.upstream_failed("reset")

    def upstream_failed(self, reason: str) -> None:
        if self.finished:
            return
        self.ctx.stats.upstream_error(reason)
        if self.upstream is not None:
            self.upstream.abort()
            self.upstream = None
        if self.head_sent:
            # part of the response is already with the client: all we can do is cut it
            self.keep_client = False
            self._finish(self.status)
            self.client.transport.abort()
            return
        code, phrase, body = ERROR_STATUS[reason]
        if not self.request_done:
            self.keep_client = False  # the rest of the request body would be read as a new request
        self.client.write(
            b"HTTP/1.1 %d %b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%b\r\n%b"
            % (code, phrase, len(body), b"" if self.keep_client else b"Connection: close\r\n", body)
        )
        self.response_size = len(body)
        self._finish(code)

    def client_gone(self) -> None:
        """The client disconnected before the response was complete: cancel upstream, count 499."""
        if self.finished:
            return
        if self.upstream is not None:
            self.upstream.abort()
            self.upstream = None
        self.keep_client = False
        self._finish(CLIENT_GONE)

    # ------------------------------------------------------------ timers

    def wait_for_pool(self, timeout: float) -> None:
        self.timer = asyncio.get_running_loop().call_later(timeout, self._pool_timeout)

    def _pool_timeout(self) -> None:
        self.timer = None
        self.upstream_failed("connect_timeout")

    def _arm_timer(self) -> None:
        if self.timer is None and not self.finished:
            self.last_activity = perf_counter()
            self.timer = asyncio.get_running_loop().call_later(self.ctx.read_timeout, self._check_timeout)

    def _check_timeout(self) -> None:
        # one timer per exchange, re-armed lazily: data arrival only stamps last_activity
        idle = perf_counter() - self.last_activity
        if idle >= self.ctx.read_timeout:
            self.timer = None
            self.upstream_failed("timeout")
        else:
            self.timer = asyncio.get_running_loop().call_later(self.ctx.read_timeout - idle, self._check_timeout)

    # ------------------------------------------------------------ completion

    def _complete(self, reuse: bool = True) -> None:
        conn = self.upstream
        self.upstream = None
        if conn is not None:
            if reuse and self.request_done and self.parser is not None and self.parser.should_keep_alive() and not conn.closed:
                self.ctx.pool.release(conn)
            else:
                conn.abort()
        self._finish(self.status)

    def _finish(self, code: int) -> None:
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        now = perf_counter()
        stats = self.ctx.stats
        stats.in_flight -= 1
        stats.record(self.route, self.method.decode("latin-1"), code, now - self.t0, self.ttfb,
                     self.request_size, self.response_size, self.trace_id)
        self.client.exchange_finished(self)
