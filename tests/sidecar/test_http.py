"""The metrics port's HTTP server: a real server on 127.0.0.1, spoken to over raw sockets."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator

import pytest

from exporter.sidecar import http as admin
from exporter.sidecar.admin import make_admin_router
from exporter.sidecar.health import get_status
from exporter.sidecar.http import AdminServer

HOST = "127.0.0.1"


class Fixture:
    def __init__(self) -> None:
        self.reloads = 0
        self.ready = (False, "connection refused")
        self.port = 0


async def _metrics(accept: str | None, accept_encoding: str | None) -> tuple[bytes, str, str | None]:
    return b"# accept=" + (accept or "").encode() + b"\nup 1\n", "text/plain; version=0.0.4; charset=utf-8", None


def _serve(fx: Fixture, started: asyncio.Event, stop: asyncio.Event) -> None:
    async def main() -> None:
        async def reload() -> str | None:
            fx.reloads += 1
            return None if fx.reloads == 1 else "baseline: cannot read"

        server = AdminServer(make_admin_router(_metrics, lambda: fx.ready, reload))
        await server.start(HOST, 0)
        assert server.server is not None
        fx.port = server.server.sockets[0].getsockname()[1]
        started.set()
        while not stop.is_set():
            await asyncio.sleep(0.01)
        await server.close()

    asyncio.run(main())


@pytest.fixture
def server() -> Iterator[Fixture]:
    import threading

    fx = Fixture()
    started, stop = asyncio.Event(), asyncio.Event()
    thread = threading.Thread(target=_serve, args=(fx, started, stop), daemon=True)
    thread.start()
    for _ in range(500):
        if started.is_set():
            break
        threading.Event().wait(0.01)
    yield fx
    stop.set()
    thread.join(5)


def exchange(port: int, raw: bytes, read_until_close: bool = True) -> bytes:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(raw)
        if not read_until_close:
            return sock.recv(65536)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def test_metrics_healthy_ready_and_index(server: Fixture) -> None:
    out = exchange(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n" in out
    assert out.endswith(b"# accept=text/plain\nup 1\n")
    assert exchange(server.port, b"GET /-/healthy HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\nOK\n")
    out = exchange(server.port, b"GET /-/ready HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 503 ") and out.endswith(b"model server not ready: connection refused\n")
    server.ready = (True, "")
    assert exchange(server.port, b"GET /-/ready?x=1 HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    assert b"<html>" in exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")


def test_keep_alive_and_pipelined_requests_are_answered_in_order(server: Fixture) -> None:
    raw = (b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
           b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = exchange(server.port, raw)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", out)
    assert statuses == [b"200", b"404", b"200"]
    assert not out.endswith(b"up 1\n")  # HEAD: no body, though Content-Length says how long it would be


def test_wrong_method_is_405_with_allow(server: Fixture) -> None:
    out = exchange(server.port, b"DELETE /metrics HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD\r\n" in out
    out = exchange(server.port, b"GET /-/reload HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 405 ") and b"Allow: POST\r\n" in out


def test_reload_refuses_form_content_types_and_reports_failure(server: Fixture) -> None:
    for content_type in (b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x", b"text/plain"):
        out = exchange(server.port, b"POST /-/reload HTTP/1.0\r\nContent-Type: %b\r\nContent-Length: 0\r\n\r\n" % content_type)
        assert out.startswith(b"HTTP/1.1 415 "), out
    assert server.reloads == 0
    out = exchange(server.port, b"POST /-/reload HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"configuration reloaded\n")
    out = exchange(server.port, b"POST /-/reload HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    assert out.startswith(b"HTTP/1.1 400 ") and b"previous configuration kept: baseline: cannot read" in out


def test_limits_head_body_and_garbage(server: Fixture) -> None:
    big_head = b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (admin.MAX_HEAD_BYTES + 10) + b"\r\n\r\n"
    assert exchange(server.port, big_head).startswith(b"HTTP/1.1 431 ")
    too_long = admin.MAX_BODY_BYTES + 1
    out = exchange(server.port, b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % too_long
                   + b"x" * too_long)
    assert out.startswith(b"HTTP/1.1 413 "), out[:100]
    assert server.reloads == 0
    assert exchange(server.port, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    # a valid request followed by garbage in one write: the valid one is still answered
    out = exchange(server.port, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01garbage\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 400 " in out


def test_idle_keep_alive_connections_are_closed(server: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "IDLE_SECONDS", 0.2)
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        assert sock.recv(65536) == b""  # closed by the server once idle


def test_probe_client_reads_status_of_length_chunked_and_close_delimited_bodies() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n",
        b"HTTP/1.0 204 No Content\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nbody until close",
    ]

    async def main() -> list[int]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answers.pop(0))
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(handle, HOST, 0)
        port = srv.sockets[0].getsockname()[1]
        got = [await asyncio.wait_for(get_status(f"http://{HOST}:{port}/ready"), 5) for _ in range(4)]
        srv.close()
        return got

    assert asyncio.run(main()) == [200, 503, 204, 200]


class _Recorder:
    """A transport that notes what was written, and when the loop took a turn in between."""

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.data = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        assert len(data) <= admin.WRITE_SLICE
        self.data += data
        self.order.append(f"write {len(data)}")

    def writelines(self, buffers: list[bytes]) -> None:
        for b in buffers:
            self.data += b
        self.order.append("writelines")


def test_a_large_answer_goes_out_in_slices_with_turns_between() -> None:
    body = bytes(range(256)) * (3 * admin.WRITE_SLICE // 256 + 5)  # three slices and a bit
    order: list[str] = []

    async def main() -> None:
        conn = admin.AdminConnection(admin.Router(), set())
        transport = _Recorder(order)
        conn.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().call_soon(order.append, "a proxied request")
        await conn._write(transport, [b"HTTP/1.1 200 OK\r\n\r\n", body])  # type: ignore[arg-type]
        assert bytes(transport.data) == b"HTTP/1.1 200 OK\r\n\r\n" + body

        small: list[str] = []
        await conn._write(_Recorder(small), [b"head", b"small body"])  # type: ignore[arg-type]
        assert small == ["writelines"]  # a small answer in one call, as before

    asyncio.run(main())
    assert order.index("a proxied request") < len(order) - 1  # it ran before the last slice went
    assert sum(1 for o in order if o.startswith("write")) == 1 + 4


def test_a_client_gone_mid_answer_gets_no_more_slices() -> None:
    order: list[str] = []

    async def main() -> None:
        conn = admin.AdminConnection(admin.Router(), set())
        transport = _Recorder(order)
        conn.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().call_soon(setattr, conn, "transport", None)  # connection_lost, in between
        await conn._write(transport, [b"head", b"x" * (4 * admin.WRITE_SLICE)])  # type: ignore[arg-type]

    asyncio.run(main())
    assert order == ["write 4"]  # the head went; the body found the client gone


def test_a_large_scrape_arrives_whole_over_a_real_socket() -> None:
    body = bytes(range(256)) * (5 * admin.WRITE_SLICE // 256)

    async def big(accept: str | None, accept_encoding: str | None) -> tuple[bytes, str, str | None]:
        return body, "text/plain; version=0.0.4; charset=utf-8", None

    async def main() -> bytes:
        server = AdminServer(make_admin_router(big, lambda: (True, ""), None))
        await server.start(HOST, 0)
        assert server.server is not None
        port = server.server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        got = await reader.readexactly(length)
        after = await reader.readuntil(b"OK\n")  # the next pipelined answer follows the whole body
        writer.close()
        await server.close()
        assert after.startswith(b"HTTP/1.1 200")
        return got

    assert asyncio.run(main()) == body
