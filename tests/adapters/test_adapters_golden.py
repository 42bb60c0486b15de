"""Golden request/response pairs for every protocol, written from the protocol specifications."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from adapters_support import expected_dict, golden_cases, message, outcome, rows_dict

from exporter.adapters import BY_NAME, decode_body, detect
from exporter.adapters.base import PayloadError

CASES = golden_cases()
IDS = [f"{name}: {case['name']}" for name, case in CASES]


def check(result: Any, expect: dict[str, Any]) -> None:
    if "error" in expect:
        assert isinstance(result, PayloadError), rows_dict(result)
        assert result.reason == expect["error"], result
    else:
        assert not isinstance(result, PayloadError), result
        assert rows_dict(result) == expected_dict(expect)


@pytest.mark.parametrize(("name", "case"), CASES, ids=IDS)
def test_request(name: str, case: dict[str, Any]) -> None:
    request = message(case["path"], case["request"])
    check(outcome(BY_NAME[name].parse_request, request), case["expect_request"])


@pytest.mark.parametrize(("name", "case"), CASES, ids=IDS)
def test_response(name: str, case: dict[str, Any]) -> None:
    request = message(case["path"], case["request"])
    response = message(case["path"], case["response"])
    check(outcome(BY_NAME[name].parse_response, request, response), case["expect_response"])


@pytest.mark.parametrize(("name", "case"), CASES, ids=IDS)
def test_detect_by_route(name: str, case: dict[str, Any]) -> None:
    assert detect(message(case["path"], case["request"])) is BY_NAME[name]


@pytest.mark.parametrize(("name", "case"), [c for c in CASES if c[1].get("detect_by_body")],
                         ids=[i for i, c in zip(IDS, CASES) if c[1].get("detect_by_body")])
def test_detect_by_body(name: str, case: dict[str, Any]) -> None:
    assert detect(message("/predict", case["request"])) is BY_NAME[name]


@pytest.mark.parametrize(("name", "case"), [c for c in CASES if "error" not in c[1]["expect_request"]],
                         ids=[i for i, c in zip(IDS, CASES) if "error" not in c[1]["expect_request"]])
def test_gzip_bodies_decode_to_the_same_rows(name: str, case: dict[str, Any]) -> None:
    plain_request = message(case["path"], case["request"])
    body = decode_body(gzip.compress(plain_request.body), "gzip")
    request = message(case["path"], case["request"], body=body)
    check(outcome(BY_NAME[name].parse_request, request), case["expect_request"])
