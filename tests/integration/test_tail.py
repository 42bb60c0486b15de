"""`run --tail` end to end: the sidecar from its CLI with no upstream, following a prediction log that
is written while it runs, with the demo baseline; the scraped metrics show the traffic and drift rows.
A restart with the offsets in state_dir neither re-reads nor misses a line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import Sidecar, fetch, promtool_check_metrics, start_sidecar, sum_samples
from stand_in import AppServer

from exporter.demo.model_server import FEATURES, MODEL_NAME, make_app
from exporter.demo.traffic import build_infer_request, sample_rows
from exporter.predlog import Body, PredictionRecord, encode

pytestmark = pytest.mark.integration

INFER = f"/v2/models/{MODEL_NAME}/infer"
ROUTE = "/v2/models/{model}/infer"
ROWS_PER_RECORD = 50
ANALYSIS_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from exporter.demo.training import build_demo_baseline

    return build_demo_baseline(tmp_path_factory.mktemp("baseline"))


def records(rng: np.random.Generator, n: int, first: int, drifted: bool = False) -> bytes:
    out = []
    for i in range(first, first + n):
        columns = sample_rows(rng, ROWS_PER_RECORD, drifted)
        body = json.dumps(build_infer_request(columns, f"r{i}")).encode()
        status = 503 if i % 10 == 5 else 200  # every tenth answered 503 (the label policy admits names on 2xx)
        out.append(
            encode(
                PredictionRecord(
                    time=time.time(),
                    status=status,
                    id=f"r{i}",
                    route=INFER,
                    duration=0.002 * (1 + i % 5),
                    request=Body(body, "application/json"),
                )
            )
        )
    return b"".join(out)


def wait_for(sidecar: Sidecar, check: Any, what: str) -> list[Any]:
    deadline = time.monotonic() + ANALYSIS_TIMEOUT_S
    while True:
        samples = sidecar.metrics()
        if check(samples):
            return samples
        if time.monotonic() >= deadline:
            seen = [
                (s.name, s.labels, s.value)
                for s in samples
                if s.name.startswith(("model_exporter_tail", "model_rows", "model_requests"))
            ]
            raise AssertionError(f"{what} not seen within {ANALYSIS_TIMEOUT_S}s; tail and traffic samples: {seen}")
        time.sleep(0.1)


def test_tail_without_upstream_feeds_traffic_and_drift(tmp_path: Path, baseline: Path, promtool: str) -> None:
    log = tmp_path / "traffic.predlog"
    log.write_bytes(b"")  # exists before the start: read from its end, which is its start
    state = tmp_path / "state"
    state.mkdir()
    config = {"tail": {"poll_interval": "50ms"}, "drift": {"min_rows": 50}}
    args = ("--tail", str(log), "--baseline", str(baseline), "--state-dir", str(state))
    sidecar = start_sidecar(tmp_path / "run1", None, config, args)
    rng = np.random.default_rng(13)
    try:
        with open(log, "ab") as out:
            for first in range(0, 20, 5):  # written while the sidecar runs, a few records at a time
                out.write(records(rng, 5, first))
                out.flush()
                time.sleep(0.05)
            out.write(b'{"time": 1, "status": "ok"}\n')  # malformed: counted, logged, skipped
        samples = wait_for(
            sidecar,
            lambda s: (
                sum_samples(s, "model_rows_total") == 20 * ROWS_PER_RECORD  # the 503s too, as when proxied
                and sum_samples(s, "model_exporter_tail_malformed_lines_total") == 1
            ),
            "20 records of 50 rows and one malformed line",
        )
        source = {"source": str(log)}
        assert sum_samples(samples, "model_exporter_tail_lines_total", **source) == 21
        assert sum_samples(samples, "model_exporter_tail_records_total", shape="predlog", **source) == 20
        assert sum_samples(samples, "model_requests_total", route=ROUTE, code="200", model=MODEL_NAME) == 18
        assert sum_samples(samples, "model_requests_total", route=ROUTE, code="503", model=MODEL_NAME) == 2
        # latency from the record's duration: 0.002 .. 0.010 s
        assert sum_samples(samples, "model_request_duration_seconds_count", route=ROUTE) == 20
        assert sum_samples(samples, "model_request_duration_seconds_bucket", route=ROUTE, le="0.01") == 20
        assert sum_samples(samples, "model_request_duration_seconds_bucket", route=ROUTE, le="0.005") == 8
        assert not [s for s in samples if s.name == "model_upstream_up"], "no upstream: nothing to be up"
        drift = [s for s in samples if s.name == "model_drift_score" and s.labels["window"] == "5m"]
        assert {s.labels["column"] for s in drift} >= {f.name for f in FEATURES}
        assert sum_samples(samples, "model_exporter_tail_lag_bytes", **source) == 0
        assert "traffic.predlog:21: field 'status'" in sidecar.stderr()
        code, output = promtool_check_metrics(promtool, sidecar.metrics_text())
        assert code == 0, output
    finally:
        sidecar.stop()

    # down: five more records arrive; a restart reads exactly those (offsets in state_dir)
    with open(log, "ab") as out:
        out.write(records(rng, 5, 20))
    offsets = json.loads((state / "tail-offsets.json").read_text())
    assert offsets["files"][0]["offset"] < log.stat().st_size
    again = start_sidecar(tmp_path / "run2", None, config, args)
    try:
        samples = wait_for(
            again,
            lambda s: sum_samples(s, "model_exporter_tail_records_total") == 5,
            "the five records written while down",
        )
        time.sleep(0.5)  # and nothing more comes: no record of the first run is read twice
        samples = again.metrics()
        assert sum_samples(samples, "model_exporter_tail_records_total") == 5
        assert sum_samples(samples, "model_exporter_tail_malformed_lines_total") == 0
        assert sum_samples(samples, "model_requests_total", route=ROUTE) == 5
    finally:
        again.stop()


def test_tail_beside_the_proxy(tmp_path: Path) -> None:
    """With --upstream too: proxied and tailed exchanges in the same metrics, the proxy unaffected."""
    server = AppServer(make_app(load_seconds=0)).start()
    log = tmp_path / "offline.predlog"
    log.write_bytes(b"")
    sidecar = start_sidecar(tmp_path / "run", server.url, {"tail": {"poll_interval": "50ms"}}, ("--tail", str(log)))
    try:
        rng = np.random.default_rng(5)
        with open(log, "ab") as out:
            out.write(records(rng, 10, 0))
        body = json.dumps(build_infer_request(sample_rows(rng, 3, False), "p")).encode()
        for _ in range(5):
            response = fetch(sidecar.proxy_url + INFER, "POST", body, (("Content-Type", "application/json"),))
            assert response.status == 200
        samples = wait_for(
            sidecar,
            lambda s: sum_samples(s, "model_rows_total") == 10 * ROWS_PER_RECORD + 5 * 3,
            "10 tailed records of 50 rows and 5 proxied requests of 3",
        )
        assert sum_samples(samples, "model_requests_total", route=ROUTE) == 15
        assert sum_samples(samples, "model_upstream_up") == 1
        assert sum_samples(samples, "model_exporter_tail_records_total") == 10
    finally:
        sidecar.stop()
        server.stop()
