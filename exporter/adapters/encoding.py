"""Undo a body's Content-Encoding (gzip, deflate, identity) with a cap on the decoded size."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from exporter.adapters.base import PayloadError

DEFAULT_LIMIT = 16 << 20  # decoded bytes; a capped 1 MiB capture rarely expands further
_GZIP, _ZLIB, _RAW = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """Decompress one stream (gzip: every concatenated member), stopping past `limit` bytes."""
    out: list[bytes] = []
    total = 0
    while data:
        stream = zlib.decompressobj(wbits)
        while True:
            chunk = stream.decompress(data, limit + 1 - total)  # never inflate more than the cap
            total += len(chunk)
            out.append(chunk)
            if total > limit:
                raise PayloadError("truncated", f"decoded body exceeds {limit} bytes")
            if stream.eof:
                break
            data = stream.unconsumed_tail
            if not data:
                raise PayloadError("truncated", "compressed stream ends early")
        data = stream.unused_data
        if wbits != _GZIP or not data.strip(b"\0"):
            break  # trailing zero padding after the last gzip member is common and harmless
    return b"".join(out)


def _is_zlib(data: bytes) -> bool:
    """RFC 1950 header check: `deflate` is meant to be zlib-wrapped, some servers send raw."""
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def decode_body(body: bytes, content_encoding: str | None, limit: int = DEFAULT_LIMIT) -> bytes:
    """The body with its content codings removed (applied in order, so undone in reverse)."""
    if not content_encoding:
        return body
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    try:
        for coding in reversed(codings):
            if coding in ("", "identity"):
                continue
            if not body:
                continue  # an empty body (HEAD, 204) carries nothing to decode
            if coding in ("gzip", "x-gzip"):
                body = _inflate(body, _GZIP, limit)
            elif coding == "deflate":
                body = _inflate(body, _ZLIB if _is_zlib(body) else _RAW, limit)
            else:
                raise PayloadError("invalid_encoding", f"unsupported Content-Encoding {coding!r:.40}")
    except zlib.error as exc:
        raise PayloadError("invalid_encoding", f"{content_encoding}: {exc}") from None
    return body


def decoded_marks(
    body: bytes, content_encoding: str, marks: Sequence[tuple[float, float]], limit: int = DEFAULT_LIMIT
) -> list[tuple[float, float]]:
    """Marks of a coded body moved onto its decoded bytes: (decoded bytes so far, time), one per mark.

    The proxy marks how many body bytes each upstream read had brought when it arrived
    (events.Event.marks). A gzip or deflate stream that streams at all is flushed event by event,
    so decoding it read by read gives where the decoded events ended at each read. Empty when the
    coding is not one gzip or deflate stream, the body does not decode, or decodes past `limit`.
    """
    coding = content_encoding.strip().lower()
    if coding in ("gzip", "x-gzip"):
        wbits = _GZIP
    elif coding == "deflate":
        wbits = _ZLIB if _is_zlib(body) else _RAW
    else:
        return []
    stream = zlib.decompressobj(wbits)
    out: list[tuple[float, float]] = []
    decoded = at = 0
    try:
        for size, when in marks:
            data, at = body[at : int(size)], int(size)
            while data:
                decoded += len(stream.decompress(data, limit + 1 - decoded))
                if decoded > limit:
                    return []
                if stream.unconsumed_tail:
                    data = stream.unconsumed_tail
                elif stream.eof and wbits == _GZIP and stream.unused_data.strip(b"\0"):
                    data, stream = stream.unused_data, zlib.decompressobj(wbits)  # the next gzip member
                else:
                    data = b""
            out.append((float(decoded), when))
    except zlib.error:
        return []
    return out
