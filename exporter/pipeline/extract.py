"""Captured exchange → feature rows and prediction rows, through the protocol adapters."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from exporter.adapters import BY_NAME, Adapter, CustomAdapter, Message, PayloadError, Rows, decode_body, detect
from exporter.config import Config
from exporter.pipeline.event import Event

log = logging.getLogger(__name__)

OTHER = "other"


@dataclass(slots=True)
class Extraction:
    model: str
    version: str
    features: Rows | None = None
    predictions: Rows | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)  # (side, reason)


def _headers(raw: dict[bytes, bytes], id_header: bytes) -> dict[str, str]:
    out = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw.items()}
    if id_header in raw:
        out["x-request-id"] = raw[id_header].decode("latin-1")  # adapters look under one name
    return out


class Extractor:
    """Holds what extraction needs from the config: the adapter choice and the label policy."""

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
        self.known = frozenset(model.known)
        self._internal_logged = False

    def label(self, configured: str, reported: str | None) -> str:
        """Label value: the configured one, else a known reported one, else a fixed word."""
        if configured != "unknown":
            return configured
        if reported is None:
            return "unknown"
        return reported if reported in self.known else OTHER

    def extract(self, event: Event) -> Extraction:
        config = self.config
        out = Extraction(config.model.name, config.model.version)
        path = event.target.split(b"?", 1)[0].decode("latin-1")
        try:
            request = Message(path, event.route, _headers(event.request_headers, self.id_header),
                              decode_body(event.request_body, event.request_headers.get(b"content-encoding", b"").decode("latin-1") or None, self.limit))
        except PayloadError as exc:
            out.errors.append(("request", exc.reason))
            return out
        adapter = self.fixed or detect(request)
        if adapter is None:
            out.errors.append(("request", "unknown_protocol"))
            return out
        out.features = self._call(out, "request", adapter.parse_request, request)
        if 200 <= event.status < 300:
            try:
                response = Message(path, event.route, _headers(event.response_headers, self.id_header),
                                   decode_body(event.response_body, event.response_headers.get(b"content-encoding", b"").decode("latin-1") or None, self.limit))
            except PayloadError as exc:
                out.errors.append(("response", exc.reason))
            else:
                out.predictions = self._call(out, "response", adapter.parse_response, request, response)
        reported = out.predictions or out.features
        if reported is not None:
            out.model = self.label(config.model.name, reported.model)
            out.version = self.label(config.model.version, reported.version) if out.model != OTHER else OTHER
        return out

    def _call(self, out: Extraction, side: str, fn, *args) -> Rows | None:  # type: ignore[no-untyped-def]
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
