"""The exchange's transitions, driven without sockets: fakes of the client, pool and upstream record what they get."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.events import Event
from exporter.proxy.exchange import ERROR_STATUS, FINISHED, STREAMING, WAITING, Exchange
from exporter.proxy.routes import RouteTable
from exporter.proxy.server import ClientConnection, ProxyContext
from exporter.proxy.stats import UPSTREAM_ERROR_REASONS, TrafficStats

INFER = b"/v2/models/iris/infer"
HEAD = b"POST %b HTTP/1.1\r\nHost: model\r\n\r\n" % INFER


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.paused = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, data: list[bytes]) -> None:
        self.written.extend(data)

    def close(self) -> None:
        self.closed = True

    def write_eof(self) -> None:  # a lingering close: the proxy's side is done
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


class FakePool:
    def __init__(self) -> None:
        self.acquired: list[tuple[Exchange, bool]] = []
        self.released: list[FakeUpstream] = []

    def acquire(self, exchange: Exchange, fresh: bool = False) -> None:
        self.acquired.append((exchange, fresh))

    def release(self, conn: FakeUpstream) -> None:
        self.released.append(conn)


class FakeUpstream:
    """What an Exchange uses of an UpstreamConnection."""

    def __init__(self, reused: bool = False) -> None:
        self.transport = FakeTransport()
        self.reused = reused
        self.closed = False
        self.aborted = False
        self.sent: list[bytes] = []
        self.capture: list[bytes] | None = None
        self.response_headers: dict[bytes, bytes] = {}

    def send(self, ex: Exchange, data: list[bytes]) -> None:
        self.sent.extend(data)
        if ex.capture is not None:
            self.capture = []

    def abort(self) -> None:
        self.aborted = True


class FakeLink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.dropped: list[str] = []

    def submit(self, event: Event) -> None:
        self.events.append(event)

    def drop(self, reason: str) -> None:
        self.dropped.append(reason)


class FakeClient:
    """What an Exchange uses of its ClientConnection."""

    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self.transport = FakeTransport()
        self.finished: list[Exchange] = []
        self.read_ahead = 0
        self.close_reason = ""
        self.write_paused = 0.0

    def forwarded(self, size: int) -> None:
        self.read_ahead -= size

    def abort(self, reason: str) -> None:
        self.close_reason = reason
        self.transport.abort()

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def writelines(self, data: list[bytes]) -> None:
        self.transport.writelines(data)

    def exchange_finished(self, ex: Exchange) -> None:
        self.finished.append(ex)


def _ctx(capture: bool = False, capture_limit: int = 1 << 20) -> ProxyContext:
    stats = TrafficStats((0.1, 1.0), (100.0, 1000.0), "iris", "1")
    routes = RouteTable()
    return ProxyContext(
        pool=FakePool(), stats=stats, routes=routes, read_timeout=1.0,  # type: ignore[arg-type]
        upstream_host_header=b"model", link=FakeLink() if capture else None,
        capture_routes=routes.inference if capture else frozenset(), capture_limit=capture_limit,
    )


def _exchange(ctx: ProxyContext | None = None, *, http11: bool = True, keep_alive: bool = True,
              chunked: bool = False, headers: dict[bytes, bytes] | None = None) -> tuple[Exchange, FakeClient]:
    client = FakeClient(ctx or _ctx())
    ex = Exchange(client, 0.0, b"POST", INFER, HEAD, http11, keep_alive, chunked, None,  # type: ignore[arg-type]
                  headers or {})
    return ex, client


def _attached(ex: Exchange, conn: FakeUpstream | None = None) -> FakeUpstream:
    """Start the exchange and attach it to `conn` as the pool would."""
    ex.start()
    conn = conn or FakeUpstream()
    ex.attach(conn)  # type: ignore[arg-type]
    return conn


def _samples(stats: TrafficStats, name: str, **labels: str) -> float:
    """Sum of `name` over the series that carry `labels` (whatever model and version they got)."""
    registry = CollectorRegistry()
    registry.register(stats)  # type: ignore[arg-type]
    return sum(s.value for m in registry.collect() for s in m.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _pool(ex: Exchange) -> Any:
    return ex.ctx.pool


# ------------------------------------------------------------ the happy path


def test_a_keep_alive_exchange_goes_waiting_streaming_finished_and_parks_its_connection() -> None:
    ex, client = _exchange()
    assert ex.state == WAITING and ex.keep_client
    conn = _attached(ex)
    assert _pool(ex).acquired == [(ex, False)] and ex.ctx.stats.in_flight == 1
    ex.request_body(b"abc")
    ex.request_complete()
    assert conn.sent == [HEAD] and conn.transport.written == [b"abc"]
    assert ex.response_head(200, close_delimited=False) is True
    assert ex.state == STREAMING and ex.status == 200
    ex.complete(keep_alive=True)
    assert ex.state == FINISHED and ex.upstream is None
    assert _pool(ex).released == [conn] and not conn.aborted
    assert client.finished == [ex] and ex.keep_client
    assert ex.ctx.stats.in_flight == 0
    assert _samples(ex.ctx.stats, "model_requests_total", code="200") == 1


def test_body_read_before_a_connection_is_attached_goes_out_after_the_head() -> None:
    ex, _ = _exchange(chunked=True)
    ex.start()
    ex.request_body(b"abc")
    ex.request_complete()
    conn = FakeUpstream()
    ex.attach(conn)  # type: ignore[arg-type]
    assert conn.sent == [HEAD, b"3\r\nabc\r\n", b"0\r\n\r\n"] and ex.pending == []


def test_the_upstream_connection_is_not_reused_when_the_request_body_was_not_read_whole() -> None:
    ex, client = _exchange()
    conn = _attached(ex)
    ex.response_head(200, close_delimited=False)
    ex.complete(keep_alive=True)
    assert conn.aborted and _pool(ex).released == []
    assert client.finished == [ex]


def test_close_delimited_response_turns_keep_alive_off_and_completes_when_upstream_closes() -> None:
    ex, client = _exchange()
    conn = _attached(ex)
    ex.request_complete()
    assert ex.response_head(200, close_delimited=True) is False
    assert not ex.keep_client
    ex.upstream_lost(conn)  # type: ignore[arg-type]
    assert ex.state == FINISHED and client.finished == [ex]
    assert _samples(ex.ctx.stats, "model_requests_total", code="200") == 1
    assert _samples(ex.ctx.stats, "model_upstream_errors_total") == 0


# ------------------------------------------------------------ client gone


def test_client_gone_after_head_sent_counts_499_and_aborts_upstream() -> None:
    ex, client = _exchange()
    conn = _attached(ex)
    ex.request_complete()
    ex.response_head(200, close_delimited=False)
    ex.client_gone()
    assert conn.aborted and ex.upstream is None
    assert ex.state == FINISHED and not ex.keep_client
    assert client.finished == [ex] and client.transport.written == []
    assert _samples(ex.ctx.stats, "model_requests_total", code="499") == 1
    assert _samples(ex.ctx.stats, "model_upstream_errors_total") == 0
    assert ex.ctx.stats.in_flight == 0


def test_client_gone_while_waiting_for_a_connection_counts_499() -> None:
    ex, client = _exchange()
    ex.start()
    ex.client_gone()
    assert ex.state == FINISHED and client.finished == [ex]
    assert _samples(ex.ctx.stats, "model_requests_total", code="499") == 1


# ------------------------------------------------------------ upstream failures


@pytest.mark.parametrize("reason", UPSTREAM_ERROR_REASONS)
def test_upstream_failed_before_head_sent_writes_502_or_504_with_connection_close_when_body_incomplete(
        reason: str) -> None:
    ex, client = _exchange()
    conn = _attached(ex)
    ex.request_body(b"part of it")
    ex.upstream_failed(reason)
    code, phrase, body = ERROR_STATUS[reason]
    assert code in (502, 504)
    response = b"".join(client.transport.written)
    assert response.startswith(b"HTTP/1.1 %d %b\r\n" % (code, phrase)) and response.endswith(body)
    assert b"\r\nConnection: close\r\n" in response and not ex.keep_client
    assert conn.aborted and ex.state == FINISHED and client.finished == [ex]
    assert ex.response_size == len(body)
    assert _samples(ex.ctx.stats, "model_requests_total", code=str(code)) == 1
    assert _samples(ex.ctx.stats, "model_upstream_errors_total", reason=reason) == 1


def test_upstream_failed_before_head_sent_keeps_the_client_when_the_request_was_read_whole() -> None:
    ex, client = _exchange()
    _attached(ex)
    ex.request_complete()
    ex.upstream_failed("timeout")
    response = b"".join(client.transport.written)
    assert response.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert b"Connection: close" not in response and ex.keep_client


def test_upstream_failed_after_head_sent_cuts_the_client_and_counts_the_status_sent() -> None:
    ex, client = _exchange()
    conn = _attached(ex)
    ex.request_complete()
    ex.response_head(200, close_delimited=False)
    ex.upstream_failed("reset")
    assert conn.aborted and client.transport.aborted and client.transport.written == []
    assert not ex.keep_client and ex.state == FINISHED
    assert _samples(ex.ctx.stats, "model_requests_total", code="200") == 1
    assert _samples(ex.ctx.stats, "model_upstream_errors_total", reason="reset") == 1


def test_a_reused_connection_lost_before_any_response_byte_is_retried_once_on_a_fresh_one() -> None:
    ex, client = _exchange()
    first = _attached(ex, FakeUpstream(reused=True))
    ex.request_body(b"abc")
    ex.request_complete()
    ex.upstream_lost(first)  # type: ignore[arg-type]
    assert ex.state == WAITING and ex.retried and ex.upstream is None
    assert _pool(ex).acquired[-1] == (ex, True) and ex.pending == [b"abc"]
    second = FakeUpstream(reused=True)
    ex.attach(second)  # type: ignore[arg-type]
    assert second.sent == [HEAD, b"abc"]
    ex.upstream_lost(second)  # type: ignore[arg-type]
    assert ex.state == FINISHED
    assert b"".join(client.transport.written).startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert _samples(ex.ctx.stats, "model_upstream_errors_total", reason="reset") == 1


def test_check_timeout_fails_only_a_forwarded_request_after_read_timeout_of_silence() -> None:
    ex, client = _exchange()
    ex.start()
    ex.check_timeout(1e9, 1.0)  # not attached yet: the pool's timer is in charge
    assert ex.state == WAITING
    ex.attach(FakeUpstream())  # type: ignore[arg-type]
    ex.check_timeout(1e9, 1.0)  # the request is still being read
    assert ex.state == WAITING
    ex.request_complete()
    ex.check_timeout(ex.last_activity + 0.5, 1.0)
    assert ex.state == WAITING
    ex.check_timeout(ex.last_activity + 1.0, 1.0)
    assert ex.state == FINISHED
    assert b"".join(client.transport.written).startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert _samples(ex.ctx.stats, "model_upstream_errors_total", reason="timeout") == 1


# ------------------------------------------------------------ keep_client only ever turns off


def test_shutdown_while_active_turns_keep_alive_off() -> None:
    ex, client = _exchange()
    conn = _attached(ex)
    ex.request_complete()
    ex.shutdown()
    assert not ex.keep_client
    assert ex.response_head(200, close_delimited=False) is False  # the response says Connection: close
    ex.complete(keep_alive=True)
    assert _pool(ex).released == [conn]  # the model server's connection is still good
    assert client.finished == [ex] and not ex.keep_client


def test_keep_client_false_after_http10_without_keep_alive() -> None:
    ex, _ = _exchange(http11=False, keep_alive=False)
    assert not ex.keep_client
    _attached(ex)
    ex.request_complete()
    assert ex.response_head(200, close_delimited=False) is False


@pytest.mark.parametrize(("request_head", "keep"), [
    (b"GET /ping HTTP/1.0\r\n\r\n", False),
    (b"GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    (b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
])
def test_the_client_connection_closes_after_the_response_unless_the_request_kept_it_alive(
        request_head: bytes, keep: bool) -> None:
    ctx = _ctx()
    client = ClientConnection(ctx)
    transport = FakeTransport()
    client.connection_made(transport)  # type: ignore[arg-type]
    client.data_received(request_head)
    ((ex, _),) = _pool_of(ctx).acquired
    assert ex.keep_client is keep and ex.client_http11 is (b"HTTP/1.1" in request_head)
    conn = FakeUpstream()
    ex.attach(conn)  # type: ignore[arg-type]
    assert conn.sent[0].startswith(b"GET /ping HTTP/1.1\r\n") and b"Connection" not in conn.sent[0]
    assert ex.response_head(200, close_delimited=False) is keep
    ex.complete(keep_alive=True)
    assert transport.closed is not keep


def _pool_of(ctx: ProxyContext) -> Any:
    return ctx.pool


# ------------------------------------------------------------ no transition out of FINISHED


def test_every_transition_after_finished_is_a_no_op() -> None:
    ex, client = _exchange()
    conn = _attached(ex)
    ex.request_complete()
    ex.response_head(200, close_delimited=False)
    ex.complete(keep_alive=True)
    written = list(client.transport.written)
    ex.complete(keep_alive=True)
    ex.upstream_failed("timeout")
    ex.upstream_lost(conn)  # type: ignore[arg-type]
    ex.client_gone()
    ex.check_timeout(1e9, 1.0)
    assert ex.state == FINISHED and client.finished == [ex]
    assert client.transport.written == written and not client.transport.aborted
    assert _pool(ex).released == [conn] and not conn.aborted
    assert _samples(ex.ctx.stats, "model_requests_total") == 1
    assert _samples(ex.ctx.stats, "model_upstream_errors_total") == 0
    assert ex.ctx.stats.in_flight == 0


def test_a_discarded_exchange_is_never_forwarded_nor_counted() -> None:
    ex, client = _exchange()
    ex.discard()
    ex.request_body(b"abc")
    ex.request_complete()
    ex.upstream_failed("refused")
    ex.client_gone()
    assert ex.state == FINISHED and ex.pending == [] and client.finished == []
    assert client.transport.written == [] and _pool(ex).acquired == []
    assert _samples(ex.ctx.stats, "model_requests_total") == 0


# ------------------------------------------------------------ capture


def test_a_captured_exchange_is_handed_off_with_both_bodies_and_headers() -> None:
    ctx = _ctx(capture=True)
    ex, _ = _exchange(ctx, headers={b"content-type": b"application/json"})
    assert ex.capture == []
    conn = _attached(ex)
    ex.request_body(b'{"x": 1}')
    ex.request_complete()
    ex.response_head(200, close_delimited=False)
    assert conn.capture is not None
    conn.capture.append(b'{"y": 2}')
    conn.response_headers = {b"content-type": b"application/json"}
    ex.complete(keep_alive=True)
    (event,) = ctx.link.events  # type: ignore[union-attr]
    assert (event.route, event.target, event.status) == ("/v2/models/{model}/infer", INFER, 200)
    assert (event.request_body, event.response_body) == (b'{"x": 1}', b'{"y": 2}')
    assert event.request_headers == event.response_headers == {b"content-type": b"application/json"}


def test_a_request_body_over_the_capture_limit_is_dropped_once_and_still_forwarded() -> None:
    ctx = _ctx(capture=True, capture_limit=4)
    ex, _ = _exchange(ctx)
    conn = _attached(ex)
    ex.request_body(b"abc")
    ex.request_body(b"def")
    ex.request_body(b"ghi")
    assert ex.capture is None and ctx.link.dropped == ["body_too_large"]  # type: ignore[union-attr]
    assert conn.transport.written == [b"abc", b"def", b"ghi"]
    ex.request_complete()
    ex.response_head(200, close_delimited=False)
    ex.complete(keep_alive=True)
    assert ctx.link.events == []  # type: ignore[union-attr]
