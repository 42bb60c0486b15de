"""`model-exporter batch` from its CLI: exit statuses, a real Pushgateway scraped by a real Prometheus, the textfile.

The data are the demo's training distributions (clean) and their drifted variant, written as
Parquet, CSV, JSON Lines and a prediction log; the baseline is the demo's.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from harness import REPO_ROOT, free_port, promtool_check_metrics, run_cli, stop_process, wait_until
from prometheus_client.parser import text_string_to_metric_families

from exporter.demo.model_server import MODEL_NAME, make_app
from exporter.demo.traffic import build_infer_request, sample_rows
from exporter.predlog import Body, PredictionRecord, encode

pytestmark = pytest.mark.integration

ROWS = 3000
TIMEOUT_S = 30.0


def require_pushgateway() -> str:
    """The Debian package installs `prometheus-pushgateway`; upstream's binary is `pushgateway`."""
    for name in ("prometheus-pushgateway", "pushgateway"):
        path = shutil.which(name)
        if path is not None:
            return path
    message = "prometheus-pushgateway not found on PATH (Debian: apt-get install prometheus-pushgateway)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def write_csv(path: Path, columns: dict[str, list[Any]]) -> Path:
    names = list(columns)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(zip(*(columns[n] for n in names)))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from exporter.demo.training import build_demo_baseline

    d = tmp_path_factory.mktemp("batch-data")
    baseline = build_demo_baseline(d)
    # the training file itself: features, predictions and the ground truth, as Parquet
    table = pacsv.read_csv(d / "training.csv")
    pq.write_table(table.slice(0, ROWS), d / "clean.parquet")
    drifted = sample_rows(np.random.default_rng(11), ROWS, drifted=True)
    drifted["request_id"] = [f"r{i}" for i in range(ROWS)]
    clean = sample_rows(np.random.default_rng(12), ROWS, drifted=False)
    jsonl = d / "clean.jsonl"
    with jsonl.open("w") as f:
        for i in range(ROWS):
            f.write(json.dumps({k: v[i] for k, v in clean.items()}) + "\n")
    write_csv(d / "no_income.csv", {k: v for k, v in clean.items() if k != "income"})
    assert table.num_rows >= ROWS and isinstance(table, pa.Table)
    bad = d / "bad.csv"
    bad.write_text("age,income\n41,52000\n39\n")  # row 3 is short
    return {"baseline": baseline, "parquet": d / "clean.parquet", "drifted": write_csv(d / "drifted.csv", drifted),
            "jsonl": jsonl, "no_income": d / "no_income.csv", "bad": bad}


def batch(data: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("batch", *args, "--baseline", str(data["baseline"]), "--model", "credit", timeout=120)


def test_exit_statuses_and_the_json_summary(data: dict[str, Path]) -> None:
    clean = batch(data, str(data["parquet"]), str(data["jsonl"]), "--json")
    assert clean.returncode == 0, clean.stderr
    doc = json.loads(clean.stdout)
    assert doc["records"] == 2 * ROWS and doc["exit_status"] == 0
    assert doc["failed"] == {"drift": [], "missing": [], "out_of_range": [], "schema": []}
    assert doc["drift_columns_scored"] == 9  # six features, two predictions and the label (prior shift)
    assert doc["labels_scored"] == ROWS  # the Parquet file carries the baseline's label column, outcome
    assert 0.6 < doc["performance"]["accuracy"] < 0.95
    assert doc["records_per_second"] > 0

    drifted = batch(data, str(data["drifted"]))
    assert drifted.returncode == 1, drifted.stderr
    assert "drift: feature income: wasserstein" in drifted.stdout
    assert "columns not in the baseline (left out; --exclude them to silence this): request_id" in drifted.stdout
    assert drifted.stdout.rstrip().endswith("FAILED: drift or data quality (exit 1)")
    assert "request_id" not in batch(data, str(data["drifted"]), "--exclude", "request_id").stdout

    missing = batch(data, str(data["no_income"]), "--json")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["failed"]["schema"] == ["feature income"]

    bad = batch(data, str(data["parquet"]), str(data["bad"]))
    assert bad.returncode == 2
    assert f"model-exporter batch: error: {data['bad']}:3: expected 2 fields as in the header, got 1" in bad.stderr
    absent = batch(data, str(data["parquet"].with_name("absent.parquet")))
    assert absent.returncode == 2 and "absent.parquet: cannot read (no such file)" in absent.stderr
    # no terminal: no progress bar on stderr
    assert clean.stderr == ""
    # results that cannot be delivered: the summary, the error naming the URL, exit 2
    undelivered = batch(data, str(data["jsonl"]), "--push", "http://127.0.0.1:1")
    assert undelivered.returncode == 2
    assert "--push http://127.0.0.1:1: the Pushgateway did not take the metrics" in undelivered.stderr
    assert undelivered.stdout.rstrip().endswith("ERROR: the results were not delivered (exit 2)")


def test_textfile_is_written_atomically_and_reads_back(data: dict[str, Path], tmp_path: Path, promtool: str) -> None:
    out = tmp_path / "textfile"
    out.mkdir()
    result = batch(data, str(data["drifted"]), "--textfile", str(out), "--job", "nightly-scoring")
    assert result.returncode == 1, result.stderr
    [written] = list(out.iterdir())  # no temporary file left behind
    assert written.name == "model_exporter_batch_nightly-scoring.prom"
    text = written.read_text()
    code, output = promtool_check_metrics(promtool, text)
    assert code == 0, output
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    mv = (("model", "credit"), ("version", "unknown"))
    assert samples[("model_batch_success", mv)] == 1
    assert samples[("model_batch_records", mv)] == ROWS
    assert samples[("model_batch_checks_failed", (("check", "drift"), *mv))] >= 2
    assert samples[("model_drift_detected", (("column", "income"), ("method", "wasserstein"), *mv[:1],
                                             ("role", "feature"), *mv[1:], ("window", "batch")))] == 1
    success_time = samples[("model_batch_last_success_timestamp_seconds", mv)]
    assert abs(success_time - time.time()) < 600

    # a failed run says so, and keeps the last good run's results and success time
    failed = batch(data, str(data["bad"]), "--textfile", str(out), "--job", "nightly-scoring")
    assert failed.returncode == 2
    after = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(written.read_text()) for s in f.samples}
    assert after[("model_batch_success", mv)] == 0
    assert after[("model_batch_last_success_timestamp_seconds", mv)] == success_time
    assert after[("model_batch_last_completion_timestamp_seconds", mv)] > success_time
    assert after[("model_batch_records", mv)] == ROWS
    assert len(list(out.iterdir())) == 1


def test_a_prediction_log_is_read_through_the_adapters(data: dict[str, Path], tmp_path: Path) -> None:
    """Bodies (V2 requests and the demo model server's answers) and pre-extracted rows, in one log."""
    from harness import fetch
    from stand_in import AppServer

    server = AppServer(make_app(load_seconds=0)).start()
    try:
        lines = []
        for i in range(4):
            columns = sample_rows(np.random.default_rng(20 + i), 100, drifted=False)
            request = json.dumps(build_infer_request(columns, f"p{i}")).encode()
            resp = fetch(server.url + f"/v2/models/{MODEL_NAME}/infer", "POST", request,
                         (("Content-Type", "application/json"),))
            assert resp.status == 200
            lines.append(encode(PredictionRecord(
                time=time.time(), status=200, model=MODEL_NAME, id=f"p{i}", route=f"/v2/models/{MODEL_NAME}/infer",
                duration=0.01, request=Body(request, "application/json"), response=Body(resp.body, "application/json"))))
    finally:
        server.stop()
    rows = sample_rows(np.random.default_rng(30), 50, drifted=False)
    lines.append(encode(PredictionRecord(time=time.time(), status=200,
                                         features=[{k: v[i] for k, v in rows.items()} for i in range(50)])))
    # a body the adapters cannot read is counted, not analysed
    lines.append(encode(PredictionRecord(time=time.time(), status=200, route=f"/v2/models/{MODEL_NAME}/infer",
                                         request=Body(b"{not json", "application/json"),
                                         response=Body(b"{}", "application/json"))))
    log = tmp_path / "capture.predlog"
    log.write_bytes(b"".join(lines))
    result = batch(data, str(log), "--json")
    assert result.returncode in (0, 1), result.stderr
    doc = json.loads(result.stdout)
    assert doc["records"] == 450
    assert doc["payload_errors"] == {"request invalid_json": 1, "response unsupported_shape": 1}
    broken = tmp_path / "broken.predlog"
    broken.write_bytes(lines[0] + b'{"v": 1, "time": "yesterday"}\n')
    result = batch(data, str(broken))
    assert result.returncode == 2 and f"{broken}:2" in result.stderr, result.stderr


# ---------------------------------------------------------------- Pushgateway + Prometheus


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Pushgateway and a Prometheus scraping it every second (honor_labels: the pushed job and instance stay)."""
    from bundle_support import require_tool

    pushgateway = require_pushgateway()
    prometheus = require_tool("prometheus")
    d = tmp_path_factory.mktemp("push-stack")
    pg_port, prom_port = free_port(), free_port()
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": [{
        "job_name": "pushgateway", "honor_labels": True,
        "static_configs": [{"targets": [f"127.0.0.1:{pg_port}"]}]}]}
    (d / "prometheus.yml").write_text(yaml.safe_dump(config))
    with (d / "pushgateway.log").open("w") as pg_log, (d / "prometheus.log").open("w") as prom_log:
        # a persistence file of its own: Debian's default (/var/lib/prometheus) would carry groups between runs
        pg = subprocess.Popen([pushgateway, f"--web.listen-address=127.0.0.1:{pg_port}",
                               f"--persistence.file={d / 'pushgateway.data'}"],
                              stdout=subprocess.DEVNULL, stderr=pg_log)
        prom = subprocess.Popen([prometheus, f"--config.file={d / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={d / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=subprocess.DEVNULL, stderr=prom_log, cwd=d)
        try:
            pg_url, prom_url = f"http://127.0.0.1:{pg_port}", f"http://127.0.0.1:{prom_port}"
            assert wait_until(lambda: _get(pg_url + "/-/ready") is not None, timeout=TIMEOUT_S), "Pushgateway not ready"
            assert wait_until(lambda: _get(prom_url + "/-/ready") is not None, timeout=TIMEOUT_S), "Prometheus not ready"
            yield {"pushgateway": pg_url, "prometheus": prom_url}
        finally:
            stop_process(prom)
            stop_process(pg)


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bytes(r.read())
    except OSError:
        return None


def query(prometheus: str, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
    body = _get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    if body is None:
        return {}
    result = json.loads(body)["data"]["result"]
    return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1])
            for r in result}


def wait_query(prometheus: str, expr: str, check: Any) -> dict[tuple[tuple[str, str], ...], float]:
    seen: dict[tuple[tuple[str, str], ...], float] = {}

    def ok() -> bool:
        nonlocal seen
        seen = query(prometheus, expr)
        return bool(check(seen))

    assert wait_until(ok, timeout=TIMEOUT_S, interval=0.25), f"{expr}: {seen}"
    return seen


def test_pushgateway_results_are_scraped_by_prometheus(data: dict[str, Path], stack: dict[str, str]) -> None:
    prom, pg = stack["prometheus"], stack["pushgateway"]
    key = ("--push", pg, "--job", "nightly", "--instance", "eu-1")
    clean = batch(data, str(data["parquet"]), *key)
    assert clean.returncode == 0, clean.stderr
    assert f"wrote {pg} (job 'nightly', instance 'eu-1')" in clean.stdout
    sel = '{job="nightly",instance="eu-1",model="credit"}'
    wait_query(prom, f"model_batch_records{sel}", lambda r: list(r.values()) == [ROWS])
    wait_query(prom, f"model_batch_success{sel}", lambda r: list(r.values()) == [1])
    drift = query(prom, 'model_drift_detected{job="nightly",window="batch"}')
    assert len(drift) == 9 and set(drift.values()) == {0.0}  # features, predictions and the label
    assert query(prom, 'model_performance_score{job="nightly",metric="accuracy",window="batch"}')

    # a drifted run replaces the group (PUT): its drift is what Prometheus sees next
    drifted = batch(data, str(data["drifted"]), *key, "--exclude", "request_id")
    assert drifted.returncode == 1
    wait_query(prom, 'model_batch_checks_failed{check="drift",job="nightly"}', lambda r: r and min(r.values()) >= 2)
    # the drifted file has no predictions and no labels: their series of the clean run are gone
    wait_query(prom, 'model_performance_score{job="nightly"}', lambda r: r == {})
    last_success = query(prom, f"model_batch_last_success_timestamp_seconds{sel}")

    # a failed run (POST): success 0, the last good run's results and success time kept
    failed = batch(data, str(data["bad"]), *key)
    assert failed.returncode == 2
    wait_query(prom, f"model_batch_success{sel}", lambda r: list(r.values()) == [0])
    assert query(prom, f"model_batch_last_success_timestamp_seconds{sel}") == last_success
    assert query(prom, 'model_batch_checks_failed{check="drift",job="nightly"}')
    # other groups are untouched by this job's pushes
    other = batch(data, str(data["jsonl"]), "--push", pg, "--job", "hourly")
    assert other.returncode == 0
    wait_query(prom, 'model_batch_success{job="hourly"}', lambda r: list(r.values()) == [1])
    assert list(query(prom, f"model_batch_success{sel}").values()) == [0]

    # the dashboard's batch panels return data from what the jobs pushed
    board = json.loads((REPO_ROOT / "grafana" / "dashboards" / "drift.json").read_text())
    batch_panels = [p for p in board["panels"] if p["title"].startswith("Batch jobs: ")]
    assert len(batch_panels) == 4
    for panel in batch_panels:
        for target in panel["targets"]:
            expr = target["expr"]
            for name in ("job", "model", "version", "instance"):
                expr = expr.replace(f'"${name}"', '".+"')
            assert query(prom, expr), f"{panel['title']}: {expr} returned nothing"
