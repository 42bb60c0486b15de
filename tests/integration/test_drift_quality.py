"""Drift and data quality end to end: the demo model server, its baseline, and the sidecar between.

The demo model server (`exporter.demo.model_server`) runs in a thread; the sidecar runs from its
CLI with `--baseline` built by `exporter.demo.training.build_demo_baseline`. Traffic is drawn
from the training distributions (`exporter.demo.traffic.sample_rows`) with fixed seeds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import (
    Sidecar,
    SidecarFactory,
    fetch,
    metric_snapshot,
    promtool_check_metrics,
    snapshot_diff,
    start_sidecar,
)
from stand_in import AppServer

from exporter.baseline.format import NumericColumn
from exporter.baseline.load import load_baseline
from exporter.demo.model_server import FEATURES, FEATURES_BY_NAME, MODEL_NAME, NumericFeature, make_app
from exporter.demo.traffic import build_infer_request, sample_rows

pytestmark = pytest.mark.integration

INFER = f"/v2/models/{MODEL_NAME}/infer"
JSON_HEADERS = (("Content-Type", "application/json"),)
SCORE = "model_drift_score"
THRESHOLD = "model_drift_threshold"
DETECTED = "model_drift_detected"
WINDOW_ROWS = "model_window_rows"
ANALYSIS_TIMEOUT_S = 20.0  # the worker runs at idle priority: on a busy machine it trails the traffic
QUALITY_PREFIXES = ("model_column_", "model_schema_errors_total")
SIDECAR_CONFIG: dict[str, Any] = {
    "upstream": {"connect_timeout": "1s", "read_timeout": "10s", "health": {"interval": "0.5s", "timeout": "1s"}},
    "drift": {"min_rows": 50},
}
STABLE_ROWS = 400  # 8 requests of 50 rows
INCOME_SHIFT_STDS = 1.5


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from exporter.demo.training import build_demo_baseline

    return build_demo_baseline(tmp_path_factory.mktemp("baseline"))


@pytest.fixture(scope="module")
def model_server() -> Iterator[AppServer]:
    server = AppServer(make_app(load_seconds=0)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def drift_sidecar(tmp_path_factory: pytest.TempPathFactory, model_server: AppServer, baseline: Path) -> Iterator[Sidecar]:
    process = start_sidecar(tmp_path_factory.mktemp("sidecar-drift"), model_server.url, SIDECAR_CONFIG,
                            ("--baseline", str(baseline)))
    process.wait_analysis()
    yield process
    process.stop()


# -- helpers ------------------------------------------------------------------------------


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def send_and_compare(sidecar: Sidecar, model_server: AppServer, body: bytes) -> int:
    """POST an infer body through the sidecar and straight to the model server; same answer both ways."""
    via = fetch(sidecar.proxy_url + INFER, "POST", body, JSON_HEADERS)
    direct = fetch(model_server.url + INFER, "POST", body, JSON_HEADERS)
    assert (via.status, via.body) == (direct.status, direct.body), f"the sidecar changed the answer to {body[:200]!r}"
    assert via.header("Content-Type") == direct.header("Content-Type")
    return via.status


def send_rows(sidecar: Sidecar, model_server: AppServer, columns: dict[str, list[Any]], per_request: int, tag: str) -> int:
    """Send the rows in requests of `per_request` rows; each must succeed. Returns the rows sent."""
    n = len(columns[FEATURES[0].name])
    for start in range(0, n, per_request):
        part = {name: values[start:start + per_request] for name, values in columns.items()}
        status = send_and_compare(sidecar, model_server, dumps(build_infer_request(part, f"{tag}-{start}")))
        assert status == 200
    return n


def wait_rows(sidecar: Sidecar, expected: float, timeout: float = ANALYSIS_TIMEOUT_S) -> list[Any]:
    """Poll until the worker has analysed `expected` rows in all (model_rows_total) and its queue is empty."""
    deadline = time.monotonic() + timeout
    while True:
        samples = sidecar.metrics()
        rows = sum(s.value for s in samples if s.name == "model_rows_total")
        depth = sum(s.value for s in samples if s.name == "model_exporter_queue_depth")
        if rows == expected and depth == 0:
            return samples
        if rows > expected or time.monotonic() >= deadline:
            raise AssertionError(f"model_rows_total = {rows} (queue depth {depth}), expected {expected}")
        time.sleep(0.05)


def rows_total(sidecar: Sidecar) -> float:
    """model_rows_total once the queue is empty (every request sent so far is analysed)."""
    deadline = time.monotonic() + ANALYSIS_TIMEOUT_S
    while True:
        samples = sidecar.metrics()
        if sum(s.value for s in samples if s.name == "model_exporter_queue_depth") == 0:
            return sum(s.value for s in samples if s.name == "model_rows_total")
        assert time.monotonic() < deadline, "the analysis queue did not drain"
        time.sleep(0.05)


def one(samples: list[Any], name: str, **labels: str) -> float:
    """The value of the single sample matching; fails if there is none or more than one."""
    found = [s for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples: {found}"
    return float(found[0].value)


def decision(samples: list[Any], column: str) -> tuple[float, float, float]:
    """The default decision of a feature's 5m window: (detected, its score, its threshold), the same method's."""
    found = [s for s in samples if s.name == DETECTED and s.labels.get("column") == column
             and s.labels.get("role") == "feature" and s.labels.get("window") == "5m"]
    assert len(found) == 1, f"{DETECTED} of {column}: {found}"
    method = found[0].labels["method"]
    score = one(samples, SCORE, role="feature", column=column, window="5m", method=method)
    threshold = one(samples, THRESHOLD, role="feature", column=column, window="5m", method=method)
    assert found[0].value == float(score > threshold)
    return float(found[0].value), score, threshold


def stable_columns(seed: int, n: int) -> dict[str, list[Any]]:
    return sample_rows(np.random.default_rng(seed), n, drifted=False)


def wait_window(sidecar: Sidecar, rows: int) -> list[Any]:
    deadline = time.monotonic() + ANALYSIS_TIMEOUT_S
    while True:
        samples = sidecar.metrics()
        seen = [s.value for s in samples if s.name == WINDOW_ROWS and s.labels.get("window") == "5m"]
        if seen == [rows] and any(s.name == SCORE and s.labels.get("column") == "income" for s in samples):
            return samples
        assert time.monotonic() < deadline, f"5m window rows {seen}, expected {rows} and an income score"
        time.sleep(0.05)


# -- (a) stable traffic -------------------------------------------------------------------


def test_stable_traffic_scores_below_threshold(drift_sidecar: Sidecar, model_server: AppServer) -> None:
    before = rows_total(drift_sidecar)
    window_before = one(drift_sidecar.metrics(), WINDOW_ROWS, window="5m")
    sent = send_rows(drift_sidecar, model_server, stable_columns(11, STABLE_ROWS), 50, "stable")
    wait_rows(drift_sidecar, before + sent)
    samples = wait_window(drift_sidecar, int(window_before) + sent)
    for column in ("income", "age", "credit_score", "debt_ratio", "tenure_months", "region"):
        detected, score, threshold = decision(samples, column)
        assert not detected and 0 <= score, f"{column}: stable traffic scored {score} >= threshold {threshold}"
    assert one(samples, SCORE, column="income", window="5m", method="psi") < 0.1


# -- (b) a burst of malformed rows ----------------------------------------------------------


def clean_row() -> dict[str, Any]:
    """A row in the middle of the training distributions: nothing about it is out of the ordinary."""
    return {"age": 40.0, "income": 58_000.0, "credit_score": 680, "debt_ratio": 0.3, "tenure_months": 60,
            "region": "north"}


def infer_body(rows: list[dict[str, Any]], tag: str, extra: dict[str, Any] | None = None,
               drop: str | None = None) -> bytes:
    """A V2 body of the demo model's inputs for these rows; `extra` adds an input, `drop` leaves one out."""
    inputs = [{"name": f.name, "shape": [len(rows)], "datatype": f.datatype, "data": [r[f.name] for r in rows]}
              for f in FEATURES if f.name != drop]
    if extra:
        inputs.append(extra)
    return dumps({"id": tag, "inputs": inputs})


def rows_with(n: int, **changes: list[Any]) -> list[dict[str, Any]]:
    rows = [clean_row() for _ in range(n)]
    for name, values in changes.items():
        for row, value in zip(rows, values):
            row[name] = value
    return rows


def quality_key(name: str, labels: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    d = dict(labels)
    return (name, *(d[k] for k in ("role", "column", "side", "kind", "bin") if k in d))


def test_malformed_burst_moves_exactly_the_right_counters(drift_sidecar: Sidecar, model_server: AppServer,
                                                          baseline: Path) -> None:
    ages_high = [150.0, 155.0]
    burst = [
        # (body, rows, whether the model answers 200)
        (infer_body(rows_with(3, debt_ratio=[None, 0.3, None]), "nulls"), 3, False),
        (infer_body(rows_with(2, age=["forty", 30.0]), "word"), 2, False),
        (infer_body(rows_with(4, age=[*ages_high, 41.0, 39.0]), "old"), 4, True),
        (infer_body(rows_with(3, region=["central", "north", "central"]), "unseen"), 3, True),
        (infer_body(rows_with(2), "extra", extra={"name": "zzz", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}),
         2, False),
        (infer_body(rows_with(2), "missing", drop="tenure_months"), 2, False),
    ]
    total_rows = sum(rows for _, rows, _ in burst)
    predicted_rows = sum(rows for _, rows, ok in burst if ok)
    # preconditions: the clean values and the model's answers are inside the baseline's ranges
    base = load_baseline(baseline)
    ranges = {c.name: (c.min, c.max) for c in base.columns if isinstance(c, NumericColumn)}
    for name, value in clean_row().items():
        if name in ranges:
            assert ranges[name][0] <= value <= ranges[name][1], name
    assert all(age > ranges["age"][1] for age in ages_high)

    before_rows = rows_total(drift_sidecar)
    before = metric_snapshot(drift_sidecar.metrics(), QUALITY_PREFIXES)
    for body, _, ok in burst:
        status = send_and_compare(drift_sidecar, model_server, body)
        assert (status == 200) == ok, f"the model server answered {status} to {body[:120]!r}"
        if ok:
            answer = json.loads(fetch(model_server.url + INFER, "POST", body, JSON_HEADERS).body)
            [probability] = [o["data"] for o in answer["outputs"] if o["name"] == "probability"]
            lo, hi = ranges["probability"]
            assert all(lo <= p <= hi for p in probability), "precondition: predictions inside the baseline range"
    samples = wait_rows(drift_sidecar, before_rows + total_rows)
    diff = snapshot_diff(before, metric_snapshot(samples, QUALITY_PREFIXES))

    changed: dict[tuple[str, ...], float] = {}
    for (name, labels), delta in diff.items():
        key = quality_key(name, labels)
        changed[key] = changed.get(key, 0.0) + delta
    bins = {k: v for k, v in changed.items() if k[0] == "model_column_bin_total"}
    others = {k: v for k, v in changed.items() if k[0] != "model_column_bin_total"}

    features = [f.name for f in FEATURES]
    expected: dict[tuple[str, ...], float] = {
        ("model_column_missing_total", "feature", "debt_ratio"): 2,       # two nulls
        ("model_column_missing_total", "feature", "tenure_months"): 2,    # the input left out: absent in 2 rows
        ("model_column_type_errors_total", "feature", "age"): 1,          # "forty"
        ("model_column_out_of_range_total", "feature", "age", "high"): 2,
        ("model_column_unseen_total", "feature", "region"): 2,            # "central" twice
        ("model_schema_errors_total", "unexpected_column"): 1,            # zzz
        ("model_schema_errors_total", "missing_column"): 1,               # tenure_months
    }
    # every baseline column counts one value per row, present or not
    expected.update({("model_column_values_total", "feature", name): total_rows for name in features})
    expected.update({("model_column_values_total", "prediction", name): predicted_rows
                     for name in ("probability", "label")})
    assert others == expected, "quality counters moved other than expected:\n" + "\n".join(
        f"  {k}: got {others.get(k, 0)}, expected {expected.get(k, 0)}"
        for k in sorted(others.keys() | expected.keys()) if others.get(k, 0) != expected.get(k, 0))

    # the bins count every valid value once (missing and type errors are not binned) ...
    binned: dict[tuple[str, str], float] = {}
    for (_, role, column, _bin), delta in bins.items():
        binned[(role, column)] = binned.get((role, column), 0.0) + delta
    valid = {("feature", name): total_rows for name in features}
    valid[("feature", "debt_ratio")] -= 2
    valid[("feature", "tenure_months")] -= 2
    valid[("feature", "age")] -= 1
    valid |= {("prediction", "probability"): predicted_rows, ("prediction", "label"): predicted_rows}
    assert binned == valid
    # ... and the unseen region lands in the fixed "other" bin, under no label of its own
    region_bins = {k[3]: v for k, v in bins.items() if k[2] == "region"}
    assert region_bins.get("__other__") == 2
    # ... and the ages past the training max in the fixed "above" bin, which every drift method compares
    age_bins = {k[3]: v for k, v in bins.items() if k[2] == "age" and v}
    assert age_bins.get("above") == 2 and "below" not in age_bins
    for text in (drift_sidecar.metrics_text(), drift_sidecar.metrics_text(openmetrics=True)):
        for secret in ("central", "zzz", "forty"):
            assert secret not in text, f"{secret!r} became part of /metrics"


# -- (c) drifted traffic ----------------------------------------------------------------------


def test_income_shift_crosses_threshold_other_columns_do_not(sidecar_factory: SidecarFactory,
                                                             model_server: AppServer, baseline: Path) -> None:
    sidecar = sidecar_factory(upstream=model_server.url, config=SIDECAR_CONFIG, args=("--baseline", str(baseline)))
    sidecar.wait_analysis()
    assert not [s for s in sidecar.metrics() if s.name == SCORE], "a score before drift.min_rows rows"
    columns = stable_columns(23, STABLE_ROWS)
    income = FEATURES_BY_NAME["income"]
    assert isinstance(income, NumericFeature)
    columns["income"] = [v + INCOME_SHIFT_STDS * income.std for v in columns["income"]]  # type: ignore[operator]
    sent = send_rows(sidecar, model_server, columns, 50, "drifted")
    wait_rows(sidecar, sent)
    samples = wait_window(sidecar, sent)
    detected, score, threshold = decision(samples, "income")
    assert detected, f"income shifted by {INCOME_SHIFT_STDS} sd scored {score} <= threshold {threshold}"
    for column in ("tenure_months", "age", "credit_score", "region"):
        detected, score, threshold = decision(samples, column)
        assert not detected, f"{column} did not move, yet scored {score} >= threshold {threshold}"


# -- exposition -------------------------------------------------------------------------------


def test_metrics_with_baseline_pass_promtool(drift_sidecar: Sidecar, model_server: AppServer, promtool: str) -> None:
    before = rows_total(drift_sidecar)
    sent = send_rows(drift_sidecar, model_server, stable_columns(31, 60), 30, "lint")
    assert send_and_compare(drift_sidecar, model_server, infer_body(rows_with(1, region=["central"]), "lint-bad")) == 200
    samples = wait_rows(drift_sidecar, before + sent + 1)
    assert any(s.name == SCORE for s in samples), "no drift score to lint"
    status, output = promtool_check_metrics(promtool, drift_sidecar.metrics_text())
    assert status == 0, output
    assert output.strip() == "", output
