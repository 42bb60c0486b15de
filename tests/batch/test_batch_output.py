"""The batch job's verdict, its own series, the textfile output and the summaries."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.batch import output
from exporter.batch.job import Progress
from exporter.batch.run import ProgressBar

MV = ["credit", "3"]


def drift_samples(column: str, score: float, threshold: float, detected: int) -> list[output.Sample]:
    labels = ["feature", column, "wasserstein", "batch", *MV]
    return [
        ("model_drift_threshold", labels, threshold),
        ("model_drift_score", labels, score),
        ("model_drift_detected", labels, detected),
    ]


def test_judge_follows_the_drift_decision_and_the_quality_limits() -> None:
    samples = [
        *drift_samples("income", 0.31, 0.1, 1),
        *drift_samples("age", 0.02, 0.1, 0),
        ("model_missing_ratio", ["feature", "debt_ratio", "batch", *MV], 0.25),
        ("model_missing_ratio", ["feature", "age", "batch", *MV], 0.05),
        ("model_out_of_range_ratio", ["feature", "age", "batch", *MV], 0.06),
        ("model_performance_score", ["accuracy", "batch", *MV], 0.91),
    ]
    verdict = output.judge(samples, max_missing=0.1, max_out_of_range=0.05, missing_columns=["feature region"])
    assert verdict.failed == {
        "drift": ["feature income"],
        "missing": ["feature debt_ratio"],
        "out_of_range": ["feature age"],
        "schema": ["feature region"],
    }
    assert verdict.drift_scored == 2 and not verdict.clean
    assert verdict.performance == {"accuracy": 0.91}
    assert verdict.details == [
        "drift: feature income: wasserstein 0.31 > 0.1",
        "missing: feature debt_ratio: 25.0% of values (limit 10.0%)",
        "out of range: feature age: 6.0% of values outside the baseline's range (limit 5.0%)",
        "schema: column feature region of the baseline is not in the data",
    ]
    assert output.judge(drift_samples("age", 0.02, 0.1, 0), 0.1, 0.05, []).clean


def test_job_series_of_a_completed_and_a_failed_run() -> None:
    verdict = output.judge(drift_samples("income", 0.31, 0.1, 1), 0.1, 0.05, [])
    done = {(n, tuple(labels)): v for n, labels, v in output.JobSeries(MV, 1000, 0.5, 1.7e9, True, verdict).samples()}
    assert done[("model_batch_success", tuple(MV))] == 1
    assert done[("model_batch_records_per_second", tuple(MV))] == 2000
    assert done[("model_batch_last_success_timestamp_seconds", tuple(MV))] == 1.7e9
    assert done[("model_batch_checks_failed", ("drift", *MV))] == 1
    assert done[("model_batch_checks_failed", ("schema", *MV))] == 0
    failed = {n for n, _, _ in output.JobSeries(MV, 0, 0.1, 1.7e9, False).samples()}
    assert failed == set(output.FAILURE_FAMILIES)


def read_back(path: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with open(path) as f:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(f.read()) for s in fam.samples}


def test_textfile_replace_then_merge(tmp_path: Path) -> None:
    verdict = output.judge(drift_samples("income", 0.31, 0.1, 1), 0.1, 0.05, [])
    good = [*drift_samples("income", 0.31, 0.1, 1), *output.JobSeries(MV, 1000, 0.5, 100.0, True, verdict).samples()]
    path = output.write_textfile(str(tmp_path), "nightly/v2", good, replace=True)
    assert os.path.basename(path) == "model_exporter_batch_nightly_v2.prom"  # a job name is never a path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    mv = (("model", "credit"), ("version", "3"))
    first = read_back(path)
    assert first[("model_batch_success", mv)] == 1 and first[("model_batch_records", mv)] == 1000

    failed = list(output.JobSeries(MV, 0, 0.2, 200.0, False).samples())
    output.write_textfile(str(tmp_path), "nightly/v2", failed, replace=False)
    after = read_back(path)
    assert after[("model_batch_success", mv)] == 0
    assert after[("model_batch_last_completion_timestamp_seconds", mv)] == 200
    assert after[("model_batch_last_success_timestamp_seconds", mv)] == 100  # kept from the good run
    assert after[("model_batch_records", mv)] == 1000
    assert sum(1 for k in after if k[0] == "model_drift_score") == 1
    assert os.listdir(tmp_path) == ["model_exporter_batch_nightly_v2.prom"]

    # a completed run replaces the whole file
    output.write_textfile(str(tmp_path), "nightly/v2", list(output.JobSeries(MV, 5, 1.0, 300.0, True).samples()),
                          replace=True)
    assert not any(k[0] == "model_drift_score" for k in read_back(path))


def test_textfile_errors_name_the_directory(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"--textfile .*/absent: not a directory"):
        output.write_textfile(str(tmp_path / "absent"), "job", [], replace=True)


def test_a_failed_push_names_the_url() -> None:
    with pytest.raises(OSError, match=r"--push http://127.0.0.1:1: the Pushgateway did not take the metrics"):
        output.push("http://127.0.0.1:1", "job", {"instance": "credit"}, [], replace=True, timeout=5)


def test_summary_and_json_document() -> None:
    verdict = output.judge(drift_samples("income", 0.31, 0.1, 1), 0.1, 0.05, [])
    doc = output.report(3000, 1.5, ["a.parquet"], verdict, ["request_id"], 0, 1, ["/tmp/x.prom"])
    assert json.loads(output.dumps(doc))["records_per_second"] == 2000.0
    text = output.summary(doc, 200)
    assert text.splitlines() == [
        "3,000 records from 1 file(s) in 1.50s (2,000 records/s)",
        "drift: 1 of 1 columns drifted from the baseline",
        "  drift: feature income: wasserstein 0.31 > 0.1",
        "columns not in the baseline (left out; --exclude them to silence this): request_id",
        "wrote /tmp/x.prom",
        "FAILED: drift or data quality (exit 1)",
    ]
    few = output.report(10, 0.1, ["a.csv"], output.Verdict(), [], 0, 0, [])
    assert "drift: not scored (fewer than drift.min_rows = 200 values per column)" in output.summary(few, 200)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_draws_on_a_terminal_only() -> None:
    state = Progress(path="scores.parquet", file_index=1, files=2, rows=150_000, started=0.0)
    pipe = io.StringIO()
    bar = ProgressBar(pipe)
    bar(state)
    bar.done()
    assert pipe.getvalue() == ""
    term = Terminal()
    bar = ProgressBar(term)
    bar(state)
    assert term.getvalue().startswith("\r[1/2] scores.parquet: 150,000 records, ")
    bar.done()
    assert term.getvalue().endswith("\r\x1b[K")
