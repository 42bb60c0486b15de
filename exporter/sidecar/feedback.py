"""POST /feedback: ground-truth labels in, validated here and handed to the worker to join.

Runs in the proxy process, so it only checks shapes (json, no numpy): a record is
`{"id", "label", optional "time", optional numeric "value"}`; the body is one record, a JSON
array of records, or JSON Lines. Scoring and the join happen in the worker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import Metric

from exporter.events import Label, RecordError, parse_record
from exporter.metrics.definitions import family

# (record index, field, what was wrong)
Failure = tuple[int, str, str]


def parse_feedback(body: bytes) -> tuple[list[Label], list[Failure]]:
    """The valid records of a body and, for the others, which record and field was wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return [], [(0, "body", "expected UTF-8 JSON")]
    docs: list[Any]
    failures: list[Failure] = []
    try:
        doc = json.loads(text)
        docs = doc if isinstance(doc, list) else [doc]
    except ValueError:
        # JSON Lines: one record per non-empty line; a bad line fails alone
        docs = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                failures.append((len(docs), "body", f"invalid JSON: {exc.msg}"))
                docs.append(None)
    if not docs and not failures:
        return [], [(0, "body", "expected a record, a JSON array of records or JSON Lines")]
    labels: list[Label] = []
    failed = {index for index, _, _ in failures}
    for index, record in enumerate(docs):
        if index in failed:
            continue
        try:
            labels.append(parse_record(record))
        except RecordError as exc:
            failures.append((index, exc.field, exc.message))
    failures.sort()
    return labels, failures


def answer(accepted: int, failures: list[Failure], dropped: int = 0) -> tuple[int, bytes]:
    """Status and JSON body: 200 all taken; 400 some records failed (the others were taken); 503 dropped."""
    doc: dict[str, Any] = {"accepted": accepted}
    if failures:
        doc["failed"] = [{"index": i, "field": f, "error": f"record {i}: {f}: {m}"} for i, f, m in failures[:100]]
        if len(failures) > 100:
            doc["failed_count"] = len(failures)
    if dropped:
        doc["dropped"] = dropped
        doc["error"] = "the analysis queue is full or the worker is down; labels dropped (counted), retry later"
    status = 503 if dropped else 400 if failures else 200
    return status, json.dumps(doc).encode() + b"\n"


class LabelsDropped:
    """model_exporter_labels_dropped_total{reason}: labels the proxy could not hand to the worker."""

    def __init__(self, dropped: Callable[[], dict[str, int]]) -> None:
        self.dropped = dropped

    def collect(self) -> Iterator[Metric]:
        metric = family("model_exporter_labels_dropped_total")
        for reason, n in self.dropped().items():
            metric.add_metric([reason], n)
        yield metric
