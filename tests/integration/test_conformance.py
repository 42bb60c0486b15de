"""HTTP/1.1 as RFC 9110/9112 say a proxy speaks it: Host, Connection, trailers, request targets,
HTTP/1.0 keep-alive, and a valid request followed by garbage.

The upstream is a raw socket server that records the bytes of every request it receives, so
the tests see exactly what the proxy forwarded (aiohttp would normalise it).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools
import pytest
from harness import Sidecar, start_sidecar

pytestmark = pytest.mark.integration

TRAILER_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
    b"5\r\nhello\r\n0\r\nX-Checksum: 5d41402a\r\n\r\n"
)
NOMINATING_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Internal\r\nX-Internal: secret\r\nX-Public: yes\r\n\r\nok"
)


@dataclass
class Received:
    raw: bytearray = field(default_factory=bytearray)
    url: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    done: bool = False


class _Request:
    """httptools callbacks for one upstream connection's requests."""

    def __init__(self, server: RawUpstream) -> None:
        self.server = server
        self.current = Received()

    def on_url(self, url: bytes) -> None:
        self.current.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers.append((name.lower(), value))

    def on_message_complete(self) -> None:
        self.current.done = True


class RawUpstream:
    """A model server on raw sockets: records what arrives, answers by path."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def requests_to(self, path: bytes) -> list[Received]:
        return [r for r in list(self.received) if r.url.startswith(path)]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        callbacks = _Request(self)
        parser = httptools.HttpRequestParser(callbacks)
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                callbacks.current.raw += data
                parser.feed_data(data)
                if callbacks.current.done:
                    req = callbacks.current
                    self.received.append(req)
                    callbacks.current = Received()
                    conn.sendall(self._answer(req))

    @staticmethod
    def _answer(req: Received) -> bytes:
        if req.url.startswith(b"/trailers"):
            return TRAILER_RESPONSE
        if req.url.startswith(b"/nominating"):
            return NOMINATING_RESPONSE
        return b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    server = RawUpstream()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, upstream: RawUpstream) -> Iterator[Sidecar]:
    config = {"capture": {"enabled": False}, "upstream": {"health": {"path": "/health", "interval": "1s"}}}
    process = start_sidecar(tmp_path_factory.mktemp("sidecar-conformance"), upstream.url, config)
    yield process
    process.stop()


def _exchange(sidecar: Sidecar, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data` on a fresh connection; everything the proxy sends until it closes (or goes quiet)."""
    parts = urlsplit(sidecar.proxy_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except TimeoutError:
            pass
    return out


def _marked(upstream: RawUpstream, mark: bytes) -> list[Received]:
    return [r for r in list(upstream.received) if mark in r.url]


# -- Host ----------------------------------------------------------------------------------


def test_two_host_headers_are_refused_with_400_and_not_forwarded(proxy: Sidecar, upstream: RawUpstream) -> None:
    reply = _exchange(proxy, b"GET /echo?two-hosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:200]
    assert _marked(upstream, b"two-hosts") == []


def test_an_http11_request_without_host_is_refused_with_400(proxy: Sidecar, upstream: RawUpstream) -> None:
    reply = _exchange(proxy, b"GET /echo?no-host HTTP/1.1\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:200]
    assert _marked(upstream, b"no-host") == []


def test_an_http10_request_without_host_is_forwarded_with_one(proxy: Sidecar, upstream: RawUpstream) -> None:
    reply = _exchange(proxy, b"GET /echo?http10-no-host HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:200]
    [received] = _marked(upstream, b"http10-no-host")
    assert [v for k, v in received.headers if k == b"host"] == [upstream.url.removeprefix("http://").encode()]


# -- Connection ----------------------------------------------------------------------------


def test_fields_named_in_connection_are_not_forwarded_either_way(proxy: Sidecar, upstream: RawUpstream) -> None:
    reply = _exchange(proxy, b"GET /nominating?mark HTTP/1.1\r\nHost: m\r\nConnection: keep-alive, X-Hop\r\n"
                             b"X-Hop: 1\r\nX-End: 2\r\nConnection: close\r\n\r\n")
    head = reply.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 200 ok\r\n")
    assert b"x-internal" not in head and b"x-public: yes" in head
    [received] = _marked(upstream, b"nominating?mark")
    names = [k for k, _ in received.headers]
    assert b"x-hop" not in names and b"connection" not in names and b"x-end" in names


# -- trailers ------------------------------------------------------------------------------


def test_request_trailers_are_forwarded_on_the_last_chunk(proxy: Sidecar, upstream: RawUpstream) -> None:
    reply = _exchange(proxy, b"POST /echo?req-trailers HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n"
                             b"Trailer: X-Sum\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 900150983cd2\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:200]
    [received] = _marked(upstream, b"req-trailers")
    assert bytes(received.raw).endswith(b"3\r\nabc\r\n0\r\nX-Sum: 900150983cd2\r\n\r\n")
    assert (b"x-sum", b"900150983cd2") in received.headers


def test_response_trailers_reach_an_http11_client(proxy: Sidecar) -> None:
    reply = _exchange(proxy, b"GET /trailers HTTP/1.1\r\nHost: m\r\nTE: trailers\r\nConnection: close\r\n\r\n")
    head, body = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nTrailer: X-Checksum" in head
    assert body == b"5\r\nhello\r\n0\r\nX-Checksum: 5d41402a\r\n\r\n"


# -- request targets -----------------------------------------------------------------------


def test_an_absolute_form_target_is_forwarded_in_origin_form(proxy: Sidecar, upstream: RawUpstream) -> None:
    before = proxy.sample("model_requests_total", route="/v2/models/{model}/infer")
    reply = _exchange(proxy, b"POST http://model.example:8080/v2/models/abs/infer?x=1 HTTP/1.1\r\nHost: other\r\n"
                             b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:200]
    [received] = _marked(upstream, b"/v2/models/abs/infer")
    assert received.url == b"/v2/models/abs/infer?x=1"
    assert [v for k, v in received.headers if k == b"host"] == [b"model.example:8080"]
    proxy.wait_sample("model_requests_total", lambda v: v == before + 1, route="/v2/models/{model}/infer")


# -- HTTP/1.0 keep-alive -------------------------------------------------------------------


def test_a_kept_alive_http10_connection_is_told_so_and_stays_open(proxy: Sidecar) -> None:
    request = b"GET /echo?keep10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    parts = urlsplit(proxy.proxy_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        for _ in range(2):
            sock.sendall(request)
            reply = b""
            while not reply.endswith(b"ok\n"):
                chunk = sock.recv(65536)
                assert chunk, f"closed after {reply!r}"
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nConnection: keep-alive\r\n" in reply


# -- garbage after a valid request ---------------------------------------------------------


def test_a_valid_request_followed_by_garbage_is_answered_before_the_400(proxy: Sidecar, upstream: RawUpstream) -> None:
    reply = _exchange(proxy, b"GET /echo?before-garbage HTTP/1.1\r\nHost: m\r\n\r\n"
                             b"GET /echo?second HTTP/1.1\r\nHost: m\r\n\r\n"
                             b"\x00\x01 not http at all\r\n\r\n")
    first, rest = reply.split(b"ok\n", 1)
    second, rest = rest.split(b"ok\n", 1)
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and second.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:300]
    assert rest.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"Connection: close" in rest
    assert len(_marked(upstream, b"before-garbage")) == 1 and len(_marked(upstream, b"second")) >= 1


def test_a_request_with_a_body_then_garbage_is_answered_then_refused(proxy: Sidecar, upstream: RawUpstream) -> None:
    start = time.monotonic()
    reply = _exchange(proxy, b"POST /echo?garbage-after-body HTTP/1.1\r\nHost: m\r\nContent-Length: 3\r\n\r\nabc"
                             b"BREW /coffee HTCPCP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:200]
    assert b"HTTP/1.1 400 Bad Request\r\n" in reply
    assert time.monotonic() - start < 4  # closed after the 400, not left to time out


# -- what the proxy refuses: versions, methods, framing ------------------------------------


def test_an_empty_query_of_an_absolute_form_target_is_kept(proxy: Sidecar, upstream: RawUpstream) -> None:
    reply = _exchange(proxy, b"GET http://model.example/empty-query? HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:200]
    [received] = _marked(upstream, b"/empty-query")
    assert received.url == b"/empty-query?"
    reply = _exchange(proxy, b"GET http://model.example?only-query HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:200]
    [received] = _marked(upstream, b"only-query")
    assert received.url == b"/?only-query"


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/1.2", b"HTTP/3.0"])
def test_other_http_versions_are_refused_with_505(proxy: Sidecar, upstream: RawUpstream, version: bytes) -> None:
    mark = b"version-" + version.replace(b"/", b"").replace(b".", b"")
    reply = _exchange(proxy, b"GET /echo?%b %b\r\nHost: m\r\n\r\n" % (mark, version))
    assert reply.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n"), reply[:200]
    assert _marked(upstream, mark) == []


def test_an_unknown_method_is_501_and_garbage_stays_400(proxy: Sidecar, upstream: RawUpstream) -> None:
    reply = _exchange(proxy, b"BREW /echo?brew HTTP/1.1\r\nHost: m\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 501 Not Implemented\r\n"), reply[:200]
    assert _marked(upstream, b"brew") == []
    # after a valid request on the same connection: that one is answered, then 501
    reply = _exchange(proxy, b"GET /echo?before-brew HTTP/1.1\r\nHost: m\r\n\r\nBREW /echo?brew2 HTTP/1.1\r\nHost: m\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and b"HTTP/1.1 501 Not Implemented\r\n" in reply, reply[:300]
    reply = _exchange(proxy, b"\x00\x01\x02 /echo HTTP/1.1\r\nHost: m\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:200]


def test_transfer_encoding_from_an_http10_client_is_refused_and_closed(proxy: Sidecar, upstream: RawUpstream) -> None:
    # RFC 9112 §6.1: faulty framing (the classic request-smuggling shape), even with a Content-Length
    reply = _exchange(proxy, b"POST /echo?te10 HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
                             b"Content-Length: 5\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:200]
    assert b"Connection: close" in reply
    assert _marked(upstream, b"te10") == []
