"""KServe V1 and TensorFlow Serving REST predict: `instances` (rows) or `inputs` (columns).

`{"b64": "…"}` values become bytes; `NaN`/`Infinity` tokens parse (stdlib JSON fallback).
Unnamed rows get positional columns x0, x1, …; `signature_name` is ignored.
"""

from __future__ import annotations

import re
from typing import Any

from exporter.adapters._payload import guarded, header_id, loads_object, row_ids, sniff_object
from exporter.adapters._tables import from_columns, from_instances
from exporter.adapters.base import Message, PayloadError, Rows

_ROUTE = re.compile(r"/v1/models/(?P<model>[^/:]+)(?:/versions/(?P<version>[^/:]+))?:predict/?\Z")


def rows_of(doc: dict[str, Any], row_key: str, column_key: str) -> Rows:
    """Rows of a row-format (`instances`/`predictions`) or columnar (`inputs`/`outputs`) body."""
    if row_key in doc:
        if column_key in doc:
            raise PayloadError("unsupported_shape", f"both `{row_key}` and `{column_key}` sent")
        return from_instances(doc[row_key], b64=True)
    if column_key not in doc:
        raise PayloadError("unsupported_shape", f"neither `{row_key}` nor `{column_key}` in the body")
    columns = doc[column_key]
    if type(columns) is dict:
        return from_columns(columns, b64=True)
    if type(columns) is list:
        return from_instances(columns, b64=True)  # an unnamed input: its first dimension is the batch
    return from_instances([columns], b64=True)  # a single unbatched value


class V1Adapter:
    """Adapter for `/v1/models/{model}[/versions/{version}]:predict`."""

    name = "v1"

    def match_route(self, request: Message) -> bool:
        return _ROUTE.search(request.path) is not None

    def match_body(self, request: Message) -> bool:
        doc = sniff_object(request.body)
        return doc is not None and (type(doc.get("instances")) is list or type(doc.get("inputs")) in (dict, list))

    @guarded
    def parse_request(self, request: Message) -> Rows:
        rows = rows_of(loads_object(request.body), "instances", "inputs")
        rows.ids = row_ids(header_id(request), rows.n)
        route = _ROUTE.search(request.path)
        if route:
            rows.model, rows.version = route["model"], route["version"]
        return rows

    @guarded
    def parse_response(self, request: Message, response: Message) -> Rows:
        rows = rows_of(loads_object(response.body), "predictions", "outputs")
        rows.ids = row_ids(header_id(request), rows.n)
        route = _ROUTE.search(request.path)
        if route:
            rows.model, rows.version = route["model"], route["version"]
        return rows


adapter = V1Adapter()
