"""MLflow pyfunc scoring server `/invocations`: dataframe_split/records, instances, inputs, CSV.

MLflow 1.x bodies (a bare split object or a bare list of records) are read too. CSV: the
header row names the columns; numeric fields become int/float, empty fields None.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from exporter.adapters._payload import guarded, header_id, loads, row_ids, sniff_object
from exporter.adapters._tables import from_columns, from_instances, from_records, from_row_lists
from exporter.adapters.base import Message, PayloadError, Rows

_ROUTE = re.compile(r"/invocations/?\Z")
_INT = re.compile(r"[+-]?[0-9]+")


def _split_frame(frame: Any) -> Rows:
    """Rows of a pandas `split` orientation: {columns?, data, index?}."""
    if type(frame) is not dict or type(frame.get("data")) is not list:
        raise PayloadError("unsupported_shape", "dataframe_split needs an object with a `data` list")
    columns = frame.get("columns")
    if columns is not None and type(columns) is not list:
        raise PayloadError("unsupported_shape", "dataframe_split `columns` must be a list")
    data = frame["data"]
    if data and all(type(row) is not list for row in data):
        data = [[value] for value in data]  # a one-column frame may be sent as a flat list
    return from_row_lists(data, names=columns or None)


def _number(text: str) -> Any:
    """A CSV field as pandas would read it: int, float, None for empty, else the string."""
    if not text:
        return None
    try:
        if _INT.fullmatch(text):
            return int(text)
        if "_" not in text:  # Python's float() accepts 1_000, CSV readers don't
            return float(text)
    except ValueError:
        pass
    return text


def _csv(body: bytes) -> Rows:
    """Rows of a CSV body whose first row names the columns."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PayloadError("invalid_encoding", "CSV body is not UTF-8") from None
    try:
        lines = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as exc:
        raise PayloadError("unsupported_shape", f"CSV: {exc}") from None
    if not lines:
        raise PayloadError("unsupported_shape", "empty CSV body")
    header, data = lines[0], lines[1:]
    return from_row_lists([[_number(v) for v in row] for row in data], names=header)


def _request_rows(doc: Any) -> Rows:
    if type(doc) is list:
        return from_instances(doc)  # MLflow 1.x pandas-records
    if type(doc) is not dict:
        raise PayloadError("unsupported_shape", f"expected a JSON object, got {type(doc).__name__}")
    if "dataframe_split" in doc:
        return _split_frame(doc["dataframe_split"])
    if "dataframe_records" in doc:
        records = doc["dataframe_records"]
        if type(records) is not list:
            raise PayloadError("unsupported_shape", "dataframe_records must be a list of objects")
        return from_records(records)
    if "instances" in doc:
        return from_instances(doc["instances"], b64=True)
    if "inputs" in doc:
        inputs = doc["inputs"]
        if type(inputs) is dict:
            return from_columns(inputs, b64=True)
        return from_instances(inputs if type(inputs) is list else [inputs], b64=True)
    if "data" in doc:
        return _split_frame(doc)  # MLflow 1.x pandas-split
    raise PayloadError("unsupported_shape", "no dataframe_split, dataframe_records, instances or inputs")


def _is_csv(message: Message) -> bool:
    return message.headers.get("content-type", "").split(";")[0].strip().lower() == "text/csv"


class MlflowAdapter:
    """Adapter for the MLflow scoring server's `/invocations`."""

    name = "mlflow"

    def match_route(self, request: Message) -> bool:
        return _ROUTE.search(request.path) is not None

    def match_body(self, request: Message) -> bool:
        doc = sniff_object(request.body)
        return doc is not None and ("dataframe_split" in doc or "dataframe_records" in doc)

    @guarded
    def parse_request(self, request: Message) -> Rows:
        rows = _csv(request.body) if _is_csv(request) else _request_rows(loads(request.body))
        rows.ids = row_ids(header_id(request), rows.n)
        return rows

    @guarded
    def parse_response(self, request: Message, response: Message) -> Rows:
        doc = loads(response.body)
        if type(doc) is dict:
            if "predictions" not in doc:
                raise PayloadError("unsupported_shape", "response has no `predictions`")
            doc = doc["predictions"]
        if type(doc) is dict:
            rows = from_columns(doc)  # a dict of output columns
        else:
            rows = from_instances(doc if type(doc) is list else [doc])
        rows.ids = row_ids(header_id(request), rows.n)
        return rows


adapter = MlflowAdapter()
