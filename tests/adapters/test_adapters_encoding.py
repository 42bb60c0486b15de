"""Content-Encoding: gzip, deflate (zlib and raw), stacked codings, zip bombs, corrupt streams."""

from __future__ import annotations

import gzip
import zlib

import pytest

from exporter.adapters import decode_body
from exporter.adapters.base import PayloadError

BODY = b'{"instances": [[1, 2, 3]]}' * 10


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(("encoded", "coding"), [
    (BODY, None), (BODY, ""), (BODY, "identity"),
    (gzip.compress(BODY), "gzip"), (gzip.compress(BODY), "x-gzip"), (gzip.compress(BODY), " GZIP "),
    (zlib.compress(BODY), "deflate"), (raw_deflate(BODY), "deflate"),
    (gzip.compress(zlib.compress(BODY)), "deflate, gzip"),  # applied in order, undone in reverse
    (gzip.compress(BODY[:50]) + gzip.compress(BODY[50:]) + b"\0\0", "gzip"),  # concatenated members
    (b"", "gzip"),
])
def test_decodes(encoded: bytes, coding: str | None) -> None:
    assert decode_body(encoded, coding) == (BODY if encoded else b"")


def test_zip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    with pytest.raises(PayloadError) as caught:
        decode_body(bomb, "gzip", limit=1 << 20)
    assert caught.value.reason == "truncated"
    assert decode_body(gzip.compress(b"a" * 1000), "gzip", limit=1000) == b"a" * 1000


@pytest.mark.parametrize(("encoded", "coding", "reason"), [
    (gzip.compress(BODY)[:-10], "gzip", "truncated"),     # cut by the capture limit
    (zlib.compress(BODY)[:20], "deflate", "truncated"),
    (b"definitely not gzip", "gzip", "invalid_encoding"),
    (gzip.compress(BODY) + b"garbage", "gzip", "invalid_encoding"),
    (BODY, "br", "invalid_encoding"),                       # not supported: counted, not guessed
])
def test_failures(encoded: bytes, coding: str, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        decode_body(encoded, coding)
    assert caught.value.reason == reason
