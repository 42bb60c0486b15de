"""Property tests: any bytes, any JSON, any truncation → Rows or a counted PayloadError, never a raise."""

from __future__ import annotations

import json
from typing import Any

from adapters_support import body_bytes, golden_cases, outcome
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.adapters import ADAPTERS, decode_body, detect
from exporter.adapters.base import PAYLOAD_ERROR_REASONS, Message, PayloadError
from exporter.adapters.custom import CustomAdapter
from exporter.adapters.v2 import HEADER_LENGTH

ALL = [*ADAPTERS, CustomAdapter(features="$.inputs[*]", predictions="$.outputs", id_path="$.id"),
       CustomAdapter(features="$.data", predictions="$.predictions[*].label")]
PATHS = ["/v2/models/m/infer", "/v1/models/m:predict", "/invocations", "/api/v1.0/predictions",
         "/v1/chat/completions", "/predict"]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys and values the protocols give meaning to, so generated documents get past the first checks.
KEYS = ["inputs", "outputs", "name", "shape", "datatype", "data", "parameters", "binary_data_size", "id",
        "instances", "predictions", "signature_name", "b64", "dataframe_split", "dataframe_records", "columns",
        "index", "names", "ndarray", "tensor", "values", "jsonData", "strData", "binData", "meta", "puid",
        "model", "messages", "prompt", "content", "text", "choices", "message", "delta", "finish_reason",
        "usage", "prompt_tokens", "completion_tokens", "model_name", "model_version", "a", "b"]
DATATYPES = ["BOOL", "UINT8", "UINT64", "INT8", "INT32", "INT64", "FP16", "FP32", "FP64", "BF16", "BYTES", "X"]

scalars = (st.none() | st.booleans() | st.integers(-3, 6) | st.integers() | st.floats(allow_nan=True)
           | st.sampled_from(DATATYPES) | st.text(max_size=8) | st.sampled_from(KEYS))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=5),
    max_leaves=30,
)
headers = st.fixed_dictionaries({}, optional={
    "content-type": st.sampled_from(["application/json", "text/csv", "text/event-stream", "text/plain"]),
    HEADER_LENGTH: st.integers(-2, 400).map(str) | st.text(max_size=4),
    "x-request-id": st.text(min_size=1, max_size=6),
})


def run_all(path: str, hdrs: dict[str, str], request_body: bytes, response_body: bytes) -> None:
    request = Message(path, path, hdrs, request_body)
    response = Message(path, path, hdrs, response_body)
    for builtin in ADAPTERS:
        for check in (builtin.match_route, builtin.match_body):
            try:
                check(request)
            except Exception as exc:  # detection must never raise
                raise AssertionError(f"{builtin.name}.{check.__name__} raised {exc!r}") from exc
    detect(request)
    for adapter in ALL:
        outcome(adapter.parse_request, request)
        outcome(adapter.parse_response, request, response)


@FAST
@given(path=st.sampled_from(PATHS), hdrs=headers, request_body=st.binary(max_size=300), response_body=st.binary(max_size=300))
def test_arbitrary_bytes(path: str, hdrs: dict[str, str], request_body: bytes, response_body: bytes) -> None:
    run_all(path, hdrs, request_body, response_body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), hdrs=headers, request_doc=json_values, response_doc=json_values)
def test_arbitrary_json(path: str, hdrs: dict[str, str], request_doc: Any, response_doc: Any) -> None:
    run_all(path, hdrs, json.dumps(request_doc).encode(), json.dumps(response_doc).encode())


@FAST
@given(case=st.sampled_from(golden_cases()), cut=st.floats(0, 1), hdrs=headers)
def test_truncated_golden_bodies(case: tuple[str, dict[str, Any]], cut: float, hdrs: dict[str, str]) -> None:
    _, golden = case
    request_body, response_body = body_bytes(golden["request"]), body_bytes(golden["response"])
    run_all(golden["path"], dict(golden["request"].get("headers", {})),
            request_body[:int(len(request_body) * cut)], response_body[:int(len(response_body) * cut)])
    run_all(golden["path"], hdrs, request_body[:int(len(request_body) * cut)], response_body)


def mutate(doc: Any, data: st.DataObject) -> Any:
    """The document with some values replaced by arbitrary JSON (each node: a 1 in 6 chance)."""
    if data.draw(st.integers(0, 5)) == 0:
        return data.draw(json_values)
    if isinstance(doc, dict):
        return {k: mutate(v, data) for k, v in doc.items()}
    if isinstance(doc, list):
        return [mutate(v, data) for v in doc]
    return doc


JSON_CASES = [case for case in golden_cases() if "body" in case[1]["request"] and "body" in case[1]["response"]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(JSON_CASES), data=st.data())
def test_mutated_golden_documents(case: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    _, golden = case
    request_doc = mutate(golden["request"]["body"], data)
    response_doc = mutate(golden["response"]["body"], data)
    run_all(golden["path"], dict(golden["request"].get("headers", {})),
            json.dumps(request_doc).encode(), json.dumps(response_doc).encode())


@FAST
@given(cut=st.integers(0, 200), size=st.integers(0, 40), data=st.binary(max_size=64))
def test_truncated_binary_tensor_bodies(cut: int, size: int, data: bytes) -> None:
    header = json.dumps({"inputs": [{"name": "a", "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": 16}},
                                    {"name": "s", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": size}}]}).encode()
    body = (header + bytes(16) + data)[:cut + len(header) - 100]
    run_all("/v2/models/m/infer", {HEADER_LENGTH: str(len(header))}, body, body)


@FAST
@given(body=st.binary(max_size=200), coding=st.sampled_from(["gzip", "deflate", "gzip, deflate", "identity", "br"]))
def test_decode_body_never_raises_anything_else(body: bytes, coding: str) -> None:
    try:
        assert isinstance(decode_body(body, coding, limit=1000), bytes)
    except PayloadError as exc:
        assert exc.reason in PAYLOAD_ERROR_REASONS
