"""The sidecar proxy end to end: real client → `python -m exporter run` → stand-in model server.

Tests on the shared `sidecar` assert on metric deltas (other tests add to the same counters);
metrics may be recorded just after the response ends, so metric checks poll with a deadline.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import re
import secrets
import socket
import time
import uuid
from collections.abc import Iterator

import aiohttp
import pytest
from harness import (
    REPO_ROOT,
    SHARED_MODEL,
    Response,
    Sidecar,
    SidecarFactory,
    fetch,
    free_port,
    send,
    start_sidecar,
    wait_until,
)
from stand_in import (
    CHUNKS,
    ECHO_RESPONSE_HEADERS,
    GZIP_BODY,
    GZIP_PLAIN,
    SSE_FIRST,
    SSE_LAST,
    StandIn,
    binary_body,
    sha256,
    status_body,
)

pytestmark = pytest.mark.integration

TEN_MB = 10 * 1024 * 1024
REQUESTS = "model_requests_total"
ERRORS = "model_upstream_errors_total"
IN_FLIGHT = "model_requests_in_flight"
DURATION_COUNT = "model_request_duration_seconds_count"


def target(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def assert_short_text_error(resp: Response, expected: int) -> None:
    assert resp.status == expected, resp.body[:300]
    assert (resp.header("Content-Type") or "").startswith("text/plain"), resp.headers
    assert 0 < len(resp.body) < 1024, resp.body[:300]


@pytest.fixture(scope="module")
def sidecar_down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    """A sidecar whose upstream is a loopback port nothing listens on."""
    config = {"upstream": {"connect_timeout": "1s", "health": {"interval": "0.2s", "timeout": "0.5s"}}}
    process = start_sidecar(tmp_path_factory.mktemp("sidecar-down"), f"http://127.0.0.1:{free_port()}", config)
    yield process
    process.stop()


# -- byte-exact round trips -------------------------------------------------------------


def test_json_post_round_trip(sidecar: Sidecar, stand_in: StandIn) -> None:
    body = json.dumps({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1.5, 2, 3, 4]}]},
                      separators=(",", ":")).encode()
    test_id = uuid.uuid4().hex
    resp = fetch(sidecar.proxy_url + "/v2/models/m/infer", "POST", body,
                 [("Content-Type", "application/json"), ("X-Test-Id", test_id)])
    assert resp.status == 200
    assert resp.body == body
    assert resp.header("Content-Type") == "application/json"
    [received] = stand_in.requests_with("X-Test-Id", test_id)
    assert (received.method, received.raw_path, received.body_sha256) == ("POST", "/v2/models/m/infer", sha256(body))


def test_binary_download_10mb(sidecar: Sidecar) -> None:
    resp = fetch(sidecar.proxy_url + f"/binary?size={TEN_MB}", timeout=30)
    assert resp.status == 200
    assert resp.header("Content-Length") == str(TEN_MB)
    assert len(resp.body) == TEN_MB
    assert sha256(resp.body) == sha256(binary_body(TEN_MB))


def test_binary_upload_10mb_echoed(sidecar: Sidecar, stand_in: StandIn) -> None:
    body = binary_body(TEN_MB + 7)
    test_id = uuid.uuid4().hex
    resp = fetch(sidecar.proxy_url + "/echo", "POST", body,
                 [("Content-Type", "application/octet-stream"), ("X-Test-Id", test_id)], timeout=30)
    assert resp.status == 200
    assert len(resp.body) == len(body) and sha256(resp.body) == sha256(body)
    [received] = stand_in.requests_with("X-Test-Id", test_id)
    assert (received.body_len, received.body_sha256) == (len(body), sha256(body))


def test_gzip_body_passes_compressed(sidecar: Sidecar) -> None:
    resp = fetch(sidecar.proxy_url + "/gzip", headers=[("Accept-Encoding", "gzip")])
    assert resp.status == 200
    assert resp.header("Content-Encoding") == "gzip"
    assert resp.body == GZIP_BODY  # the compressed bytes, not re-encoded
    assert gzip.decompress(resp.body) == GZIP_PLAIN


def test_chunked_response_body_identical(sidecar: Sidecar) -> None:
    resp = fetch(sidecar.proxy_url + "/chunked")
    assert resp.status == 200
    assert resp.body == b"".join(CHUNKS)


def test_sse_first_event_arrives_before_upstream_sends_last(sidecar: Sidecar, stand_in: StandIn) -> None:
    gate = uuid.uuid4().hex
    conn = http.client.HTTPConnection(*target(sidecar.proxy_url), timeout=5)
    try:
        conn.request("GET", f"/sse?gate={gate}", headers={"Accept": "text/event-stream"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "text/event-stream"
        received = b""
        try:
            while len(received) < len(SSE_FIRST):
                chunk = resp.read1(len(SSE_FIRST) - len(received))
                assert chunk, f"stream ended after {received!r}"
                received += chunk
        except TimeoutError:
            pytest.fail(f"first event not delivered while the upstream holds the last one (got {received!r}): "
                        "the proxy buffers streamed responses")
        assert received == SSE_FIRST
        assert stand_in.sse_log[gate] == ["first"]  # the upstream has not sent the last event
        stand_in.release(gate)
        assert resp.read() == SSE_LAST
        assert stand_in.sse_log[gate] == ["first", "last"]
    finally:
        stand_in.release(gate)
        conn.close()


@pytest.mark.parametrize("code", [200, 400, 404, 500, 503])
def test_status_codes_pass_through_with_body(sidecar: Sidecar, code: int) -> None:
    resp = fetch(sidecar.proxy_url + f"/status/{code}", "POST", b'{"x": 1}', [("Content-Type", "application/json")])
    assert resp.status == code
    assert resp.body == status_body(code)
    assert (resp.header("Content-Type") or "").startswith("text/plain")


def test_end_to_end_headers_both_ways(sidecar: Sidecar, stand_in: StandIn) -> None:
    test_id = uuid.uuid4().hex
    resp = fetch(sidecar.proxy_url + "/echo", "POST", b"{}", [
        ("Content-Type", "application/json"),
        ("X-Test-Id", test_id),
        ("X-Custom", "abc"),
        ("X-Multi", "one"),
        ("X-Multi", "two"),
        ("Authorization", "Bearer t0k3n"),
        ("User-Agent", "integration-test/1.0"),
    ])
    assert resp.status == 200
    [received] = stand_in.requests_with("X-Test-Id", test_id)
    assert received.header_values("X-Custom") == ["abc"]
    assert received.header_values("X-Multi") == ["one", "two"]
    assert received.header_values("Authorization") == ["Bearer t0k3n"]
    assert received.header_values("User-Agent") == ["integration-test/1.0"]
    for name in ("X-Custom", "Set-Cookie"):
        assert resp.header_values(name) == [v for k, v in ECHO_RESPONSE_HEADERS if k == name]
    assert resp.header_values("X-Echo-Multi") == ["one", "two"]


def test_query_string_preserved(sidecar: Sidecar, stand_in: StandIn) -> None:
    path = "/echo/q?a=1&b=%20x%2Fy&a=2&empty=&flag&unicode=%C3%A9"
    resp = fetch(sidecar.proxy_url + path)
    assert resp.status == 200
    assert resp.header("X-Echo-Path") == path


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_forwarded(sidecar: Sidecar, method: str) -> None:
    body = None if method in ("GET", "OPTIONS") else f"{method} body".encode()
    resp = fetch(sidecar.proxy_url + "/echo/method", method, body)
    assert resp.status == 200
    assert resp.header("X-Echo-Method") == method
    assert resp.body == (body or b"")


def test_head_request_then_next_request_on_same_connection(sidecar: Sidecar) -> None:
    conn = http.client.HTTPConnection(*target(sidecar.proxy_url), timeout=10)
    try:
        head = send(conn, "HEAD", "/binary?size=1000")
        assert head.status == 200
        assert head.header("Content-Length") == "1000"
        assert head.body == b""
        after = send(conn, "POST", "/echo", b"after head")
        assert (after.status, after.body) == (200, b"after head")
    finally:
        conn.close()


# -- upstream failures ------------------------------------------------------------------


def test_upstream_refused_is_502(sidecar_down: Sidecar) -> None:
    before_refused = sidecar_down.sample(ERRORS, reason="refused")
    resp = fetch(sidecar_down.proxy_url + "/v2/models/m/infer", "POST", b"{}")
    assert_short_text_error(resp, 502)
    sidecar_down.wait_sample(ERRORS, lambda v: v >= before_refused + 1, reason="refused")
    sidecar_down.wait_sample(REQUESTS, lambda v: v >= 1, code="502", route="/v2/models/{model}/infer", method="POST")


def test_ready_is_503_and_upstream_down_when_upstream_closed(sidecar_down: Sidecar) -> None:
    assert fetch(sidecar_down.metrics_url + "/-/healthy").status == 200
    status = wait_until(lambda: fetch(sidecar_down.metrics_url + "/-/ready").status == 503, timeout=5)
    assert status, "/-/ready did not answer 503 with the upstream down"
    assert [s.value for s in sidecar_down.metrics() if s.name == "model_upstream_up"] == [0.0]


def test_upstream_reset_is_502(sidecar: Sidecar) -> None:
    before = sidecar.sample(ERRORS, reason="reset")
    resp = fetch(sidecar.proxy_url + "/reset")
    assert_short_text_error(resp, 502)
    sidecar.wait_sample(ERRORS, lambda v: v >= before + 1, reason="reset")


def test_upstream_malformed_is_502(sidecar: Sidecar) -> None:
    before = sidecar.sample(ERRORS, reason="malformed")
    before_502 = sidecar.sample(REQUESTS, code="502")
    resp = fetch(sidecar.proxy_url + "/malformed")
    assert_short_text_error(resp, 502)
    sidecar.wait_sample(ERRORS, lambda v: v >= before + 1, reason="malformed")
    sidecar.wait_sample(REQUESTS, lambda v: v >= before_502 + 1, code="502")


def test_upstream_read_timeout_is_504(sidecar_factory: SidecarFactory) -> None:
    sidecar = sidecar_factory(config={"upstream": {"read_timeout": "0.5s", "connect_timeout": "1s"}})
    resp = fetch(sidecar.proxy_url + "/slow?delay=3", timeout=10)
    assert_short_text_error(resp, 504)
    sidecar.wait_sample(ERRORS, lambda v: v >= 1, reason="timeout")
    sidecar.wait_sample(REQUESTS, lambda v: v >= 1, code="504", route="other", method="GET")
    sidecar.wait_sample(DURATION_COUNT, lambda v: v >= 1, code="504", route="other", method="GET")


def test_client_disconnect_counted_as_499(sidecar: Sidecar) -> None:
    before = sidecar.sample(REQUESTS, code="499")
    with socket.create_connection(target(sidecar.proxy_url), timeout=5) as sock:
        sock.sendall(b"GET /slow?delay=2 HTTP/1.1\r\nHost: model\r\n\r\n")
        time.sleep(0.2)  # let the request reach the upstream before going away
    sidecar.wait_sample(REQUESTS, lambda v: v >= before + 1, timeout=8, code="499")
    sidecar.wait_sample(IN_FLIGHT, lambda v: v == 0, timeout=8)


# -- metrics ----------------------------------------------------------------------------


ROUTE_CASES = [
    ("POST", "/v2/models/m/infer", "/v2/models/{model}/infer"),
    ("POST", "/v2/models/m/versions/2/infer", "/v2/models/{model}/versions/{version}/infer"),
    ("POST", "/v1/models/m:predict", "/v1/models/{model}:predict"),
    ("POST", "/invocations", "/invocations"),
    ("POST", "/v1/chat/completions", "/v1/chat/completions"),
    ("POST", "/v1/completions", "/v1/completions"),
    ("GET", "/v2/health/ready", "/v2/health/ready"),
    ("GET", "/some/random/path?x=1", "other"),
]


@pytest.mark.parametrize(("method", "path", "route"), ROUTE_CASES, ids=[c[1] for c in ROUTE_CASES])
def test_requests_counted_by_normalised_route(sidecar: Sidecar, method: str, path: str, route: str) -> None:
    before = sidecar.sample(REQUESTS, route=route, method=method, code="200")
    before_duration = sidecar.sample(DURATION_COUNT, route=route, method=method, code="200")
    body = b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}' if method == "POST" else None
    resp = fetch(sidecar.proxy_url + path, method, body, [("Content-Type", "application/json")])
    assert resp.status == 200
    sidecar.wait_sample(REQUESTS, lambda v: v == before + 1, route=route, method=method, code="200")
    sidecar.wait_sample(DURATION_COUNT, lambda v: v == before_duration + 1, route=route, method=method, code="200")


def test_unknown_paths_never_become_label_values(sidecar: Sidecar) -> None:
    marker = uuid.uuid4().hex
    assert fetch(sidecar.proxy_url + f"/{marker}/x/{marker}?{marker}=1").status == 200
    sidecar.wait_sample(REQUESTS, lambda v: v >= 1, route="other")
    assert marker not in sidecar.metrics_text()


def test_size_and_first_byte_histograms(sidecar: Sidecar) -> None:
    route = "/invocations"
    body = b"x" * 12345
    before = {name: sidecar.sample(name, route=route) for name in (
        "model_request_size_bytes_sum", "model_request_size_bytes_count",
        "model_response_size_bytes_sum", "model_time_to_first_byte_seconds_count")}
    resp = fetch(sidecar.proxy_url + route, "POST", body, [("Content-Type", "text/csv")])
    assert resp.body == body
    sidecar.wait_sample("model_request_size_bytes_count", lambda v: v == before["model_request_size_bytes_count"] + 1,
                        route=route)
    sidecar.wait_sample("model_request_size_bytes_sum", lambda v: v == before["model_request_size_bytes_sum"] + 12345,
                        route=route)
    sidecar.wait_sample("model_response_size_bytes_sum", lambda v: v == before["model_response_size_bytes_sum"] + 12345,
                        route=route)
    sidecar.wait_sample("model_time_to_first_byte_seconds_count",
                        lambda v: v == before["model_time_to_first_byte_seconds_count"] + 1, route=route)


def test_in_flight_gauge_tracks_open_requests(sidecar: Sidecar, stand_in: StandIn) -> None:
    gate = uuid.uuid4().hex
    conn = http.client.HTTPConnection(*target(sidecar.proxy_url), timeout=5)
    try:
        conn.request("GET", f"/sse?gate={gate}")
        resp = conn.getresponse()
        assert resp.status == 200
        sidecar.wait_sample(IN_FLIGHT, lambda v: v == 1)
        stand_in.release(gate)
        assert resp.read().endswith(SSE_LAST)
    finally:
        stand_in.release(gate)
        conn.close()
    sidecar.wait_sample(IN_FLIGHT, lambda v: v == 0)


def test_ready_and_upstream_up_with_upstream_running(sidecar: Sidecar) -> None:
    assert fetch(sidecar.metrics_url + "/-/healthy").status == 200
    assert wait_until(lambda: fetch(sidecar.metrics_url + "/-/ready").status == 200, timeout=5), \
        "/-/ready did not answer 200 with the stand-in up"
    sidecar.wait_sample("model_upstream_up", lambda v: v == 1)
    assert [s.value for s in sidecar.metrics() if s.name == "model_upstream_up"] == [1.0]
    load = [s.value for s in sidecar.metrics() if s.name == "model_load_duration_seconds"]
    assert len(load) == 1 and load[0] >= 0


def test_model_labels_come_from_the_cli(sidecar: Sidecar) -> None:
    model, version = SHARED_MODEL
    before = sidecar.sample(REQUESTS, route="other", model=model, version=version)
    assert fetch(sidecar.proxy_url + "/echo/labels").status == 200
    sidecar.wait_sample(REQUESTS, lambda v: v == before + 1, route="other", model=model, version=version)


def test_build_info(sidecar: Sidecar) -> None:
    init = (REPO_ROOT / "exporter" / "__init__.py").read_text()
    match = re.search(r'__version__ = "([^"]+)"', init)
    assert match
    assert sidecar.sample("model_exporter_build_info", version=match.group(1)) == 1.0


def test_metrics_content_negotiation(sidecar: Sidecar) -> None:
    plain = fetch(sidecar.metrics_url + "/metrics")
    assert plain.status == 200
    assert (plain.header("Content-Type") or "").startswith("text/plain")
    assert "# EOF" not in plain.body.decode()
    om = fetch(sidecar.metrics_url + "/metrics",
               headers=[("Accept", "application/openmetrics-text; version=1.0.0; charset=utf-8")])
    assert om.status == 200
    assert (om.header("Content-Type") or "").startswith("application/openmetrics-text")
    assert om.body.endswith(b"# EOF\n")
    assert sidecar.metrics(openmetrics=True)  # parses as OpenMetrics


def test_traceparent_becomes_exemplar(sidecar: Sidecar) -> None:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    resp = fetch(sidecar.proxy_url + "/v1/completions", "PATCH", b"{}",
                 [("Content-Type", "application/json"), ("traceparent", f"00-{trace_id}-{span_id}-01")])
    assert resp.status == 200

    def exemplar_trace_ids() -> list[str]:
        return [s.exemplar.labels.get("trace_id", "") for s in sidecar.metrics(openmetrics=True)
                if s.name == "model_request_duration_seconds_bucket" and s.exemplar is not None
                and s.labels.get("route") == "/v1/completions" and s.labels.get("method") == "PATCH"]

    found = wait_until(lambda: trace_id in exemplar_trace_ids(), timeout=5)
    assert found, f"no exemplar with trace_id={trace_id}; exemplars seen: {exemplar_trace_ids()}"


# -- connections ------------------------------------------------------------------------


def test_keep_alive_50_sequential_requests_on_one_connection(sidecar: Sidecar) -> None:
    conn = http.client.HTTPConnection(*target(sidecar.proxy_url), timeout=10)
    try:
        first = send(conn, "POST", "/echo", b"request 0")
        assert (first.status, first.body) == (200, b"request 0")
        sock = conn.sock
        assert sock is not None, f"the proxy closed the connection after one request: {first.headers}"
        for i in range(1, 50):
            resp = send(conn, "POST", f"/echo?i={i}", f"request {i}".encode())
            assert (resp.status, resp.body) == (200, f"request {i}".encode())
            assert conn.sock is sock, f"connection not kept alive after request {i}: {resp.headers}"
    finally:
        conn.close()


def test_100_concurrent_requests(sidecar: Sidecar) -> None:
    async def one(session: aiohttp.ClientSession, i: int) -> tuple[int, bytes, bytes]:
        body = f"request {i} ".encode() * (i + 1)
        async with session.post(sidecar.proxy_url + f"/v2/models/m/infer?i={i}", data=body) as resp:
            return resp.status, await resp.read(), body

    async def run() -> list[tuple[int, bytes, bytes]]:
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
            return await asyncio.gather(*(one(session, i) for i in range(100)))

    results = asyncio.run(run())
    assert [status for status, _, _ in results] == [200] * 100
    assert all(got == sent for _, got, sent in results)
    sidecar.wait_sample(IN_FLIGHT, lambda v: v == 0)
