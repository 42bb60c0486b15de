"""Captured exchange → feature rows and prediction rows, through the protocol adapters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from exporter.adapters import (
    BY_NAME,
    ID_HEADER,
    Adapter,
    CustomAdapter,
    LLMAdapter,
    Message,
    PayloadError,
    Rows,
    decode_body,
    detect,
)
from exporter.adapters.rows import adapter as rows_adapter
from exporter.config import Config
from exporter.events import Event, Extraction
from exporter.predlog import ROWS_CONTENT_TYPE

log = logging.getLogger(__name__)

ROWS_TYPE = ROWS_CONTENT_TYPE.encode()


def _headers(raw: dict[bytes, bytes], id_header: bytes) -> dict[str, str]:
    out = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw.items()}
    if id_header in raw:
        out[ID_HEADER] = raw[id_header].decode("latin-1")  # adapters look under one name
    return out


class Extractor:
    """Holds what extraction needs from the config: the adapter choice and the body limits.

    The labels are not decided here: every Extraction carries the (model, version) the proxy
    decided for its exchange, whatever model name the payload reports, so the two processes
    never disagree (exporter/labels.py).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.id_header = config.capture.id_header.encode("latin-1")
        self.limit = 16 * config.capture.max_body_bytes  # decompressed bytes (zip-bomb cap)
        model = config.model
        self.fixed: Adapter | None = None
        if model.protocol == "custom" and model.custom is not None:
            self.fixed = CustomAdapter(model.custom.features, model.custom.predictions, model.custom.id)
        elif model.protocol != "auto":
            self.fixed = BY_NAME[model.protocol]
        self._internal_logged = False

    def _message(self, path: str, route: str, headers: dict[bytes, bytes], body: bytes) -> Message:
        """One side of the exchange as the adapters see it, its body decompressed (PayloadError if it cannot be)."""
        encoding = headers.get(b"content-encoding", b"").decode("latin-1") or None
        return Message(path, route, _headers(headers, self.id_header), decode_body(body, encoding, self.limit))

    def extract(self, event: Event) -> Extraction:
        out = Extraction(event.model, event.version)
        path = event.target.split(b"?", 1)[0].decode("latin-1")
        try:
            request = self._message(path, event.route, event.request_headers, event.request_body)
        except PayloadError as exc:
            out.errors.append(("request", exc.reason))
            return out
        if event.request_headers.get(b"content-type") == ROWS_TYPE:  # a log's rows (sources/tail.py)
            adapter: Adapter | None = rows_adapter
        else:
            adapter = self.fixed or detect(request)
        if adapter is None:
            out.errors.append(("request", "unknown_protocol"))
            return out
        out.features = self._call(out, "request", adapter.parse_request, request)
        if 200 <= event.status < 300:
            try:
                response = self._message(path, event.route, event.response_headers, event.response_body)
            except PayloadError as exc:
                out.errors.append(("response", exc.reason))
            else:
                out.predictions = self._call(out, "response", adapter.parse_response, request, response)
                if out.predictions is not None:
                    out.llm = out.predictions.llm
        elif hasattr(adapter, "parse_error"):  # an LLM protocol: the error type its answer names
            try:
                response = self._message(path, event.route, event.response_headers, event.response_body)
            except PayloadError:
                return out
            llm: LLMAdapter = adapter  # type: ignore[assignment]
            try:
                out.llm = llm.parse_error(request, response)
            except PayloadError:
                pass
        return out

    def _call(self, out: Extraction, side: str, fn: Callable[..., Rows], *args: Any) -> Rows | None:
        try:
            rows: Rows = fn(*args)
        except PayloadError as exc:
            out.errors.append((side, exc.reason))
            return None
        except Exception:  # an adapter bug must cost one payload, not the worker
            if not self._internal_logged:
                self._internal_logged = True
                log.exception("adapter failed on a %s payload (logged once)", side)
            out.errors.append((side, "internal"))
            return None
        return rows
