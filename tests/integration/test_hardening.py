"""Hostile and unlucky clients cannot take the proxy down: bounded memory, timeouts, limits.

Raw sockets play the clients; the upstream is a small aiohttp app whose /sink streams a request
body into a hash (so nothing but the proxy holds the body) and whose /slow holds a request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import psutil
import pytest
from aiohttp import web
from harness import Sidecar, SidecarFactory
from stand_in import AppServer

pytestmark = pytest.mark.integration

MB = 1024 * 1024
BODY_MB = 120
BLOCK = bytes(range(256)) * 4096  # 1 MiB, not all zeros


async def _sink(request: web.Request) -> web.Response:
    digest, size = hashlib.sha256(), 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    return web.json_response({"size": size, "sha256": digest.hexdigest()})


async def _slow(request: web.Request) -> web.Response:
    await request.read()
    await asyncio.sleep(float(request.query.get("delay", "1")))
    return web.Response(text="slow done\n")


@pytest.fixture(scope="module")
def sink() -> Iterator[AppServer]:
    app = web.Application()
    app.router.add_post("/sink", _sink)
    app.router.add_route("*", "/slow", _slow)
    app.router.add_get("/big", _big)
    app.router.add_get("/v2/health/ready", _ok)
    server = AppServer(app).start()
    yield server
    server.stop()


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=BLOCK * int(request.query.get("mb", "1")))


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ready\n")


def _connect(sidecar: Sidecar, timeout: float = 30.0) -> socket.socket:
    parts = urlsplit(sidecar.proxy_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    return sock


def _body_digest(mb: int) -> str:
    digest = hashlib.sha256()
    for _ in range(mb):
        digest.update(BLOCK)
    return digest.hexdigest()


def _send_body(sock: socket.socket, mb: int) -> None:
    for _ in range(mb):
        sock.sendall(BLOCK)


def _read_responses(sock: socket.socket, n: int) -> list[tuple[int, bytes]]:
    """Read `n` Content-Length delimited responses: (status, body) each."""
    buf = bytearray()
    out: list[tuple[int, bytes]] = []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(out)} responses: {bytes(buf[:200])!r}"
            buf += chunk
        end = buf.index(b"\r\n\r\n")
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[: end + 4]
        status = int(lines[0].split()[1])
        length = next(int(line.split(b":", 1)[1]) for line in lines[1:] if line.lower().startswith(b"content-length:"))
        while len(buf) < length:
            chunk = sock.recv(1 << 20)
            assert chunk, "connection closed inside a body"
            buf += chunk
        out.append((status, bytes(buf[:length])))
        del buf[:length]
    return out


class PeakRss:
    """Samples a process's resident memory in a thread; `growth` is the peak over the start."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    @property
    def growth(self) -> int:
        return self.peak - self.start


def _post_head(mb: int) -> bytes:
    return b"POST /sink HTTP/1.1\r\nHost: model\r\nContent-Length: %d\r\n\r\n" % (mb * MB)


def _warm_up(sidecar: Sidecar) -> None:
    """One large body first, so allocator pools the proxy keeps anyway do not count as growth."""
    with _connect(sidecar) as sock:
        sock.sendall(_post_head(4))
        _send_body(sock, 4)
        [(status, _)] = _read_responses(sock, 1)
        assert status == 200


# -- 1. request bodies are read no faster than they can be forwarded -----------------------


def test_a_body_pipelined_behind_a_slow_request_is_not_buffered(sidecar_factory: SidecarFactory, sink: AppServer) -> None:
    sidecar = sidecar_factory(sink.url, config={"capture": {"enabled": False}})
    _warm_up(sidecar)
    with PeakRss(sidecar.proc.pid) as rss, _connect(sidecar) as sock:
        sock.sendall(b"GET /slow?delay=2 HTTP/1.1\r\nHost: model\r\n\r\n" + _post_head(BODY_MB))
        _send_body(sock, BODY_MB)
        (slow, _), (status, body) = _read_responses(sock, 2)
    assert (slow, status) == (200, 200)
    assert json.loads(body) == {"size": BODY_MB * MB, "sha256": _body_digest(BODY_MB)}
    assert rss.growth < 20 * MB, f"RSS grew by {rss.growth / MB:.1f} MB"


def test_a_body_waiting_for_a_pooled_connection_is_not_buffered(sidecar_factory: SidecarFactory, sink: AppServer) -> None:
    config = {"capture": {"enabled": False}, "upstream": {"max_connections": 1, "connect_timeout": "20s"}}
    sidecar = sidecar_factory(sink.url, config=config)
    _warm_up(sidecar)
    with PeakRss(sidecar.proc.pid) as rss, _connect(sidecar) as busy, _connect(sidecar) as sock:
        busy.sendall(b"GET /slow?delay=2 HTTP/1.1\r\nHost: model\r\n\r\n")
        time.sleep(0.2)  # the one pooled connection is taken
        sock.sendall(_post_head(BODY_MB))
        _send_body(sock, BODY_MB)
        [(status, body)] = _read_responses(sock, 1)
        [(slow, _)] = _read_responses(busy, 1)
    assert (slow, status) == (200, 200)
    assert json.loads(body) == {"size": BODY_MB * MB, "sha256": _body_digest(BODY_MB)}
    assert rss.growth < 20 * MB, f"RSS grew by {rss.growth / MB:.1f} MB"


# -- 2. clients that hold connections are closed, counted, and limited ----------------------

CLOSED = "model_exporter_client_connections_closed_total"
OPEN = "model_exporter_client_connections"
FAST_CLIENT = {"header_timeout": "1s", "body_timeout": "1s", "keepalive_timeout": "1s"}


def _closed_by_peer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the proxy sends until it closes the connection (asserts it does within `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_slowloris_heads_are_closed_after_header_timeout(sidecar_factory: SidecarFactory, sink: AppServer) -> None:
    sidecar = sidecar_factory(sink.url, config={"client": FAST_CLIENT})
    socks = [_connect(sidecar) for _ in range(300)]
    try:
        for sock in socks:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: model\r\nX-Slow: ")
        replies = [_closed_by_peer(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert all(reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n") for reply in replies)
    sidecar.wait_sample(CLOSED, lambda v: v == 300, reason="header_timeout")
    assert sidecar.sample(OPEN) == 0
    assert sidecar.sample("model_requests_total") == 0  # nothing was forwarded


def test_idle_keep_alive_connections_are_closed_after_keepalive_timeout(sidecar_factory: SidecarFactory,
                                                                         sink: AppServer) -> None:
    sidecar = sidecar_factory(sink.url, config={"client": FAST_CLIENT})
    socks = [_connect(sidecar) for _ in range(300)]
    try:
        for sock in socks:
            sock.sendall(b"GET /slow?delay=0 HTTP/1.1\r\nHost: model\r\n\r\n")
        for sock in socks:
            [(status, _)] = _read_responses(sock, 1)
            assert status == 200
        assert all(_closed_by_peer(sock) == b"" for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    sidecar.wait_sample(CLOSED, lambda v: v == 300, reason="keepalive_timeout")
    assert sidecar.sample(OPEN) == 0


def test_a_stalled_request_body_gets_408_after_body_timeout(sidecar_factory: SidecarFactory, sink: AppServer) -> None:
    sidecar = sidecar_factory(sink.url, config={"client": FAST_CLIENT})
    with _connect(sidecar) as sock:
        sock.sendall(b"POST /sink HTTP/1.1\r\nHost: model\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
        reply = _closed_by_peer(sock)
    assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    sidecar.wait_sample(CLOSED, lambda v: v == 1, reason="body_timeout")
    assert sidecar.sample("model_requests_total", code="408") == 1
    assert sidecar.sample("model_upstream_errors_total") == 0


def test_connections_beyond_the_limit_get_503_and_are_counted(sidecar_factory: SidecarFactory, sink: AppServer) -> None:
    sidecar = sidecar_factory(sink.url, config={"client": {"max_connections": 20}})
    held = [_connect(sidecar) for _ in range(20)]
    try:
        sidecar.wait_sample(OPEN, lambda v: v == 20)
        with _connect(sidecar) as extra:
            assert _closed_by_peer(extra).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        sidecar.wait_sample(CLOSED, lambda v: v == 1, reason="limit")
        assert sidecar.sample(OPEN) == 20
    finally:
        for sock in held:
            sock.close()
    sidecar.wait_sample(CLOSED, lambda v: v == 20, reason="client_closed")
    with _connect(sidecar) as sock:  # room again
        sock.sendall(b"GET /slow?delay=0 HTTP/1.1\r\nHost: model\r\n\r\n")
        [(status, _)] = _read_responses(sock, 1)
    assert status == 200


# -- 3. a client that does not read is the client's fault, not the model server's -------------

BIG_MB = 32


def _slow_reader(sidecar: Sidecar) -> socket.socket:
    """A connection with a tiny receive buffer that asks for a large response and reads none of it yet."""
    parts = urlsplit(sidecar.proxy_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(b"GET /big?mb=%d HTTP/1.1\r\nHost: model\r\n\r\n" % BIG_MB)
    return sock


def test_a_client_that_pauses_reading_longer_than_the_read_timeout_gets_its_whole_response(
        sidecar_factory: SidecarFactory, sink: AppServer) -> None:
    sidecar = sidecar_factory(sink.url, config={"upstream": {"read_timeout": "1s"}, "client": {"send_timeout": "20s"}})
    with _slow_reader(sidecar) as sock:
        time.sleep(3)  # the proxy's buffers fill, it stops reading the model server, which goes quiet
        [(status, body)] = _read_responses(sock, 1)
    assert status == 200
    assert len(body) == BIG_MB * MB and body == BLOCK * BIG_MB
    assert sidecar.sample("model_upstream_errors_total") == 0
    sidecar.wait_sample("model_requests_total", lambda v: v == 1, code="200")


def test_a_client_that_reads_nothing_for_send_timeout_is_disconnected_and_counted_as_its_own_499(
        sidecar_factory: SidecarFactory, sink: AppServer) -> None:
    sidecar = sidecar_factory(sink.url, config={"upstream": {"read_timeout": "1s"}, "client": {"send_timeout": "2s"}})
    with _slow_reader(sidecar) as sock:
        sidecar.wait_sample(CLOSED, lambda v: v == 1, timeout=10, reason="send_timeout")
        received = 0
        while chunk := sock.recv(1 << 20):  # what had reached the kernel, then the end: the rest was dropped
            received += len(chunk)
    assert received < BIG_MB * MB
    sidecar.wait_sample("model_requests_total", lambda v: v == 1, code="499")
    assert sidecar.sample("model_upstream_errors_total") == 0
    assert sidecar.sample(OPEN) == 0


# -- 4. a model server cannot create label values -----------------------------------------


def test_status_codes_outside_the_registry_are_counted_as_other(sidecar: Sidecar) -> None:
    for code in (299, 470, 599):
        with _connect(sidecar) as sock:
            sock.sendall(b"GET /status/%d HTTP/1.1\r\nHost: model\r\n\r\n" % code)
            [(status, _)] = _read_responses(sock, 1)
            assert status == code  # passed on unchanged: only the label is bounded
    sidecar.wait_sample("model_requests_total", lambda v: v >= 3, code="other")
    codes = {s.labels["code"] for s in sidecar.metrics() if s.name == "model_requests_total"}
    assert not codes & {"299", "470", "599"}
    assert sidecar.sample("model_exporter_series_overflow_total") == 0
