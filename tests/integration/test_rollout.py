"""Rollouts lose nothing: on SIGTERM the sidecar leaves the load balancer, keeps serving, then drains."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest
from harness import SidecarFactory, fetch, wait_until
from stand_in import StandIn

DELAY_S = 2.0
GRACE_S = 6.0


def test_sigterm_turns_readiness_off_serves_through_the_delay_and_drains(sidecar_factory: SidecarFactory,
                                                                          stand_in: StandIn) -> None:
    sidecar = sidecar_factory(config={"upstream": {"url": stand_in.url, "health": {"interval": "0.2s"}},
                                      "shutdown": {"delay": f"{DELAY_S}s", "grace_period": f"{GRACE_S}s"}})
    assert wait_until(lambda: fetch(sidecar.metrics_url + "/-/ready").status == 200, timeout=10)
    outcomes: list[tuple[float, str]] = []  # (time, "ok" | error) of a client looping new connections
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                status = fetch(sidecar.proxy_url + "/v2/health/ready", timeout=5).status
                outcomes.append((time.monotonic(), "ok" if status == 200 else f"HTTP {status}"))
            except OSError as exc:
                outcomes.append((time.monotonic(), type(exc).__name__))
            time.sleep(0.02)

    slow: dict[str, object] = {}

    def slow_request() -> None:  # in flight at SIGTERM, done after the delay, within the grace period
        try:
            resp = fetch(sidecar.proxy_url + "/slow?delay=4", timeout=20)
            slow["status"], slow["body"] = resp.status, resp.body
        except OSError as exc:
            slow["error"] = repr(exc)

    looping = threading.Thread(target=client, daemon=True)
    looping.start()
    in_flight = threading.Thread(target=slow_request, daemon=True)
    in_flight.start()
    time.sleep(0.5)
    sent = time.monotonic()
    sidecar.proc.send_signal(signal.SIGTERM)
    assert wait_until(lambda: fetch(sidecar.metrics_url + "/-/ready").status == 503, timeout=1.0)
    time.sleep(DELAY_S - 0.5)
    stop.set()
    looping.join(10)
    during = [what for t, what in outcomes if sent <= t <= sent + DELAY_S - 0.5]
    assert during and set(during) == {"ok"}, f"during the delay: {sorted(set(during))}"
    in_flight.join(20)
    assert slow == {"status": 200, "body": b"slow done\n"}, slow
    sidecar.proc.wait(GRACE_S + 5)
    assert sidecar.proc.returncode == 0
    assert time.monotonic() - sent >= 3.4  # it waited for the slow request (due 3.5 s after SIGTERM)


def test_a_restart_with_a_state_dir_keeps_the_windows(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Stop the sidecar cleanly and start a new one on the same state_dir: the 1h window is not blind."""
    import numpy as np
    from harness import start_sidecar
    from stand_in import AppServer

    from exporter.demo.model_server import MODEL_NAME, make_app
    from exporter.demo.traffic import build_infer_request, sample_rows
    from exporter.demo.training import build_demo_baseline
    baseline = build_demo_baseline(tmp_path_factory.mktemp("state-baseline"))
    server = AppServer(make_app(load_seconds=0)).start()
    config = {"upstream": {"url": server.url}, "baseline": str(baseline), "state_dir": str(tmp_path / "state"),
              "model": {"name": MODEL_NAME, "version": "1"}}
    try:
        first = start_sidecar(tmp_path_factory.mktemp("state-1"), None, config)
        first.wait_analysis()
        columns = sample_rows(np.random.default_rng(3), 120, drifted=False)
        resp = fetch(first.proxy_url + f"/v2/models/{MODEL_NAME}/infer", "POST",
                     json.dumps(build_infer_request(columns, "r1")).encode(), [("Content-Type", "application/json")])
        assert resp.status == 200
        assert wait_until(lambda: first.sample("model_window_rows", window="1h") == 120, timeout=20)
        first.stop()
        assert (tmp_path / "state" / "analysis-state.json").exists()

        second = start_sidecar(tmp_path_factory.mktemp("state-2"), None, config)
        try:
            second.wait_analysis()
            assert second.sample("model_window_rows", window="1h") == 120
            assert second.sample("model_rows_total") == 120  # a clean stop: counters carry on too
            assert second.sample("model_exporter_state_restored") == 1
        finally:
            second.stop()
    finally:
        server.stop()
