"""CloudEvents push against a real sidecar started from its CLI: KServe and Seldon loggers' events joined and analysed.

The bodies are the demo model server's real answers to the requests: what a logger sitting next
to that server would send. Each event is POSTed to the sidecar's metrics port like the loggers do.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import Sidecar, fetch, promtool_check_metrics, start_sidecar
from stand_in import AppServer

from exporter.demo.model_server import MODEL_NAME, make_app
from exporter.demo.traffic import build_infer_request, sample_rows

pytestmark = pytest.mark.integration

INFER = f"/v2/models/{MODEL_NAME}/infer"
TIMEOUT_S = 20.0
ROWS = 25  # per request
ISVC = "credit-isvc"


@pytest.fixture(scope="module")
def model_server() -> Iterator[AppServer]:
    server = AppServer(make_app(load_seconds=0)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from exporter.demo.training import build_demo_baseline

    return build_demo_baseline(tmp_path_factory.mktemp("baseline"))


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, model_server: AppServer, baseline: Path) -> Iterator[Sidecar]:
    config: dict[str, Any] = {
        "upstream": {"health": {"interval": "0.5s"}},
        "push": {"ttl": "1s", "max_body_bytes": 64 * 1024, "cache_size": 1000},
        "drift": {"min_rows": 50},
    }
    process = start_sidecar(tmp_path_factory.mktemp("sidecar-push"), model_server.url, config,
                            ("--baseline", str(baseline)))
    process.wait_analysis()
    yield process
    process.stop()


def exchange(model_server: AppServer, seed: int, tag: str) -> tuple[bytes, bytes]:
    """A real request body and the model server's real response body."""
    columns = sample_rows(np.random.default_rng(seed), ROWS, drifted=False)
    request = json.dumps(build_infer_request(columns, tag)).encode()
    resp = fetch(model_server.url + INFER, "POST", request, (("Content-Type", "application/json"),))
    assert resp.status == 200, resp.body[:300]
    return request, resp.body


def kserve(sidecar: Sidecar, half: str, rid: str, body: bytes) -> tuple[int, bytes]:
    """One event as KServe's InferenceService logger sends it (binary mode)."""
    headers = (
        ("Content-Type", "application/json"),
        ("Ce-Specversion", "1.0"),
        ("Ce-Id", rid),
        ("Ce-Type", f"org.kubeflow.serving.inference.{half}"),
        ("Ce-Source", "http://localhost:9081/"),
        ("Ce-Time", datetime.now(UTC).isoformat().replace("+00:00", "Z")),  # the logger stamps when it sends
        ("Ce-Inferenceservicename", ISVC),
        ("Ce-Namespace", "models"),
        ("Ce-Component", "predictor"),
        ("Ce-Endpoint", "canary"),
        ("Ce-Metadata", "{}"),
    )
    resp = fetch(sidecar.metrics_url + "/cloudevents", "POST", body, headers)
    return resp.status, resp.body


def seldon_structured(sidecar: Sidecar, half: str, rid: str, body: bytes) -> tuple[int, bytes]:
    """One Seldon event in structured mode (the JSON envelope), its data as base64."""
    envelope = {
        "specversion": "1.0", "id": rid, "type": f"io.seldon.serving.inference.{half}",
        "source": "http://credit-default.models:8000/", "datacontenttype": "application/json",
        "requestid": rid, "modelid": "classifier", "inferenceservicename": ISVC, "namespace": "models",
        "endpoint": "default", "protocol": "v2", "data_base64": base64.b64encode(body).decode(),
    }
    resp = fetch(sidecar.metrics_url + "/cloudevents", "POST", json.dumps(envelope).encode(),
                 (("Content-Type", "application/cloudevents+json"),))
    return resp.status, resp.body


def rows(sidecar: Sidecar, **labels: str) -> float:
    return sidecar.sample("model_rows_total", model=ISVC, **labels)


def test_kserve_binary_pairs_in_and_out_of_order_are_joined_and_analysed(sidecar: Sidecar,
                                                                         model_server: AppServer) -> None:
    before = sidecar.sample("model_exporter_push_joined_total")
    for i in range(4):
        request, response = exchange(model_server, i, f"k{i}")
        halves = [("request", request), ("response", response)]
        if i % 2:
            halves.reverse()  # the logger sends both halves asynchronously: either may come first
        for half, body in halves:
            status, answer = kserve(sidecar, half, f"kserve-{i}", body)
            assert status == 200, answer
    sidecar.wait_sample("model_exporter_push_joined_total", lambda v: v == before + 4, timeout=TIMEOUT_S)
    sidecar.wait_sample("model_prediction_rows_total", lambda v: v == 4 * ROWS, timeout=TIMEOUT_S, model=ISVC,
                        version="canary")
    assert rows(sidecar, version="canary") == 4 * ROWS
    assert sidecar.sample("model_exporter_push_events_total", type="org.kubeflow.serving.inference.request",
                          mode="binary") >= 4
    # the baseline's columns saw the pushed rows, under the pushed exchange's labels
    assert sidecar.sample("model_column_values_total", role="feature", column="income", model=ISVC) == 4 * ROWS
    assert sidecar.sample("model_payload_errors_total", model=ISVC) == 0


def test_seldon_structured_pairs_are_joined(sidecar: Sidecar, model_server: AppServer) -> None:
    before = sidecar.sample("model_exporter_push_joined_total")
    for i in range(2):
        request, response = exchange(model_server, 100 + i, f"s{i}")
        assert seldon_structured(sidecar, "response", f"seldon-{i}", response)[0] == 200
        assert seldon_structured(sidecar, "request", f"seldon-{i}", request)[0] == 200
    sidecar.wait_sample("model_exporter_push_joined_total", lambda v: v == before + 2, timeout=TIMEOUT_S)
    sidecar.wait_sample("model_prediction_rows_total", lambda v: v == 2 * ROWS, timeout=TIMEOUT_S, model=ISVC,
                        version="default")
    assert sidecar.sample("model_exporter_push_events_total", type="io.seldon.serving.inference.response",
                          mode="structured") == 2


def test_a_missing_half_expires_counted_and_the_request_is_still_analysed(sidecar: Sidecar,
                                                                          model_server: AppServer) -> None:
    request, response = exchange(model_server, 200, "lonely")
    assert kserve(sidecar, "request", "lonely-request", request)[0] == 200
    assert kserve(sidecar, "response", "lonely-response", response)[0] == 200
    # push.ttl is 1s: the sweep expires both; the request's features are analysed without predictions
    sidecar.wait_sample("model_exporter_push_unmatched_total", lambda v: v == 1, timeout=TIMEOUT_S,
                        half="request", reason="expired")
    sidecar.wait_sample("model_exporter_push_unmatched_total", lambda v: v == 1, timeout=TIMEOUT_S,
                        half="response", reason="expired")
    sidecar.wait_sample("model_exporter_push_cache_entries", lambda v: v == 0, timeout=TIMEOUT_S)
    assert sidecar.sample("model_exporter_push_cache_bytes") == 0


def test_malformed_and_oversized_events_get_4xx_and_are_counted(sidecar: Sidecar) -> None:
    status, body = kserve(sidecar, "request", "big", b"x" * (64 * 1024 + 1))
    assert status == 413 and b"larger than 65536 bytes" in body
    resp = fetch(sidecar.metrics_url + "/cloudevents", "POST", b"{}", (("Content-Type", "application/json"),))
    assert resp.status == 400 and b"not a CloudEvent: expected ce-specversion" in resp.body
    resp = fetch(sidecar.metrics_url + "/cloudevents", "POST", b"{}",
                 (("Content-Type", "application/json"), ("Ce-Specversion", "1.0"), ("Ce-Id", "f1"),
                  ("Ce-Source", "seldon"), ("Ce-Type", "io.seldon.serving.feedback")))
    assert resp.status == 400 and b"'io.seldon.serving.feedback' is not an inference event" in resp.body
    assert sidecar.sample("model_exporter_push_rejected_total", reason="too_large") == 1
    assert sidecar.sample("model_exporter_push_rejected_total", reason="missing_attribute") == 1
    assert sidecar.sample("model_exporter_push_rejected_total", reason="unsupported_type") == 1
    # the port still answers after a refused body
    assert fetch(sidecar.metrics_url + "/-/healthy").status == 200


def test_the_exposition_passes_promtool(sidecar: Sidecar, promtool: str) -> None:
    code, output = promtool_check_metrics(promtool, sidecar.metrics_text())
    assert code == 0, output


def test_labels_join_pushed_predictions_by_the_event_id(sidecar: Sidecar, model_server: AppServer) -> None:
    """Payloads without an id of their own: the rows take the event's id (`ce-id:i`), which POST /feedback names."""
    request, response = exchange(model_server, 300, "unused")
    doc = json.loads(request)
    del doc["id"]
    request = json.dumps(doc).encode()
    resp = fetch(model_server.url + INFER, "POST", request, (("Content-Type", "application/json"),))
    answer_doc = json.loads(resp.body)
    del answer_doc["id"]  # the demo server makes one up; a server that does not
    response = json.dumps(answer_doc).encode()
    assert kserve(sidecar, "request", "kserve-labelled", request)[0] == 200
    assert kserve(sidecar, "response", "kserve-labelled", response)[0] == 200
    before = sidecar.sample("model_labels_total", outcome="matched")
    # the worker must hold the predictions before their labels come
    sidecar.wait_sample("model_exporter_push_joined_total", lambda v: v >= 1, timeout=TIMEOUT_S)
    sidecar.wait_sample("model_exporter_queue_depth", lambda v: v == 0, timeout=TIMEOUT_S)
    labels = "\n".join(json.dumps({"id": f"kserve-labelled:{i}", "label": 1}) for i in range(ROWS))
    answer = fetch(sidecar.metrics_url + "/feedback", "POST", labels.encode(), (("Content-Type", "application/x-ndjson"),))
    assert answer.status == 200, answer.body
    sidecar.wait_sample("model_labels_total", lambda v: v == before + ROWS, timeout=TIMEOUT_S, outcome="matched")
    # the rows were placed by the response's ce-time, now: in the 5m window, not late
    assert sidecar.sample("model_window_late_rows_total", window="5m") == 0
