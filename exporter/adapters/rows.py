"""Rows already extracted: a prediction log's `features` / `predictions` (docs/prediction-log.md),
handed over by the tailer as a JSON array of objects under predlog.ROWS_CONTENT_TYPE.

Never auto-detected: the worker picks it by that content type, whatever model.protocol says.
"""

from __future__ import annotations

from exporter.adapters._payload import header_id, loads, row_ids
from exporter.adapters._tables import from_records
from exporter.adapters.base import Message, PayloadError, Rows


class RowsAdapter:
    name = "rows"

    def _rows(self, message: Message, request: Message) -> Rows:
        doc = loads(message.body)
        if type(doc) is not list or not doc:
            raise PayloadError("unsupported_shape", "expected a non-empty JSON array of row objects")
        rows = from_records(doc)
        rows.ids = row_ids(header_id(request), rows.n)
        return rows

    def parse_request(self, request: Message) -> Rows:
        return self._rows(request, request)

    def parse_response(self, request: Message, response: Message) -> Rows:
        return self._rows(response, request)


adapter = RowsAdapter()
