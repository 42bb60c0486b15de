"""The prediction store: exchanges written as a prediction log (docs/prediction-log.md), so production
traffic can become the next baseline (`model-exporter baseline build traffic.predlog`).

It lives in the analysis worker, not the proxy: the worker already holds each exchange's bodies
(the same events it analyses), runs at nice 19 in a process of its own, and its slowness only
ever costs analysis (the link drops, counted), never traffic. Here, sampling, the rate cap and
redaction run on the worker's thread; the disk is written by a thread of its own behind a queue
of `queue_size` records: a slow disk fills the queue (dropped: queue_full), a full disk drops
what it cannot write (disk_full), nothing waits.

Rotation by size: at `max_bytes` the file becomes PATH.1 (PATH.1 becomes PATH.2, ...) and PATH.N
past `max_files` is deleted, so the store never holds more than (max_files + 1) × max_bytes.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import Metric

from exporter.config import PredictionLogConfig
from exporter.events import Event
from exporter.jsonpath import JsonPath
from exporter.metrics.definitions import family
from exporter.predlog import TAILED_HEADER, Body, PredictionRecord, encode

log = logging.getLogger(__name__)

DROP_REASONS = ("rate_limit", "queue_full", "disk_full", "write_error", "unredactable")
REDACTED = "[REDACTED]"
RETRY_OPEN_SECONDS = 5.0  # after a failed open or write, how long the file stays closed


class StoreCounters:
    """Counters that outlive a store replaced by a reload (they never go backwards)."""

    def __init__(self) -> None:
        self.records = 0
        self.bytes = 0
        self.rotations = 0
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)


class Redactor:
    """Replace the values at configured JSON paths in JSON bodies with "[REDACTED]" (a list's or an
    object's values each: the payload keeps its shape, so the adapters still read the other columns);
    a body it cannot read (not JSON, compressed) it refuses."""

    def __init__(self, paths: tuple[str, ...]) -> None:
        self.paths = [JsonPath.compile(p) for p in paths]

    def __call__(self, body: Body) -> Body | None:
        """The body with the paths' values replaced; None if it is not JSON (it must not be written as it is)."""
        if not self.paths or not body.data:
            return body
        if body.content_encoding not in (None, "identity"):
            return None
        try:
            doc = json.loads(body.data)
        except (ValueError, UnicodeDecodeError):
            return None
        if sum(path.replace(doc, _mask) for path in self.paths) == 0:
            return body
        data = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        return body._replace(data=data)


def _mask(value: Any) -> Any:
    """A value redacted with its shape kept (a tensor's data stays a list of as many values)."""
    if type(value) is list:
        return [_mask(v) for v in value]
    if type(value) is dict:
        return {k: _mask(v) for k, v in value.items()}
    return REDACTED


class RotatingFile:
    """Appends to PATH, rotating at max_bytes; keeps max_files rotated files. Errors are raised."""

    def __init__(self, path: str, max_bytes: int, max_files: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.fd: int | None = None
        self.size = 0
        self.rotations = 0

    def write(self, data: bytes) -> None:
        if self.fd is not None and self.size and self.size + len(data) > self.max_bytes:
            self._rotate()
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self.size = os.fstat(self.fd).st_size
            if self.size and self.size + len(data) > self.max_bytes:
                self._rotate()
                self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
                self.size = 0
        view = memoryview(data)
        while view:  # a short write (a signal, a nearly full disk) goes on where it stopped
            n = os.write(self.fd, view)
            self.size += n
            view = view[n:]

    def _rotate(self) -> None:
        self.close()
        oldest = f"{self.path}.{self.max_files}"
        if os.path.lexists(oldest):
            os.unlink(oldest)
        for i in range(self.max_files - 1, 0, -1):
            if os.path.lexists(f"{self.path}.{i}"):
                os.replace(f"{self.path}.{i}", f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")
        self.rotations += 1

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class PredictionStore:
    """Sample, cap, redact and encode exchanges; a writer thread appends them to the rotating file."""

    def __init__(
        self,
        config: PredictionLogConfig,
        id_header: str,
        counters: StoreCounters | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        assert config.path is not None
        self.config = config
        self.id_header = id_header.encode("latin-1")
        self.counters = counters or StoreCounters()
        self.redact = Redactor(config.redact)
        self.clock = clock
        self.rng = rng
        rate = config.max_rate
        self._tokens = max(rate, 1.0) if rate is not None else 0.0
        self._refilled = clock()
        self.file = RotatingFile(config.path, config.max_bytes, config.max_files)
        self.queue: queue.Queue[bytes | None] = queue.Queue(config.queue_size)
        self._broken_until = 0.0
        self._thread = threading.Thread(target=self._write_loop, name="prediction-store", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ the worker's thread

    def _admit(self) -> bool:
        if self.config.sample < 1.0 and self.rng() >= self.config.sample:
            return False  # not sampled: not a drop
        rate = self.config.max_rate
        if rate is not None:
            now = self.clock()
            self._tokens = min(max(rate, 1.0), self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            if self._tokens < 1.0:
                self.counters.dropped["rate_limit"] += 1
                return False
            self._tokens -= 1.0
        return True

    def offer(self, events: list[Event]) -> None:
        """Consider each event for the log; never blocks."""
        for event in events:
            if TAILED_HEADER in event.request_headers or not self._admit():
                continue  # a tailed exchange is in a log already (and may be this one)
            line = self._encode(event)
            if line is None:
                self.counters.dropped["unredactable"] += 1
                continue
            try:
                self.queue.put_nowait(line)
            except queue.Full:
                self.counters.dropped["queue_full"] += 1

    def _encode(self, event: Event) -> bytes | None:
        request = self.redact(_body(event.request_headers, event.request_body))
        response = self.redact(_body(event.response_headers, event.response_body)) if event.response_body else None
        if request is None or (event.response_body and response is None):
            return None
        ident = event.request_headers.get(self.id_header)
        record = PredictionRecord(
            time=round(event.time, 6),
            status=event.status,
            model=event.model,
            version=event.version,
            id=ident.decode("latin-1") if ident is not None else None,
            route=event.target.decode("latin-1"),
            duration=round(event.duration, 6),
            request=request,
            response=response,
        )
        return encode(record)

    # ------------------------------------------------------------ the writer thread

    def _write_loop(self) -> None:
        while True:
            line = self.queue.get()
            if line is None:
                self.file.close()
                return
            if self.clock() < self._broken_until:
                self.counters.dropped["write_error"] += 1
                continue
            try:
                self.file.write(line)
            except OSError as exc:
                full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                self.counters.dropped["disk_full" if full else "write_error"] += 1
                if not full:  # a full disk is retried at the next record; anything else waits a while
                    self._broken_until = self.clock() + RETRY_OPEN_SECONDS
                    log.error("prediction log %s: %s (writes paused %.0fs)", self.config.path, exc, RETRY_OPEN_SECONDS)
                self.file.close()
            else:
                self.counters.records += 1
                self.counters.bytes += len(line)
            self.counters.rotations += self.file.rotations
            self.file.rotations = 0

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for at most `timeout`), then close the file."""
        try:
            self.queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    # ------------------------------------------------------------ metrics

    def collect(self) -> Iterator[Metric]:
        c = self.counters
        for name, value in (
            ("model_exporter_prediction_log_records_total", c.records),
            ("model_exporter_prediction_log_bytes_total", c.bytes),
            ("model_exporter_prediction_log_rotations_total", c.rotations),
        ):
            metric = family(name)
            metric.add_metric([], value)
            yield metric
        dropped = family("model_exporter_prediction_log_dropped_total")
        for reason in DROP_REASONS:
            dropped.add_metric([reason], c.dropped[reason])
        yield dropped


def _body(headers: dict[bytes, bytes], data: bytes) -> Body:
    content_type = headers.get(b"content-type")
    content_encoding = headers.get(b"content-encoding")
    return Body(
        data,
        content_type.decode("latin-1") if content_type is not None else None,
        content_encoding.decode("latin-1") if content_encoding is not None else None,
    )
