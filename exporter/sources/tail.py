"""`run --tail`: follow log files and feed the same pipeline as the proxy.

Runs in the proxy process, on its event loop: a poll reads at most READ_BUDGET bytes of whole
lines, accounts each in the traffic metrics (proxy/stats.py) and hands the exchanges with bodies
or rows to the worker through the same bounded link (sidecar/link.py). It reads only the line's
envelope (json.loads of one line); payloads are parsed by the worker, as the proxy's are.

Backpressure instead of loss: while the link's queue is more than half full (or the worker is
down, restarting) the tailer reads nothing (the lag grows, model_exporter_tail_lag_bytes), so a burst in the log never crowds out
proxied traffic's analysis and no line is dropped for being read too fast.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import Metric

from exporter.config import Config
from exporter.events import Event, Feedback, Label, RecordError, parse_record
from exporter.metrics.definitions import family
from exporter.predlog import ROWS_CONTENT_TYPE, TAILED_HEADER, Body, PredictionRecord
from exporter.proxy.routes import RouteTable
from exporter.proxy.stats import TrafficStats
from exporter.sources.follow import ERROR_REASONS, Follower
from exporter.sources.shapes import Parser, ShapeError, parser_for

log = logging.getLogger(__name__)

# bytes per poll before the loop gets to run the proxy again: about 35 lines of 2 kB, 1.5 ms of work
READ_BUDGET = 64 << 10
CHECKPOINT_SECONDS = 1.0
LOGGED_ERRORS = 10  # malformed lines logged per source, then one line per 1,000

try:
    import orjson

    def _dumps(value: object) -> bytes:
        return orjson.dumps(value)

    def _loads(data: bytes) -> object:
        return orjson.loads(data)
except ImportError:  # pragma: no cover - orjson is a dependency; the stdlib is the fallback
    import json

    def _dumps(value: object) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def _loads(data: bytes) -> object:
        return json.loads(data)


class Link(Protocol):
    """What the tailer needs of the link to the worker (sidecar/link.py's WorkerLink)."""

    max_queue: int

    @property
    def queue_depth(self) -> int: ...

    @property
    def up(self) -> bool: ...

    max_labels: int

    @property
    def labels_depth(self) -> int: ...

    def submit(self, event: Event) -> None: ...

    def drop(self, reason: str) -> None: ...

    def submit_labels(self, feedback: Feedback) -> int: ...


def offsets_path(config: Config) -> str | None:
    """Where the offsets live: tail.offsets_file, else state_dir/tail-offsets.json, else nowhere."""
    if config.tail.offsets_file is not None:
        return config.tail.offsets_file
    if config.state_dir is not None:
        return os.path.join(config.state_dir, "tail-offsets.json")
    return None


def _headers(body: Body | None, id_header: bytes, ident: str | None) -> dict[bytes, bytes]:
    headers: dict[bytes, bytes] = {TAILED_HEADER: b"1"}
    if body is not None:
        if body.content_type is not None:
            headers[b"content-type"] = body.content_type.encode("latin-1", "replace")
        if body.content_encoding is not None:
            headers[b"content-encoding"] = body.content_encoding.encode("latin-1", "replace")
    if ident is not None:
        headers[id_header] = ident.encode("latin-1", "replace")
    return headers


def _label(data: bytes, where: str) -> Label:
    """One line of a labels file: a POST /feedback record; errors name the line and the field."""
    try:
        record = _loads(data)
    except ValueError as exc:
        raise ShapeError(f"{where}: expected a JSON object (a label record), got invalid JSON: {exc}") from None
    try:
        return parse_record(record)
    except RecordError as exc:
        raise ShapeError(f"{where}: field {exc.field!r}: {exc.message}") from None


class Tailer:
    """The follower, the shape parsers and the counters of `run --tail`."""

    def __init__(
        self,
        config: Config,
        stats: TrafficStats,
        routes: RouteTable | Callable[[], RouteTable],
        link: Link | None,
    ) -> None:
        """`routes`: the route table, or a function giving the one in force (a reload may change it)."""
        tail = config.tail
        self.sources = [s.path for s in tail.sources]
        self.shapes = [s.shape for s in tail.sources]
        # labels lines are records of POST /feedback: checked in step(), not by a shape parser
        self.parsers: list[Parser | None] = [parser_for(s) if s.shape != "labels" else None for s in tail.sources]
        self.follower = Follower(
            self.sources,
            from_start=tail.from_start,
            max_line=tail.max_line_bytes,
            offsets_path=offsets_path(config),
            close_after=tail.rotate_wait,
            max_files=tail.max_files,
            scan_every=tail.poll_interval,
        )
        # the files' ends as the sidecar starts (before its ports answer), not when the worker is up
        self.follower.start()
        self.poll_interval = tail.poll_interval
        self.stats = stats
        self.routes: Callable[[], RouteTable] = routes if callable(routes) else (lambda: routes)
        self.link = link
        self.id_header = config.capture.id_header.encode("latin-1")
        self.records = [0] * len(self.sources)
        self.malformed = [0] * len(self.sources)
        self.paused = 0  # polls skipped because the link's queue was over half full
        self._last_checkpoint = 0.0

    # ------------------------------------------------------------ reading

    def step(self) -> int:
        """One poll: read, account and submit whole lines; returns how many lines it read."""
        link = self.link
        if link is not None and (
            not link.up or link.queue_depth * 2 >= link.max_queue or link.labels_depth * 2 >= link.max_labels
        ):
            self.paused += 1
            return 0
        lines = self.follower.poll(READ_BUDGET)
        labels: list[Label] = []
        invalid = 0
        for line in lines:
            parser = self.parsers[line.source]
            try:
                if parser is None:
                    labels.append(_label(line.data, line.where))
                    self.records[line.source] += 1
                    continue
                logged = parser(line.data, line.where)
            except ShapeError as exc:
                invalid += parser is None  # a malformed label also counts as model_labels_total{outcome="invalid"}
                n = self.malformed[line.source] = self.malformed[line.source] + 1
                if n <= LOGGED_ERRORS or n % 1000 == 0:
                    log.warning(
                        "tail: malformed line skipped (%d so far from %s): %s", n, self.sources[line.source], exc
                    )
                continue
            self.records[line.source] += 1
            self._account(logged.record, logged.request_size, logged.response_size)
        if (labels or invalid) and link is not None:
            link.submit_labels(Feedback(time.time(), labels, invalid))  # a full queue drops them, counted there
        now = time.monotonic()
        if now - self._last_checkpoint >= CHECKPOINT_SECONDS:
            self.follower.checkpoint()
            self._last_checkpoint = now
        return len(lines)

    def _account(self, rec: PredictionRecord, request_size: int | None, response_size: int | None) -> None:
        target = rec.route.encode("utf-8", "replace") or b"/"
        route, path_model, path_version = self.routes().match(target)
        ok = 200 <= rec.status < 300
        labels = self.stats.labels.decide(rec.model or path_model, rec.version or path_version, ok)
        method = rec.method.encode("ascii", "replace")
        self.stats.record_logged(route, method, rec.status, rec.duration, request_size, response_size, labels)
        link = self.link
        if link is None:
            return
        if rec.request is not None:
            if rec.request.truncated or (rec.response is not None and rec.response.truncated):
                link.drop("body_too_large")  # as the proxy does with a body over its cap
                return
            request_body, response_body = rec.request, rec.response
        elif rec.features is not None:
            request_body = Body(_dumps(rec.features), ROWS_CONTENT_TYPE)
            response_body = Body(_dumps(rec.predictions), ROWS_CONTENT_TYPE) if rec.predictions is not None else None
        else:
            return  # traffic only
        link.submit(
            Event(
                rec.time,
                route,
                target,
                rec.status,
                rec.duration or 0.0,
                _headers(request_body, self.id_header, rec.id),
                request_body.data,
                _headers(response_body, self.id_header, None),
                response_body.data if response_body is not None else b"",
                *labels,
            )
        )

    async def run(self) -> None:
        """Follow until cancelled; the offsets are written on the way out."""
        try:
            while True:
                n = self.step()
                await asyncio.sleep(0 if n else self.poll_interval)
        finally:
            self.follower.close()

    # ------------------------------------------------------------ metrics

    def collect(self) -> Iterator[Metric]:
        follower = self.follower
        self.follower.scan()  # lag as of now: what the files hold beyond the last whole line read
        per_file = dict.fromkeys(self.sources, 0)
        for tracked in follower.files.values():
            per_file[self.sources[tracked.source]] += 1
        lag: dict[str, int] = dict.fromkeys(self.sources, 0)
        for tracked in follower.files.values():
            lag[self.sources[tracked.source]] += max(tracked.size - tracked.committed, 0)
        counters = (
            ("model_exporter_tail_lines_total", [s.lines for s in follower.stats]),
            ("model_exporter_tail_long_lines_skipped_total", [s.overlong for s in follower.stats]),
            ("model_exporter_tail_truncations_total", [s.truncations for s in follower.stats]),
            ("model_exporter_tail_rotations_total", [s.rotations for s in follower.stats]),
        )
        for name, values in counters:
            metric = family(name)
            for source, value in zip(self.sources, values):
                metric.add_metric([source], value)
            yield metric
        for name, by_shape in (
            ("model_exporter_tail_records_total", self.records),
            ("model_exporter_tail_malformed_lines_total", self.malformed),
        ):
            metric = family(name)
            for source, shape, value in zip(self.sources, self.shapes, by_shape):
                metric.add_metric([source, shape], value)
            yield metric
        for name, gauge in (("model_exporter_tail_lag_bytes", lag), ("model_exporter_tail_files", per_file)):
            metric = family(name)
            for source in self.sources:
                metric.add_metric([source], gauge[source])
            yield metric
        errors = family("model_exporter_tail_errors_total")
        for reason in ERROR_REASONS:
            errors.add_metric([reason], follower.errors[reason])
        yield errors
        paused = family("model_exporter_tail_paused_total")
        paused.add_metric([], self.paused)
        yield paused
