"""Custom JSON payloads: features, predictions and the row id located by JSON paths from config.

The path language is a small subset of JSONPath: `$` followed by `.key`, `['key']`, `[n]`
(a list index, negative counts from the end) and `[*]` (every list element), e.g.
`$.data.rows`, `$.instances[*].features`, `$.outputs[0]`. A path without `[*]` that lands on
a list means one row per element; one that lands on an object means a single row. The id
path is looked up in the body being parsed (with `[*]`: one id per row), else the id header.
"""

from __future__ import annotations

from typing import Any

from exporter.adapters._payload import guarded, header_id, loads, row_ids
from exporter.adapters._tables import from_instances
from exporter.adapters.base import Message, PayloadError, Rows
from exporter.jsonpath import JsonPath


class CustomAdapter:
    """Adapter configured with JSON paths for features, predictions and the request id."""

    name = "custom"

    def __init__(self, features: str, predictions: str | None = None, id_path: str | None = None) -> None:
        self.features = JsonPath.compile(features)
        self.predictions = JsonPath.compile(predictions) if predictions is not None else None
        self.id_path = JsonPath.compile(id_path) if id_path is not None else None

    def _rows(self, path: JsonPath, doc: Any, what: str) -> Rows:
        found = path.find(doc)
        if not path.wildcard:
            if not found:
                raise PayloadError("unsupported_shape", f"{what} path {path.text} matches nothing")
            found = found[0] if type(found[0]) is list else found
        return from_instances(found)

    def _ids(self, doc: Any, request: Message, n: int) -> list[str] | None:
        """Ids from the id path in this body (one per row with `[*]`), else the id header."""
        if self.id_path is not None:
            found = [v for v in self.id_path.find(doc) if type(v) in (str, int)]
            if self.id_path.wildcard and len(found) == n and n > 0:
                return [str(v) for v in found]
            if found and not self.id_path.wildcard:
                return row_ids(found[0], n)
        return row_ids(header_id(request), n)

    @guarded
    def parse_request(self, request: Message) -> Rows:
        doc = loads(request.body)
        rows = self._rows(self.features, doc, "features")
        rows.ids = self._ids(doc, request, rows.n)
        return rows

    @guarded
    def parse_response(self, request: Message, response: Message) -> Rows:
        if self.predictions is None:
            return Rows(columns={}, n=0)
        doc = loads(response.body)
        rows = self._rows(self.predictions, doc, "predictions")
        rows.ids = self._ids(doc, request, rows.n)
        return rows
