"""CloudEvents over HTTP (spec v1.0, HTTP protocol binding) as the KServe and Seldon loggers send them.

Pure parsing, no I/O: a request's headers and body in, a `CloudEvent` out, or a `Rejected`
naming what was wrong. Both content modes of the binding:

- binary: the attributes are `ce-*` headers, the body is the data as is, `Content-Type` its
  media type. KServe's InferenceService logger and Seldon Core's executor logger send this.
- structured: the body is a JSON envelope (`application/cloudevents+json`) holding the
  attributes and `data` (a JSON value) or `data_base64`.

Only the inference types are accepted: request and response halves of one prediction share
their `id`, which is how push.py joins them.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import NamedTuple

# type → (platform, half)
TYPES: dict[str, tuple[str, str]] = {
    "org.kubeflow.serving.inference.request": ("kserve", "request"),
    "org.kubeflow.serving.inference.response": ("kserve", "response"),
    "io.seldon.serving.inference.request": ("seldon", "request"),
    "io.seldon.serving.inference.response": ("seldon", "response"),
}
MODES = ("binary", "structured")
# model_exporter_push_rejected_total{reason}
REJECT_REASONS = (
    "missing_attribute",  # id, type, source or specversion absent or empty
    "unsupported_type",  # not one of TYPES (Seldon's feedback events included: labels go to POST /feedback)
    "unsupported_specversion",
    "unsupported_content_type",  # a batch of events, or a structured event in another format than JSON
    "invalid_envelope",  # structured mode: not a JSON object, bad attribute types, bad data_base64
    "too_large",  # body over push.max_body_bytes
)
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
MAX_ATTRIBUTE_CHARS = 1024  # an id, a name: longer is no real logger's


class CloudEvent(NamedTuple):
    id: str
    type: str
    mode: str
    source: str
    time: float | None  # epoch seconds from the `time` attribute, if sent and readable
    content_type: str  # the data's media type
    data: bytes
    extensions: dict[str, str]  # inferenceservicename, namespace, endpoint, component, modelid, protocol, ...

    @property
    def platform(self) -> str:
        return TYPES[self.type][0]

    @property
    def half(self) -> str:
        return TYPES[self.type][1]


class Rejected(ValueError):
    """An event that cannot be taken: `reason` is one of REJECT_REASONS, the message says what would be right."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REJECT_REASONS, reason
        super().__init__(message)
        self.reason = reason


def parse(headers: dict[str, str], body: bytes) -> CloudEvent:
    """The event of one HTTP request (lower-cased header names); raises Rejected."""
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == BATCH:
        raise Rejected(
            "unsupported_content_type", f"{BATCH} (batched mode) is not accepted: send one event per request"
        )
    if media.startswith("application/cloudevents"):
        if media != STRUCTURED:
            raise Rejected("unsupported_content_type", f"structured mode in {media}: only {STRUCTURED} is accepted")
        return _structured(body)
    return _binary(headers, body)


def _binary(headers: dict[str, str], body: bytes) -> CloudEvent:
    attrs = {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
    if not attrs:
        raise Rejected(
            "missing_attribute",
            "not a CloudEvent: expected ce-specversion, ce-id, ce-type and ce-source headers (binary mode) "
            f"or a {STRUCTURED} body (structured mode)",
        )
    return _event(attrs, "binary", "ce-", headers.get("content-type", ""), body)


def _structured(body: bytes) -> CloudEvent:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected("invalid_envelope", f"structured mode: the body is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise Rejected("invalid_envelope", "structured mode: expected a JSON object with the event's attributes")
    attrs: dict[str, str] = {}
    for key, value in doc.items():
        if key in ("data", "data_base64"):
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise Rejected("invalid_envelope", f"structured mode: attribute {str(key)[:64]!r}: expected a string")
        attrs[str(key)] = str(value)
    content_type = attrs.pop("datacontenttype", "application/json")
    if "data_base64" in doc:
        if "data" in doc:
            raise Rejected("invalid_envelope", "structured mode: both data and data_base64 are set (one at most)")
        encoded = doc["data_base64"]
        try:
            if not isinstance(encoded, str):
                raise ValueError
            data = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise Rejected("invalid_envelope", "structured mode: data_base64: expected base64 text") from None
    elif "data" not in doc or doc["data"] is None:
        data = b""
    elif isinstance(doc["data"], str) and not _is_json(content_type):
        data = doc["data"].encode()
    else:
        data = json.dumps(doc["data"], separators=(",", ":")).encode()
    return _event(attrs, "structured", "", content_type, data)


def _is_json(media: str) -> bool:
    media = media.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def _event(attrs: dict[str, str], mode: str, prefix: str, content_type: str, data: bytes) -> CloudEvent:
    for name in ("specversion", "id", "type", "source"):
        value = attrs.get(name, "")
        if not value:
            raise Rejected("missing_attribute", f"{mode} mode: {prefix}{name} is required")
        if len(value) > MAX_ATTRIBUTE_CHARS:
            raise Rejected(
                "missing_attribute", f"{mode} mode: {prefix}{name}: longer than {MAX_ATTRIBUTE_CHARS} characters"
            )
    if attrs["specversion"] != "1.0":
        raise Rejected(
            "unsupported_specversion", f"{prefix}specversion {attrs['specversion'][:16]!r}: only 1.0 is supported"
        )
    kind = attrs["type"]
    if kind not in TYPES:
        raise Rejected(
            "unsupported_type",
            f"{prefix}type {kind[:128]!r} is not an inference event (expected one of {', '.join(TYPES)})",
        )
    core = {"specversion", "id", "type", "source", "time", "subject", "dataschema", "datacontenttype"}
    extensions = {k: v[:MAX_ATTRIBUTE_CHARS] for k, v in attrs.items() if k not in core}
    return CloudEvent(
        id=attrs["id"],
        type=kind,
        mode=mode,
        source=attrs["source"],
        time=_time(attrs.get("time")),
        content_type=content_type,
        data=data,
        extensions=extensions,
    )


def _time(value: str | None) -> float | None:
    """RFC 3339 time as epoch seconds; None if absent or unreadable (the event is still taken)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None
