"""The shared vocabulary of protocol adapters: a Message in, Rows out, or a counted PayloadError."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# The only values `model_payload_errors_total{reason}` can take.
PAYLOAD_ERROR_REASONS = (
    "invalid_json",  # body is not JSON (or not the JSON the protocol defines)
    "invalid_encoding",  # gzip/deflate or base64/UTF-8 decoding failed
    "unsupported_shape",  # valid JSON, but not a shape this protocol allows
    "inconsistent_rows",  # columns of different lengths, shape × data size mismatch
    "invalid_binary",  # V2 binary extension: bad header length, short tensor data
    "unknown_protocol",  # no adapter recognised the exchange
    "truncated",  # body cut by the capture limit
    "internal",  # an adapter bug; counted, never raised into the pipeline
)

# The only values `model_llm_finish_reasons_total{reason}` and `model_llm_errors_total{type}` can
# take: what the servers send, normalised (TGI's eos_token and stop_sequence are stops), else "other".
LLM_OPERATIONS = ("chat", "completion", "embeddings", "responses", "generate")  # Generation.operation
FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls", "function_call", "other")
LLM_ERROR_TYPES = (
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "insufficient_quota",
    "server_error",
    "overloaded_error",
    "other",  # a type outside the list, or an error without one
)

ID_HEADER = "x-request-id"  # the pipeline stores the configured id header under this name


class PayloadError(Exception):
    """A payload the adapter cannot turn into rows; `reason` is one of PAYLOAD_ERROR_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in PAYLOAD_ERROR_REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Message:
    """One side of an exchange as the adapters see it: decoded body plus the headers they use."""

    path: str  # request path without the query, e.g. /v2/models/m/infer
    route: str  # normalised route template, e.g. /v2/models/{model}/infer
    headers: Mapping[str, str]  # lower-cased names; only content-type, inference-header-content-length, ID_HEADER
    body: bytes  # already decompressed (Content-Encoding handled by the pipeline)


@dataclass(slots=True)
class Generation:
    """What an LLM response says of its generation (analyzers/llm.py turns it into model_llm_*).

    `content_ends`: for a stream, the offset in the response body just past each event that
    carries generated content (a token or a few: not a role-only chunk, not the final usage or
    done event), in order; the worker times each by the read that completed it (Event.marks).
    """

    operation: str  # one of LLM_OPERATIONS
    streamed: bool = False
    content_ends: list[int] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage: bool = False  # the token counts are the server's; else completion_tokens counts content events
    finish_reason: str | None = None  # one of FINISH_REASONS
    error_type: str | None = None  # one of LLM_ERROR_TYPES: the server answered (or ended a stream) with an error
    complete: bool = True  # a stream reached its final event (done / completed / finish reason)


@dataclass(slots=True)
class Rows:
    """Columnar rows: every column has exactly `n` values.

    Values are Python scalars from JSON (float/int/str/bool/None, or anything else a client
    sent — quality checks classify it) or numpy arrays for binary tensors. A column of a
    multi-dimensional tensor is flattened into columns `name[0]`, `name[1]`, …
    """

    columns: dict[str, Sequence[Any]]
    n: int
    ids: list[str] | None = None  # one per row when the payload has them
    model: str | None = None  # from the payload (V2 response model_name, …)
    version: str | None = None
    positional: bool = False  # names were generated (x0, x1, …), not sent
    datatypes: dict[str, str] = field(default_factory=dict)  # declared type per column (V2 datatype)
    llm: Generation | None = None  # an LLM response: tokens, finish reason, stream events


class Adapter(Protocol):
    """A protocol adapter: one module per protocol, registered in exporter.adapters.ADAPTERS."""

    name: str  # config value for model.protocol, e.g. "v2"

    def parse_request(self, request: Message) -> Rows:
        """Feature rows of a request; raises PayloadError."""

    def parse_response(self, request: Message, response: Message) -> Rows:
        """Prediction rows of a 2xx response; raises PayloadError."""


class LLMAdapter(Adapter, Protocol):
    """An adapter of an LLM protocol: it also reads the error a non-2xx response carries."""

    def parse_error(self, request: Message, response: Message) -> Generation:
        """The Generation of an error response (error_type set); raises PayloadError."""
