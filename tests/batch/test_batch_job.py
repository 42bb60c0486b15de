"""The batch job: chunks split by the baseline's roles into the worker's analyzers; errors name the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exporter.adapters import Rows
from exporter.baseline.readers import Chunk
from exporter.batch.job import WINDOW, BatchJob, JobError, Progress, batch_config, run_job
from exporter.config import Config
from exporter.demo.traffic import sample_rows
from exporter.events import Extraction


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from exporter.demo.training import build_demo_baseline

    return build_demo_baseline(tmp_path_factory.mktemp("baseline"))


def job(baseline: Path, **kwargs: object) -> BatchJob:
    return BatchJob(batch_config(Config(), str(baseline)), **kwargs)  # type: ignore[arg-type]


def chunk(rows: int, seed: int, drop: tuple[str, ...] = (), extra: dict[str, list[object]] | None = None) -> Chunk:
    columns: dict[str, object] = {k: v for k, v in sample_rows(np.random.default_rng(seed), rows, False).items()
                                  if k not in drop}
    columns.update(extra or {})
    return Chunk(columns, rows)  # type: ignore[arg-type]


def by_name(samples: list[tuple[str, object, float]], name: str) -> dict[tuple[str, ...], float]:
    return {tuple(labels): value for n, labels, value in samples if n == name}  # type: ignore[arg-type]


def test_chunks_add_up_in_one_window(baseline: Path) -> None:
    j = job(baseline)
    for seed in range(3):
        j.add_chunk(chunk(400, seed))
    samples = j.samples()
    assert j.records == 1200
    assert by_name(samples, "model_window_rows") == {(WINDOW, "unknown", "unknown"): 1200.0}
    values = by_name(samples, "model_column_values_total")
    assert values[("feature", "income", "unknown", "unknown")] == 1200
    detected = by_name(samples, "model_drift_detected")
    assert {k[1] for k in detected} == {"age", "income", "credit_score", "debt_ratio", "tenure_months", "region"}
    assert set(detected.values()) == {0}  # the training distribution does not drift from itself
    assert j.missing_columns() == [] and list(j.unexpected) == []


def test_missing_and_unexpected_columns_are_named(baseline: Path) -> None:
    j = job(baseline, exclude=["ts"])
    j.add_chunk(chunk(100, 1, drop=("income",), extra={"request_id": ["r"] * 100, "ts": [0] * 100}))
    assert j.missing_columns() == [("feature", "income")]
    assert list(j.unexpected) == ["request_id"]  # ts is excluded
    # the analyzers count the absent column's values as missing, like the sidecar does
    missing = by_name(j.samples(), "model_missing_ratio")
    assert missing[("feature", "income", WINDOW, "unknown", "unknown")] == 1.0


def test_labels_are_scored_with_the_predictions(baseline: Path) -> None:
    j = job(baseline)
    rows = 300
    predictions = {"probability": [0.9] * rows, "label": [1] * rows}
    j.add_chunk(chunk(rows, 2, extra={**predictions, "outcome": [1] * 200 + [0] * 99 + [None]}))
    assert j.scored == 299  # a row without its label is not scored
    scores = by_name(j.samples(), "model_performance_score")
    assert scores[("accuracy", WINDOW, "unknown", "unknown")] == pytest.approx(200 / 299)


def test_prediction_log_extractions_take_the_jobs_labels(baseline: Path) -> None:
    j = job(baseline)
    columns = sample_rows(np.random.default_rng(3), 50, False)
    j.add_extraction(Extraction("logged-model", "9", features=Rows(columns, 50)))  # type: ignore[arg-type]
    assert j.records == 50
    assert by_name(j.samples(), "model_window_rows") == {(WINDOW, "unknown", "unknown"): 50.0}


def test_run_job_reports_progress_and_names_a_bad_line(baseline: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("age,income\n41,52000\n39,61000\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"age": 41}\n{"age": \n')
    seen: list[Progress] = []
    result = run_job(job(baseline), [str(good)], 1, progress=lambda p: seen.append(Progress(**vars(p))))
    assert result.records == 2 and [p.rows for p in seen] == [1, 2] and seen[-1].path == str(good)
    with pytest.raises(JobError, match=rf"{bad}:2: invalid JSON"):
        run_job(job(baseline), [str(good), str(bad)], 100)


def test_a_bad_baseline_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "baseline.json"
    broken.write_text("{}")
    with pytest.raises(JobError, match=rf"--baseline: {broken}"):
        job(broken)
