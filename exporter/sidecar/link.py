"""The proxy's end of the pipeline: a bounded, batching hand-off to the analysis worker.

The worker is a separate, niced process: parsing payloads holds the GIL for as long as it
takes, and in a thread that would stall the event loop that forwards traffic.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import subprocess
import sys
from typing import Any, cast

from exporter.config import Config, ConfigError
from exporter.events import ACK, COLLECT, DROP_REASONS, EVENTS, LABELS, RELOAD, Event, Feedback, FrameReader, encode
from exporter.metrics.exposition import Deflated, deflate_open
from exporter.proxy.stats import TrafficStats

log = logging.getLogger(__name__)

Part = bytes | Deflated  # a part of a scrape's body: plain, or open deflate blocks

BATCH_EVENTS = 256  # flush at this many events...
BATCH_SECONDS = 0.01  # ...or this long after the first one
RESTART_SECONDS = 1.0
MAX_BUFFERED_BYTES = 64 << 20  # socket write buffer cap, whatever the event count
SCRAPE_WAIT_SECONDS = 1.0  # a scrape waits this long for fresh analysis metrics
STALE_SECONDS = 30.0  # older than this, the analysis metrics count as failed
RELOAD_SECONDS = 15.0  # a worker that takes longer to apply a config is stuck


class WorkerLink(asyncio.Protocol):
    """Submit events without ever blocking; a full queue or a dead worker drops and counts."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.max_queue = config.capture.queue_size
        self.pending: list[Event] = []
        self.sent = 0
        self.processed = 0
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.transport: asyncio.Transport | None = None
        self.process: subprocess.Popen[bytes] | None = None
        # the worker's last rendered part, per (format, gzip): plain bytes, or open deflate blocks
        self.exposition: dict[tuple[str, bool], Part] = {}
        self.last_collect_ok = False
        self.last_collect_seconds = 0.0
        self.restarts = 0  # times the worker exited and was started again
        # POST /feedback labels: in flight to the worker (sent, not yet acknowledged), bounded apart
        # from the events so that traffic never crowds out labels, nor labels traffic
        self.max_labels = config.labels.queue_size
        self.labels_sent = 0
        self.labels_processed = 0
        self.labels_dropped: dict[str, int] = {"queue_full": 0, "worker_down": 0}
        self._reader = FrameReader()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._restart: asyncio.TimerHandle | None = None
        self._collecting: dict[tuple[str, bool], asyncio.Task[Any]] = {}
        self._collect_ids: dict[tuple[str, bool], int] = {}  # the request id each pending collect carries
        self._issued = 0  # the last request id sent
        self._counters_served = 0  # traffic counters only from answers to requests from this id on
        self._answered_at: float | None = None

    # ------------------------------------------------------------ hot path

    def submit(self, event: Event) -> None:
        if self.transport is None:
            self.dropped["worker_down"] += 1
            return
        if self.sent - self.processed + len(self.pending) >= self.max_queue:
            self.dropped["queue_full"] += 1
            return
        self.pending.append(event)
        if len(self.pending) >= BATCH_EVENTS:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(BATCH_SECONDS, self.flush)

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        batch, self.pending = self.pending, []
        if not batch:
            return
        if self.transport is None or self.transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:
            self.dropped["queue_full" if self.transport else "worker_down"] += len(batch)
            return
        self.transport.write(encode(EVENTS, batch))
        self.sent += len(batch)

    def submit_labels(self, feedback: Feedback) -> int:
        """Hand a POST's labels to the worker at once; never blocks. Returns how many were dropped."""
        n = len(feedback.labels)
        if self.transport is None:
            reason = "worker_down"
        elif (
            self.labels_sent - self.labels_processed + n > self.max_labels
            or self.transport.get_write_buffer_size() > MAX_BUFFERED_BYTES
        ):
            reason = "queue_full"
        else:
            self.flush()  # the events already submitted go first: a label finds a prediction made before it
            self.transport.write(encode(LABELS, feedback))
            self.labels_sent += n
            return 0
        self.labels_dropped[reason] += n
        return n

    @property
    def up(self) -> bool:
        """Whether the worker is connected: submitted events are queued, not dropped as worker_down."""
        return self.transport is not None

    @property
    def labels_depth(self) -> int:
        """Labels handed to the worker and not yet acknowledged."""
        return self.labels_sent - self.labels_processed

    @property
    def queue_depth(self) -> int:
        return self.sent - self.processed + len(self.pending)

    # ------------------------------------------------------------ worker process

    async def start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "exporter.worker", str(child.fileno())],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            child.close()
        loop = asyncio.get_running_loop()
        await loop.create_unix_connection(lambda: self, sock=parent)
        error = await self.reload(self.config)
        if error:  # the checks that need the baseline run in the worker: its verdict is the config's
            raise ConfigError(error)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.sent = self.processed = 0
        self.labels_sent = self.labels_processed = 0

    def data_received(self, data: bytes) -> None:
        for kind, payload in self._reader.feed(data):
            if kind == ACK:
                self.processed += payload
            elif kind == LABELS:
                self.labels_processed += payload
            elif kind in (COLLECT, RELOAD):
                request_id, result = payload
                waiter = self._waiters.pop(request_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(result)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._reader = FrameReader()
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("analysis worker exited"))
        self._waiters.clear()
        if self._closing:
            return
        code = self.process.poll() if self.process else None
        self.restarts += 1
        log.error(
            "analysis worker exited (code %s); restarting in %.0fs; events are dropped meanwhile", code, RESTART_SECONDS
        )
        self._restart = asyncio.get_running_loop().call_later(RESTART_SECONDS, self._spawn_again)

    def _spawn_again(self) -> None:
        self._restart = None
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        task = asyncio.get_running_loop().create_task(self.start())
        task.add_done_callback(self._restarted)

    @staticmethod
    def _restarted(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("restart failed: %s", task.exception())

    async def _request(self, kind: int, payload: Any, timeout: float, request_id: int | None = None) -> Any:
        if self.transport is None:
            raise ConnectionError("analysis worker is not running")
        if request_id is None:
            request_id = self._issued = next(self._ids)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = waiter
        self.flush()  # events first, so the answer covers them
        self.transport.write(encode(kind, (request_id, payload)))
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiters.pop(request_id, None)

    async def collect(
        self, fmt: str, gzip: bool = False, traffic: TrafficStats | None = None, timeout: float = SCRAPE_WAIT_SECONDS
    ) -> tuple[Part, Part | None]:
        """The worker's part of a scrape in `fmt`, waiting at most `timeout`; else the last one it sent.

        The worker renders it, and with `gzip` compresses it (a large exposition would stall this
        loop): plain bytes, or the open start of a gzip member (`exposition.gzip_close` ends it).
        One request per kind is in flight at a time and a late answer still lands, so a busy
        worker costs a scrape some staleness (up to STALE_SECONDS, then collector_success 0),
        not a timeout.

        `traffic`: the proxy's counters, sent along (a pickled snapshot) for the worker to render.
        The second part is that rendering, or None when the caller must render them itself: the
        answer did not come in time, or carries a snapshot older than counters already served
        (a counter must never go back between two scrapes).
        """
        key = (fmt, gzip)
        loop = asyncio.get_running_loop()
        started = loop.time()
        pending = self._collecting.get(key)
        if pending is None or pending.done():
            if self.transport is None:
                self.last_collect_ok = False
                self._own_counters()
                return self._last(key), None
            request_id = next(self._ids)
            self._issued = request_id
            pending = self._collecting[key] = loop.create_task(
                self._request(COLLECT, (fmt, gzip, traffic), STALE_SECONDS, request_id)
            )
            pending.add_done_callback(lambda task: self._collected(key, task))
            self._collect_ids[key] = request_id
        answered_for = self._collect_ids[key]
        try:
            await asyncio.wait_for(asyncio.shield(pending), timeout)
        except (TimeoutError, ConnectionError):
            pass
        self.last_collect_ok = self._answered_at is not None and loop.time() - self._answered_at <= STALE_SECONDS
        self.last_collect_seconds = loop.time() - started
        counters: Part | None = None
        if pending.done() and not pending.cancelled() and pending.exception() is None:
            answer = pending.result()
            if answer is not None and answer[1] is not None and answered_for >= self._counters_served:
                counters = answer[1]
                self._counters_served = answered_for
        if counters is None:
            self._own_counters()
        return self._last(key), counters

    def _own_counters(self) -> None:
        """The caller renders the counters as of now: no answer to a request issued so far may serve older ones."""
        self._counters_served = self._issued + 1

    def _last(self, key: tuple[str, bool]) -> Part:
        last = self.exposition.get(key)
        if last is None:
            return deflate_open(b"") if key[1] else b""
        return last

    def _collected(self, key: tuple[str, bool], task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        answer = task.result()
        if answer is not None:  # None: the worker has no config yet
            self.exposition[key] = answer[0]
            self._answered_at = asyncio.get_running_loop().time()

    async def reload(self, config: Config, timeout: float = RELOAD_SECONDS) -> str | None:
        """Send a new config to the worker; None on success, else its error message.

        A worker that does not answer within `timeout` is stuck (a baseline read that hangs):
        it is killed and restarted with the config in force, and the reload fails.
        """
        try:
            error: str | None = await self._request(RELOAD, config, timeout)
        except TimeoutError:
            if self.process is not None and self.process.poll() is None:
                log.error(
                    "analysis worker did not apply a configuration within %.0fs: restarting it with the previous one",
                    timeout,
                )
                self.process.kill()
            raise
        if error is None:
            self.config = config
            self.max_queue = config.capture.queue_size
            self.max_labels = config.labels.queue_size
        return error

    async def close(self) -> None:
        self._closing = True
        if self._restart is not None:
            self._restart.cancel()
        for pending in self._collecting.values():
            pending.cancel()
        self.flush()
        if self.transport is not None:
            self.transport.close()
        if self.process is not None:
            try:
                await asyncio.wait_for(asyncio.to_thread(self.process.wait), 5.0)
            except TimeoutError:
                self.process.kill()
