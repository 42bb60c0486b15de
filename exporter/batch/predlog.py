"""Prediction log files (docs/prediction-log.md) as Extractions: pre-extracted rows as they are, bodies through the worker's adapters."""

from __future__ import annotations

from collections.abc import Iterator

from exporter.adapters import Rows
from exporter.baseline.format import BaselineError
from exporter.config import Config
from exporter.events import Event, Extraction
from exporter.predlog import Body, PredictionLogError, Row, iter_records
from exporter.worker.extract import Extractor


def extractions(path: str, config: Config) -> Iterator[Extraction]:
    """Every record of a prediction log file; BaselineError names the file and line of a bad record."""
    extractor = Extractor(config)
    try:
        for record in iter_records(path):
            if record.features is not None or record.predictions is not None:
                yield Extraction(
                    record.model or "unknown",
                    record.version or "unknown",
                    features=_rows(record.features),
                    predictions=_rows(record.predictions) if 200 <= record.status < 300 else None,
                )
            elif record.request is not None:
                yield extractor.extract(
                    Event(
                        record.time,
                        record.route.split("?", 1)[0],
                        record.route.encode(),
                        record.status,
                        record.duration or 0.0,
                        _headers(record.request),
                        record.request.data,
                        _headers(record.response) if record.response is not None else {},
                        record.response.data if record.response is not None else b"",
                        record.model or "unknown",
                        record.version or "unknown",
                    )
                )
            # a record of traffic fields only has no rows for the analyzers
    except PredictionLogError as exc:
        raise BaselineError(str(exc)) from None
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _rows(rows: list[Row] | None) -> Rows | None:
    if rows is None:
        return None
    names = dict.fromkeys(name for row in rows for name in row)
    return Rows({name: [row.get(name) for row in rows] for name in names}, len(rows))


def _headers(body: Body) -> dict[bytes, bytes]:
    headers = {}
    if body.content_type:
        headers[b"content-type"] = body.content_type.encode("latin-1", "replace")
    if body.content_encoding:
        headers[b"content-encoding"] = body.content_encoding.encode("latin-1", "replace")
    return headers
