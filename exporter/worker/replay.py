"""Prediction log records (docs/prediction-log.md) → Extractions, as the worker makes them from live
exchanges: bodies through the same adapters, pre-extracted rows as they are.

For `baseline build` of a prediction log (production traffic as the next baseline); errors name
the file and line.
"""

from __future__ import annotations

from collections.abc import Iterator

from exporter.adapters import Rows
from exporter.config import Config
from exporter.events import Event, Extraction
from exporter.predlog import Body, PredictionRecord, Row, parse_line
from exporter.worker.extract import Extractor


def _rows(rows: list[Row] | None) -> Rows | None:
    if rows is None:
        return None
    names = dict.fromkeys(name for row in rows for name in row)
    return Rows({name: [row.get(name) for row in rows] for name in names}, len(rows))


def _headers(body: Body | None) -> dict[bytes, bytes]:
    headers: dict[bytes, bytes] = {}
    if body is not None and body.content_type is not None:
        headers[b"content-type"] = body.content_type.encode("latin-1", "replace")
    if body is not None and body.content_encoding is not None:
        headers[b"content-encoding"] = body.content_encoding.encode("latin-1", "replace")
    return headers


def extract_record(extractor: Extractor, record: PredictionRecord) -> Extraction | None:
    """The record's rows; None for a record of traffic fields only."""
    model, version = record.model or "unknown", record.version or "unknown"
    if record.features is not None:
        predictions = _rows(record.predictions) if 200 <= record.status < 300 else None
        return Extraction(model, version, features=_rows(record.features), predictions=predictions)
    if record.request is None:
        return None
    out = Extraction(model, version)
    for side, body in (("request", record.request), ("response", record.response)):
        if body is not None and body.truncated:
            out.errors.append((side, "truncated"))
    if out.errors:
        return out
    path = record.route.split("?", 1)[0]
    event = Event(
        record.time,
        path,
        record.route.encode("utf-8"),
        record.status,
        record.duration or 0.0,
        _headers(record.request),
        record.request.data,
        _headers(record.response),
        record.response.data if record.response is not None else b"",
        model,
        version,
    )
    return extractor.extract(event)


def file_extractions(path: str, config: Config) -> Iterator[tuple[str, Extraction]]:
    """(path:line, extraction) for every record with rows; PredictionLogError for an invalid line, OSError."""
    import gzip

    extractor = Extractor(config)
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            extraction = extract_record(extractor, parse_line(line, where))
            if extraction is not None:
                yield where, extraction
