"""A raw blocking HTTP/1.1 client: writes exactly the bytes it is given, reads responses with fuzz_wire.

http.client and aiohttp fix up what they send and hide what they get; the fuzz properties
need the bytes both ways. The socket timeout only stops a stuck proxy from hanging the run.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from fuzz_wire import Head, Message, NeedMore, WireError, read_message, split_head, status_of

SOCKET_TIMEOUT_S = 10.0  # far above any answer the upstream gives; reaching it fails the case
PIECE_GAP_S = 0.001
BODYLESS = (204, 304)


@dataclass
class Response:
    """A response as received: interim heads (1xx) in order, then the final message."""

    interim: list[Head] = field(default_factory=list)
    final: Message | None = None
    raw: bytes = b""

    @property
    def status(self) -> int:
        assert self.final is not None
        return status_of(self.final.head)


class RawClient:
    """One connection to the proxy port."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each send leaves at once
        self.buf = bytearray()
        self.eof = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_in_pieces(self, data: bytes, cuts: list[int]) -> None:
        """`data` in separate writes split at `cuts`, a millisecond apart, so the proxy reads
        them apart: a head cut in the middle, a body that streams after its head."""
        edges = sorted({c for c in cuts if 0 < c < len(data)} | {0, len(data)})
        for i, (a, b) in enumerate(zip(edges, edges[1:])):
            if i:
                time.sleep(PIECE_GAP_S)
            self.sock.sendall(data[a:b])

    def finish_sending(self) -> None:
        """Half-close: the proxy reads EOF after the bytes, so an incomplete request cannot wait."""
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self) -> None:
        if self.eof:
            raise NeedMore
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
        self.buf += data

    def response(self, method: str) -> Response | None:
        """The next response to a `method` request; None if the connection closed before one began."""
        out = Response()
        while True:
            try:
                head, pos = split_head(self.buf)
                status = status_of(head)
                if 100 <= status < 200:
                    out.interim.append(head)
                    del self.buf[:pos]
                    continue
                message, end = read_message(self.buf, method == "HEAD" or status in BODYLESS, self.eof)
            except NeedMore:
                if self.eof:
                    if not self.buf and not out.interim:
                        return None
                    raise WireError(f"connection closed inside a response: {bytes(self.buf[:300])!r}") from None
                self._fill()
                continue
            out.final = message
            out.raw = bytes(self.buf[:end])
            del self.buf[:end]
            return out

    def read_to_close(self) -> bytes:
        """Everything until the proxy closes (what it sends after a refused request)."""
        while not self.eof:
            self._fill()
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def closed_by_peer(self) -> bool:
        """True if the proxy closed the connection with nothing more to say."""
        return self.read_to_close() == b""
