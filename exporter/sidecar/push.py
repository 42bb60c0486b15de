"""Push: CloudEvents from the KServe and Seldon request loggers, joined into exchanges for the worker.

The loggers send each prediction as two events, the request and the response, with the same
`id`, in either order and asynchronously. A half waits in a cache bounded by count
(`push.cache_size`), bytes (`push.cache_bytes`) and time (`push.ttl`); when its other half
arrives the pair becomes one `events.Event` and goes through the same bounded link as the
proxy's exchanges (sidecar/link.py), so the worker's adapters and analyzers do the rest.

A half that finds no partner is counted (model_exporter_push_unmatched_total) when it expires or
is evicted by a cap. An unmatched request half is still analysed, for its features only: a
logger in `mode: request` gets drift and quality of the inputs, late by `push.ttl`.

Labels: the event's `inferenceservicename` extension is the model name and its `endpoint`
extension (KServe: default or canary; Seldon: the predictor) the version, decided by the
proxy's label policy (exporter/labels.py) like path segments are: capped, and `model.name` /
`model.version` win when configured. The loggers send no status and no timing, so a pushed
exchange has no latency (duration 0) and counts in no traffic metric.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import NamedTuple

from prometheus_client.core import Metric

from exporter.config import PushConfig
from exporter.events import Event, EventSink
from exporter.labels import LabelPolicy
from exporter.metrics.definitions import family
from exporter.sidecar.cloudevents import MODES, REJECT_REASONS, TYPES, CloudEvent, Rejected, parse

HALVES = ("request", "response")
UNMATCHED_REASONS = ("expired", "evicted")
SWEEP_SECONDS = 1.0  # how often expired halves are looked for when no event arrives

# Seldon says which protocol its payloads speak (ce-protocol): a path of that protocol lets the
# worker pick the adapter by route, as for proxied traffic; otherwise the body's shape decides.
PROTOCOL_PATHS = {
    "seldon": "/api/v1.0/predictions",
    "tensorflow": "/v1/models/{name}:predict",
    "v2": "/v2/models/{name}/infer",
    "kfserving": "/v2/models/{name}/infer",
}


class Half(NamedTuple):
    event: CloudEvent
    arrived: float  # monotonic
    received: float  # wall clock


class PushSource:
    """CloudEvents in, joined Events out to `sink`; state bounded by `settings`, every cap hit counted."""

    def __init__(
        self,
        sink: EventSink,
        labels: Callable[[], LabelPolicy],
        settings: Callable[[], PushConfig],
        id_header: str,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.sink = sink
        self.labels = labels
        self.settings = settings
        self.id_header = id_header.encode("latin-1")
        self.clock = clock
        self.wall = wall
        self.pending: OrderedDict[str, Half] = OrderedDict()  # by id, oldest first
        self.bytes = 0
        self.received: dict[tuple[str, str], int] = {(t, m): 0 for t in TYPES for m in MODES}
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)
        self.unmatched: dict[tuple[str, str], int] = {(h, r): 0 for h in HALVES for r in UNMATCHED_REASONS}
        self.duplicates = 0
        self.joined = 0

    # ------------------------------------------------------------ in

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        """Take one HTTP request's event: (status, message). 400/415 name what was wrong; the event is dropped."""
        try:
            event = parse(headers, body)
        except Rejected as exc:
            self.rejected[exc.reason] += 1
            return (415 if exc.reason == "unsupported_content_type" else 400), f"{exc}\n"
        self.received[(event.type, event.mode)] += 1
        now = self.clock()
        self.expire(now)
        other = self.pending.get(event.id)
        if other is None:
            self._hold(Half(event, now, self.wall()))
            return 200, "accepted: waiting for the other half\n"
        if other.event.half == event.half:
            self.duplicates += 1  # a logger retried: the first copy is kept
            return 200, "accepted: a duplicate of a half already held (ignored)\n"
        del self.pending[event.id]
        self.bytes -= len(other.event.data)
        half = Half(event, now, self.wall())
        request, response = (other, half) if event.half == "response" else (half, other)
        self.joined += 1
        self.sink.submit(self._exchange(request, response))
        return 200, "accepted: joined with its other half\n"

    def _hold(self, half: Half) -> None:
        if len(half.event.data) > self.settings().cache_bytes:  # it alone would evict every other half
            self._unmatched(half, "evicted")
            return
        self.pending[half.event.id] = half
        self.bytes += len(half.event.data)
        self._trim()

    def too_large(self) -> None:
        """Count a body the metrics port refused for its size (413)."""
        self.rejected["too_large"] += 1

    def _trim(self) -> None:
        cap = self.settings()  # the config in force: a reload's caps apply from the next event
        while self.pending and (len(self.pending) > cap.cache_size or self.bytes > cap.cache_bytes):
            self._evict("evicted")

    def _evict(self, reason: str) -> None:
        _, half = self.pending.popitem(last=False)
        self.bytes -= len(half.event.data)
        self._unmatched(half, reason)

    def _unmatched(self, half: Half, reason: str) -> None:
        self.unmatched[(half.event.half, reason)] += 1
        if half.event.half == "request":  # its features are still worth analysing
            self.sink.submit(self._exchange(half, None))

    def expire(self, now: float | None = None) -> None:
        """Evict the halves older than push.ttl (the oldest are first in the cache)."""
        now = self.clock() if now is None else now
        deadline = now - self.settings().ttl
        while self.pending and next(iter(self.pending.values())).arrived <= deadline:
            self._evict("expired")

    async def run(self) -> None:
        """Expire halves even when no event arrives."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.expire()

    # ------------------------------------------------------------ out

    def _exchange(self, request: Half, response: Half | None) -> Event:
        req = request.event
        ext = req.extensions
        name = ext.get("inferenceservicename") or None
        version = ext.get("endpoint") or None
        # a pair is a prediction the model server made: it may add a name to the kept ones
        model, version_label = self.labels().decide(name, version, admit=response is not None)
        path = PROTOCOL_PATHS.get(ext.get("protocol", ""), "").replace("{name}", name or "model")
        request_headers = {
            b"content-type": req.content_type.encode("latin-1", "replace"),
            self.id_header: req.id.encode(),
        }
        if response is None:
            when = req.time if req.time is not None else request.received
            # status 0: no response, so the worker reads the request's features only
            return Event(
                when,
                self.settings().path,
                path.encode(),
                0,
                0.0,
                request_headers,
                req.data,
                {},
                b"",
                model,
                version_label,
            )
        resp = response.event
        when = resp.time if resp.time is not None else response.received
        response_headers = {b"content-type": resp.content_type.encode("latin-1", "replace")}
        return Event(
            when,
            self.settings().path,
            path.encode(),
            200,
            0.0,  # the loggers send no timing: a pushed exchange has no latency
            request_headers,
            req.data,
            response_headers,
            resp.data,
            model,
            version_label,
        )

    # ------------------------------------------------------------ metrics

    def collect(self) -> Iterator[Metric]:
        received = family("model_exporter_push_events_total")
        for (kind, mode), n in self.received.items():
            received.add_metric([kind, mode], n)
        yield received
        joined = family("model_exporter_push_joined_total")
        joined.add_metric([], self.joined)
        yield joined
        unmatched = family("model_exporter_push_unmatched_total")
        for (half, reason), n in self.unmatched.items():
            unmatched.add_metric([half, reason], n)
        yield unmatched
        rejected = family("model_exporter_push_rejected_total")
        for reason, n in self.rejected.items():
            rejected.add_metric([reason], n)
        yield rejected
        duplicates = family("model_exporter_push_duplicates_total")
        duplicates.add_metric([], self.duplicates)
        yield duplicates
        entries = family("model_exporter_push_cache_entries")
        entries.add_metric([], len(self.pending))
        yield entries
        size = family("model_exporter_push_cache_bytes")
        size.add_metric([], self.bytes)
        yield size
