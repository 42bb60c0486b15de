"""Collector isolation: a failing collector costs its own metrics, never the scrape."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, Protocol

from prometheus_client.core import Metric

from exporter.metrics.definitions import family

log = logging.getLogger(__name__)


class Source(Protocol):
    name: str

    def collect(self) -> Iterable[Metric]: ...


class Reading(NamedTuple):
    at: float
    families: list[Metric]
    ok: bool
    took: float


class Isolated:
    """Runs each source's collect() at scrape time and reports success and duration per source.

    `max_age`: a source's reading (its families, success and duration) serves the scrapes of the
    next `max_age` seconds, as cAdvisor's housekeeping does: reading /proc, cgroup files and NVML
    costs the proxy's loop about half a millisecond, too much to pay for every one of several
    scrapers. Sources with `live = True` (the worker's answer to this scrape) are read every time.
    """

    def __init__(
        self, sources: Iterable[Source], clock: Callable[[], float] = time.perf_counter, max_age: float = 0.0
    ) -> None:
        self.sources = list(sources)
        self.clock = clock
        self.max_age = max_age
        self._failing: set[str] = set()
        self._readings: dict[str, Reading] = {}

    def _read(self, source: Source) -> Reading:
        live = getattr(source, "live", False)
        now = self.clock()
        last = None if live else self._readings.get(source.name)
        if last is not None and now - last.at < self.max_age:
            return last
        families: list[Metric] = []
        try:
            families = list(source.collect())
        except Exception as exc:  # isolation is the point: any failure stays here
            ok = False
            if source.name not in self._failing:
                log.warning("collector %s failed: %s", source.name, exc)
            self._failing.add(source.name)
        else:
            ok = True
            self._failing.discard(source.name)
        # a source fetched elsewhere (the analysis worker) reports its own fetch time
        took = getattr(source, "last_duration", None)
        reading = Reading(now, families, ok, took if took is not None else self.clock() - now)
        if not live and self.max_age > 0:
            self._readings[source.name] = reading
        return reading

    def collect(self) -> Iterator[Metric]:
        success = family("model_exporter_collector_success")
        duration = family("model_exporter_collector_duration_seconds")
        for source in self.sources:
            reading = self._read(source)
            yield from reading.families
            success.add_metric([source.name], 1 if reading.ok else 0)
            duration.add_metric([source.name], reading.took)
        yield success
        yield duration


class Background:
    """A source read in a thread of its own every `interval` seconds; a scrape takes the last reading.

    For sources whose reads can hang: NVML on a GPU that fell off the bus answers in seconds or
    not at all, and on the proxy's loop every request would wait with it. Here the thread waits
    (ctypes lets go of the GIL while a library call runs). A reading that failed, or none for
    `stale` seconds (a read that hangs), fails the source: collector_success 0, no series,
    until a reading succeeds again.
    """

    def __init__(
        self, source: Source, interval: float, stale: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source = source
        self.name = source.name
        self.interval = interval
        self.stale = stale
        self.clock = clock
        self.last_duration: float | None = None
        self._reading: tuple[float, list[Metric] | None, str] | None = None  # (when it ended, families, error)
        self._started_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._started_at = self.clock()
            self._thread = threading.Thread(target=self._run, name=f"read-{self.name}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = self.clock()
            try:
                families: list[Metric] | None = list(self.source.collect())
                error = ""
            except Exception as exc:  # reported by collect(), on the loop, as the source's failure
                families, error = None, f"{type(exc).__name__}: {exc}"
            ended = self.clock()
            self.last_duration = ended - began
            self._reading = (ended, families, error)  # one reference swapped: scrapes see all of it or none
            self._stop.wait(max(self.interval - (ended - began), 0.0))

    def collect(self) -> list[Metric]:
        self.start()
        reading = self._reading
        now = self.clock()
        if reading is None:
            if now - self._started_at > self.stale:
                raise TimeoutError(f"no reading in {now - self._started_at:.0f}s: the first one has not returned")
            raise LookupError("the first reading is under way")
        ended, families, error = reading
        if now - ended > self.stale:
            raise TimeoutError(f"no reading in {now - ended:.0f}s: the last one has not returned")
        if families is None:
            raise RuntimeError(error)
        return families

    def close(self) -> None:
        self._stop.set()  # not joined: a thread stuck in a library call is left to end with the process
