"""The prediction log (docs/prediction-log.md): one JSON object per line, one exchange per object.

A leaf: the proxy's capture writer encodes it, the tailer, `baseline build` and `batch` read it.
Parsing checks every field and names the line and the field in its error; it never guesses.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

import orjson

FORMAT_VERSION = 1
SUFFIXES = (".predlog", ".predlog.gz")  # how `baseline build` and `batch` recognise the format by name

# The Event content type of a record's pre-extracted rows: the worker reads them as they are
# (adapters/rows.py), whatever protocol the config names.
ROWS_CONTENT_TYPE = "application/vnd.model-exporter.rows+json"

# On an Event's request headers (a name no HTTP field can have): the exchange came from a log the
# tailer read, so the prediction store does not write it again (it may be reading its own output).
TAILED_HEADER = b":tailed"

Row = dict[str, Any]  # column name → scalar


class PredictionLogError(ValueError):
    """A line that is not a valid record; the message names the line, the field and what was expected."""


class Body(NamedTuple):
    """A captured body as it went over the wire (still gzip if it was gzip)."""

    data: bytes
    content_type: str | None = None
    content_encoding: str | None = None  # Content-Encoding as sent: gzip, deflate, …
    truncated: bool = False  # cut at the writer's size cap


class PredictionRecord(NamedTuple):
    """One exchange: traffic fields, and either its bodies or its rows (or neither: traffic only)."""

    time: float  # epoch seconds, when the exchange completed
    status: int
    model: str | None = None
    version: str | None = None
    id: str | None = None
    route: str = ""  # the request target as sent: path and query, e.g. /v2/models/iris/infer
    method: str = "POST"
    duration: float | None = None  # seconds, None: not known
    request: Body | None = None
    response: Body | None = None
    features: list[Row] | None = None
    predictions: list[Row] | None = None


# ---------------------------------------------------------------- encoding


def _body(body: Body) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if body.content_type is not None:
        out["content_type"] = body.content_type
    if body.content_encoding is not None:
        out["content_encoding"] = body.content_encoding
    try:
        out["body"] = body.data.decode("utf-8")
    except UnicodeDecodeError:
        out["body"] = base64.b64encode(body.data).decode("ascii")
        out["encoding"] = "base64"
    if body.truncated:
        out["truncated"] = True
    return out


def to_dict(record: PredictionRecord) -> dict[str, Any]:
    """The record as the JSON object of its line; absent optional fields are left out."""
    out: dict[str, Any] = {"v": FORMAT_VERSION, "time": record.time}
    for name in ("model", "version", "id"):
        value = getattr(record, name)
        if value is not None:
            out[name] = value
    out["route"] = record.route
    out["method"] = record.method
    out["status"] = record.status
    if record.duration is not None:
        out["duration"] = record.duration
    if record.request is not None:
        out["request"] = _body(record.request)
    if record.response is not None:
        out["response"] = _body(record.response)
    if record.features is not None:
        out["features"] = record.features
    if record.predictions is not None:
        out["predictions"] = record.predictions
    return out


def encode(record: PredictionRecord) -> bytes:
    """One line, newline included. ValueError for a NaN or infinite value (JSON has none: write null)."""
    return json.dumps(to_dict(record), ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode() + b"\n"


# ---------------------------------------------------------------- parsing

_FIELDS = frozenset(
    {"v", "time", "model", "version", "id", "route", "method", "status", "duration"}
    | {"request", "response", "features", "predictions"}
)
_BODY_FIELDS = frozenset({"body", "encoding", "content_type", "content_encoding", "truncated"})


def _fail(where: str, name: str, expected: str, value: Any) -> PredictionLogError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return PredictionLogError(f"{where}: field {name!r}: expected {expected}, got {shown}")


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _optional_str(obj: dict[str, Any], name: str, where: str, prefix: str = "") -> str | None:
    value = obj.get(name)
    if value is None or type(value) is str:
        return value
    raise _fail(where, prefix + name, "a string or null", value)


def epoch_seconds(value: Any) -> float | None:
    """A time as epoch seconds: a finite number, or an RFC 3339 string with an offset; else None."""
    if _number(value):
        return float(value)
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is not None:
            return parsed.timestamp()
    return None


def _time(value: Any, where: str) -> float:
    seconds = epoch_seconds(value)
    if seconds is None:
        raise _fail(where, "time", "epoch seconds or an RFC 3339 time with an offset (2026-01-31T12:00:00Z)", value)
    return seconds


def _parse_body(value: Any, name: str, where: str) -> Body | None:
    if value is None:
        return None
    if type(value) is not dict:
        raise _fail(where, name, 'an object {"body": ..., "encoding": ...}', value)
    if not value.keys() <= _BODY_FIELDS:
        key = next(k for k in value if k not in _BODY_FIELDS)
        raise _fail(where, f"{name}.{key}", f"no such field (allowed: {', '.join(sorted(_BODY_FIELDS))})", key)
    text = value.get("body")
    if type(text) is not str:
        raise _fail(where, f"{name}.body", "a string", text)
    encoding = value.get("encoding", "utf-8")
    if encoding == "utf-8":
        data = text.encode()  # the parser refuses lone surrogates: always encodable
    elif encoding == "base64":
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise _fail(where, f"{name}.body", "base64 text (encoding is base64)", text) from None
    else:
        raise _fail(where, f"{name}.encoding", '"utf-8" or "base64"', encoding)
    truncated = value.get("truncated", False)
    if type(truncated) is not bool:
        raise _fail(where, f"{name}.truncated", "true or false", truncated)
    content_type = value.get("content_type")
    if content_type is not None and type(content_type) is not str:
        raise _fail(where, f"{name}.content_type", "a string or null", content_type)
    content_encoding = value.get("content_encoding")
    if content_encoding is not None and type(content_encoding) is not str:
        raise _fail(where, f"{name}.content_encoding", "a string or null", content_encoding)
    return Body(data, content_type, content_encoding, truncated)


def _rows(value: Any, name: str, where: str) -> list[Row] | None:
    """An object (one row) or a non-empty array of objects; values are scalars."""
    if value is None:
        return None
    rows = [value] if type(value) is dict else value
    if type(rows) is not list or not rows:
        raise _fail(where, name, "an object of column values, or a non-empty array of them", value)
    for i, row in enumerate(rows):
        at = name if type(value) is dict else f"{name}[{i}]"
        if type(row) is not dict:
            raise _fail(where, at, "an object of column values", row)
        for column, v in row.items():
            if type(v) in (dict, list):
                raise _fail(where, f"{at}.{column}", "a scalar (string, number, boolean or null)", v)
    return rows


def from_dict(obj: Any, where: str) -> PredictionRecord:
    """Validate a decoded line; PredictionLogError names `where` (file:line) and the field."""
    if type(obj) is not dict:
        raise PredictionLogError(f"{where}: expected a JSON object per line, got {type(obj).__name__}")
    if not obj.keys() <= _FIELDS:
        key = next(k for k in obj if k not in _FIELDS)
        raise _fail(where, key, f"no such field (allowed: {', '.join(sorted(_FIELDS))})", obj[key])
    version = obj.get("v", FORMAT_VERSION)
    if version != FORMAT_VERSION or type(version) is not int:
        raise _fail(where, "v", f"format version {FORMAT_VERSION} (this reader knows no other)", version)
    if "time" not in obj:
        raise PredictionLogError(f"{where}: field 'time': required (epoch seconds or RFC 3339)")
    status = obj.get("status")
    if type(status) is not int or not 100 <= status <= 599:
        raise _fail(where, "status", "an HTTP status code, an integer from 100 to 599", status)
    duration = obj.get("duration")
    if duration is not None and not (_number(duration) and duration >= 0):
        raise _fail(where, "duration", "seconds, a number >= 0, or null", duration)
    route = obj.get("route", "")
    if type(route) is not str or (route and route[0] != "/"):
        raise _fail(where, "route", "the request target, a string starting with '/'", route)
    method = obj.get("method", "POST")
    if method != "POST" and (type(method) is not str or not method.isalpha()):
        raise _fail(where, "method", "an HTTP method such as POST", method)
    request = _parse_body(obj.get("request"), "request", where)
    response = _parse_body(obj.get("response"), "response", where)
    features = _rows(obj.get("features"), "features", where)
    predictions = _rows(obj.get("predictions"), "predictions", where)
    if (request or response) and (features is not None or predictions is not None):
        raise PredictionLogError(
            f"{where}: a record carries either bodies (request/response) or rows (features/predictions), not both"
        )
    if response is not None and request is None:
        raise PredictionLogError(f"{where}: field 'request': required with 'response' (the adapters read both)")
    when = obj["time"]
    return PredictionRecord(
        when if type(when) is float and math.isfinite(when) else _time(when, where),
        status,
        _optional_str(obj, "model", where),
        _optional_str(obj, "version", where),
        _optional_str(obj, "id", where),
        route,
        method if method == "POST" else method.upper(),
        None if duration is None else float(duration),
        request,
        response,
        features,
        predictions,
    )


def parse_line(line: bytes, where: str) -> PredictionRecord:
    """One line (newline optional) → a record; PredictionLogError names `where` and what was wrong."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:  # not UTF-8 included; NaN and Infinity are not JSON
        raise PredictionLogError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    return from_dict(obj, where)


def iter_records(path: str) -> Iterator[PredictionRecord]:
    """Every record of a file (gzip if its name ends .gz), in order; blank lines are skipped.

    Raises PredictionLogError at the first invalid line (path:line), OSError if unreadable.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                yield parse_line(line, f"{path}:{lineno}")
