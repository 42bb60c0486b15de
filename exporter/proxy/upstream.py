"""Pooled keep-alive connections to the model server."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exporter.proxy.exchange import Exchange


class UpstreamConnection(asyncio.Protocol):
    """One connection to the model server; carries one exchange at a time."""

    __slots__ = ("pool", "transport", "exchange", "reused", "closed")

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.reused = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # bytes nobody asked for: the connection is unusable
            self.abort()
            return
        exchange.upstream_data(data)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.lost(self)
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            exchange.upstream_lost(self)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.pause_for_upstream()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.resume_for_upstream()

    def abort(self) -> None:
        self.exchange = None
        if self.transport is not None and not self.closed:
            self.transport.abort()


class UpstreamPool:
    """At most `max_connections` to one host:port; idle ones are reused LIFO (warmest first)."""

    def __init__(self, host: str, port: int, max_connections: int, connect_timeout: float) -> None:
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.idle: list[UpstreamConnection] = []
        self.open = 0  # connected + connecting
        self.waiting: deque[Exchange] = deque()
        self._tasks: set[asyncio.Task[None]] = set()

    def acquire(self, exchange: Exchange, fresh: bool = False) -> None:
        """Attach the exchange to an idle connection, a new one, or queue it for the next free one."""
        if not fresh:
            while self.idle:
                conn = self.idle.pop()
                if not conn.closed:
                    conn.reused = True
                    exchange.attach(conn)
                    return
        if self.open < self.max_connections:
            self.open += 1
            task = asyncio.get_running_loop().create_task(self._connect(exchange))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            exchange.wait_for_pool(self.connect_timeout)
            self.waiting.append(exchange)

    async def _connect(self, exchange: Exchange) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port),
                self.connect_timeout,
            )
        except (asyncio.TimeoutError, TimeoutError):
            self._connect_failed(exchange, "connect_timeout")
        except ConnectionRefusedError:
            self._connect_failed(exchange, "refused")
        except OSError:
            self._connect_failed(exchange, "connect_error")
        else:
            if exchange.finished:  # the client left while we connected
                self.release(conn)
            else:
                exchange.attach(conn)

    def _connect_failed(self, exchange: Exchange, reason: str) -> None:
        self.open -= 1
        exchange.upstream_failed(reason)
        self._serve_waiting()

    def release(self, conn: UpstreamConnection) -> None:
        """Return a healthy keep-alive connection: hand it to a waiter or park it idle."""
        conn.exchange = None
        while self.waiting:
            exchange = self.waiting.popleft()
            if not exchange.finished:
                conn.reused = True
                exchange.attach(conn)
                return
        self.idle.append(conn)

    def lost(self, conn: UpstreamConnection) -> None:
        self.open -= 1
        if conn.exchange is None:
            try:
                self.idle.remove(conn)
            except ValueError:
                pass
        self._serve_waiting()

    def _serve_waiting(self) -> None:
        while self.waiting and self.waiting[0].finished:
            self.waiting.popleft()
        if self.waiting and self.open < self.max_connections:
            self.acquire(self.waiting.popleft(), fresh=True)

    def close(self) -> None:
        for conn in self.idle:
            conn.abort()
        self.idle.clear()
        for task in self._tasks:
            task.cancel()
