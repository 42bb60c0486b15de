"""The end-to-end stack: demo model server, two sidecars, Prometheus, Alertmanager, a webhook.

Everything runs on 127.0.0.1 from a temporary directory. Prometheus and Alertmanager get
test copies of the shipped configs, derived programmatically (the shipped files stay the
source; see `copy_rules`, `prometheus_config` and `alertmanager_config` for each
transformation and why).
"""

from __future__ import annotations

import json
import math
import operator
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import yaml
from aiohttp import web
from bundle_support import ALERTMANAGER, PROMETHEUS
from harness import Sidecar, cli_env, fetch, free_port, start_sidecar, stop_process, wait_until
from stand_in import AppServer

from exporter.demo.model_server import FEATURES_BY_NAME, MODEL_NAME, MODEL_VERSION, NumericFeature, predict
from exporter.demo.traffic import Columns, build_infer_request, sample_rows

STARTUP_TIMEOUT_S = 30.0
ANALYSIS_TIMEOUT_S = 180.0  # the nice-19 analysis worker gets little CPU on a busy machine
# Scrapes every 3 s, rules every 1 s. Not a 1 s scrape: Prometheus caps scrape_timeout at the
# interval, and a sidecar's /metrics waits up to 1 s for its analysis worker (nice 19, so slow
# while the test's traffic keeps a small machine busy); a 1 s timeout fails some scrapes,
# which marks every series stale (the drift alerts flap) and fires ModelExporterDown.
SCRAPE_INTERVAL = "3s"
EVALUATION_INTERVAL = "1s"
FOR_DURATION = "1s"     # every alert's `for:` in the test copy of the rules

# The sidecars' config: windows and a minimum score size fit for a short test (the alert
# rules' own floor, model_window_rows >= 500, stays as shipped), and a fast readiness probe
# so that stopping the model server shows within a second.
SIDECAR_CONFIG: dict[str, Any] = {
    "upstream": {"connect_timeout": "1s", "read_timeout": "10s",
                 "health": {"interval": "0.5s", "timeout": "1s"}},
    "drift": {"min_rows": 100, "windows": {"5m": "5m", "1h": "1h"}},
    # the demo model server's stand-in LLM: its tokens cost something, so the cost panel has data
    "llm": {"currency": "USD", "prices": {MODEL_NAME: {"prompt": 0.5, "completion": 1.5}}},
    # ground truth: scores from 100 labels; fairness by region; the labels are drawn from the
    # model's own probabilities (calibrated), judged on the test's few hundred labels
    "performance": {"min_labels": 100, "segments": ["region"], "max_calibration_error": 0.1},
}

DRIFTED_COLUMN = "income"
INCOME_SHIFT_STDS = 1.5


# -- test copies of the shipped configs ---------------------------------------------------


def copy_rules(source: Path, target: Path) -> list[Path]:
    """Copy prometheus/rules/*.yml into `target`, with these transformations only:

    - every alert's `for:` becomes FOR_DURATION (1s): the shipped 1m–30m would outlast the test;
      an alert still goes through pending before firing;
    - a group's own `interval:` (none is set today) is dropped, so the global evaluation
      interval (1s) applies.

    Expressions and range windows stay as shipped: rate()/increase() over 5m..3d and
    quantile_over_time() over 6h all answer from the minute of history the test has (they need
    two samples, not a full window), and the week-ago rule stays empty here as it does in any
    Prometheus younger than a week. The drift and quality alerts keep their floor of 500 rows
    per window: the test sends enough rows instead of lowering it.
    """
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            group.pop("interval", None)
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = FOR_DURATION
        out = target / path.name
        out.write_text(f"# Test copy of prometheus/rules/{path.name} (tests/e2e/e2e_stack.py: copy_rules)\n"
                       + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        written.append(out)
    return written


def prometheus_config(source: Path, sidecars: Sequence[str], alertmanager: str, prometheus: str) -> dict[str, Any]:
    """The shipped prometheus.yml with:

    - scrape_interval 3s with scrape_timeout 3s, evaluation_interval 1s (shipped: 15s, default
      timeout 10s, 30s): see SCRAPE_INTERVAL for why not 1s;
    - the `model-exporter` job's targets replaced by the sidecars' metrics addresses (the job
      name stays: the rules select `up{job="model-exporter"}`);
    - the Alertmanager target, and the `prometheus`/`alertmanager` self-scrape targets, pointed
      at the test instances on loopback;
    - rule_files unchanged (`rules/*.yml`, relative to the config file: the test copy of the
      rules lies next to it).
    """
    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    config["global"]["scrape_interval"] = SCRAPE_INTERVAL
    config["global"]["scrape_timeout"] = SCRAPE_INTERVAL
    config["global"]["evaluation_interval"] = EVALUATION_INTERVAL
    (am,) = config["alerting"]["alertmanagers"]
    am["static_configs"] = [{"targets": [alertmanager]}]
    targets = {"model-exporter": list(sidecars), "prometheus": [prometheus], "alertmanager": [alertmanager]}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(targets), f"prometheus.yml jobs changed: {sorted(jobs)}; update the e2e test copy"
    for name, job in jobs.items():
        job["static_configs"] = [{"targets": targets[name]}]
    return config  # type: ignore[no-any-return]


def alertmanager_config(source: Path, webhook: str) -> dict[str, Any]:
    """The shipped alertmanager.yml with:

    - group_wait and group_interval 1s on the root route and on every route that sets its own
      (shipped: 10s–30s and 5m), so a notification follows a firing alert within seconds;
    - every webhook URL pointed at the test's receiver, at `/<receiver name>` so the test sees
      which receiver (route) a notification took.

    Routes, matchers, grouping, repeat intervals and inhibit rules stay as shipped.
    """
    config = yaml.safe_load(source.read_text(encoding="utf-8"))

    def shorten(route: dict[str, Any], root: bool) -> None:
        for key in ("group_wait", "group_interval"):
            if root or key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            shorten(child, False)

    shorten(config["route"], True)
    for receiver in config["receivers"]:
        hooks = receiver.get("webhook_configs")
        assert hooks, f"receiver {receiver['name']} has no webhook_configs; the e2e test cannot observe it"
        for hook in hooks:
            hook["url"] = f"{webhook}/{receiver['name']}"
    return config  # type: ignore[no-any-return]


# -- processes --------------------------------------------------------------------------


@dataclass
class Process:
    """An external process with its output in log files."""

    name: str
    proc: subprocess.Popen[bytes]
    log_dir: Path
    argv: list[str]

    def output(self) -> str:
        return "".join((self.log_dir / f).read_text(errors="replace") for f in ("stdout.log", "stderr.log")
                       if (self.log_dir / f).exists())

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)


def spawn(name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> Process:
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "stdout.log", "wb") as out, open(log_dir / "stderr.log", "wb") as err:
        proc = subprocess.Popen(argv, cwd=log_dir, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
    return Process(name, proc, log_dir, argv)


def start_on_free_port(name: str, argv_for: Callable[[int], list[str]], log_dir: Path,
                       ready: Callable[[int], bool]) -> tuple[Process, int]:
    """Start a server on a free loopback port; retry when the port was taken meanwhile."""
    for attempt in range(3):
        port = free_port()
        process = spawn(name, argv_for(port), log_dir / f"try{attempt}")
        ok = wait_until(partial(_exited_or_ready, process, ready, port), STARTUP_TIMEOUT_S, 0.1)
        if ok and process.running():
            return process, port
        process.stop()
        if "address already in use" in process.output().lower() and attempt < 2:
            continue
        raise AssertionError(f"{name} did not become ready within {STARTUP_TIMEOUT_S}s\n"
                             f"argv: {' '.join(process.argv)}\noutput:\n{process.output()[-5000:]}")
    raise AssertionError("unreachable")


def http_ok(url: str) -> bool:
    try:
        return fetch(url, timeout=1.0).status == 200
    except OSError:
        return False


def _not_ok(url: str) -> bool:
    return not http_ok(url)


def _exited_or_ready(process: Process, ready: Callable[[int], bool], port: int) -> bool:
    return not process.running() or ready(port)


def start_model_server(log_dir: Path) -> tuple[Process, str]:
    """`python -m exporter.demo.model_server --port 0 --load-seconds 0`; the port it bound from its stdout."""
    argv = [sys.executable, "-m", "exporter.demo.model_server", "--port", "0", "--load-seconds", "0"]
    process = spawn("model server", argv, log_dir, env=cli_env())
    pattern = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")

    def bound() -> str | None:
        match = pattern.search(process.output())
        return match.group(1) if match else None

    url = wait_until(lambda: bound() or not process.running(), STARTUP_TIMEOUT_S, 0.1)
    if not isinstance(url, str) or not http_ok(url + "/v2/health/ready"):
        process.stop()
        raise AssertionError(f"demo model server did not start\n{process.output()[-5000:]}")
    return process, url


# -- the webhook receiver ---------------------------------------------------------------


@dataclass
class Notification:
    receiver: str  # the path it was posted to: the Alertmanager receiver's name
    received: float  # time.monotonic()
    body: dict[str, Any]


class WebhookReceiver(AppServer):
    """Records Alertmanager's webhook POSTs; aiohttp on 127.0.0.1 in a background thread."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self._lock = threading.Lock()
        app = web.Application()
        app.router.add_post("/{receiver}", self._receive)
        super().__init__(app)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.notifications.append(Notification(request.match_info["receiver"], time.monotonic(), body))
        return web.Response(text="ok\n")

    def alerts(self, alertname: str | None = None, status: str | None = "firing") -> list[tuple[str, dict[str, Any]]]:
        """(receiver, alert) for every alert in every notification received so far."""
        with self._lock:
            notifications = list(self.notifications)
        return [(n.receiver, alert) for n in notifications for alert in n.body.get("alerts", [])
                if (alertname is None or alert["labels"].get("alertname") == alertname)
                and (status is None or alert["status"] == status)]

    def summary(self) -> str:
        with self._lock:
            notifications = list(self.notifications)
        lines = [f"{n.receiver}: " + ", ".join(
            f"{a['status']} {a['labels'].get('alertname')}{{{a['labels'].get('column', '')}@{a['labels'].get('instance', '')}}}"
            for a in n.body.get("alerts", [])) for n in notifications]
        return "\n".join(lines) or "(no notifications)"


# -- HTTP APIs --------------------------------------------------------------------------


def get_json(url: str, **params: Any) -> Any:
    """GET a JSON API; a list value repeats the parameter, `match` is sent as `match[]`."""
    query = urlencode({("match[]" if k == "match" else k): v for k, v in params.items()}, doseq=True)
    resp = fetch(url + (f"?{query}" if query else ""), timeout=10.0)
    body = json.loads(resp.body)
    assert resp.status == 200, f"GET {url} {params}: HTTP {resp.status}: {body}"
    return body


class PrometheusAPI:
    def __init__(self, url: str) -> None:
        self.url = url

    def _data(self, path: str, **params: Any) -> Any:
        body = get_json(self.url + path, **params)
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        return self._data("/api/v1/query", **params)["result"]  # type: ignore[no-any-return]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self._data("/api/v1/query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}",
                          step=str(step))["result"]  # type: ignore[no-any-return]

    def label_values(self, label: str, match: str, start: float) -> list[str]:
        return self._data(f"/api/v1/label/{label}/values", match=[match], start=f"{start:.3f}")  # type: ignore[no-any-return]

    def values_by(self, expr: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def rule_iterations(self, group: str) -> float:
        """How many times Prometheus has evaluated a rule group (from its own /metrics)."""
        text = fetch(self.url + "/metrics").body.decode()
        pattern = re.compile(r'^prometheus_rule_group_iterations_total\{rule_group="[^"]*;' + re.escape(group)
                             + r'"\} (\S+)$', re.MULTILINE)
        match = pattern.search(text)
        return float(match.group(1)) if match else 0.0

    def wait_rule_evaluations(self, group: str, n: int = 2, timeout: float = 30.0) -> None:
        """Wait until `group` was evaluated n more times (so everything ingested before now is seen)."""
        start = self.rule_iterations(group)
        assert wait_until(lambda: self.rule_iterations(group) >= start + n, timeout, 0.1), \
            f"rule group {group} not evaluated {n} more times within {timeout}s"


# -- traffic ----------------------------------------------------------------------------


def drifted_rows(rng: np.random.Generator, n: int) -> Columns:
    """Rows from the training distributions, except income shifted up by 1.5 training stds.

    Unlike `sample_rows(drifted=True)`, region keeps its training mix and no data-quality
    faults are injected: exactly one feature drifts.
    """
    columns = sample_rows(rng, n, drifted=False)
    income = FEATURES_BY_NAME[DRIFTED_COLUMN]
    assert isinstance(income, NumericFeature)
    shifted = np.clip(np.asarray(columns[DRIFTED_COLUMN], dtype=float) + INCOME_SHIFT_STDS * income.std,
                      income.low, income.high)
    columns[DRIFTED_COLUMN] = [float(v) for v in shifted]
    return columns


def infer(proxy_url: str, columns: Columns, request_id: str) -> int:
    body = json.dumps(build_infer_request(columns, request_id)).encode()
    resp = fetch(f"{proxy_url}/v2/models/{MODEL_NAME}/infer", "POST", body, [("Content-Type", "application/json")])
    return resp.status


def outcomes(rng: np.random.Generator, columns: Columns, request_id: str) -> list[dict[str, Any]]:
    """Feedback records for a request's rows: outcomes drawn from the demo model's probabilities."""
    probability = predict({k: np.asarray(v) for k, v in columns.items()})
    truth = rng.random(probability.size) < probability
    return [{"id": f"{request_id}:{j}", "label": int(y), "value": 100.0 * int(y)} for j, y in enumerate(truth)]


def finite(value: str) -> bool:
    return not math.isnan(float(value))


# -- the stack --------------------------------------------------------------------------

STABLE_NUMERIC = ("age", "credit_score", "debt_ratio", "tenure_months")
ROWS_PER_REQUEST = 60
LLM_BATCHES = (2, 2, 2)  # streamed chat completions per sidecar between scrapes
BATCHES = (1, 3, 4, 4)  # requests per sidecar between scrapes: 12 × 60 = 720 rows, above the alerts' floor of 500


@dataclass
class Stack:
    root: Path
    model_server: Process
    model_url: str
    sidecars: list[Sidecar]
    prometheus: Process
    prom: PrometheusAPI
    alertmanager: Process
    alertmanager_url: str
    webhook: WebhookReceiver
    started: float  # unix time, before the first scrape
    rows_sent: dict[str, int] = field(default_factory=dict)  # sidecar instance → rows
    _done: set[str] = field(default_factory=set)

    @property
    def instances(self) -> list[str]:
        """The sidecars' `instance` labels (their metrics addresses)."""
        return [s.metrics_url.removeprefix("http://") for s in self.sidecars]

    def diagnostics(self) -> str:
        parts = [f"webhook notifications:\n{self.webhook.summary()}"]
        for process in (self.model_server, self.prometheus, self.alertmanager):
            parts.append(f"--- {process.name} (running={process.running()}):\n{process.output()[-3000:]}")
        for sidecar in self.sidecars:
            parts.append(f"--- sidecar {sidecar.metrics_url} (running={sidecar.running()}):\n{sidecar.stderr()[-3000:]}")
        return "\n".join(parts)

    def once(self, phase: str, run: Callable[[], None]) -> None:
        if phase not in self._done:
            run()
            self._done.add(phase)

    # -- phase 1: drifted traffic through both sidecars

    def ensure_drift_traffic(self) -> None:
        self.once("traffic", self._send_drift_traffic)

    def _send_drift_traffic(self) -> None:
        # Prometheus must hold each bin counter at 0 before the first row: increase() does not
        # count a series' first sample, so the fleet rule needs to see the counters start.
        income = f'model_column_bin_total{{job="model-exporter", column="{DRIFTED_COLUMN}"}}'
        assert wait_until(lambda: len(self.prom.query(f"count by (instance) ({income})")) == 2, STARTUP_TIMEOUT_S, 0.2), \
            f"Prometheus did not scrape both sidecars' bin counters\n{self.diagnostics()}"
        for sidecar in self.sidecars:
            assert wait_until(partial(http_ok, sidecar.metrics_url + "/-/ready"), STARTUP_TIMEOUT_S, 0.1), \
                f"sidecar {sidecar.metrics_url} not ready\n{self.diagnostics()}"
        # Paced so that Prometheus scrapes the request counters several times while they grow:
        # a labelled series (a route, a status code) appears with its first request, and rate()
        # counts nothing from a series whose only samples were taken after the traffic ended.
        rng = np.random.default_rng(2024)
        sent = 0
        labels: dict[int, list[dict[str, Any]]] = {}  # sidecar index → its rows' true outcomes
        for batch in BATCHES:
            for i in range(sent, sent + batch):
                for index, (sidecar, instance) in enumerate(zip(self.sidecars, self.instances)):
                    rows = drifted_rows(rng, ROWS_PER_REQUEST)
                    status = infer(sidecar.proxy_url, rows, f"e2e-{index}-{i}")
                    assert status == 200, f"infer through {sidecar.proxy_url} answered {status}"
                    self.rows_sent[instance] = self.rows_sent.get(instance, 0) + ROWS_PER_REQUEST
                    labels.setdefault(index, []).extend(outcomes(rng, rows, f"e2e-{index}-{i}"))
            sent += batch
            self.wait_scraped('sum by (instance) (model_requests_total{job="model-exporter", code="200"})', sent)
        # The analysis worker bins rows off the hot path, at nice 19: on a busy machine it
        # runs only when nothing else wants the CPU. Wait until both windows hold every row.
        for sidecar, instance in zip(self.sidecars, self.instances):
            rows = self.rows_sent[instance]
            for window in ("5m", "1h"):
                sidecar.wait_sample("model_window_rows", partial(operator.le, rows), timeout=ANALYSIS_TIMEOUT_S,
                                    window=window)
        # ground truth for every row, once the worker holds the predictions (POST /feedback)
        for index, sidecar in enumerate(self.sidecars):
            resp = fetch(sidecar.metrics_url + "/feedback", "POST", json.dumps(labels[index]).encode(),
                         [("Content-Type", "application/json")])
            assert resp.status == 200, resp.body[:300]
            sidecar.wait_sample("model_labels_total", partial(operator.le, len(labels[index])),
                                timeout=ANALYSIS_TIMEOUT_S, outcome="matched")
        self.wait_scraped('sum by (instance) (model_labels_total{job="model-exporter", outcome="matched"})',
                          len(labels[0]))
        self._send_llm_traffic()

    def _send_llm_traffic(self) -> None:
        """Streamed chat completions through both sidecars to the demo server's stand-in LLM (some
        cut at max_tokens, one error each round), paced across scrapes like the traffic above."""
        sent = 0
        for batch in LLM_BATCHES:
            for index, sidecar in enumerate(self.sidecars):
                for i in range(batch):
                    doc = {"model": MODEL_NAME, "stream": True, "stream_options": {"include_usage": True},
                           "messages": [{"role": "user", "content": f"request {index}-{sent + i}"}]}
                    if i % 2:
                        doc["max_tokens"] = 3  # finish reason `length`
                    resp = fetch(sidecar.proxy_url + "/v1/chat/completions", "POST", json.dumps(doc).encode(),
                                 [("Content-Type", "application/json")])
                    assert resp.status == 200 and resp.body.endswith(b"data: [DONE]\n\n"), resp.body[-300:]
                missing = json.dumps({"model": "missing", "messages": []}).encode()
                resp = fetch(sidecar.proxy_url + "/v1/chat/completions", "POST", missing,
                             [("Content-Type", "application/json")])
                assert resp.status == 404, resp.body[:300]
            sent += batch
            self.wait_scraped('sum by (instance) (model_llm_requests_total{job="model-exporter"})', sent)

    # -- phase 2: the drift alert reaches the webhook

    def ensure_drift_alerting(self) -> None:
        self.ensure_drift_traffic()
        self.once("drift alert", self._wait_drift_alert)

    def drift_alert_keys(self) -> set[tuple[str, str, str]]:
        return {(a["labels"].get("column", ""), a["labels"].get("instance", ""), a["labels"].get("window", ""))
                for _, a in self.webhook.alerts("ModelFeatureDrift")}

    def _wait_drift_alert(self) -> None:
        expected = {(DRIFTED_COLUMN, instance, window) for instance in self.instances for window in ("5m", "1h")}
        assert wait_until(lambda: expected <= self.drift_alert_keys(), 90.0, 0.2), (
            f"ModelFeatureDrift for {DRIFTED_COLUMN} on both sidecars and both windows did not reach the webhook; "
            f"missing {sorted(expected - self.drift_alert_keys())}\n{self.diagnostics()}")

    # -- phase 3: the model server goes away

    def ensure_upstream_down(self) -> None:
        self.ensure_drift_alerting()
        self.once("upstream down", self._stop_upstream)

    def _stop_upstream(self) -> None:
        self.model_server.stop()
        # Requests through the sidecars now fail (the 5xx and upstream-error panels need some),
        # paced across scrapes like the traffic above.
        for sidecar in self.sidecars:
            assert wait_until(partial(_not_ok, sidecar.metrics_url + "/-/ready"), 30.0, 0.1), \
                f"sidecar {sidecar.metrics_url} still ready after the model server stopped"
        sent = 0
        for batch in (1, 2, 2):
            for sidecar in self.sidecars:
                for _ in range(batch):
                    status = fetch(f"{sidecar.proxy_url}/v2/models/{MODEL_NAME}/ready").status
                    assert status >= 500, f"request through {sidecar.proxy_url} with the upstream down answered {status}"
            sent += batch
            self.wait_scraped('sum by (instance) (model_requests_total{job="model-exporter", code=~"5.."})', sent)

    def wait_scraped(self, expr: str, value: float) -> None:
        """Wait until `expr`, summed by instance, is `value` for every sidecar in Prometheus."""
        expected = dict.fromkeys(self.instances, float(value))
        assert wait_until(lambda: self.prom.values_by(expr, "instance") == expected, 30.0, 0.1), \
            f"{expr}: Prometheus has {self.prom.values_by(expr, 'instance')}, expected {expected}\n{self.diagnostics()}"

    def upstream_down_instances(self) -> set[str]:
        return {a["labels"].get("instance", "") for _, a in self.webhook.alerts("ModelUpstreamDown")}


def start_stack(root: Path, binaries: dict[str, str], resources: ExitStack) -> Stack:
    """Start everything; `resources` stops it all (in reverse order) when closed."""
    from exporter.demo.training import build_demo_baseline

    baseline_dir = root / "baseline"
    baseline_dir.mkdir()
    baseline = build_demo_baseline(baseline_dir)

    webhook = WebhookReceiver().start()
    resources.callback(webhook.stop)

    model_server, model_url = start_model_server(root / "model-server")
    resources.callback(model_server.stop)

    sidecars = []
    for name in ("sidecar-a", "sidecar-b"):
        sidecar = start_sidecar(root / name, model_url, SIDECAR_CONFIG,
                                ("--baseline", str(baseline), "--model", MODEL_NAME, "--model-version", MODEL_VERSION))
        resources.callback(sidecar.stop)
        sidecars.append(sidecar)

    am_dir = root / "alertmanager"
    am_dir.mkdir()
    am_config = am_dir / "alertmanager.yml"
    am_config.write_text(yaml.safe_dump(alertmanager_config(ALERTMANAGER / "alertmanager.yml", webhook.url)))
    alertmanager, am_port = start_on_free_port(
        "alertmanager",
        lambda port: [binaries["prometheus-alertmanager"], f"--config.file={am_config}",
                      f"--storage.path={am_dir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                      "--cluster.listen-address=", "--log.level=info"],
        am_dir, lambda port: http_ok(f"http://127.0.0.1:{port}/-/ready"))
    resources.callback(alertmanager.stop)

    prom_dir = root / "prometheus"
    copy_rules(PROMETHEUS / "rules", prom_dir / "rules")
    prom_config = prom_dir / "prometheus.yml"
    instances = [s.metrics_url.removeprefix("http://") for s in sidecars]

    def prometheus_argv(port: int) -> list[str]:
        config = prometheus_config(PROMETHEUS / "prometheus.yml", instances, f"127.0.0.1:{am_port}",
                                        f"127.0.0.1:{port}")
        prom_config.write_text(yaml.safe_dump(config, sort_keys=False))
        return [binaries["prometheus"], f"--config.file={prom_config}", f"--storage.tsdb.path={prom_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=info"]

    started = time.time()
    prometheus, prom_port = start_on_free_port("prometheus", prometheus_argv, prom_dir,
                                               lambda port: http_ok(f"http://127.0.0.1:{port}/-/ready"))
    resources.callback(prometheus.stop)
    return Stack(root, model_server, model_url, sidecars, prometheus, PrometheusAPI(f"http://127.0.0.1:{prom_port}"),
                 alertmanager, f"http://127.0.0.1:{am_port}", webhook, started)


def iter_samples(result: list[dict[str, Any]]) -> Iterator[str]:
    """Every sample value (as Prometheus writes it) of an instant or range query result."""
    for series in result:
        if "value" in series:
            yield series["value"][1]
        for _, value in series.get("values", []):
            yield value
