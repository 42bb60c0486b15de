"""Tests for the demo model server and the traffic generator, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exporter.demo.model_server import (
    COEFFICIENTS,
    FEATURES,
    INTERCEPT,
    MODEL_NAME,
    REGION_LOGITS,
    CategoricalFeature,
    NumericFeature,
    make_app,
)
from exporter.demo.traffic import (
    DRIFT_REGION,
    build_infer_request,
    generate_traffic,
    sample_rows,
    traceparent,
)

INFER = f"/v2/models/{MODEL_NAME}/infer"
ROWS: list[dict[str, Any]] = [
    {"age": 35.5, "income": 72_000.0, "credit_score": 710, "debt_ratio": 0.25, "tenure_months": 30,
     "region": "north"},
    {"age": 62.0, "income": 31_000.0, "credit_score": 590, "debt_ratio": 0.61, "tenure_months": 140,
     "region": "west"},
    {"age": 23.0, "income": 45_500.5, "credit_score": 655, "debt_ratio": 0.05, "tenure_months": 2,
     "region": "east"},
]


def expected_probability(row: dict[str, Any]) -> float:
    """The demo model's probability, computed by hand from its published weights."""
    logit = INTERCEPT
    for feature in FEATURES:
        if isinstance(feature, NumericFeature):
            logit += COEFFICIENTS[feature.name] * (row[feature.name] - feature.mean) / feature.std
    logit += REGION_LOGITS[row["region"]]
    return 1.0 / (1.0 + math.exp(-logit))


def request_body(rows: list[dict[str, Any]], column_shape: bool = False) -> dict[str, Any]:
    """A V2 request for rows, with tensors of shape [N] or [N, 1]."""
    shape = [len(rows), 1] if column_shape else [len(rows)]
    return {
        "id": "req-1",
        "inputs": [
            {"name": f.name, "shape": shape, "datatype": f.datatype, "data": [r[f.name] for r in rows]}
            for f in FEATURES
        ],
    }


def with_client(
    test: Callable[[TestClient[web.Request, web.Application]], Awaitable[None]],
    load_seconds: float = 0.0,
    app: web.Application | None = None,
) -> None:
    """Run test against a real demo model server on 127.0.0.1."""

    async def run() -> None:
        server = TestServer(app or make_app(load_seconds=load_seconds), host="127.0.0.1")
        async with TestClient(server) as client:
            await test(client)

    asyncio.run(run())


def assert_outputs(body: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    assert body["model_name"] == MODEL_NAME
    assert body["model_version"] == "1"
    assert body["id"] == "req-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["probability"]["datatype"] == "FP32"
    assert outputs["probability"]["shape"] == [len(rows)]
    assert outputs["label"]["datatype"] == "INT64"
    assert outputs["label"]["shape"] == [len(rows)]
    expected = [expected_probability(row) for row in rows]
    assert outputs["probability"]["data"] == pytest.approx(expected, rel=1e-6)
    assert outputs["label"]["data"] == [int(p >= 0.5) for p in expected]


def test_infer_single_row() -> None:
    async def test(client: TestClient[web.Request, web.Application]) -> None:
        response = await client.post(INFER, json=request_body(ROWS[:1]))
        assert response.status == 200
        assert_outputs(await response.json(), ROWS[:1])

    with_client(test)


def test_infer_batch_on_both_routes_and_shapes() -> None:
    async def test(client: TestClient[web.Request, web.Application]) -> None:
        for path in (INFER, f"/v2/models/{MODEL_NAME}/versions/1/infer"):
            for column_shape in (False, True):
                response = await client.post(path, json=request_body(ROWS, column_shape))
                assert response.status == 200, await response.text()
                assert_outputs(await response.json(), ROWS)

    with_client(test)


def test_labels_cover_both_classes() -> None:
    # The fixture rows should exercise both labels, or the label check above proves little.
    assert {int(expected_probability(row) >= 0.5) for row in ROWS} == {0, 1}


def _broken(mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body = request_body(ROWS[:2])
    mutate(body)
    return body


def _set(index: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda body: body["inputs"][index].__setitem__(key, value)


BAD_REQUESTS = {
    "shape disagrees with data": (_broken(_set(0, "shape", [3])), "age"),
    "two-dimensional shape": (_broken(_set(1, "shape", [1, 2])), "shape"),
    "wrong datatype": (_broken(_set(0, "datatype", "INT32")), "datatype"),
    "float for an integer input": (_broken(_set(2, "data", [700.5, 600])), "credit_score"),
    "number for BYTES": (_broken(_set(5, "data", [1, 2])), "region"),
    "null value": (_broken(_set(1, "data", [None, 1.0])), "income"),
    "batch sizes differ": (_broken(lambda b: b["inputs"][3].update(shape=[1], data=[0.2])), "rows"),
    "missing input": (_broken(lambda b: b["inputs"].pop()), "region"),
    "unknown input": (_broken(lambda b: b["inputs"].append({**b["inputs"][0], "name": "x"})), "x"),
    "no inputs": ({"inputs": []}, "inputs"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_request_is_400_with_error(case: str) -> None:
    body, mentions = BAD_REQUESTS[case]

    async def test(client: TestClient[web.Request, web.Application]) -> None:
        response = await client.post(INFER, json=body)
        assert response.status == 400
        error = (await response.json())["error"]
        assert mentions in error

    with_client(test)


def test_invalid_json_is_400() -> None:
    async def test(client: TestClient[web.Request, web.Application]) -> None:
        response = await client.post(INFER, data=b"{not json", headers={"Content-Type": "application/json"})
        assert response.status == 400
        assert "JSON" in (await response.json())["error"]

    with_client(test)


def test_unknown_model_or_version_is_404() -> None:
    async def test(client: TestClient[web.Request, web.Application]) -> None:
        for method, path in [
            ("POST", "/v2/models/other/infer"),
            ("POST", f"/v2/models/{MODEL_NAME}/versions/2/infer"),
            ("GET", "/v2/models/other"),
            ("GET", "/v2/models/other/ready"),
        ]:
            response = await client.request(method, path, json=request_body(ROWS[:1]))
            assert response.status == 404, path
            assert "error" in await response.json()

    with_client(test)


def test_metadata_lists_the_feature_schema() -> None:
    async def test(client: TestClient[web.Request, web.Application]) -> None:
        response = await client.get(f"/v2/models/{MODEL_NAME}")
        assert response.status == 200
        body = await response.json()
        assert body["versions"] == ["1"]
        inputs = [(i["name"], i["datatype"]) for i in body["inputs"]]
        assert inputs == [(f.name, f.datatype) for f in FEATURES]

    with_client(test)


def test_ready_only_after_load_seconds() -> None:
    async def test(client: TestClient[web.Request, web.Application]) -> None:
        assert (await client.get("/v2/health/live")).status == 200
        assert (await client.get("/v2/health/ready")).status == 503
        assert (await client.get(f"/v2/models/{MODEL_NAME}/ready")).status == 503
        assert (await client.post(INFER, json=request_body(ROWS[:1]))).status == 503
        for _ in range(100):
            if (await client.get("/v2/health/ready")).status == 200:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("server never became ready")
        assert (await client.get(f"/v2/models/{MODEL_NAME}/ready")).status == 200
        assert (await client.post(INFER, json=request_body(ROWS[:1]))).status == 200

    with_client(test, load_seconds=0.3)


def test_sample_rows_follow_the_schema() -> None:
    columns = sample_rows(np.random.default_rng(1), 7, drifted=False)
    assert list(columns) == [f.name for f in FEATURES]
    for feature in FEATURES:
        values = columns[feature.name]
        assert len(values) == 7
        if isinstance(feature, CategoricalFeature):
            assert set(values) <= set(feature.categories)
        else:
            assert all(feature.low <= v <= feature.high for v in values if v is not None)
            expected_type = int if feature.datatype == "INT32" else float
            assert all(type(v) is expected_type for v in values)
    assert sample_rows(np.random.default_rng(1), 7, False) == columns


def test_drift_shifts_income_and_region() -> None:
    income = next(f for f in FEATURES if f.name == "income")
    assert isinstance(income, NumericFeature)
    normal = sample_rows(np.random.default_rng(2), 4000, drifted=False)
    drifted = sample_rows(np.random.default_rng(3), 4000, drifted=True)
    shift = (np.mean(drifted["income"]) - np.mean(normal["income"])) / income.std
    assert 1.3 < shift < 1.7
    assert drifted["region"].count(DRIFT_REGION) > 2 * normal["region"].count(DRIFT_REGION)


def test_sampled_requests_are_accepted() -> None:
    body = build_infer_request(sample_rows(np.random.default_rng(4), 5, drifted=True), "req-1")

    async def test(client: TestClient[web.Request, web.Application]) -> None:
        response = await client.post(INFER, json=body)
        assert response.status == 200, await response.text()

    with_client(test)


def test_traceparent_format() -> None:
    rng = np.random.default_rng(5)
    values = {traceparent(rng) for _ in range(20)}
    assert len(values) == 20
    assert all(re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", v) for v in values)


def test_generate_traffic_against_a_real_server() -> None:
    traceparents: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        if "traceparent" in request.headers:
            traceparents.append(request.headers["traceparent"])
        response: web.StreamResponse = await handler(request)
        return response

    app = make_app(load_seconds=0.0)
    app.middlewares.append(record)

    async def test(client: TestClient[web.Request, web.Application]) -> None:
        target = str(client.make_url("/"))
        summary = await generate_traffic(target, rate=100.0, duration=0.3, drift_after=0.1, trace_ratio=0.5)
        assert summary.requests > 0
        # drifted rows carry nulls, which the model rejects with a 400; nothing else fails
        assert set(summary.statuses) <= {200, 400} and summary.statuses[200] > 0
        assert not summary.errors
        assert 0 < summary.drifted_requests < summary.requests
        assert summary.requests <= summary.rows <= 8 * summary.requests
        assert len(traceparents) == summary.traced_requests > 0

    with_client(test, app=app)
