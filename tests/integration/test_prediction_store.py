"""The prediction store end to end: the sidecar from its CLI proxying the demo model server with
prediction_log on; the log it writes becomes a baseline (`baseline build traffic.predlog`), and a
full disk (a path linked to /dev/full: the kernel answers every write with ENOSPC) costs the log,
counted, never a request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from harness import Sidecar, fetch, run_cli, start_sidecar, sum_samples
from stand_in import AppServer

from exporter.baseline.load import load_baseline
from exporter.demo.model_server import FEATURES, MODEL_NAME, make_app
from exporter.demo.traffic import build_infer_request, sample_rows
from exporter.predlog import iter_records

pytestmark = pytest.mark.integration

INFER = f"/v2/models/{MODEL_NAME}/infer"
REQUESTS = 30
ROWS = 20
TIMEOUT_S = 30.0
JSON_HEADERS = (("Content-Type", "application/json"),)


@pytest.fixture(scope="module")
def model_server() -> Iterator[AppServer]:
    server = AppServer(make_app(load_seconds=0)).start()
    yield server
    server.stop()


def send(sidecar: Sidecar, model_server: AppServer, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(REQUESTS):
        body = json.dumps(build_infer_request(sample_rows(rng, ROWS, drifted=False), f"req-{i}")).encode()
        headers = (*JSON_HEADERS, ("X-Request-Id", f"req-{i}"))
        via = fetch(sidecar.proxy_url + INFER, "POST", body, headers)
        direct = fetch(model_server.url + INFER, "POST", body, JSON_HEADERS)
        assert (via.status, via.body) == (200, direct.body)


def wait_for(sidecar: Sidecar, name: str, value: float, **labels: str) -> list[object]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        samples = sidecar.metrics()
        if sum_samples(samples, name, **labels) == value:
            return samples
        if time.monotonic() >= deadline:
            seen = [(s.name, s.labels, s.value) for s in samples if s.name.startswith("model_exporter_prediction_log")]
            raise AssertionError(f"{name}{labels} != {value} within {TIMEOUT_S}s: {seen}")
        time.sleep(0.1)


def test_proxied_traffic_becomes_the_next_baseline(tmp_path: Path, model_server: AppServer) -> None:
    log = tmp_path / "traffic.predlog"
    config = {"prediction_log": {"path": str(log), "redact": ["$.inputs[0].data"]}}
    sidecar = start_sidecar(tmp_path / "sidecar", model_server.url, config)
    try:
        send(sidecar, model_server, seed=3)
        samples = wait_for(sidecar, "model_exporter_prediction_log_records_total", REQUESTS)
        assert sum_samples(samples, "model_exporter_prediction_log_bytes_total") == log.stat().st_size
        assert sum_samples(samples, "model_exporter_prediction_log_dropped_total") == 0
    finally:
        sidecar.stop()
    records = list(iter_records(str(log)))
    assert [r.id for r in records] == [f"req-{i}" for i in range(REQUESTS)]
    assert all(r.status == 200 and r.route == INFER and r.duration is not None for r in records)
    assert all(r.response is not None and b'"outputs"' in r.response.data for r in records)
    redacted = FEATURES[0].name  # the first input tensor's values are redacted
    assert all(set(json.loads(r.request.data)["inputs"][0]["data"]) == {"[REDACTED]"} for r in records if r.request)

    out = tmp_path / "next-baseline.json"
    built = run_cli("baseline", "build", str(log), "-o", str(out), "--exclude", redacted)
    assert built.returncode == 0, built.stderr
    baseline = load_baseline(str(out))
    assert baseline.source.rows == REQUESTS * ROWS
    names = {c.name for c in baseline.columns}
    assert {f.name for f in FEATURES[1:]} <= names


def test_a_full_disk_costs_the_log_not_the_traffic(tmp_path: Path, model_server: AppServer) -> None:
    log = tmp_path / "traffic.predlog"
    log.symlink_to("/dev/full")
    sidecar = start_sidecar(tmp_path / "sidecar", model_server.url, {"prediction_log": {"path": str(log)}})
    try:
        send(sidecar, model_server, seed=4)  # every answer 200 and byte-identical to the model server's
        samples = wait_for(sidecar, "model_exporter_prediction_log_dropped_total", REQUESTS, reason="disk_full")
        assert sum_samples(samples, "model_exporter_prediction_log_records_total") == 0
        assert sum_samples(samples, "model_requests_total", code="200", route="/v2/models/{model}/infer") == REQUESTS
    finally:
        sidecar.stop()
