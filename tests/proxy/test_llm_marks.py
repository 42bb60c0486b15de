"""The proxy's side of LLM timing: arrival marks per read of an LLM response, and the model from the body."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from exporter.events import MAX_MARKS, Event, unpack_marks
from exporter.proxy.exchange import Exchange
from exporter.proxy.routes import RouteTable
from exporter.proxy.server import ProxyContext
from exporter.proxy.stats import TrafficStats
from exporter.proxy.upstream import UpstreamConnection, UpstreamPool

CHAT = b"/v1/chat/completions"
BODY = b'{"messages": [{"role": "user", "content": "hi"}], "model": "llama3"}'
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def submit(self, event: Event) -> None:
        self.events.append(event)

    def drop(self, reason: str) -> None:
        raise AssertionError(reason)


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, data: list[bytes]) -> None:
        self.written.extend(data)

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Client:
    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self.transport = Transport()
        self.read_ahead = 0
        self.write_paused = 0.0

    def writelines(self, data: list[bytes]) -> None:
        self.transport.writelines(data)

    def exchange_finished(self, ex: Exchange) -> None:
        pass


class Pool:
    def acquire(self, exchange: Exchange, fresh: bool = False) -> None:
        pass

    def release(self, conn: Any) -> None:
        pass


def exchange(target: bytes = CHAT, body: bytes = BODY) -> tuple[Exchange, UpstreamConnection, Sink, Client]:
    sink = Sink()
    routes = RouteTable()
    ctx = ProxyContext(pool=Pool(), stats=TrafficStats((0.1,), (100.0,)), routes=routes,  # type: ignore[arg-type]
                       read_timeout=1.0, upstream_host_header=b"m", link=sink, capture_routes=routes.inference)
    client = Client(ctx)
    ex = Exchange(client, perf_counter(), b"POST", target, b"POST / HTTP/1.1\r\n\r\n", True, True, False,  # type: ignore[arg-type]
                  None, {b"content-type": b"application/json"})
    ex.start()
    conn = UpstreamConnection(UpstreamPool("127.0.0.1", 1, 1, 1.0, frozenset({b"content-type"})))
    conn.connection_made(Transport())  # type: ignore[arg-type]
    ex.attach(conn)
    ex.request_body(body)
    ex.request_complete()
    return ex, conn, sink, client


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def test_one_mark_per_read_of_the_body_with_bytes_so_far_and_time_since_the_request() -> None:
    ex, conn, sink, client = exchange()
    conn.data_received(SSE_HEAD)  # the head alone: no body byte, no mark
    assert ex.marks == b"" and ex.ctx.stats.llm_streams == 1
    events = [b'data: {"a": 1}\n\n', b'data: {"b": 2}\n\n', b'data: {"c": 3}\n\n']
    conn.data_received(chunk(events[0]))
    conn.data_received(chunk(events[1]) + chunk(events[2]))  # two events in one read: one mark
    conn.data_received(b"0\r\n\r\n")  # the end of the body: no new byte, no new mark
    (event,) = sink.events
    marks = unpack_marks(event.marks)
    assert [size for size, _ in marks] == [len(events[0]), sum(map(len, events))]
    times = [at for _, at in marks]
    assert 0 <= times[0] <= times[1] <= event.duration
    assert event.response_body == b"".join(events)  # what the marks count is what the worker parses
    assert event.model == "llama3"  # from the request body, through the label policy
    assert ex.ctx.stats.llm_streams == 0


def test_marks_are_capped_and_the_last_one_moves_on() -> None:
    ex, conn, sink, _ = exchange()
    conn.data_received(SSE_HEAD)
    for _ in range(MAX_MARKS + 10):
        conn.data_received(chunk(b"x"))
    conn.data_received(b"0\r\n\r\n")
    (event,) = sink.events
    marks = unpack_marks(event.marks)
    assert len(marks) == MAX_MARKS
    assert marks[-1][0] == MAX_MARKS + 10  # the end of the body stays timed
    assert marks[-2][0] == MAX_MARKS - 1


def test_routes_other_than_llm_ones_carry_no_marks() -> None:
    ex, conn, sink, _ = exchange(b"/v2/models/iris/infer", b'{"model": "not-a-label", "inputs": []}')
    assert ex.marks is None
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    (event,) = sink.events
    assert event.marks == b"" and event.model == "iris"  # the path's {model}, never the body's
