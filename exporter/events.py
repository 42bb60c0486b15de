"""The vocabulary both processes share: the Event a source hands over, the frames on the socket
between the proxy and the analysis worker, and the Extraction the worker passes to its analyzers.

A leaf: it imports nothing of the package at run time, so the proxy process stays lean.
"""

from __future__ import annotations

import math
import pickle
import struct
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from exporter.adapters.base import Generation, Rows

# Request/response headers the adapters use; nothing else is captured.
REQUEST_HEADERS = frozenset({b"content-type", b"content-encoding", b"inference-header-content-length"})
RESPONSE_HEADERS = REQUEST_HEADERS

DROP_REASONS = ("queue_full", "body_too_large", "worker_down")

# Arrival marks kept per streamed response (Event.marks); past the cap the last mark is overwritten
# so the end stays timed, and the worker counts the stream in model_llm_stream_marks_capped_total.
MAX_MARKS = 4096
# One mark: (body bytes captured so far, seconds since the request's first byte), two native doubles.
# Packed bytes, not a list of tuples: a stream's marks pickle as one memcpy on the proxy's loop
# (a list of 200 tuples costs ~25 us to pickle, their bytes under 1 us).
MARK = struct.Struct("=dd")


def unpack_marks(marks: bytes) -> list[tuple[float, float]]:
    """The (bytes so far, seconds) pairs of Event.marks."""
    return list(MARK.iter_unpack(marks))


class Event(NamedTuple):
    """A captured exchange: plain tuples and bytes so a batch pickles at memcpy speed."""

    time: float  # wall clock at completion
    route: str
    target: bytes  # path and query as sent
    status: int
    duration: float
    request_headers: dict[bytes, bytes]  # lower-cased names, REQUEST_HEADERS and the id header only
    request_body: bytes
    response_headers: dict[bytes, bytes]
    response_body: bytes
    # the exchange's label values, decided once by the proxy's label policy (exporter/labels.py):
    # every series the worker derives from this exchange carries them
    model: str
    version: str
    # LLM routes only (exporter/proxy/routes.py LLM_ROUTES): when each read of the response body
    # arrived, as (body bytes captured so far, perf_counter seconds since the request's first byte),
    # one mark per upstream read that carried body bytes, at most MAX_MARKS, packed with MARK
    # (unpack_marks). The worker finds, for each generated token event of the stream, the read
    # that completed it (analyzers/llm.py).
    marks: bytes = b""


class EventSink(Protocol):
    """Where a source hands its events: never blocks; what it cannot take it drops and counts."""

    def submit(self, event: Event) -> None: ...

    def drop(self, reason: str) -> None:
        """Count an exchange left out of analysis before it became an event (one of DROP_REASONS)."""


@dataclass(slots=True)
class Extraction:
    """What the worker got out of one exchange: rows of features and predictions, or why not."""

    model: str  # the exchange's label values, as the proxy decided them (Event.model/.version)
    version: str
    features: Rows | None = None
    predictions: Rows | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)  # (side, reason)
    llm: Generation | None = None  # an LLM exchange: what its response says of the generation


# ---------------------------------------------------------------- framing: length-prefixed pickles
HEADER = struct.Struct("!IB")  # payload length, kind

# frame kinds
EVENTS = 1  # proxy → worker: list[Event]
COLLECT = 2  # proxy → worker: request id; worker → proxy: (request id, families)
ACK = 3  # worker → proxy: number of events processed
RELOAD = 4  # proxy → worker: (request id, settings); worker → proxy: (request id, error or None)
LABELS = 5  # proxy → worker: Feedback; worker → proxy: number of labels processed


class Label(NamedTuple):
    """One ground-truth record from POST /feedback, validated by the proxy (sidecar/feedback.py)."""

    id: str
    label: str | int | float | bool
    time: float | None  # when the outcome happened (epoch seconds); None: when it arrived
    value: float | None  # a business outcome (revenue, cost), if sent


# ---------------------------------------------------------------- a label record, as sent or logged
# `{"id", "label", optional "time", optional numeric "value"}`: one record of POST /feedback or one
# line of a labels file followed by the tailer (tail shape `labels`); checked the same way in both.
MAX_ID_CHARS = 256
MAX_LABEL_CHARS = 256
FIELDS = frozenset({"id", "label", "time", "value"})


class RecordError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_record(record: Any) -> Label:
    """One record as a Label; RecordError names the field."""
    if not isinstance(record, dict):
        raise RecordError("record", 'expected an object like {"id": "r1", "label": 1}')
    for key in record:
        if key not in FIELDS:
            raise RecordError(str(key)[:64], "unknown field (allowed: id, label, time, value)")
    if "id" not in record:
        raise RecordError("id", "required (the prediction's id: payload id or request id header)")
    rid = record["id"]
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "" or len(str(rid)) > MAX_ID_CHARS:
        raise RecordError("id", f"expected a non-empty string or integer of at most {MAX_ID_CHARS} characters")
    if "label" not in record:
        raise RecordError("label", "required (the true class or value)")
    label = record["label"]
    if isinstance(label, float) and not math.isfinite(label):
        raise RecordError("label", "expected a finite number")
    if not isinstance(label, (str, int, float, bool)) or (
        isinstance(label, str) and not 0 < len(label) <= MAX_LABEL_CHARS
    ):
        raise RecordError("label", f"expected a number, a boolean or a string of 1 to {MAX_LABEL_CHARS} characters")
    return Label(str(rid), label, _time(record.get("time")), _value(record.get("value")))


def _time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError("time", "expected epoch seconds or an ISO 8601 time with a zone") from None
        if parsed.tzinfo is None:
            raise RecordError("time", "expected an ISO 8601 time with a zone, e.g. 2026-01-31T12:00:00Z")
        return parsed.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise RecordError("time", "expected epoch seconds or an ISO 8601 time with a zone")
    return float(value)


def _value(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        # non-negative: the sums are Prometheus counters (record a cost as a positive amount)
        raise RecordError("value", "expected a non-negative number (a business outcome: revenue, cost)")
    return float(value)


class Feedback(NamedTuple):
    """A LABELS frame: the valid records of one POST and how many were invalid."""

    received: float  # wall clock when the proxy took the POST
    labels: list[Label]
    invalid: int


def encode(kind: int, payload: Any) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data), kind) + data


class FrameReader:
    """Incremental decoder: feed bytes, get complete (kind, payload) frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, Any]]:
        self._buf += data
        frames = []
        while len(self._buf) >= HEADER.size:
            length, kind = HEADER.unpack_from(self._buf)
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            # unpickled from a view, not a copy: a scrape's frame can be megabytes
            with memoryview(self._buf) as view, view[HEADER.size : end] as payload:
                frames.append((kind, pickle.loads(payload)))
            del self._buf[:end]
        return frames
