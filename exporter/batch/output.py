"""Where a batch job's results go: a Pushgateway, node_exporter's textfile collector, stdout.

The series are the analyzers' (window "batch") plus the job's own (model_batch_*). A run that
completes replaces its whole group (Pushgateway PUT; the textfile rewritten); a run that fails
replaces only the job's outcome series (Pushgateway POST; the other families of the textfile
kept), so the last good run's results and success time stay visible next to the failure.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import push_to_gateway, pushadd_to_gateway
from prometheus_client.parser import text_string_to_metric_families

from exporter.metrics.families import Sample, families

CHECKS = ("drift", "missing", "out_of_range", "schema")
# replaced by a failed run; everything else stays as the last completed run left it
FAILURE_FAMILIES = (
    "model_batch_success",
    "model_batch_last_completion_timestamp_seconds",
    "model_batch_duration_seconds",
)


@dataclass
class Verdict:
    """What a completed run found: the columns that failed each check, and why, in words."""

    failed: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CHECKS})
    details: list[str] = field(default_factory=list)
    drift_scored: int = 0  # columns with a drift decision (enough rows)
    performance: dict[str, float] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not any(self.failed.values())


def judge(
    samples: Iterable[Sample], max_missing: float, max_out_of_range: float, missing_columns: list[str]
) -> Verdict:
    """The run's verdict from the analyzers' series: drift as the sidecar decides it, quality against the limits."""
    verdict = Verdict()
    scores: dict[tuple[str, str, str], tuple[float, float]] = {}
    thresholds: dict[tuple[str, str, str], float] = {}
    for name, labels, value in samples:
        if name == "model_drift_threshold":
            role, column, method = labels[0], labels[1], labels[2]
            thresholds[(role, column, method)] = value
        elif name == "model_drift_score":
            scores[(labels[0], labels[1], labels[2])] = (value, thresholds.get((labels[0], labels[1], labels[2]), 0.0))
        elif name == "model_drift_detected":
            verdict.drift_scored += 1
            role, column, method = labels[0], labels[1], labels[2]
            if value:
                score, threshold = scores.get((role, column, method), (float("nan"), float("nan")))
                verdict.failed["drift"].append(f"{role} {column}")
                verdict.details.append(f"drift: {role} {column}: {method} {score:.4g} > {threshold:.4g}")
        elif name == "model_missing_ratio" and value > max_missing:
            verdict.failed["missing"].append(f"{labels[0]} {labels[1]}")
            verdict.details.append(f"missing: {labels[0]} {labels[1]}: {value:.1%} of values (limit {max_missing:.1%})")
        elif name == "model_out_of_range_ratio" and value > max_out_of_range:
            verdict.failed["out_of_range"].append(f"{labels[0]} {labels[1]}")
            verdict.details.append(
                f"out of range: {labels[0]} {labels[1]}: {value:.1%} of values outside the baseline's range "
                f"(limit {max_out_of_range:.1%})"
            )
        elif name == "model_performance_score":
            verdict.performance[labels[0]] = value
    for column in missing_columns:
        verdict.failed["schema"].append(column)
        verdict.details.append(f"schema: column {column} of the baseline is not in the data")
    return verdict


@dataclass
class JobSeries:
    """The job's own series (model_batch_*)."""

    model: list[str]
    records: int
    duration: float
    completed: float  # wall clock
    success: bool
    verdict: Verdict | None = None

    def samples(self) -> Iterator[Sample]:
        mv = self.model
        yield "model_batch_success", mv, 1.0 if self.success else 0.0
        yield "model_batch_last_completion_timestamp_seconds", mv, self.completed
        yield "model_batch_duration_seconds", mv, self.duration
        if not self.success:
            return
        yield "model_batch_last_success_timestamp_seconds", mv, self.completed
        yield "model_batch_records", mv, float(self.records)
        yield "model_batch_records_per_second", mv, self.records / self.duration if self.duration > 0 else 0.0
        if self.verdict is not None:
            for check in CHECKS:
                yield "model_batch_checks_failed", [check, *mv], float(len(self.verdict.failed[check]))


class _Families:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def registry_of(samples: Iterable[Sample]) -> CollectorRegistry:
    """A registry holding exactly these series (no process metrics: they would describe this short-lived CLI)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families(samples))))
    return registry


def push(
    url: str, job: str, grouping: Mapping[str, str], samples: Iterable[Sample], replace: bool, timeout: float = 30.0
) -> None:
    """PUT (replace the group) or POST (replace these families only) to a Pushgateway; OSError on failure."""
    registry = registry_of(samples)
    send = push_to_gateway if replace else pushadd_to_gateway
    try:
        send(url, job=job, registry=registry, grouping_key=dict(grouping), timeout=timeout)
    except OSError as exc:  # urllib's URLError and HTTPError are OSErrors
        raise OSError(f"--push {url}: the Pushgateway did not take the metrics ({exc})") from None


def write_textfile(directory: str, job: str, samples: Iterable[Sample], replace: bool) -> str:
    """Write DIR/model_exporter_batch_JOB.prom atomically (temp file in DIR, fsync, rename); returns the path.

    Without `replace`, the families of the file already there that these samples do not name are kept.
    """
    if not os.path.isdir(directory):
        raise OSError(f"--textfile {directory}: not a directory")
    path = os.path.join(directory, f"model_exporter_batch_{_safe(job)}.prom")
    text = generate_latest(registry_of(samples)).decode()
    if not replace and os.path.exists(path):
        text += _kept(path, {line.split(" ", 3)[2] for line in text.splitlines() if line.startswith("# TYPE ")})
    fd, tmp = tempfile.mkstemp(prefix=".model_exporter_batch_", suffix=".prom.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # node_exporter runs as its own user
        os.replace(tmp, path)  # node_exporter reads the old file or the new one, never half of one
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _kept(path: str, replaced: set[str]) -> str:
    """The exposition text of the families of `path` not in `replaced` (an unreadable file keeps nothing)."""
    try:
        with open(path, encoding="utf-8") as f:
            old = list(text_string_to_metric_families(f.read()))
    except (OSError, ValueError):
        return ""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([m for m in old if m.name not in replaced]))
    return generate_latest(registry).decode()


def _safe(job: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in job)


def report(
    records: int,
    duration: float,
    files: list[str],
    verdict: Verdict,
    unexpected: list[str],
    labels: int,
    status: int,
    outputs: list[str],
    payload_errors: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The --json document."""
    return {
        "records": records,
        "files": files,
        "duration_seconds": round(duration, 6),
        "records_per_second": round(records / duration, 1) if duration > 0 else None,
        "drift_columns_scored": verdict.drift_scored,
        "failed": verdict.failed,
        "details": verdict.details,
        "unexpected_columns": unexpected,
        "labels_scored": labels,
        "payload_errors": dict(payload_errors or {}),
        "performance": verdict.performance,
        "outputs": outputs,
        "exit_status": status,
    }


def summary(doc: Mapping[str, Any], min_rows: int) -> str:
    """The human summary of a --json document."""
    rate = doc["records_per_second"]
    lines = [
        f"{doc['records']:,} records from {len(doc['files'])} file(s) in {doc['duration_seconds']:.2f}s"
        + (f" ({rate:,.0f} records/s)" if rate else "")
    ]
    if doc["drift_columns_scored"] == 0:
        lines.append(f"drift: not scored (fewer than drift.min_rows = {min_rows} values per column)")
    else:
        n = len(doc["failed"]["drift"])
        lines.append(f"drift: {n} of {doc['drift_columns_scored']} columns drifted from the baseline")
    lines += [f"  {d}" for d in doc["details"]]
    if doc["unexpected_columns"]:
        lines.append(
            "columns not in the baseline (left out; --exclude them to silence this): "
            + ", ".join(doc["unexpected_columns"])
        )
    if doc["payload_errors"]:
        lines.append(
            "payloads the adapters could not read (records left out): "
            + ", ".join(f"{n:,} {what.replace('_', ' ')}" for what, n in sorted(doc["payload_errors"].items()))
        )
    if doc["labels_scored"]:
        scores = ", ".join(f"{k} {v:.4g}" for k, v in sorted(doc["performance"].items()))
        lines.append(f"performance on {doc['labels_scored']:,} labels: {scores or 'too few labels for a score'}")
    lines += [f"wrote {o}" for o in doc["outputs"]]
    verdict = {
        0: "OK: no drift, quality within limits",
        1: "FAILED: drift or data quality (exit 1)",
        2: "ERROR: the results were not delivered (exit 2)",
    }
    lines.append(verdict.get(doc["exit_status"], f"exit {doc['exit_status']}"))
    return "\n".join(lines) + "\n"


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
