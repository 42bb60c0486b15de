"""The client connection driven without sockets: read-ahead, timeouts, limits, request parsing.

The fakes are test_exchange.py's: the transport records writes and pause/resume, the pool
records what it is asked for and attaches nothing unless a test does.
"""

from __future__ import annotations

from typing import Any

from test_exchange import FakePool, FakeTransport, FakeUpstream, _ctx

from exporter.proxy.server import READ_AHEAD_LIMIT, ClientConnection, ProxyContext


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
