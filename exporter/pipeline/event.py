"""What the proxy hands to the pipeline for one finished exchange."""

from __future__ import annotations

from typing import NamedTuple

# Request/response headers the adapters use; nothing else is captured.
REQUEST_HEADERS = frozenset({b"content-type", b"content-encoding", b"inference-header-content-length"})
RESPONSE_HEADERS = REQUEST_HEADERS

DROP_REASONS = ("queue_full", "body_too_large", "worker_down")


class Event(NamedTuple):
    """A captured exchange: plain tuples and bytes so a batch pickles at memcpy speed."""

    time: float                         # wall clock at completion
    route: str
    target: bytes                       # path and query as sent
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
