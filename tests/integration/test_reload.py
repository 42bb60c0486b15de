"""Configuration reload (POST /-/reload, SIGHUP) and `check-config`, against a running sidecar.

A reload replaces config and baseline together only when both are valid; otherwise the old ones
stay in force, the admin endpoint answers 400 with the reason, and
`model_exporter_config_last_reload_successful` drops to 0 until a reload succeeds.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Sidecar, SidecarFactory, fetch, free_port, run_cli, sum_samples, wait_until
from stand_in import AppServer

from exporter.baseline.format import content_sha256
from exporter.demo.model_server import MODEL_NAME, make_app

pytestmark = pytest.mark.integration

INFER = f"/v2/models/{MODEL_NAME}/infer"
JSON_HEADERS = (("Content-Type", "application/json"),)
OK = "model_exporter_config_last_reload_successful"
OK_TIME = "model_exporter_config_last_reload_success_timestamp_seconds"
RESTARTS = "model_exporter_worker_restarts_total"
OK_PIPELINE = "model_exporter_collector_success"
VALUES = "model_column_values_total"
DROPPED = "model_exporter_events_dropped_total"
ANALYSIS_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two valid baselines of the same columns and bins, told apart by their sha256."""
    from exporter.demo.training import build_demo_baseline

    first = build_demo_baseline(tmp_path_factory.mktemp("baseline-a"))
    doc = json.loads(first.read_text())
    doc["created"] = "2020-01-01T00:00:00Z"
    doc.pop("sha256")
    doc["sha256"] = content_sha256(doc)
    second = tmp_path_factory.mktemp("baseline-b") / "baseline-b.json"
    second.write_text(json.dumps(doc))
    return first, second


@pytest.fixture(scope="module")
def model_server() -> Iterator[AppServer]:
    server = AppServer(make_app(load_seconds=0)).start()
    yield server
    server.stop()


def base_config(upstream: str, baseline: Path | str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "upstream": {"url": upstream, "connect_timeout": "1s", "read_timeout": "10s",
                     "health": {"interval": "0.5s", "timeout": "1s"}},
        "drift": {"min_rows": 50},
    }
    if baseline is not None:
        config["baseline"] = str(baseline)
    return config


def rewrite(sidecar: Sidecar, change: dict[str, Any]) -> None:
    """Update top-level keys of the sidecar's config file."""
    config = yaml.safe_load(sidecar.config_path.read_text())
    config.update(change)
    sidecar.config_path.write_text(yaml.safe_dump(config))


def reload(sidecar: Sidecar) -> tuple[int, str]:
    resp = fetch(sidecar.metrics_url + "/-/reload", "POST", b"")
    return resp.status, resp.body.decode(errors="replace")


def baseline_shas(sidecar: Sidecar) -> list[str]:
    return sorted(s.labels["sha256"] for s in sidecar.metrics() if s.name == "model_baseline_info")


def infer_body(rows: int, tag: str) -> bytes:
    values = {"age": 40.0, "income": 58_000.0, "credit_score": 680, "debt_ratio": 0.3, "tenure_months": 60,
              "region": "north"}
    types = {"age": "FP32", "income": "FP32", "credit_score": "INT32", "debt_ratio": "FP32", "tenure_months": "INT32",
             "region": "BYTES"}
    return json.dumps({"id": tag, "inputs": [{"name": k, "shape": [rows], "datatype": types[k], "data": [v] * rows}
                                             for k, v in values.items()]}).encode()


def send(sidecar: Sidecar, model_server: AppServer, rows: int, tag: str) -> None:
    """One infer request through the sidecar; its answer must be the model server's own."""
    body = infer_body(rows, tag)
    via = fetch(sidecar.proxy_url + INFER, "POST", body, JSON_HEADERS)
    direct = fetch(model_server.url + INFER, "POST", body, JSON_HEADERS)
    assert via.status == 200, via.body[:300]
    assert (via.status, via.body) == (direct.status, direct.body)


def wait_values(sidecar: Sidecar, expected: float) -> None:
    """Poll until the income column has counted `expected` values (analysed against a baseline)."""
    sidecar.wait_sample(VALUES, lambda v: v == expected, timeout=ANALYSIS_TIMEOUT_S, role="feature", column="income")


# -- tests --------------------------------------------------------------------------------


def test_invalid_baseline_keeps_the_old_one_until_sighup_brings_a_good_one(
        sidecar_factory: SidecarFactory, model_server: AppServer, baselines: tuple[Path, Path], tmp_path: Path) -> None:
    first, second = baselines
    sha_first = json.loads(first.read_text())["sha256"]
    sha_second = json.loads(second.read_text())["sha256"]
    sidecar = sidecar_factory(upstream=None, config=base_config(model_server.url, first))
    sidecar.wait_analysis()
    assert baseline_shas(sidecar) == [sha_first]
    assert sidecar.sample(OK) == 1
    started_at = sidecar.sample(OK_TIME)
    assert started_at > 0
    send(sidecar, model_server, 10, "before")
    wait_values(sidecar, 10)

    # a baseline path that does not exist: refused, the error names the file
    missing = tmp_path / "no-such-baseline.json"
    rewrite(sidecar, {"baseline": str(missing)})
    status, text = reload(sidecar)
    assert status == 400, text
    assert str(missing) in text, text
    assert sidecar.sample(OK) == 0
    assert sidecar.sample(OK_TIME) == started_at

    # a damaged baseline (edited after sealing): refused, naming the file and the field
    damaged = tmp_path / "damaged.json"
    doc = json.loads(first.read_text())
    doc["columns"][0]["mean"] += 1.0
    damaged.write_text(json.dumps(doc))
    rewrite(sidecar, {"baseline": str(damaged)})
    status, text = reload(sidecar)
    assert status == 400, text
    assert str(damaged) in text and "sha256" in text, text
    assert sidecar.sample(OK) == 0

    # the old baseline is still in force: traffic proxied unchanged and analysed against it
    send(sidecar, model_server, 7, "after-failed-reload")
    wait_values(sidecar, 17)
    assert baseline_shas(sidecar) == [sha_first]
    assert sidecar.running()

    # fixed, and SIGHUP instead of the endpoint
    rewrite(sidecar, {"baseline": str(second)})
    sidecar.proc.send_signal(signal.SIGHUP)
    sidecar.wait_sample(OK, lambda v: v == 1, timeout=10)
    assert sidecar.sample(OK_TIME) > started_at
    assert wait_until(lambda: baseline_shas(sidecar) == [sha_second], timeout=5), baseline_shas(sidecar)
    # same columns and bins: the counters carry over the reload, they do not restart at 0
    assert sidecar.sample(VALUES, role="feature", column="income") == 17
    send(sidecar, model_server, 3, "after-sighup")
    wait_values(sidecar, 20)


def test_changing_listen_is_refused_as_needing_a_restart(sidecar_factory: SidecarFactory,
                                                           model_server: AppServer) -> None:
    sidecar = sidecar_factory(upstream=None, config=base_config(model_server.url), ports_in_config=True)
    sidecar.wait_analysis()
    assert "--listen" not in sidecar.argv
    original = yaml.safe_load(sidecar.config_path.read_text())
    started_at = sidecar.sample(OK_TIME)

    rewrite(sidecar, {"listen": f"127.0.0.1:{free_port()}"})
    status, text = reload(sidecar)
    assert status == 400, text
    assert "listen" in text and "needs a restart" in text, text
    assert sidecar.sample(OK) == 0
    assert sidecar.sample(OK_TIME) == started_at
    # still serving on the port it bound at start
    assert fetch(sidecar.proxy_url + "/v2/health/ready").status == 200

    # a file that is not YAML: refused, naming the file and the line
    sidecar.config_path.write_text("upstream: [unclosed\n")
    status, text = reload(sidecar)
    assert status == 400, text
    assert f"{sidecar.config_path}:" in text and "invalid YAML" in text, text
    assert sidecar.sample(OK) == 0

    sidecar.config_path.write_text(yaml.safe_dump(original))
    status, text = reload(sidecar)
    assert status == 200, text
    assert sidecar.sample(OK) == 1
    assert sidecar.sample(OK_TIME) > started_at


def test_check_config_names_a_bad_baseline_and_accepts_a_good_one(tmp_path: Path, baselines: tuple[Path, Path]) -> None:
    first, _ = baselines
    bad = tmp_path / "bad.yml"
    missing = tmp_path / "missing-baseline.json"
    bad.write_text(yaml.safe_dump(base_config("http://127.0.0.1:8080", missing)))
    result = run_cli("check-config", str(bad))
    assert result.returncode == 2, result
    assert str(missing) in result.stderr, result.stderr

    good_dir = tmp_path / "good"
    good_dir.mkdir()
    (good_dir / "baseline.json").write_bytes(first.read_bytes())
    good = good_dir / "model-exporter.yml"
    # a relative baseline path is relative to the config file, not to the working directory
    good.write_text(yaml.safe_dump(base_config("http://127.0.0.1:8080", "baseline.json")))
    result = run_cli("check-config", str(good))
    assert result.returncode == 0, result
    assert "OK" in result.stdout, result.stdout


def test_reloaded_capture_limit_takes_effect(sidecar_factory: SidecarFactory, model_server: AppServer,
                                             baselines: tuple[Path, Path]) -> None:
    """A reload that reports success must have applied what it read (or refuse it as restart-only)."""
    first, _ = baselines
    config = base_config(model_server.url, first)
    sidecar = sidecar_factory(upstream=None, config={**config, "capture": {"max_body_bytes": 1024}})
    sidecar.wait_analysis()
    body_rows = 40
    assert len(infer_body(body_rows, "big")) > 1024
    send(sidecar, model_server, body_rows, "big-before")
    sidecar.wait_sample(DROPPED, lambda v: v == 1, reason="body_too_large")

    rewrite(sidecar, {"capture": {"max_body_bytes": 1 << 20}})
    status, text = reload(sidecar)
    if status == 400:  # refusing a restart-only setting is fine too, if it says so
        assert "needs a restart" in text, text
        return
    assert status == 200, text
    send(sidecar, model_server, body_rows, "big-after")

    def outcome() -> tuple[float, float] | None:
        samples = sidecar.metrics()
        values = sum_samples(samples, VALUES, role="feature", column="income")
        dropped = sum_samples(samples, DROPPED, reason="body_too_large")
        return (values, dropped) if values or dropped > 1 else None

    seen = wait_until(outcome, timeout=ANALYSIS_TIMEOUT_S)
    assert seen == (body_rows, 1), f"(income values, body_too_large drops) = {seen}: the new limit is not in force"


def test_run_and_check_config_refuse_a_setting_that_does_not_fit_the_baseline(
        tmp_path: Path, baselines: tuple[Path, Path], model_server: AppServer) -> None:
    """The baseline checks run in the worker at start: `run` exits 2 with check-config's message."""
    first, _ = baselines
    config = base_config(model_server.url, first)
    config["listen"], config["metrics_listen"] = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    config["drift"]["columns"] = {"no_such_column": {"method": "psi"}}
    path = tmp_path / "cfg.yml"
    path.write_text(yaml.safe_dump(config))
    checked = run_cli("check-config", str(path))
    ran = run_cli("run", "--config", str(path), timeout=60)
    message = "drift.columns.no_such_column: the baseline has no feature or prediction column 'no_such_column'"
    assert checked.returncode == 2 and message in checked.stderr, checked.stderr
    assert ran.returncode == 2 and message in ran.stderr, ran.stderr


def test_the_proxy_process_maps_no_numpy_or_scipy(sidecar_factory: SidecarFactory, model_server: AppServer,
                                                  baselines: tuple[Path, Path]) -> None:
    """With a baseline and traffic analysed, numpy and scipy live in the worker only."""
    import psutil

    first, _ = baselines
    sidecar = sidecar_factory(upstream=None, config=base_config(model_server.url, first))
    sidecar.wait_analysis()
    workers = psutil.Process(sidecar.proc.pid).children()
    assert len(workers) == 1
    assert "numpy" in Path(f"/proc/{workers[0].pid}/maps").read_text()  # the check can see it where it is
    maps = Path(f"/proc/{sidecar.proc.pid}/maps").read_text()
    assert "numpy" not in maps and "scipy" not in maps


def test_openmetrics_scrape_joins_the_worker_part_before_one_eof(sidecar_factory: SidecarFactory,
                                                                  model_server: AppServer,
                                                                  baselines: tuple[Path, Path]) -> None:
    first, _ = baselines
    sidecar = sidecar_factory(upstream=None, config=base_config(model_server.url, first))
    sidecar.wait_analysis()
    text = sidecar.metrics_text(openmetrics=True)
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    assert "# TYPE model_column_values counter" in text  # rendered by the worker
    assert "# TYPE model_requests counter" in text  # rendered by the proxy
    plain = sidecar.metrics_text()
    assert "# EOF" not in plain and "model_column_values_total{" in plain


def test_a_reload_that_cannot_read_its_baseline_never_blocks_traffic(
        sidecar_factory: SidecarFactory, model_server: AppServer, baselines: tuple[Path, Path],
        tmp_path: Path) -> None:
    """A FIFO baseline (a read that would hang) fails the reload at once; a stuck worker is restarted."""
    import os
    import threading

    first, _ = baselines
    sidecar = sidecar_factory(upstream=None, config=base_config(model_server.url, first))
    sidecar.wait_analysis()
    fifo = tmp_path / "baseline.fifo"
    os.mkfifo(fifo)
    rewrite(sidecar, {"baseline": str(fifo)})
    status, text = reload(sidecar)
    assert status == 400 and "not a regular file" in text, text
    assert sidecar.sample(OK) == 0

    # a worker stuck in the middle of a reload (stopped here): traffic and the admin port go on,
    # the reload fails within its timeout, the worker is restarted with the configuration in force
    rewrite(sidecar, base_config(model_server.url, first))
    import psutil

    worker = psutil.Process(sidecar.proc.pid).children()[0]
    worker.suspend()
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(
        result=fetch(sidecar.metrics_url + "/-/reload", "POST", b"", timeout=60)), daemon=True)
    thread.start()
    for _ in range(10):  # while the reload waits, the proxy and the metrics port answer
        assert fetch(sidecar.proxy_url + "/v2/health/ready").status == 200
        assert fetch(sidecar.metrics_url + "/-/healthy").status == 200
    thread.join(60)
    status, text = outcome["result"].status, outcome["result"].body.decode()
    assert status == 400 and "did not take the new configuration" in text, text
    assert wait_until(lambda: sidecar.sample(RESTARTS) == 1, timeout=20)
    assert wait_until(lambda: sidecar.sample(OK_PIPELINE, collector="pipeline") == 1, timeout=30)
