"""The labels the proxy decides travel with the exchange: the worker uses them for every series.

The worker never re-decides from the payload (V2 `model_name`); drift and quality stay with one
(model, version); a reload that changes model.name applies to the exchanges that follow.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from exporter.baseline.build import BuildOptions, build_baseline
from exporter.baseline.format import save_baseline
from exporter.baseline.readers import Chunk
from exporter.config import Config, ModelConfig
from exporter.events import Event
from exporter.labels import LabelPolicy
from exporter.proxy.stats import TrafficStats
from exporter.sidecar.reload import Reloader
from exporter.worker.analysis import Analysis

JSON = {b"content-type": b"application/json"}


def _baseline(tmp_path: Path) -> str:
    """Feature x on [0, 10), prediction y on [0, 1), built by the baseline builder."""
    data = {"x": [i / 10 for i in range(100)], "y": [i / 100 for i in range(100)]}
    result = build_baseline(lambda: iter([Chunk(data, 100)]), BuildOptions(predictions=("y",)), files=("memory",),
                            created="2024-05-01T12:00:00Z")
    path = tmp_path / "baseline.json"
    save_baseline(result.baseline, path)
    return str(path)


def _event(model: str, version: str, rows: int = 2, reported: str = "reported-by-payload") -> Event:
    request = {"inputs": [{"name": "x", "shape": [rows], "datatype": "FP32", "data": [1.0] * rows}]}
    response = {"model_name": reported, "model_version": "42",
                "outputs": [{"name": "y", "shape": [rows], "datatype": "FP32", "data": [0.2] * rows}]}
    return Event(time.time(), "/v2/models/{model}/infer", b"/v2/models/m/infer", 200, 0.01, JSON,
                 json.dumps(request).encode(), JSON, json.dumps(response).encode(), model, version)


def _samples(analysis: Analysis) -> list[Any]:
    return [s for family in analysis.collect() for s in family.samples]


def _pairs(samples: list[Any], prefix: str = "model_") -> set[tuple[str, str]]:
    return {(s.labels["model"], s.labels["version"]) for s in samples if s.name.startswith(prefix) and "model" in s.labels}


def _value(samples: list[Any], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def test_worker_uses_the_event_labels_not_the_payload_names(tmp_path: Path) -> None:
    analysis = Analysis(dataclasses.replace(Config(), baseline=_baseline(tmp_path)))
    assert _pairs(_samples(analysis)) == {("unknown", "unknown")}  # nothing seen, nothing configured
    analysis.process([_event("iris", "unknown")])
    samples = _samples(analysis)
    assert _pairs(samples) == {("iris", "unknown")}  # rows, prediction rows, errors, drift, quality
    assert _value(samples, "model_rows_total", model="iris") == 2
    assert _value(samples, "model_prediction_rows_total", model="iris") == 2
    assert _value(samples, "model_column_values_total", column="x", model="iris") == 2


def test_drift_and_quality_stay_with_the_first_pair(tmp_path: Path) -> None:
    config = dataclasses.replace(Config(), baseline=_baseline(tmp_path))
    analysis = Analysis(config)
    analysis.process([_event("iris", "unknown", 3), _event("iris", "2", 5), _event("other", "other", 1)])
    samples = _samples(analysis)
    assert _pairs(samples, "model_column_") == {("iris", "unknown")}
    assert _value(samples, "model_column_values_total", column="x") == 3
    assert _value(samples, "model_baseline_skipped_rows_total", model="iris", version="2") == 5
    assert _value(samples, "model_baseline_skipped_rows_total", model="other", version="other") == 1
    assert _value(samples, "model_rows_total", model="iris", version="2") == 5  # counted, under its own labels
    # a reload that keeps model.name / model.version keeps the pair; one that sets them moves to it
    same = Analysis(config, previous=analysis)
    assert same.bound == ("iris", "unknown") and _pairs(_samples(same), "model_column_") == {("iris", "unknown")}
    named = Analysis(dataclasses.replace(config, model=ModelConfig(name="fraud", version="3")), previous=same)
    assert _pairs(_samples(named), "model_column_") == {("fraud", "3")}


def test_configured_pair_labels_drift_from_the_start(tmp_path: Path) -> None:
    config = dataclasses.replace(Config(), baseline=_baseline(tmp_path), model=ModelConfig(name="fraud", version="3"))
    analysis = Analysis(config)
    assert _pairs(_samples(analysis)) == {("fraud", "3")}
    analysis.process([_event("fraud", "3")])
    assert _pairs(_samples(analysis)) == {("fraud", "3")}


def test_reload_applies_a_new_model_name_to_new_exchanges() -> None:
    stats = TrafficStats((0.1,), (100.0,), labels=LabelPolicy.from_config(ModelConfig()))
    pool = SimpleNamespace(connect_timeout=1.0, max_connections=1)
    ctx = SimpleNamespace(stats=stats, pool=pool, routes=None, link=None, read_timeout=1.0)
    reloader = Reloader(Config(), None, ctx, None)  # type: ignore[arg-type]
    assert stats.labels.decide("iris", None) == ("iris", "unknown")
    reloader._apply(Config())  # nothing changed: the policy and what it kept stay
    assert stats.labels.decide("iris", None, admit=False) == ("iris", "unknown")
    reloader._apply(dataclasses.replace(Config(), model=ModelConfig(name="fraud")))
    assert stats.labels.decide("iris", None) == ("fraud", "unknown")
    assert stats.labels.default == ("fraud", "unknown")  # the gauges without an exchange follow too
