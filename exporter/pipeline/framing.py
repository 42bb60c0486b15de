"""Length-prefixed frames over the socket between the proxy and the analysis worker."""

from __future__ import annotations

import pickle
import struct
from typing import Any

HEADER = struct.Struct("!IB")  # payload length, kind

# frame kinds
EVENTS = 1      # proxy → worker: list[Event]
COLLECT = 2     # proxy → worker: request id; worker → proxy: (request id, families)
ACK = 3         # worker → proxy: number of events processed
RELOAD = 4      # proxy → worker: (request id, settings); worker → proxy: (request id, error or None)


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
            frames.append((kind, pickle.loads(self._buf[HEADER.size:end])))
            del self._buf[:end]
        return frames
