"""The client connection driven without sockets: read-ahead, timeouts, limits, request parsing.

The fakes are test_exchange.py's: the transport records writes and pause/resume, the pool
records what it is asked for and attaches nothing unless a test does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from test_exchange import FakePool, FakeTransport, FakeUpstream, _ctx

from exporter.proxy.exchange import FINISHED, STREAMING
from exporter.proxy.server import READ_AHEAD_LIMIT, ClientConnection, ProxyContext, check_upstreams, open_files_for


def _client(ctx: ProxyContext | None = None) -> tuple[ClientConnection, FakeTransport]:
    client = ClientConnection(ctx or _ctx())
    transport = FakeTransport()
    client.connection_made(transport)  # type: ignore[arg-type]
    return client, transport


def _pool(client: ClientConnection) -> Any:
    pool = client.ctx.pool
    assert isinstance(pool, FakePool)
    return pool


# ------------------------------------------------------------ read-ahead


def test_a_body_waiting_for_a_connection_stops_the_reading_past_the_limit_and_resumes_once_attached() -> None:
    client, transport = _client()
    size = 4 * READ_AHEAD_LIMIT
    client.data_received(b"POST /x HTTP/1.1\r\nHost: m\r\nContent-Length: %d\r\n\r\n" % size)
    piece = b"x" * 65536
    while not transport.paused:
        client.data_received(piece)
    assert READ_AHEAD_LIMIT < client.read_ahead <= READ_AHEAD_LIMIT + len(piece)
    ((ex, _),) = _pool(client).acquired
    conn = FakeUpstream()
    ex.attach(conn)  # type: ignore[arg-type]
    assert not transport.paused and client.read_ahead == 0
    assert sum(map(len, conn.sent[1:])) == ex.request_size


def test_a_body_pipelined_behind_a_request_in_flight_waits_for_its_turn_unread() -> None:
    client, transport = _client()
    size = 4 * READ_AHEAD_LIMIT
    client.data_received(b"GET /slow HTTP/1.1\r\nHost: m\r\n\r\n"
                         b"POST /x HTTP/1.1\r\nHost: m\r\nContent-Length: %d\r\n\r\n" % size)
    piece = b"x" * 65536
    while not transport.paused:
        client.data_received(piece)
    ((first, _),) = _pool(client).acquired
    first.attach(FakeUpstream())  # type: ignore[arg-type]
    first.response_head(200, close_delimited=False)
    assert transport.paused  # still its turn to wait
    first.complete(keep_alive=True)
    ((second, _),) = _pool(client).acquired[1:]
    second.attach(FakeUpstream())  # type: ignore[arg-type]
    assert not transport.paused and client.read_ahead == 0


# ------------------------------------------------------------ client timeouts and the connection limit


def _limited(**client: Any) -> ProxyContext:
    ctx = _ctx()
    ctx.client = dataclasses.replace(ctx.client, **client)
    return ctx


def _closed(client: ClientConnection, transport: FakeTransport) -> dict[str, int]:
    """Let the transport report the close, as the loop would; the closed-by-reason counts that changed."""
    assert transport.closed or transport.aborted
    client.connection_lost(None)
    return {reason: n for reason, n in client.ctx.stats.client_closed.items() if n}


def test_a_fresh_connection_that_sends_no_head_within_header_timeout_gets_408_and_is_closed() -> None:
    client, transport = _client(_limited(header_timeout=10.0))
    assert client.ctx.stats.client_connections == 1
    client.check_client(client.since + 9.9)
    assert not transport.closed
    client.data_received(b"GET / HTTP/1.1\r\nHost: m\r\n")  # a slow head: its clock ran from the connection
    client.check_client(client.since + 10.0)
    assert b"".join(transport.written).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert _closed(client, transport) == {"header_timeout": 1}
    assert client.ctx.stats.client_connections == 0
    assert _pool(client).acquired == []


def test_an_idle_keep_alive_connection_is_closed_after_keepalive_timeout_then_a_new_head_gets_header_timeout() -> None:
    client, transport = _client(_limited(keepalive_timeout=5.0, header_timeout=20.0))
    client.data_received(b"GET / HTTP/1.1\r\nHost: m\r\n\r\n")
    ((ex, _),) = _pool(client).acquired
    ex.attach(FakeUpstream())  # type: ignore[arg-type]
    ex.response_head(200, close_delimited=False)
    ex.complete(keep_alive=True)
    idle = client.since
    client.check_client(idle + 4.9)
    assert not transport.closed
    client.data_received(b"GET / HT")  # the next head began: header_timeout from its first byte
    client.check_client(idle + 19.0)
    assert not transport.closed
    client.check_client(client.since + 20.0)
    assert _closed(client, transport) == {"header_timeout": 1}


def test_keepalive_timeout_closes_an_idle_connection_silently() -> None:
    client, transport = _client(_limited(keepalive_timeout=5.0))
    client.data_received(b"GET / HTTP/1.1\r\nHost: m\r\n\r\n")
    ((ex, _),) = _pool(client).acquired
    ex.attach(FakeUpstream())  # type: ignore[arg-type]
    ex.response_head(200, close_delimited=False)
    ex.complete(keep_alive=True)
    written = list(transport.written)
    client.check_client(client.since + 5.0)
    assert transport.written == written
    assert _closed(client, transport) == {"keepalive_timeout": 1}


def test_a_request_body_that_stops_arriving_gets_408_and_the_upstream_request_is_cancelled() -> None:
    client, transport = _client(_limited(body_timeout=5.0, header_timeout=1.0))
    client.data_received(b"POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 10\r\n\r\nabc")
    ((ex, _),) = _pool(client).acquired
    conn = FakeUpstream()
    ex.attach(conn)  # type: ignore[arg-type]
    client.check_client(100.0)  # the sweeper's first look: 3 bytes so far (the header timeout is over)
    client.data_received(b"de")
    client.check_client(104.0)  # more bytes came: the clock starts again
    client.check_client(108.9)
    assert not transport.closed
    client.check_client(109.0)
    assert b"".join(transport.written).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert conn.aborted
    assert _closed(client, transport) == {"body_timeout": 1}
    assert sum(n for (_, _, code), n in _requests(client).items() if code == "408") == 1


def test_no_client_timeout_runs_while_the_proxy_is_not_reading_the_client() -> None:
    client, transport = _client(_limited(body_timeout=5.0))
    client.data_received(b"POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 10\r\n\r\nabc")
    client.check_client(100.0)
    client.pause_for_upstream()  # the model server reads slowly
    client.check_client(200.0)
    assert not transport.closed
    client.resume_for_upstream()
    client.check_client(300.0)  # the clock starts again once reading resumes
    assert not transport.closed


def test_beyond_max_connections_a_connection_gets_503_and_is_closed() -> None:
    ctx = _limited(max_connections=2)
    _client(ctx)
    _client(ctx)
    third, transport = _client(ctx)
    assert b"".join(transport.written).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert ctx.stats.client_connections == 2 and len(ctx.connections) == 2
    assert _closed(third, transport) == {"limit": 1}
    assert ctx.stats.client_connections == 2


def test_a_client_that_closes_is_counted_client_closed_and_shutdown_closes_idle_ones() -> None:
    ctx = _ctx()
    first, _ = _client(ctx)
    second, transport = _client(ctx)
    first.connection_lost(None)
    second.shutdown()
    assert _closed(second, transport) == {"client_closed": 1, "shutdown": 1}
    assert ctx.stats.client_connections == 0


def _requests(client: ClientConnection) -> dict[tuple[str, str, str], int]:
    return {k: n for series in client.ctx.stats.series.values() for k, n in series.requests.items()}


# ------------------------------------------------------------ a client that does not read


def _streaming(client: ClientConnection) -> tuple[Any, FakeUpstream]:
    client.data_received(b"GET /big HTTP/1.1\r\nHost: m\r\n\r\n")
    ((ex, _),) = _pool(client).acquired
    conn = FakeUpstream()
    ex.attach(conn)  # type: ignore[arg-type]
    ex.response_head(200, close_delimited=False)
    return ex, conn


def test_the_model_server_is_not_timed_while_the_client_reads_nothing() -> None:
    client, transport = _client(_limited(send_timeout=30.0))
    ex, conn = _streaming(client)
    read_timeout = client.ctx.read_timeout
    client.pause_writing()
    assert conn.transport.paused
    check_upstreams([client], ex.last_activity + 10 * read_timeout, read_timeout)
    client.check_client(ex.last_activity + 10 * read_timeout)
    assert not transport.aborted and ex.state == STREAMING
    client.resume_writing()
    assert not conn.transport.paused
    check_upstreams([client], ex.last_activity + 0.5 * read_timeout, read_timeout)  # silent since the resume only
    assert ex.state == STREAMING
    check_upstreams([client], ex.last_activity + read_timeout, read_timeout)
    assert ex.state == FINISHED  # from then on its silence counts


def test_a_client_that_reads_nothing_for_send_timeout_is_cut_and_its_exchange_counted_499() -> None:
    client, transport = _client(_limited(send_timeout=30.0))
    ex, conn = _streaming(client)
    client.pause_writing()
    client.check_client(client.write_paused + 29.9)
    assert not transport.aborted
    client.check_client(client.write_paused + 30.0)
    assert transport.aborted
    assert _closed(client, transport) == {"send_timeout": 1}
    assert ex.state == FINISHED and conn.aborted
    assert _requests(client) == {("other", "GET", "499"): 1}


def test_the_next_response_to_a_client_that_has_not_read_the_last_one_waits_upstream() -> None:
    client, _ = _client()
    client.data_received(b"GET /a HTTP/1.1\r\nHost: m\r\n\r\nGET /b HTTP/1.1\r\nHost: m\r\n\r\n")
    ((first, _),) = _pool(client).acquired
    first.attach(FakeUpstream())  # type: ignore[arg-type]
    first.response_head(200, close_delimited=False)
    client.pause_writing()  # the last bytes of the first response filled the client's socket
    first.complete(keep_alive=True)
    ((second, _),) = _pool(client).acquired[1:]
    conn = FakeUpstream()
    second.attach(conn)  # type: ignore[arg-type]
    assert conn.transport.paused  # no pause_writing comes for it: the pause is already on


# ------------------------------------------------------------ HTTP conformance (RFC 9110/9112)


def _sent(ex: Any) -> FakeUpstream:
    conn = FakeUpstream()
    ex.attach(conn)  # type: ignore[arg-type]
    return conn


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET http://[bad/ HTTP/1.1\r\nHost: a\r\n\r\n",
])
def test_a_request_without_exactly_one_host_or_with_a_bad_target_is_refused_and_never_forwarded(head: bytes) -> None:
    client, transport = _client()
    client.data_received(head)
    assert b"".join(transport.written).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert _pool(client).acquired == []
    assert _closed(client, transport) == {"protocol_error": 1}


def test_an_absolute_form_target_goes_upstream_in_origin_form_with_its_authority_as_host() -> None:
    client, _ = _client()
    client.data_received(b"GET http://[::1]:8080/v2/models/m/ready?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    ((ex, _),) = _pool(client).acquired
    assert ex.target == b"/v2/models/m/ready?q=1" and ex.route == "/v2/models/{model}/ready"
    assert _sent(ex).sent[0] == b"GET /v2/models/m/ready?q=1 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"


def test_fields_the_connection_header_names_are_dropped_but_never_host_or_framing() -> None:
    client, _ = _client()
    client.data_received(b"POST / HTTP/1.1\r\nX-A: 1\r\nConnection: x-a, X-B, host, content-length\r\n"
                         b"Host: m\r\nX-B: 2\r\nX-C: 3\r\nContent-Length: 0\r\n\r\n")
    ((ex, _),) = _pool(client).acquired
    assert _sent(ex).sent[0] == b"POST / HTTP/1.1\r\nHost: m\r\nX-C: 3\r\nContent-Length: 0\r\n\r\n"


def test_request_trailers_go_on_the_last_chunk() -> None:
    client, _ = _client()
    client.data_received(b"POST / HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                         b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nConnection: close\r\n\r\n")
    ((ex, _),) = _pool(client).acquired
    conn = _sent(ex)
    assert b"\r\nTrailer: X-Sum\r\n" in conn.sent[0]
    assert conn.sent[1:] == [b"3\r\nabc\r\n", b"0\r\nX-Sum: 1\r\n\r\n"]


def test_a_kept_alive_http10_client_is_told_its_connection_stays_open() -> None:
    client, _ = _client()
    client.data_received(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    ((ex, _),) = _pool(client).acquired
    assert ex.connection_header() == b"Connection: keep-alive\r\n"
    _sent(ex)
    ex.request_complete()
    ex.upstream_failed("timeout")
    assert b"\r\nConnection: keep-alive\r\n" in b"".join(client.transport.written)  # type: ignore[attr-defined]


def test_requests_read_whole_before_garbage_are_answered_in_order_then_400_and_close() -> None:
    client, transport = _client()
    client.data_received(b"GET /a HTTP/1.1\r\nHost: m\r\n\r\nGET /b HTTP/1.1\r\nHost: m\r\n\r\n\x00garbage\r\n\r\n")
    assert transport.paused and not transport.closed  # nothing after the break is read
    ((first, _),) = _pool(client).acquired
    for ex in (first, None):
        if ex is None:
            ((ex, _),) = _pool(client).acquired[1:]
        _sent(ex)
        ex.response_head(200, close_delimited=False)
        assert not transport.closed
        ex.complete(keep_alive=True)
    assert b"".join(transport.written).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert _closed(client, transport) == {"protocol_error": 1}
    assert _requests(client) == {("other", "GET", "200"): 2, ("other", "other", "400"): 1}


def test_a_body_broken_while_forwarded_fails_its_exchange_with_400() -> None:
    client, transport = _client()
    client.data_received(b"POST / HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    ((ex, _),) = _pool(client).acquired
    conn = _sent(ex)
    client.data_received(b"zz\r\n")  # not a chunk size
    assert conn.aborted and ex.state == FINISHED
    assert b"".join(transport.written).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert _closed(client, transport) == {"protocol_error": 1}
    assert _requests(client) == {("other", "POST", "400"): 1}


# ------------------------------------------------------------ the open-files limit


@pytest.mark.parametrize(("limits", "raised"), [
    ((1024, 1 << 20), (4096 + 256, 1 << 20)),  # raised to what is needed
    ((1024, 2048), (2048, 2048)),  # as far as the hard limit allows (and a warning)
    ((1 << 20, 1 << 20), None),  # enough already
])
def test_the_open_files_limit_is_raised_to_hold_the_connections(
        monkeypatch: pytest.MonkeyPatch, limits: tuple[int, int], raised: tuple[int, int] | None) -> None:
    import resource

    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _: limits)
    monkeypatch.setattr(resource, "setrlimit", lambda _, value: calls.append(value))
    open_files_for(4096)
    assert calls == ([raised] if raised else [])
