"""Seldon Core V1 `SeldonMessage`: `data: {names, ndarray | tensor}`, `jsonData`, `strData`, `binData`.

Request and response share the shape; `meta.puid` is the row id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from exporter.adapters._payload import b64decode, guarded, header_id, loads_object, row_ids, sniff_object
from exporter.adapters._tables import from_instances, from_records, from_row_lists, positional
from exporter.adapters._tensors import shape_of
from exporter.adapters.base import Message, PayloadError, Rows

_ROUTE = re.compile(r"/api/v[0-9.]+/predictions/?\Z")


def _tensor(tensor: Any, names: list[Any] | None) -> Rows:
    """Rows of `tensor: {shape, values}` (flat row-major values; first dimension is the batch)."""
    if type(tensor) is not dict:
        raise PayloadError("unsupported_shape", "`tensor` must be an object")
    values = tensor.get("values")
    if type(values) is not list:
        raise PayloadError("unsupported_shape", "`tensor` needs a `values` list")
    rows, width, _ = shape_of(tensor)
    if rows * width != len(values):
        raise PayloadError("inconsistent_rows", f"tensor shape holds {rows * width} values, got {len(values)}")
    if names and len(names) != width:
        raise PayloadError("inconsistent_rows", f"{len(names)} names for {width} values per row")
    keys = [str(name) for name in names] if names else positional(width)
    if len(set(keys)) != len(keys):
        raise PayloadError("unsupported_shape", "duplicate column names")
    columns: dict[str, Sequence[Any]] = {key: values[j::width] for j, key in enumerate(keys)}
    return Rows(columns=columns, n=rows, positional=not names)


def _json_data(data: Any) -> Rows:
    """`jsonData`: one object is one row, a list of objects is rows."""
    if type(data) is dict:
        return from_records([data])
    if type(data) is list and all(type(item) is dict for item in data):
        return from_records(data)
    raise PayloadError("unsupported_shape", "`jsonData` must be an object or a list of objects")


def rows_of(doc: dict[str, Any]) -> Rows:
    """Rows of a SeldonMessage (request or response)."""
    if "data" in doc:
        data = doc["data"]
        if type(data) is not dict:
            raise PayloadError("unsupported_shape", "`data` must be an object")
        names = data.get("names")
        if names is not None and type(names) is not list:
            raise PayloadError("unsupported_shape", "`data.names` must be a list")
        if "ndarray" in data:
            ndarray = data["ndarray"]
            if type(ndarray) is list and ndarray and all(type(row) is list for row in ndarray):
                return from_row_lists(ndarray, names=names or None)
            return from_instances(ndarray, names=names or None)
        if "tensor" in data:
            return _tensor(data["tensor"], names or None)
        raise PayloadError("unsupported_shape", "`data` has neither `ndarray` nor `tensor`")
    if "jsonData" in doc:
        return _json_data(doc["jsonData"])
    if "strData" in doc:
        return Rows(columns={"x0": [doc["strData"]]}, n=1, positional=True)
    if "binData" in doc:
        return Rows(columns={"x0": [b64decode(doc["binData"])]}, n=1, positional=True)
    raise PayloadError("unsupported_shape", "no `data`, `jsonData`, `strData` or `binData`")


def _puid(doc: dict[str, Any]) -> Any:
    meta = doc.get("meta")
    return meta.get("puid") if type(meta) is dict else None


class SeldonAdapter:
    """Adapter for Seldon Core V1 `/api/v1.0/predictions`."""

    name = "seldon"

    def match_route(self, request: Message) -> bool:
        return _ROUTE.search(request.path) is not None

    def match_body(self, request: Message) -> bool:
        doc = sniff_object(request.body)
        if doc is None:
            return False
        data = doc.get("data")
        return (type(data) is dict and ("ndarray" in data or "tensor" in data)) or "jsonData" in doc

    @guarded
    def parse_request(self, request: Message) -> Rows:
        doc = loads_object(request.body)
        rows = rows_of(doc)
        rows.ids = row_ids(_puid(doc) or header_id(request), rows.n)
        return rows

    @guarded
    def parse_response(self, request: Message, response: Message) -> Rows:
        doc = loads_object(response.body)
        rows = rows_of(doc)
        rows.ids = row_ids(_puid(doc) or header_id(request), rows.n)
        return rows


adapter = SeldonAdapter()
