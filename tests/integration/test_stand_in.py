"""The stand-in model server and the harness, checked directly (no sidecar in between)."""

from __future__ import annotations

import gzip
import http.client
import socket
import threading

import pytest
from harness import fetch, sum_samples, wait_until
from prometheus_client.samples import Sample
from stand_in import (
    CHUNKS,
    GZIP_BODY,
    GZIP_PLAIN,
    MALFORMED,
    SSE_FIRST,
    SSE_LAST,
    StandIn,
    binary_body,
    sha256,
    status_body,
)

pytestmark = pytest.mark.integration


def test_echo_returns_body_and_request_line(stand_in: StandIn) -> None:
    body = b'{"inputs": [1, 2, 3]}'
    resp = fetch(stand_in.url + "/v2/models/m/infer?a=1&b=%20x", "POST", body,
                 [("Content-Type", "application/json"), ("X-Test-Id", "stand-in-echo")])
    assert resp.status == 200
    assert resp.body == body
    assert resp.header("Content-Type") == "application/json"
    assert resp.header("X-Echo-Method") == "POST"
    assert resp.header("X-Echo-Path") == "/v2/models/m/infer?a=1&b=%20x"
    assert resp.header("X-Echo-Test-Id") == "stand-in-echo"
    assert resp.header_values("Set-Cookie") == ["session=one; Path=/; HttpOnly", "theme=dark; Path=/"]
    [recorded] = stand_in.requests_with("X-Test-Id", "stand-in-echo")
    assert (recorded.method, recorded.body_sha256) == ("POST", sha256(body))


def test_status_binary_gzip_chunked(stand_in: StandIn) -> None:
    resp = fetch(stand_in.url + "/status/503")
    assert (resp.status, resp.body) == (503, status_body(503))
    resp = fetch(stand_in.url + "/binary?size=100000")
    assert resp.body == binary_body(100000) and resp.header("Content-Length") == "100000"
    assert len(set(binary_body(100000))) == 256  # random bytes, not a compressible pattern
    resp = fetch(stand_in.url + "/gzip")
    assert resp.body == GZIP_BODY and gzip.decompress(resp.body) == GZIP_PLAIN
    assert resp.header("Content-Encoding") == "gzip"
    resp = fetch(stand_in.url + "/chunked")
    assert resp.header("Transfer-Encoding") == "chunked"
    assert resp.body == b"".join(CHUNKS)


def test_sse_holds_last_event_until_released(stand_in: StandIn) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", stand_in.port, timeout=5)
    try:
        conn.request("GET", "/sse?gate=stand-in-direct")
        resp = conn.getresponse()
        assert resp.getheader("Content-Type") == "text/event-stream"
        first = resp.read1(len(SSE_FIRST))
        assert first == SSE_FIRST
        assert stand_in.sse_log["stand-in-direct"] == ["first"]
        stand_in.release("stand-in-direct")
        assert resp.read() == SSE_LAST
        assert stand_in.sse_log["stand-in-direct"] == ["first", "last"]
    finally:
        conn.close()


def test_reset_and_malformed_break_the_exchange(stand_in: StandIn) -> None:
    with pytest.raises(ConnectionResetError):
        fetch(stand_in.url + "/reset")
    with socket.create_connection(("127.0.0.1", stand_in.port), timeout=5) as sock:
        sock.sendall(b"GET /malformed HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received == MALFORMED


def test_slow_and_health(stand_in: StandIn) -> None:
    assert fetch(stand_in.url + "/slow?delay=0.05").body == b"slow done\n"
    assert fetch(stand_in.url + "/v2/health/ready").status == 200


def test_concurrent_requests(stand_in: StandIn) -> None:
    results: dict[int, bytes] = {}

    def one(i: int) -> None:
        results[i] = fetch(stand_in.url + "/echo", "POST", f"body {i}".encode()).body

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: f"body {i}".encode() for i in range(20)}


def test_sum_samples_matches_label_subset() -> None:
    samples = [
        Sample("model_requests_total", {"route": "other", "code": "200", "model": "a"}, 2.0),
        Sample("model_requests_total", {"route": "other", "code": "502", "model": "a"}, 3.0),
        Sample("model_requests_total", {"route": "/invocations", "code": "200", "model": "a"}, 5.0),
        Sample("model_requests_created", {"route": "other", "code": "200", "model": "a"}, 1e9),
    ]
    assert sum_samples(samples, "model_requests_total") == 10.0
    assert sum_samples(samples, "model_requests_total", route="other") == 5.0
    assert sum_samples(samples, "model_requests_total", route="other", code="502") == 3.0
    assert sum_samples(samples, "model_requests_total", code="499") == 0.0


def test_wait_until_returns_last_value() -> None:
    calls = iter(range(100))
    assert wait_until(lambda: next(calls) >= 3, timeout=5, interval=0) is True
    assert wait_until(lambda: 0, timeout=0.05) == 0
