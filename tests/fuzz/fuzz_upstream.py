"""A raw recording upstream: it keeps the exact bytes of every request and answers as planned.

The aiohttp stand-in (tests/integration/stand_in.py) normalises what it receives (chunked
bodies come de-chunked, header whitespace trimmed), so it cannot tell whether the proxy
altered a byte. This one reads the wire with fuzz_wire's own framing, records each request
under its `X-Fuzz-Id`, and replies with the raw response bytes the test planned for that id
(a plain 200 for anything unplanned, e.g. the sidecar's readiness probe).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Self

from fuzz_wire import Message, NeedMore, WireError, read_message

ID_HEADER = b"x-fuzz-id"
DEFAULT_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Plan:
    """How the upstream answers one request: raw bytes, then whether it closes the connection."""

    response: bytes
    close: bool = False  # a close-delimited body ends only when the upstream closes
    delay: float = 0.0  # seconds before answering (a model that takes its time)


@dataclass(frozen=True)
class Received:
    """One request exactly as it reached the upstream: raw head and framed body, decoded body."""

    message: Message
    raw: bytes


class _Connection(asyncio.Protocol):
    """One connection from the proxy's pool: requests read one after another (keep-alive)."""

    def __init__(self, owner: RawUpstream) -> None:
        self.owner = owner
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None and not self.transport.is_closing():
            try:
                message, end = read_message(self.buf)
            except NeedMore:
                return
            except WireError as exc:
                self.owner.errors.append(f"{exc}: {bytes(self.buf[:300])!r}")
                self.transport.abort()
                return
            raw = bytes(self.buf[:end])
            del self.buf[:end]
            self._answer(message, raw)

    def _answer(self, message: Message, raw: bytes) -> None:
        assert self.transport is not None
        ids = message.head.values(ID_HEADER)
        plan = Plan(DEFAULT_RESPONSE)
        if ids:
            key = ids[0].decode("latin-1")
            self.owner.received.setdefault(key, []).append(Received(message, raw))
            plan = self.owner.plans.get(key, plan)
        if plan.delay:
            asyncio.get_running_loop().call_later(plan.delay, self._send, plan)
        else:
            self._send(plan)

    def _send(self, plan: Plan) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(plan.response)
        if plan.close:
            self.transport.close()


class RawUpstream:
    """The recording upstream on 127.0.0.1, served from a background thread's event loop."""

    def __init__(self) -> None:
        self.plans: dict[str, Plan] = {}  # X-Fuzz-Id -> response, set by the test before sending
        self.received: dict[str, list[Received]] = {}  # X-Fuzz-Id -> requests with that id
        self.errors: list[str] = []  # requests it could not read: the proxy sent malformed bytes
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="raw-upstream", daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(STOP_TIMEOUT_S)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _start(self) -> asyncio.Server:
        return await self._loop.create_server(lambda: _Connection(self), "127.0.0.1", 0, backlog=512)

    def plan(self, key: str, plan: Plan) -> None:
        self.plans[key] = plan

    def take(self, key: str) -> list[Received]:
        """What arrived under `key`, forgetting it and its plan (memory stays flat over a long run)."""
        self.plans.pop(key, None)
        return self.received.pop(key, [])

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT_S)
        self._loop.close()
