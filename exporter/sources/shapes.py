"""Log line → exchange, for each shape `run --tail` reads: the prediction log, SageMaker data capture,
JSON access logs (nginx, Envoy/Istio).

Functions of the line alone (a line without a time gets the time it is read). They read the
line's envelope, never a payload (bodies go to the worker as they are). Errors are ShapeError
naming the line (file:line) and the field.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from exporter.config import TailSource
from exporter.predlog import Body, PredictionLogError, PredictionRecord, Row, epoch_seconds, parse_line


class ShapeError(ValueError):
    """A line that is not a record of its shape; the message names where and what."""


class Logged(NamedTuple):
    record: PredictionRecord
    request_size: int | None  # bytes, where the line says (or has the body)
    response_size: int | None


Parser = Callable[[bytes, str], Logged]


def _size(body: Body | None) -> int | None:
    return None if body is None else len(body.data)


def predlog(line: bytes, where: str) -> Logged:
    try:
        record = parse_line(line, where)
    except PredictionLogError as exc:
        raise ShapeError(str(exc)) from None
    return Logged(record, _size(record.request), _size(record.response))


def _object(line: bytes, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ShapeError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise ShapeError(f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if type(obj) is not dict:
        raise ShapeError(f"{where}: expected a JSON object per line, got {type(obj).__name__}")
    return obj


def _fail(where: str, name: str, expected: str, value: Any) -> ShapeError:
    shown = repr(value)
    return ShapeError(
        f"{where}: field {name!r}: expected {expected}, got {shown[:77] + '...' if len(shown) > 80 else shown}"
    )


def _time(value: Any, where: str, name: str) -> float:
    seconds = epoch_seconds(value)
    if seconds is None:
        raise _fail(where, name, "epoch seconds or an RFC 3339 time with an offset", value)
    return seconds


def _cell(text: str) -> float | str | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _csv_rows(text: str, columns: Sequence[str], where: str, name: str) -> list[Row]:
    rows: list[Row] = []
    for values in csv.reader(text.splitlines()):
        if not values:
            continue
        if columns and len(values) != len(columns):
            raise _fail(where, name, f"CSV rows of {len(columns)} values (tail csv_columns)", text)
        names = columns or [f"x{j}" for j in range(len(values))]
        rows.append({n: _cell(v) for n, v in zip(names, values)})
    if not rows:
        raise _fail(where, name, "at least one CSV row", text)
    return rows


class SageMaker:
    """SageMaker Model Monitor data capture: one JSON object per invocation (captureData, eventMetadata).

    JSON and base64 data become the bodies the adapters read (POST /invocations, as the container
    got it); CSV becomes rows (columns named by csv_columns, else x0, x1, ...).
    """

    def __init__(self, csv_columns: Sequence[str] = ()) -> None:
        self.csv_columns = tuple(csv_columns)

    def _side(self, capture: dict[str, Any], key: str, where: str) -> tuple[Body | None, list[Row] | None]:
        side = capture.get(key)
        if side is None:
            return None, None
        name = f"captureData.{key}"
        if type(side) is not dict:
            raise _fail(where, name, "an object with observedContentType, mode, data, encoding", side)
        data = side.get("data")
        if type(data) is not str:
            raise _fail(where, f"{name}.data", "a string", data)
        content_type = side.get("observedContentType")
        if content_type is not None and type(content_type) is not str:
            raise _fail(where, f"{name}.observedContentType", "a string", content_type)
        encoding = side.get("encoding")
        if encoding == "CSV":
            columns = self.csv_columns if key == "endpointInput" else ()
            return None, _csv_rows(data, columns, where, f"{name}.data")
        if encoding == "JSON":
            return Body(data.encode("utf-8"), content_type or "application/json"), None
        if encoding == "BASE64":
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise _fail(where, f"{name}.data", "base64 text (encoding BASE64)", data) from None
            return Body(raw, content_type), None
        raise _fail(where, f"{name}.encoding", "CSV, JSON or BASE64", encoding)

    def __call__(self, line: bytes, where: str) -> Logged:
        obj = _object(line, where)
        capture = obj.get("captureData")
        if type(capture) is not dict:
            raise _fail(where, "captureData", "an object with endpointInput and/or endpointOutput", capture)
        meta = obj.get("eventMetadata", {})
        if type(meta) is not dict:
            raise _fail(where, "eventMetadata", "an object", meta)
        request, features = self._side(capture, "endpointInput", where)
        response, predictions = self._side(capture, "endpointOutput", where)
        if request is None and features is None:
            raise _fail(where, "captureData.endpointInput", "the captured input (mode INPUT)", None)
        if (request is not None and predictions is not None) or (features is not None and response is not None):
            # the worker reads an exchange either as bodies or as rows
            raise _fail(where, "captureData", "input and output both CSV, or both JSON/BASE64", "a mix")
        ident = meta.get("inferenceId") or meta.get("eventId")
        when = meta.get("inferenceTime")
        record = PredictionRecord(
            time=_time(when, where, "eventMetadata.inferenceTime") if when is not None else time.time(),
            status=200,  # data capture records answered invocations only
            id=ident if type(ident) is str else None,
            route="/invocations",
            request=request,
            response=response,
            features=features,
            predictions=predictions,
        )
        return Logged(record, _size(request), _size(response))


# Access log presets: our field → the key in the line (nginx: its variable names; Envoy: Istio's
# JSON access log keys), and the unit of the duration.
PRESETS: dict[str, tuple[dict[str, str], str]] = {
    "nginx": (
        {
            "time": "time_iso8601",
            "status": "status",
            "duration": "request_time",
            "path": "request_uri",
            "method": "request_method",
            "request_bytes": "request_length",
            "response_bytes": "bytes_sent",
            "id": "request_id",
        },
        "s",
    ),
    "envoy": (
        {
            "time": "start_time",
            "status": "response_code",
            "duration": "duration",
            "path": "path",
            "method": "method",
            "request_bytes": "bytes_received",
            "response_bytes": "bytes_sent",
            "id": "request_id",
        },
        "ms",
    ),
}
UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def _number(value: Any) -> float | None:
    """A JSON number, or a number written as a string (access logs quote them); '-' and '' are None."""
    if type(value) in (int, float):
        return float(value) if math.isfinite(value) else None
    if type(value) is str and value not in ("", "-"):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


class AccessLog:
    """A JSON access log line: traffic only (status, duration, sizes, route), no payloads."""

    def __init__(self, preset: str, fields: Sequence[tuple[str, str]] = (), unit: str | None = None) -> None:
        keys, default_unit = PRESETS[preset]
        self.keys = {**keys, **dict(fields)}
        self.scale = UNITS[unit or default_unit]

    def __call__(self, line: bytes, where: str) -> Logged:
        obj = _object(line, where)
        keys = self.keys
        status_key = keys["status"]
        status = _number(obj.get(status_key))
        if status is None or not status.is_integer() or not 100 <= status <= 599:
            raise _fail(where, status_key, "an HTTP status code from 100 to 599", obj.get(status_key))
        duration = None
        if "duration" in keys and obj.get(keys["duration"]) is not None:
            duration = _number(obj[keys["duration"]])
            if duration is None or duration < 0:
                raise _fail(where, keys["duration"], "a duration, a number >= 0", obj[keys["duration"]])
            duration *= self.scale
        path = obj.get(keys.get("path", ""), "")
        if type(path) is not str:
            raise _fail(where, keys["path"], "the request path, a string", path)
        if path and not path.startswith("/"):
            path = "/" + path.split("/", 3)[-1] if path.count("/") >= 3 else "/"  # absolute-form
        method = obj.get(keys.get("method", ""), "GET")
        if type(method) is not str or not method.isalpha():
            method = "OTHER"
        when = obj.get(keys.get("time", ""))
        sizes = [_number(obj.get(keys[k])) if k in keys else None for k in ("request_bytes", "response_bytes")]
        text = {k: obj.get(keys[k]) for k in ("id", "model") if k in keys}
        record = PredictionRecord(
            time=_time(when, where, keys["time"]) if when is not None else time.time(),  # read now
            status=int(status),
            model=text.get("model") if type(text.get("model")) is str else None,
            id=text.get("id") if type(text.get("id")) is str else None,
            route=path,
            method=method.upper(),
            duration=duration,
        )
        request_size, response_size = (None if s is None else int(s) for s in sizes)
        return Logged(record, request_size, response_size)


def parser_for(source: TailSource) -> Parser:
    """The line parser of a configured tail source."""
    if source.shape == "predlog":
        return predlog
    if source.shape == "sagemaker":
        return SageMaker(source.csv_columns)
    return AccessLog(source.shape, source.fields, source.duration_unit)
