"""Helpers every adapter shares: JSON parsing with a lenient fallback, row ids, error guarding."""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

import orjson

from exporter.adapters.base import ID_HEADER, Message, PayloadError

F = TypeVar("F", bound=Callable[..., Any])


def loads(data: bytes | memoryview) -> Any:
    """Parse JSON with orjson; fall back to the stdlib for NaN/Infinity tokens and huge ints."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(bytes(data))
    except UnicodeDecodeError as exc:
        raise PayloadError("invalid_encoding", f"body is not UTF-8: {exc.reason}") from None
    except (ValueError, RecursionError) as exc:
        raise PayloadError("invalid_json", str(exc)[:200]) from None


def loads_object(data: bytes | memoryview) -> dict[str, Any]:
    """Parse a JSON body that must be an object."""
    doc = loads(data)
    if not isinstance(doc, dict):
        raise PayloadError("unsupported_shape", f"expected a JSON object, got {type(doc).__name__}")
    return doc


def sniff_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None; for body-shape detection, which never raises."""
    if not body.lstrip()[:1] == b"{":
        return None
    try:
        doc = loads(body)
    except PayloadError:
        return None
    return doc if isinstance(doc, dict) else None


def b64decode(text: Any) -> bytes:
    """Decode a TF Serving / Seldon base64 value; bad input is an invalid_encoding."""
    if not isinstance(text, str):
        raise PayloadError("invalid_encoding", "b64 value is not a string")
    try:
        # both alphabets and unpadded values occur in the wild (TF Serving accepts them)
        text = text.replace("-", "+").replace("_", "/")
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError("invalid_encoding", "invalid base64 value") from None


def header_id(message: Message) -> str | None:
    """The request id header value, if the client sent one."""
    value = message.headers.get(ID_HEADER)
    return value or None


def row_ids(base: Any, n: int) -> list[str] | None:
    """One id per row: the id itself for one row, `id:i` for rows of a batch."""
    if base is None or base == "" or isinstance(base, (dict, list, bool)):
        return None
    base = str(base)
    if n == 1:
        return [base]
    return [f"{base}:{i}" for i in range(n)]


def guarded(method: F) -> F:
    """Turn any unexpected exception of a parse method into PayloadError("internal")."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except PayloadError:
            raise
        except Exception as exc:  # an adapter bug is counted, never raised into the pipeline
            raise PayloadError("internal", f"{type(exc).__name__}: {exc}"[:300]) from exc

    return cast(F, wrapper)  # functools.wraps keeps the signature; mypy cannot see that
