"""POST /feedback: ground-truth labels in, validated here and handed to the worker to join.

Runs in the proxy process, so it only checks shapes (json, no numpy): a record is
`{"id", "label", optional "time", optional numeric "value"}`; the body is one record, a JSON
array of records, or JSON Lines. Scoring and the join happen in the worker.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import Metric

from exporter.events import Label
from exporter.metrics.definitions import family

MAX_ID_CHARS = 256
MAX_LABEL_CHARS = 256
FIELDS = frozenset({"id", "label", "time", "value"})

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


class RecordError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_record(record: Any) -> Label:
    """One record as a Label; RecordError names the field."""
    if not isinstance(record, dict):
        raise RecordError("record", 'expected an object like {"id": "r1", "label": 1}')
    for key in record:
        if key not in FIELDS:
            raise RecordError(str(key)[:64], "unknown field (allowed: id, label, time, value)")
    if "id" not in record:
        raise RecordError("id", "required (the prediction's id: payload id or request id header)")
    rid = record["id"]
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "" or len(str(rid)) > MAX_ID_CHARS:
        raise RecordError("id", f"expected a non-empty string or integer of at most {MAX_ID_CHARS} characters")
    if "label" not in record:
        raise RecordError("label", "required (the true class or value)")
    label = record["label"]
    if isinstance(label, float) and not math.isfinite(label):
        raise RecordError("label", "expected a finite number")
    if not isinstance(label, (str, int, float, bool)) or (
        isinstance(label, str) and not 0 < len(label) <= MAX_LABEL_CHARS
    ):
        raise RecordError("label", f"expected a number, a boolean or a string of 1 to {MAX_LABEL_CHARS} characters")
    return Label(str(rid), label, _time(record.get("time")), _value(record.get("value")))


def _time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError("time", "expected epoch seconds or an ISO 8601 time with a zone") from None
        if parsed.tzinfo is None:
            raise RecordError("time", "expected an ISO 8601 time with a zone, e.g. 2026-01-31T12:00:00Z")
        return parsed.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise RecordError("time", "expected epoch seconds or an ISO 8601 time with a zone")
    return float(value)


def _value(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        # non-negative: the sums are Prometheus counters (record a cost as a positive amount)
        raise RecordError("value", "expected a non-negative number (a business outcome: revenue, cost)")
    return float(value)


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
