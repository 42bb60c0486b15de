"""Payload analysis end to end: real clients → `python -m exporter run` → a protocol-correct upstream.

The upstream (`protocol_app`) answers every protocol the adapters know with a response of that
protocol's shape, computed only from the request (no clock, no randomness), so each proxied
response is compared byte for byte with the upstream's direct answer to the same request.
Counters are checked as exact deltas, polled with a deadline (analysis runs after the response).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from harness import Response, Sidecar, SidecarFactory, fetch, metric_snapshot, snapshot_diff, start_sidecar
from stand_in import AppServer

pytestmark = pytest.mark.integration

ROWS = "model_rows_total"
PREDICTION_ROWS = "model_prediction_rows_total"
TOKENS = "model_llm_tokens_total"
PAYLOAD_ERRORS = "model_payload_errors_total"
DROPPED = "model_exporter_events_dropped_total"
JSON = "application/json"
# Response headers that must reach the client exactly as the upstream sent them.
COMPARED_HEADERS = ("Content-Type", "Content-Encoding", "Inference-Header-Content-Length", "Content-Length")
ANALYSIS_TIMEOUT_S = 10.0


# -- the upstream: one handler per protocol ---------------------------------------------


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(doc, separators=(",", ":")).encode(), content_type=JSON)


def _bad_request(what: str, body: bytes) -> web.Response:
    return _json({"error": f"{what} ({len(body)} bytes)"}, status=400)


def _predictions(n: int) -> list[float]:
    return [round(0.1 * (i + 1), 3) for i in range(n)]


async def _body(request: web.Request) -> bytes:
    """The request body with its Content-Encoding undone (the server runs with auto_decompress off)."""
    body = await request.read()
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        body = gzip.decompress(body)
    return body


async def v2_infer(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        body = await _body(request)
        header = request.headers.get("Inference-Header-Content-Length")
        length = int(header) if header is not None else len(body)
        doc = json.loads(body[:length])
        first = doc["inputs"][0]
        rows = first["shape"][0]
        announced = sum(t.get("parameters", {}).get("binary_data_size", 0) for t in doc["inputs"])
        if announced != len(body) - length:
            return _bad_request("binary tensor data does not match binary_data_size", raw)
    except Exception:
        return _bad_request("cannot parse the infer request", raw)
    model = request.match_info["model"]
    if model == "broken":  # a 200 whose body is not a V2 response: counted on the response side
        return _json({"model_name": model, "outputs": "not a list"})
    values = _predictions(rows)
    head: dict[str, Any] = {"model_name": model, "model_version": request.match_info.get("version", "1"),
                            "id": doc.get("id", "none")}
    if header is None:
        head["outputs"] = [{"name": "y", "shape": [rows], "datatype": "FP32", "data": values}]
        resp = _json(head)
        if model == "gz" and "gzip" in request.headers.get("Accept-Encoding", ""):  # a compressed answer
            resp.body = gzip.compress(resp.body, mtime=0)  # type: ignore[arg-type]
            resp.headers["Content-Encoding"] = "gzip"
        return resp
    # binary request, binary answer: the JSON header, then the raw little-endian FP32 tensor
    head["outputs"] = [{"name": "y", "shape": [rows], "datatype": "FP32", "parameters": {"binary_data_size": 4 * rows}}]
    json_head = json.dumps(head, separators=(",", ":")).encode()
    resp = web.Response(body=json_head + struct.pack(f"<{rows}f", *values), content_type="application/octet-stream")
    resp.headers["Inference-Header-Content-Length"] = str(len(json_head))
    return resp


async def v1_predict(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        rows = len(json.loads(body)["instances"])
    except Exception:
        return _bad_request("cannot parse the predict request", body)
    return _json({"predictions": _predictions(rows)})


async def mlflow_invocations(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        if request.content_type == "text/csv":
            rows = len([line for line in body.decode().splitlines() if line]) - 1
        else:
            rows = len(json.loads(body)["dataframe_split"]["data"])
    except Exception:
        return _bad_request("cannot parse the invocation", body)
    return _json({"predictions": _predictions(rows)})


async def seldon_predictions(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        rows = len(json.loads(body)["data"]["ndarray"])
    except Exception:
        return _bad_request("cannot parse the SeldonMessage", body)
    return _json({"data": {"names": ["proba"], "ndarray": [[p] for p in _predictions(rows)]}, "meta": {}})


CHAT_USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
STREAM_USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
STREAM_PIECES = ("Hello", " world", "!")  # one content chunk each


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "llm",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    try:
        doc = json.loads(body)
        assert isinstance(doc["messages"], list)
    except Exception:
        return _bad_request("cannot parse the chat request", body)
    if not doc.get("stream"):
        content = "x" * doc["max_tokens"] if "max_tokens" in doc else "Hi there, friend"
        return _json({"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "llm",
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                   "finish_reason": "stop"}],
                      "usage": CHAT_USAGE})
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": piece}) for piece in STREAM_PIECES]
    events.append(_chunk({}, "stop"))
    if doc.get("stream_options", {}).get("include_usage"):
        events.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "llm",
                       "choices": [], "usage": STREAM_USAGE})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    for event in events:
        await resp.write(b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ready\n")


def protocol_app() -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v2/models/{model}/infer", v2_infer)
    app.router.add_post("/v2/models/{model}/versions/{version}/infer", v2_infer)
    app.router.add_post("/v1/models/{model:[^/:]+}:predict", v1_predict)
    app.router.add_post("/invocations", mlflow_invocations)
    app.router.add_post("/api/v1.0/predictions", seldon_predictions)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v2/health/ready", ready)
    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[AppServer]:
    server = AppServer(protocol_app(), auto_decompress=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proto_sidecar(tmp_path_factory: pytest.TempPathFactory, upstream: AppServer) -> Iterator[Sidecar]:
    process = start_sidecar(tmp_path_factory.mktemp("sidecar-pipeline"), upstream.url, FAST_PROBE)
    process.wait_analysis()
    yield process
    process.stop()


FAST_PROBE: dict[str, Any] = {"upstream": {"connect_timeout": "1s", "read_timeout": "10s",
                                           "health": {"interval": "0.5s", "timeout": "1s"}}}


# -- requests -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request and what the analysis must make of it."""

    name: str
    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = (("Content-Type", JSON),)
    rows: int = 0             # feature rows
    prediction_rows: int = 0
    tokens: dict[str, int] = field(default_factory=dict)
    errors: tuple[tuple[str, str], ...] = ()  # (side, reason), one count each


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def v2_json(rows: int, model: str = "m") -> bytes:
    return dumps({"id": f"req-{rows}", "inputs": [
        {"name": "x", "shape": [rows, 3], "datatype": "FP32", "data": [float(i) for i in range(3 * rows)]},
        {"name": "tag", "shape": [rows], "datatype": "BYTES", "data": [f"t{i % 2}" for i in range(rows)]},
    ]})


def v2_binary(rows: int, announced_rows: int | None = None) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """A binary-extension request: JSON header, then FP32 and INT64 tensors (`announced_rows` lies about the size)."""
    announced = rows if announced_rows is None else announced_rows
    head = dumps({"inputs": [
        {"name": "x", "shape": [announced, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12 * announced}},
        {"name": "n", "shape": [announced], "datatype": "INT64", "parameters": {"binary_data_size": 8 * announced}},
    ]})
    data = struct.pack(f"<{3 * rows}f", *[0.5 * i for i in range(3 * rows)]) + struct.pack(f"<{rows}q", *range(rows))
    headers = (("Content-Type", "application/octet-stream"), ("Inference-Header-Content-Length", str(len(head))))
    return head + data, headers


def chat(stream: bool = False, usage: bool = False, **extra: Any) -> bytes:
    doc: dict[str, Any] = {"model": "llm", "messages": [{"role": "system", "content": "Be brief."},
                                                        {"role": "user", "content": "Say hello."}], **extra}
    if stream:
        doc["stream"] = True
        if usage:
            doc["stream_options"] = {"include_usage": True}
    return dumps(doc)


def mix() -> list[Call]:
    binary, binary_headers = v2_binary(4)
    csv_rows = "age,income,region\n" + "".join(f"{20 + i},{1000 * i},north\n" for i in range(6))
    return [
        Call("v2 single", "/v2/models/m/infer", v2_json(1), rows=1, prediction_rows=1),
        Call("v2 batch", "/v2/models/m/versions/7/infer", v2_json(5), rows=5, prediction_rows=5),
        Call("v2 gzip", "/v2/models/m/infer", gzip.compress(v2_json(2), mtime=0),
             (("Content-Type", JSON), ("Content-Encoding", "gzip")), rows=2, prediction_rows=2),
        Call("v2 gzip response", "/v2/models/gz/infer", v2_json(3),
             (("Content-Type", JSON), ("Accept-Encoding", "gzip")), rows=3, prediction_rows=3),
        Call("v2 binary", "/v2/models/m/infer", binary, binary_headers, rows=4, prediction_rows=4),
        Call("kserve v1", "/v1/models/m:predict", dumps({"instances": [[1, 2.5], [3, 4.5], [5, 6.5]]}),
             rows=3, prediction_rows=3),
        Call("mlflow split", "/invocations",
             dumps({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4], [5, 6], [7, 8]]}}),
             rows=4, prediction_rows=4),
        Call("mlflow csv", "/invocations", csv_rows.encode(), (("Content-Type", "text/csv"),),
             rows=6, prediction_rows=6),
        Call("seldon", "/api/v1.0/predictions", dumps({"data": {"names": ["a", "b"], "ndarray": [[1, 2], [3, 4]]}}),
             rows=2, prediction_rows=2),
        Call("openai chat", "/v1/chat/completions", chat(), rows=1, prediction_rows=1,
             tokens={"prompt": CHAT_USAGE["prompt_tokens"], "completion": CHAT_USAGE["completion_tokens"]}),
        Call("openai stream with usage", "/v1/chat/completions", chat(stream=True, usage=True),
             rows=1, prediction_rows=1,
             tokens={"prompt": STREAM_USAGE["prompt_tokens"], "completion": STREAM_USAGE["completion_tokens"]}),
        # no usage in the stream: completion tokens are the chunks that carry content
        Call("openai stream without usage", "/v1/chat/completions", chat(stream=True),
             rows=1, prediction_rows=1, tokens={"completion": len(STREAM_PIECES)}),
    ]


def malformed() -> list[Call]:
    truncated, truncated_headers = v2_binary(1, announced_rows=4)  # 4 rows announced, 1 row of bytes sent
    good_gzip = gzip.compress(v2_json(3), mtime=0)
    bad_magic = b"\x1f\x8c" + good_gzip[2:]  # not a gzip member: the inflater rejects the header
    gz = (("Content-Type", JSON), ("Content-Encoding", "gzip"))
    return [
        Call("invalid json", "/v2/models/m/infer", b'{"inputs": [{"name": "x", "shape": [1]', errors=(("request", "invalid_json"),)),
        Call("truncated binary tensor", "/v2/models/m/infer", truncated, truncated_headers,
             errors=(("request", "invalid_binary"),)),
        Call("corrupt gzip", "/v2/models/m/infer", bad_magic, gz, errors=(("request", "invalid_encoding"),)),
        Call("gzip cut short", "/v2/models/m/infer", good_gzip[: len(good_gzip) // 2], gz,
             errors=(("request", "truncated"),)),
        # a good request whose 200 response is not V2: rows counted, the response side is the error
        Call("response not v2", "/v2/models/broken/infer", v2_json(1), rows=1,
             errors=(("response", "unsupported_shape"),)),
    ]


def send_and_compare(sidecar: Sidecar, upstream: AppServer, call: Call) -> Response:
    """Send through the sidecar and straight to the upstream; the client must see the same response."""
    via = fetch(sidecar.proxy_url + call.path, "POST", call.body, call.headers)
    direct = fetch(upstream.url + call.path, "POST", call.body, call.headers)
    assert via.status == direct.status, f"{call.name}: {via.status} via the sidecar, {direct.status} direct"
    assert via.body == direct.body, f"{call.name}: body changed by the sidecar"
    for name in COMPARED_HEADERS:
        assert via.header_values(name) == direct.header_values(name), f"{call.name}: {name} changed"
    return via


def content_snapshot(sidecar: Sidecar) -> dict[Any, float]:
    return metric_snapshot(sidecar.metrics(), (ROWS, PREDICTION_ROWS, TOKENS, PAYLOAD_ERRORS, DROPPED))


def by_labels(diff: dict[Any, float], name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """The diff of one metric, keyed by the values of `keys` (other labels summed over)."""
    out: dict[tuple[str, ...], float] = {}
    for (sample, labels), delta in diff.items():
        if sample == name:
            key = tuple(dict(labels)[k] for k in keys)
            out[key] = out.get(key, 0.0) + delta
    return out


def wait_for_diff(sidecar: Sidecar, before: dict[Any, float], done: Any, timeout: float = ANALYSIS_TIMEOUT_S) -> dict[Any, float]:
    """Poll until `done(diff)` holds; the worker's queue must be empty too. Returns the diff."""
    deadline = time.monotonic() + timeout
    while True:
        samples = sidecar.metrics()
        diff = snapshot_diff(before, metric_snapshot(samples, (ROWS, PREDICTION_ROWS, TOKENS, PAYLOAD_ERRORS, DROPPED)))
        depth = sum(s.value for s in samples if s.name == "model_exporter_queue_depth")
        if depth == 0 and done(diff):
            return diff
        if time.monotonic() >= deadline:
            raise AssertionError(f"analysis did not reach the expected counts within {timeout}s "
                                 f"(queue depth {depth}); changes seen: {diff}")
        time.sleep(0.05)


# -- tests --------------------------------------------------------------------------------


def test_protocol_mix_rows_predictions_and_tokens(proto_sidecar: Sidecar, upstream: AppServer) -> None:
    calls = mix()
    before = content_snapshot(proto_sidecar)
    for call in calls:
        resp = send_and_compare(proto_sidecar, upstream, call)
        assert resp.status == 200, f"{call.name}: {resp.status} {resp.body[:200]!r}"
        if call.name == "v2 gzip response":
            assert resp.header("Content-Encoding") == "gzip" and resp.body[:2] == b"\x1f\x8b"  # gzip stays gzip
    rows = sum(c.rows for c in calls)
    prediction_rows = sum(c.prediction_rows for c in calls)
    tokens = {kind: float(sum(c.tokens.get(kind, 0) for c in calls)) for kind in ("prompt", "completion")}
    diff = wait_for_diff(proto_sidecar, before, lambda d: by_labels(d, ROWS).get((), 0) >= rows
                         and by_labels(d, PREDICTION_ROWS).get((), 0) >= prediction_rows)
    assert by_labels(diff, ROWS) == {(): rows}
    assert by_labels(diff, PREDICTION_ROWS) == {(): prediction_rows}
    assert by_labels(diff, TOKENS, "kind") == {(kind,): n for kind, n in tokens.items()}
    assert by_labels(diff, PAYLOAD_ERRORS, "side", "reason") == {}, "a well-formed payload was counted as an error"
    assert by_labels(diff, DROPPED, "reason") == {}


def test_malformed_payloads_counted_by_reason_and_passed_unchanged(proto_sidecar: Sidecar, upstream: AppServer) -> None:
    calls = malformed()
    before = content_snapshot(proto_sidecar)
    for call in calls:
        send_and_compare(proto_sidecar, upstream, call)
    expected_errors: dict[tuple[str, ...], float] = {}
    for call in calls:
        for side, reason in call.errors:
            expected_errors[(side, reason)] = expected_errors.get((side, reason), 0.0) + 1
    rows = sum(c.rows for c in calls)
    diff = wait_for_diff(proto_sidecar, before, lambda d: sum(by_labels(d, PAYLOAD_ERRORS).values())
                         >= sum(expected_errors.values()) and by_labels(d, ROWS).get((), 0) >= rows)
    assert by_labels(diff, PAYLOAD_ERRORS, "side", "reason") == expected_errors
    assert by_labels(diff, ROWS) == {(): rows}
    assert by_labels(diff, PREDICTION_ROWS) == {}
    assert by_labels(diff, DROPPED, "reason") == {}


def test_body_over_capture_limit_dropped_from_analysis_only(sidecar_factory: SidecarFactory, upstream: AppServer) -> None:
    sidecar = sidecar_factory(upstream=upstream.url, config={**FAST_PROBE, "capture": {"max_body_bytes": 1024}})
    sidecar.wait_analysis()
    small = Call("small", "/v2/models/m/infer", v2_json(2), rows=2, prediction_rows=2)
    big_request = Call("big request", "/v2/models/m/infer", v2_json(80))
    big_response = Call("big response", "/v1/chat/completions", chat(max_tokens=3000))
    assert len(small.body) < 1024 < len(big_request.body) and len(big_response.body) < 1024
    before = content_snapshot(sidecar)
    for call in (small, big_request, big_response):
        resp = send_and_compare(sidecar, upstream, call)
        assert resp.status == 200, f"{call.name}: {resp.status} {resp.body[:200]!r}"
    assert len(fetch(upstream.url + big_response.path, "POST", big_response.body, big_response.headers).body) > 1024
    diff = wait_for_diff(sidecar, before, lambda d: by_labels(d, DROPPED, "reason").get(("body_too_large",), 0) >= 2
                         and by_labels(d, ROWS).get((), 0) >= small.rows)
    assert by_labels(diff, DROPPED, "reason") == {("body_too_large",): 2}
    assert by_labels(diff, ROWS) == {(): small.rows}  # the small one analysed, neither big one
    assert by_labels(diff, PREDICTION_ROWS) == {(): small.prediction_rows}
    assert by_labels(diff, PAYLOAD_ERRORS, "side", "reason") == {}  # dropped, never half-parsed


def test_queue_full_drops_analysis_never_requests(sidecar_factory: SidecarFactory, upstream: AppServer) -> None:
    sidecar = sidecar_factory(upstream=upstream.url, config={**FAST_PROBE, "capture": {"queue_size": 1}})
    sidecar.wait_analysis()
    assert sidecar.sample("model_exporter_queue_capacity") == 1
    body = v2_json(1)
    expected = fetch(upstream.url + "/v2/models/m/infer", "POST", body, [("Content-Type", JSON)])
    assert expected.status == 200

    async def one(session: aiohttp.ClientSession) -> tuple[int, bytes]:
        async with session.post(sidecar.proxy_url + "/v2/models/m/infer", data=body,
                                headers={"Content-Type": JSON}) as resp:
            return resp.status, await resp.read()

    async def burst(n: int) -> list[tuple[int, bytes]]:
        connector = aiohttp.TCPConnector(limit=n)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30),
                                         auto_decompress=False) as session:
            return await asyncio.gather(*(one(session) for _ in range(n)))

    before = content_snapshot(sidecar)
    sent = 0
    deadline = time.monotonic() + 20
    while True:  # a burst on a quiet machine may find the worker keeping up; burst again until one drops
        results = asyncio.run(burst(100))
        sent += len(results)
        assert [status for status, _ in results] == [200] * len(results), "a request failed under the burst"
        assert all(got == expected.body for _, got in results), "a response changed under the burst"
        diff = wait_for_diff(sidecar, before, lambda d, sent=sent: by_labels(d, ROWS).get((), 0)
                             + by_labels(d, DROPPED, "reason").get(("queue_full",), 0) >= sent)
        if by_labels(diff, DROPPED, "reason").get(("queue_full",), 0) >= 1 or time.monotonic() >= deadline:
            break
    dropped = by_labels(diff, DROPPED, "reason")
    assert set(dropped) <= {("queue_full",)}, dropped
    assert dropped.get(("queue_full",), 0) >= 1, f"no queue_full drop in {sent} concurrent requests"
    # every exchange was either analysed (one row each) or dropped and counted: none lost, none twice
    assert by_labels(diff, ROWS).get((), 0) + dropped[("queue_full",)] == sent
    assert by_labels(diff, PAYLOAD_ERRORS, "side", "reason") == {}


# -- one exchange, one model and version ----------------------------------------------------

# Series that belong to no exchange and no model: the configured model and version, else "unknown" (README).
NO_EXCHANGE = ("model_requests_in_flight", "model_llm_streams_in_flight", "model_server_", "model_gpu_")


def label_pairs(samples: list[Any], exchange_series: bool = True) -> dict[tuple[str, str], set[str]]:
    """{(model, version): names of the samples carrying it}, over the exchange series (or the others)."""
    out: dict[tuple[str, str], set[str]] = {}
    for s in samples:
        if s.name.startswith("model_") and "model" in s.labels and s.name.startswith(NO_EXCHANGE) != exchange_series:
            out.setdefault((s.labels["model"], s.labels["version"]), set()).add(s.name)
    return out


def wait_analysed(sidecar: Sidecar, done: Any, timeout: float = 20.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        samples = sidecar.metrics()
        if sum(s.value for s in samples if s.name == "model_exporter_queue_depth") == 0 and done(samples):
            return samples
        assert time.monotonic() < deadline, "the analysis did not catch up: " + str(
            [s for s in samples if s.name in (ROWS, "model_window_rows")])
        time.sleep(0.05)


def test_without_model_flag_every_series_of_an_exchange_has_the_same_model_and_version(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """No --model, no config (the README's baseline example): traffic, content, drift and quality agree."""
    import numpy as np

    from exporter.demo.model_server import MODEL_NAME, make_app
    from exporter.demo.traffic import build_infer_request, sample_rows
    from exporter.demo.training import build_demo_baseline

    baseline = build_demo_baseline(tmp_path_factory.mktemp("labels-baseline"))
    server = AppServer(make_app(load_seconds=0)).start()
    sidecar = start_sidecar(tmp_path_factory.mktemp("sidecar-labels"), server.url, None, ("--baseline", str(baseline)))
    try:
        sidecar.wait_analysis()
        infer = f"/v2/models/{MODEL_NAME}/infer"
        columns = sample_rows(np.random.default_rng(7), 250, drifted=False)
        for start in range(0, 250, 50):
            part = {name: values[start:start + 50] for name, values in columns.items()}
            resp = fetch(sidecar.proxy_url + infer, "POST", dumps(build_infer_request(part, f"r{start}")),
                         [("Content-Type", JSON)])
            assert resp.status == 200, resp.body[:300]
        # a payload the exporter cannot parse: its error is counted under the same labels
        assert fetch(sidecar.proxy_url + infer, "POST", b"{not json", [("Content-Type", JSON)]).status == 400
        samples = wait_analysed(sidecar, lambda ss: sum(s.value for s in ss if s.name == ROWS) == 250
                                and any(s.name == "model_drift_score" for s in ss)
                                and sum(s.value for s in ss if s.name == PAYLOAD_ERRORS) == 1)
        pairs = label_pairs(samples)
        assert set(pairs) == {(MODEL_NAME, "unknown")}, {pair: sorted(names) for pair, names in pairs.items()}
        for name in ("model_requests_total", "model_request_duration_seconds_count", ROWS, PREDICTION_ROWS,
                     PAYLOAD_ERRORS, "model_upstream_errors_total", "model_drift_score", "model_window_rows",
                     "model_column_values_total", "model_baseline_info",
                     # the model server's health: one series per model it served, so outage alerts match
                     "model_upstream_up", "model_load_duration_seconds"):
            assert name in pairs[(MODEL_NAME, "unknown")], name
        # the series without an exchange say what is configured: nothing, so "unknown"
        assert set(label_pairs(samples, exchange_series=False)) == {("unknown", "unknown")}
        assert sum_label(samples, "model_exporter_label_overflow_total") == 0

        # another version of the model: its own labels everywhere; the baseline stays with the first pair
        part = {name: values[:50] for name, values in columns.items()}
        resp = fetch(sidecar.proxy_url + f"/v2/models/{MODEL_NAME}/versions/1/infer", "POST",
                     dumps(build_infer_request(part, "v1")), [("Content-Type", JSON)])
        assert resp.status == 200
        # a name the model server does not serve (404) takes no label value of its own
        assert fetch(sidecar.proxy_url + "/v2/models/nosuch/infer", "POST", dumps(build_infer_request(part, "x")),
                     [("Content-Type", JSON)]).status == 404
        samples = wait_analysed(sidecar, lambda ss: sum_label(ss, ROWS, model=MODEL_NAME) == 300
                                and sum_label(ss, "model_requests_total", code="404") == 1)
        assert sum_label(samples, ROWS, model=MODEL_NAME, version="1") == 50
        assert sum_label(samples, "model_baseline_skipped_rows_total", model=MODEL_NAME, version="1") == 50
        assert sum_label(samples, "model_window_rows", window="5m", model=MODEL_NAME, version="unknown") == 250
        assert sum_label(samples, "model_requests_total", model=MODEL_NAME, version="1") == 1
        assert sum_label(samples, "model_requests_total", code="404", model="other", version="other") == 1
        assert "nosuch" not in {s.labels.get("model") for s in samples}
        drift_pairs = {(s.labels["model"], s.labels["version"]) for s in samples if s.name.startswith("model_drift_")}
        assert drift_pairs == {(MODEL_NAME, "unknown")}
    finally:
        sidecar.stop()
        server.stop()


def sum_label(samples: list[Any], name: str, **labels: str) -> float:
    return float(sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items()))
