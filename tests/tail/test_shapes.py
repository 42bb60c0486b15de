"""The line shapes `run --tail` reads besides the prediction log: SageMaker data capture and JSON access logs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from exporter.config import TailSource
from exporter.predlog import Body
from exporter.sources.shapes import AccessLog, SageMaker, ShapeError, parser_for


def capture(inp: dict[str, object] | None, out: dict[str, object] | None, **meta: str) -> bytes:
    data: dict[str, object] = {}
    if inp is not None:
        data["endpointInput"] = {"mode": "INPUT", **inp}
    if out is not None:
        data["endpointOutput"] = {"mode": "OUTPUT", **out}
    line = {
        "captureData": data,
        "eventMetadata": {"eventId": "e-1", "inferenceTime": "2026-11-29T21:40:00Z", **meta},
        "eventVersion": "0",
    }
    return json.dumps(line).encode()


def test_sagemaker_json_bodies_go_to_the_adapters() -> None:
    body = {"instances": [[1.0, 2.0]]}
    line = capture(
        {"observedContentType": "application/json", "encoding": "JSON", "data": json.dumps(body)},
        {"observedContentType": "application/json", "encoding": "JSON", "data": '{"predictions": [0.5]}'},
        inferenceId="inf-7",
    )
    logged = SageMaker()(line, "f:1")
    rec = logged.record
    assert rec.request == Body(json.dumps(body).encode(), "application/json")
    assert rec.response == Body(b'{"predictions": [0.5]}', "application/json")
    assert (rec.id, rec.route, rec.status) == ("inf-7", "/invocations", 200)  # inferenceId before eventId
    assert rec.time == datetime(2026, 11, 29, 21, 40, tzinfo=UTC).timestamp()
    assert logged.request_size == len(json.dumps(body))


def test_sagemaker_base64_keeps_the_bytes() -> None:
    raw = b"\x93NUMPY binary"
    line = capture(
        {"observedContentType": "application/x-npy", "encoding": "BASE64", "data": base64.b64encode(raw).decode()}, None
    )
    rec = SageMaker()(line, "f:1").record
    assert rec.request == Body(raw, "application/x-npy") and rec.response is None
    assert rec.id == "e-1"  # no inferenceId: the eventId


def test_sagemaker_csv_becomes_rows_named_by_config() -> None:
    line = capture(
        {"observedContentType": "text/csv", "encoding": "CSV", "data": "41,pro,\n35,free,1.5"},
        {"observedContentType": "text/csv; charset=utf-8", "encoding": "CSV", "data": "0.8\n0.1"},
    )
    rec = SageMaker(("age", "plan", "score"))(line, "f:1").record
    assert rec.features == [{"age": 41.0, "plan": "pro", "score": None}, {"age": 35.0, "plan": "free", "score": 1.5}]
    assert rec.predictions == [{"x0": 0.8}, {"x0": 0.1}]
    unnamed = SageMaker()(line, "f:1").record
    assert unnamed.features is not None and list(unnamed.features[0]) == ["x0", "x1", "x2"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"eventMetadata": {}}', "f:3: field 'captureData': expected an object"),
        (capture(None, None), "f:3: field 'captureData.endpointInput': expected the captured input"),
        (
            capture({"encoding": "XML", "data": "<a/>"}, None),
            "field 'captureData.endpointInput.encoding': expected CSV, JSON or BASE64",
        ),
        (
            capture({"encoding": "BASE64", "data": "***"}, None),
            "field 'captureData.endpointInput.data': expected base64 text",
        ),
        (capture({"encoding": "JSON", "data": 5}, None), "field 'captureData.endpointInput.data': expected a string"),
        (capture({"encoding": "CSV", "data": "1"}, {"encoding": "JSON", "data": "{}"}), "input and output both CSV"),
        (b"[]", "f:3: expected a JSON object per line, got list"),
    ],
)
def test_sagemaker_errors_name_line_and_field(line: bytes, message: str) -> None:
    with pytest.raises(ShapeError) as err:
        SageMaker(("a",))(line, "f:3")
    assert message in str(err.value)


def test_sagemaker_csv_width_must_match_the_columns() -> None:
    with pytest.raises(ShapeError, match=r"expected CSV rows of 2 values \(tail csv_columns\)"):
        SageMaker(("a", "b"))(capture({"encoding": "CSV", "data": "1,2,3"}, None), "f:1")


def test_nginx_preset_in_seconds() -> None:
    line = json.dumps(
        {
            "time_iso8601": "2026-11-29T21:40:00+00:00",
            "status": "200",
            "request_time": "0.125",
            "request_uri": "/v2/models/iris/infer?x=1",
            "request_method": "POST",
            "request_length": "512",
            "bytes_sent": 300,
            "request_id": "abc",
        }
    ).encode()
    logged = parser_for(TailSource("/x", "nginx"))(line, "f:1")
    rec = logged.record
    assert (rec.status, rec.duration, rec.route, rec.method, rec.id) == (
        200,
        0.125,
        "/v2/models/iris/infer?x=1",
        "POST",
        "abc",
    )
    assert (logged.request_size, logged.response_size) == (512, 300)
    assert rec.request is None and rec.features is None  # traffic only


def test_envoy_preset_in_milliseconds_and_a_field_mapping() -> None:
    line = json.dumps(
        {
            "start_time": "2026-11-29T21:40:00.000Z",
            "code": 503,
            "duration": 42,
            "path": "/invocations",
            "method": "POST",
            "bytes_received": "-",
        }
    ).encode()
    rec_logged = AccessLog("envoy", (("status", "code"),))(line, "f:1")
    assert rec_logged.record.status == 503 and rec_logged.record.duration == pytest.approx(0.042)
    assert rec_logged.request_size is None  # '-': not known, not observed


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"status": "abc"}', "f:9: field 'status': expected an HTTP status code from 100 to 599, got 'abc'"),
        (b'{"status": 200, "request_time": "slow"}', "field 'request_time': expected a duration, a number >= 0"),
        (
            b'{"status": 200, "time_iso8601": "yesterday"}',
            "field 'time_iso8601': expected epoch seconds or an RFC 3339",
        ),
        (b"not json", "f:9: invalid JSON"),
    ],
)
def test_access_log_errors_name_line_and_field(line: bytes, message: str) -> None:
    with pytest.raises(ShapeError) as err:
        AccessLog("nginx")(line, "f:9")
    assert message in str(err.value)


def test_a_line_without_a_time_is_placed_when_read() -> None:
    import time

    before = time.time()
    line = json.dumps({"captureData": {"endpointInput": {"encoding": "JSON", "data": "{}"}}}).encode()
    assert before <= SageMaker()(line, "f:1").record.time <= time.time()
    assert before <= AccessLog("nginx")(b'{"status": 200}', "f:1").record.time <= time.time()
