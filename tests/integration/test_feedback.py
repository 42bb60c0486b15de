"""POST /feedback against a real sidecar and the demo model server: labels joined, scored, counted."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from harness import SidecarFactory, fetch, promtool_check_metrics
from stand_in import AppServer

from exporter.demo.model_server import MODEL_NAME, make_app

pytestmark = pytest.mark.integration

INFER = f"/v2/models/{MODEL_NAME}/infer"
JSON_HEADERS = (("Content-Type", "application/json"),)
TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def model_server() -> Iterator[AppServer]:
    server = AppServer(make_app(load_seconds=0)).start()
    yield server
    server.stop()


def _config(upstream: str) -> dict[str, Any]:
    return {
        "upstream": {"url": upstream, "health": {"interval": "0.5s"}},
        "model": {"name": MODEL_NAME, "version": "1"},
        "labels": {"cache_size": 1000, "ttl": "1h"},
        "performance": {"prediction": "label", "score": "probability", "min_labels": 1},
    }


def _infer(proxy_url: str, request_id: str, rows: int) -> list[int]:
    values = {"age": 40.0, "income": 58_000.0, "credit_score": 680, "debt_ratio": 0.3, "tenure_months": 60,
              "region": "north"}
    types = {"age": "FP32", "income": "FP32", "credit_score": "INT32", "debt_ratio": "FP32", "tenure_months": "INT32",
             "region": "BYTES"}
    body = json.dumps({"id": request_id, "inputs": [
        {"name": k, "shape": [rows], "datatype": types[k], "data": [v] * rows} for k, v in values.items()]}).encode()
    resp = fetch(proxy_url + INFER, "POST", body, JSON_HEADERS)
    assert resp.status == 200, resp.body[:300]
    outputs = {o["name"]: o["data"] for o in json.loads(resp.body)["outputs"]}
    return [int(v) for v in outputs["label"]]


def test_labels_are_joined_scored_and_bad_records_named(sidecar_factory: SidecarFactory,
                                                        model_server: AppServer, promtool: str) -> None:
    sidecar = sidecar_factory(upstream=None, config=_config(model_server.url))
    predicted = _infer(sidecar.proxy_url, "req-1", 4)
    # the worker must have seen the prediction before its labels arrive
    sidecar.wait_sample("model_prediction_rows_total", lambda v: v == 4, timeout=TIMEOUT_S)

    truth = [predicted[0], predicted[1], predicted[2], 1 - predicted[3]]  # 3 of 4 right
    lines = [json.dumps({"id": f"req-1:{i}", "label": y}) for i, y in enumerate(truth)]
    lines += [json.dumps({"id": "req-1:0", "label": truth[0]}),  # duplicate
              json.dumps({"id": "never-predicted", "label": 1}),  # unknown id
              json.dumps({"id": "req-1:1", "value": 3})]  # no label: invalid
    resp = fetch(sidecar.metrics_url + "/feedback", "POST", "\n".join(lines).encode(),
                 (("Content-Type", "application/x-ndjson"),))
    assert resp.status == 400, resp.body
    doc = json.loads(resp.body)
    assert doc["accepted"] == 6
    assert [(f["index"], f["field"]) for f in doc["failed"]] == [(6, "label")]
    assert "record 6: label" in doc["failed"][0]["error"]

    matched = sidecar.wait_sample("model_labels_total", lambda v: v == 4, timeout=TIMEOUT_S, outcome="matched")
    assert matched == 4
    assert sidecar.sample("model_labels_total", outcome="duplicate") == 1
    assert sidecar.sample("model_labels_total", outcome="unknown_id") == 1
    assert sidecar.sample("model_labels_total", outcome="invalid") == 1
    assert sidecar.sample("model_performance_score", metric="accuracy", window="5m") == 0.75
    assert sidecar.sample("model_window_labels", window="1h") == 4
    assert sidecar.sample("model_label_delay_seconds_count") == 4

    # one clean record: 200
    _infer(sidecar.proxy_url, "req-2", 1)
    sidecar.wait_sample("model_prediction_rows_total", lambda v: v == 5, timeout=TIMEOUT_S)
    ok = fetch(sidecar.metrics_url + "/feedback", "POST", json.dumps({"id": "req-2", "label": 0}).encode(),
               JSON_HEADERS)
    assert (ok.status, json.loads(ok.body)) == (200, {"accepted": 1})
    sidecar.wait_sample("model_labels_total", lambda v: v == 5, timeout=TIMEOUT_S, outcome="matched")
    # every family the labels brought (scores, thresholds, KPIs, the delay histogram) passes the linter
    code, output = promtool_check_metrics(promtool, sidecar.metrics_text())
    assert code == 0, output


def test_form_content_types_are_refused(sidecar_factory: SidecarFactory, model_server: AppServer) -> None:
    sidecar = sidecar_factory(upstream=None, config=_config(model_server.url))
    body = json.dumps({"id": "a", "label": 1}).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        resp = fetch(sidecar.metrics_url + "/feedback", "POST", body, (("Content-Type", content_type),))
        assert resp.status == 415, (content_type, resp.status)
    too_large = fetch(sidecar.metrics_url + "/feedback", "POST", b" " * (2 << 20), JSON_HEADERS)
    assert too_large.status == 413
    assert fetch(sidecar.metrics_url + "/feedback", "GET").status == 405
    assert sidecar.sample("model_labels_total", outcome="matched") == 0


def test_a_labels_file_is_followed_like_a_log_through_rotation(sidecar_factory: SidecarFactory,
                                                                model_server: AppServer, tmp_path: Any) -> None:
    """Labels written to JSON Lines files by a batch process: tail shape `labels`, the same records,
    the same join; a rotated file is read to its end; a bad line is named and counted, not fatal."""
    labels_dir = tmp_path / "labels"
    labels_dir.mkdir()
    current = labels_dir / "labels.jsonl"
    current.write_bytes(b"")
    config = {**_config(model_server.url),
              "tail": {"sources": [{"path": str(labels_dir / "labels*.jsonl"), "shape": "labels"}],
                       "poll_interval": "50ms"}}
    sidecar = sidecar_factory(upstream=None, config=config)
    predicted = _infer(sidecar.proxy_url, "batch-7", 6)
    sidecar.wait_sample("model_prediction_rows_total", lambda v: v == 6, timeout=TIMEOUT_S)

    with current.open("a") as out:  # the first three labels, then the file is rotated away
        for i in range(3):
            out.write(json.dumps({"id": f"batch-7:{i}", "label": predicted[i]}) + "\n")
        out.write('{"id": "batch-7:4", "label": }\n')  # not JSON
        out.write(json.dumps({"id": "batch-7:5"}) + "\n")  # no label
    current.rename(labels_dir / "labels-1.jsonl")
    with (labels_dir / "labels.jsonl").open("a") as out:  # the writer reopens: the rest, one wrong
        out.write(json.dumps({"id": "batch-7:3", "label": 1 - predicted[3]}) + "\n")
        out.write(json.dumps({"id": "nobody", "label": 0, "time": "2026-11-29T12:00:00Z"}) + "\n")

    sidecar.wait_sample("model_labels_total", lambda v: v == 4, timeout=TIMEOUT_S, outcome="matched")
    assert sidecar.sample("model_labels_total", outcome="unknown_id") == 1
    assert sidecar.sample("model_labels_total", outcome="invalid") == 2
    assert sidecar.sample("model_performance_score", metric="accuracy", window="5m") == 0.75
    assert sidecar.sample("model_exporter_tail_records_total", shape="labels") == 5
    assert sidecar.sample("model_exporter_tail_malformed_lines_total", shape="labels") == 2
    assert sidecar.sample("model_requests_total") == 1  # label lines are not exchanges
    stderr = sidecar.stderr()  # named by file and line (the file's name when it was read: before or after rotation)
    assert re.search(r"labels(-1)?\.jsonl:4: expected a JSON object \(a label record\)", stderr), stderr[-2000:]
    assert re.search(r"labels(-1)?\.jsonl:5: field 'label': required", stderr), stderr[-2000:]
