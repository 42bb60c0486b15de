"""HTTP/1.1 message framing written apart from the proxy's parser (httptools/llhttp).

The fuzz suite checks the proxy's bytes with an independent reader, so a bug shared by the
proxy and its own parser cannot hide itself. It reads only well-formed messages: anything it
cannot read is reported as `WireError`, and the property that saw it fails with the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

CRLF = b"\r\n"
HEAD_END = b"\r\n\r\n"

# RFC 9110 §7.6.1 as the proxy applies it (exporter/proxy/upstream.py): these fields are dropped
# in both directions, and so are the fields a Connection header names except the CONNECTION_OPTIONS;
# every other field passes in order, name case kept.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "upgrade"})
CONNECTION_OPTIONS = frozenset({"", "close", "keep-alive", "host", "content-length", "transfer-encoding"})
# Trailer fields of a chunked body pass on its last chunk, except these (RFC 9110 §6.5.1).
NOT_TRAILERS = HOP_BY_HOP | {"transfer-encoding", "content-length", "trailer", "host"}

# Optional whitespace around a field value is not part of it (RFC 9110 §5.5).
OWS = b" \t"


class WireError(Exception):
    """Bytes that are not the well-formed HTTP/1.1 message the reader expected."""


class NeedMore(Exception):
    """The buffer ends before the message does."""


@dataclass(frozen=True)
class Head:
    """A parsed message head: start line, fields as sent (name case kept), and its raw bytes."""

    start: bytes
    fields: tuple[tuple[bytes, bytes], ...]
    raw: bytes

    def values(self, name: bytes) -> list[bytes]:
        lname = name.lower()
        return [v for k, v in self.fields if k.lower() == lname]

    def is_chunked(self) -> bool:
        """True when the last transfer coding is chunked (RFC 9112 §6.3)."""
        codings = b",".join(self.values(b"transfer-encoding")).split(b",")
        return bool(self.values(b"transfer-encoding")) and codings[-1].strip(OWS).lower() == b"chunked"

    def content_length(self) -> int | None:
        values = self.values(b"content-length")
        return int(values[0]) if values else None


def split_head(buf: bytes | bytearray) -> tuple[Head, int]:
    """The head at the start of `buf` and the offset where its body starts; NeedMore if incomplete."""
    end = buf.find(HEAD_END)
    if end < 0:
        raise NeedMore
    raw = bytes(buf[:end + 4])
    lines = raw[:-4].split(CRLF)
    fields = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip(OWS):
            raise WireError(f"malformed field line {line!r}")
        fields.append((name, value.strip(OWS)))
    return Head(lines[0], tuple(fields), raw), end + 4


def read_chunked(buf: bytes | bytearray, pos: int) -> tuple[bytes, list[bytes], bytes, int]:
    """Decode a chunked body at `pos`: (content, chunk-size lines as sent, trailer section, offset after it)."""
    content = bytearray()
    size_lines: list[bytes] = []
    while True:
        eol = buf.find(CRLF, pos)
        if eol < 0:
            raise NeedMore
        size_line = bytes(buf[pos:eol])
        size_lines.append(size_line)
        try:
            size = int(size_line.split(b";", 1)[0].strip(OWS), 16)
        except ValueError:
            raise WireError(f"bad chunk size line {size_line!r}") from None
        pos = eol + 2
        if size == 0:  # then trailer fields, if any, and an empty line
            if buf[pos:pos + 2] == CRLF:
                return bytes(content), size_lines, b"", pos + 2
            end = buf.find(HEAD_END, pos)
            if end < 0 or len(buf) < pos + 2:
                raise NeedMore
            return bytes(content), size_lines, bytes(buf[pos:end + 2]), end + 4
        if len(buf) < pos + size + 2:
            raise NeedMore
        content += buf[pos:pos + size]
        if buf[pos + size:pos + size + 2] != CRLF:
            raise WireError("chunk data not followed by CRLF")
        pos += size + 2


@dataclass(frozen=True)
class Message:
    """One framed message: its head, the body as framed on the wire, the body's content."""

    head: Head
    framed: bytes  # the body bytes exactly as they crossed the wire
    content: bytes  # the body with the chunked framing removed
    chunk_lines: tuple[bytes, ...] = ()
    trailers: bytes = b""  # the trailer section of a chunked body, each field line with its CRLF


def read_message(buf: bytes | bytearray, bodyless: bool = False, eof: bool | None = None) -> tuple[Message, int]:
    """One message at the start of `buf`, and the offset after it.

    A body with neither length nor chunked coding is empty in a request (`eof` None) and runs
    to the close in a response: NeedMore until `eof` says the peer closed.
    """
    head, pos = split_head(buf)
    if bodyless:
        return Message(head, b"", b""), pos
    if head.is_chunked():
        content, lines, trailers, end = read_chunked(buf, pos)
        return Message(head, bytes(buf[pos:end]), content, tuple(lines), trailers), end
    length = head.content_length()
    if length is None:
        if eof is None:
            return Message(head, b"", b""), pos
        if not eof:
            raise NeedMore
        return Message(head, bytes(buf[pos:]), bytes(buf[pos:])), len(buf)
    if len(buf) < pos + length:
        raise NeedMore
    body = bytes(buf[pos:pos + length])
    return Message(head, body, body), pos + length


def status_of(head: Head) -> int:
    """The status code of a response head."""
    parts = head.start.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise WireError(f"not a status line: {head.start!r}")
    return int(parts[1])


def nominated(fields: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> set[str]:
    """The field names a message's Connection headers list, as the proxy drops them."""
    return {token.strip(" \t").lower() for name, value in fields if name.lower() == "connection"
            for token in value.split(",")} - CONNECTION_OPTIONS


def kept_trailers(trailers: str) -> bytes:
    """The trailer section the proxy forwards: every field but NOT_TRAILERS, in order."""
    lines = [line for line in trailers.split("\r\n") if line]
    return "".join(f"{line}\r\n" for line in lines if line.split(":", 1)[0].strip().lower() not in NOT_TRAILERS
                   ).encode("latin-1")


def chunked(parts: list[bytes], extension: bytes = b"", trailers: bytes = b"") -> bytes:
    """`parts` in the chunked coding (empty parts skipped: a zero-size chunk ends the body)."""
    out = b"".join(b"%x%b\r\n%b\r\n" % (len(p), extension, p) for p in parts if p)
    return out + b"0\r\n" + trailers + b"\r\n"
