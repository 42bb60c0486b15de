"""RED metrics recorded on the hot path as plain counters, rendered only at scrape time.

prometheus_client's labelled children take a lock and a dict lookup per call; here one
exchange costs a few list increments, and the families are built when Prometheus scrapes.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus

from prometheus_client.core import Metric
from prometheus_client.samples import Exemplar

from exporter.labels import OTHER, LabelPolicy
from exporter.metrics.definitions import family, histogram_family
from exporter.proxy.exchange import CLIENT_GONE, CLOSE_REASONS, ERROR_STATUS

# Request methods become label values only from this fixed set; anything else is "other".
METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
UPSTREAM_ERROR_REASONS = tuple(ERROR_STATUS)  # the reasons are defined once, with the answer each gets
# Status codes keep their value as a label only if registered (IANA's registry, as http.HTTPStatus
# has it) or 499 (the client went away); any other code a model server sends is "other".
CODE_LABELS: dict[int, str] = {int(s): str(int(s)) for s in HTTPStatus} | {CLIENT_GONE: str(CLIENT_GONE)}
# Label sets of model_requests_total and model_request_duration_seconds kept, all models together;
# beyond it a new one is folded into route="other", code="other" (model_exporter_series_overflow_total).
MAX_SERIES = 10_000
FOLDED_FAMILIES = ("model_requests_total", "model_request_duration_seconds")

_TRACEPARENT = re.compile(rb"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def trace_id_from_traceparent(value: bytes) -> str | None:
    """The trace id of a W3C traceparent header, or None if malformed or all zeros."""
    m = _TRACEPARENT.match(value.strip().lower())
    if not m or m.group(1) == b"0" * 32:
        return None
    return m.group(1).decode("ascii")


class _Histogram:
    __slots__ = ("counts", "sum", "exemplars")

    def __init__(self, n_buckets: int) -> None:
        self.counts = [0] * (n_buckets + 1)  # last slot: +Inf
        self.sum = 0.0
        self.exemplars: dict[int, Exemplar] | None = None

    def observe(self, bounds: Sequence[float], value: float) -> int:
        i = bisect_left(bounds, value)
        self.counts[i] += 1
        self.sum += value
        return i

    def buckets(self, bounds: Sequence[float]) -> list[tuple[str, float] | tuple[str, float, Exemplar]]:
        out: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
        acc = 0
        ex = self.exemplars or {}
        for i, count in enumerate(self.counts):
            acc += count
            le = "+Inf" if i == len(bounds) else _fmt(bounds[i])
            exemplar = ex.get(i)
            out.append((le, float(acc), exemplar) if exemplar else (le, float(acc)))
        return out


def _gauge(name: str, model_version: list[str], value: float) -> Metric:
    gauge = family(name)
    gauge.add_metric(model_version, value)
    return gauge


def _fmt(value: float) -> str:
    return repr(float(value))


class _Traffic:
    """The series of one (model, version) label pair."""

    __slots__ = ("requests", "durations", "ttfb", "request_sizes", "response_sizes", "upstream_errors")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.durations: dict[tuple[str, str, str], _Histogram] = {}
        self.ttfb: dict[str, _Histogram] = {}
        self.request_sizes: dict[str, _Histogram] = {}
        self.response_sizes: dict[str, _Histogram] = {}
        self.upstream_errors: dict[str, int] = dict.fromkeys(UPSTREAM_ERROR_REASONS, 0)


class TrafficStats:
    """Counters and histograms of proxied exchanges, keyed by their bounded label tuples.

    Every series of an exchange carries the (model, version) the label policy decided for it
    (exporter/labels.py); the gauges that belong to no exchange (in flight, upstream up, load
    duration) carry the policy's default: the configured name and version, else "unknown".
    """

    def __init__(
        self,
        duration_buckets: Sequence[float],
        size_buckets: Sequence[float],
        model: str | None = None,
        version: str | None = None,
        clock: Callable[[], float] = time.time,
        labels: LabelPolicy | None = None,
        max_series: int = MAX_SERIES,
    ) -> None:
        self.duration_bounds = tuple(duration_buckets)
        self.size_bounds = tuple(size_buckets)
        self.labels = labels if labels is not None else LabelPolicy(model, version)
        self._clock = clock
        self.series: dict[tuple[str, str], _Traffic] = {}  # by (model, version): capped by the policy
        self.max_series = max_series
        self.request_series = 0  # label sets of model_requests_total, all (model, version) together
        self.series_overflow = 0  # exchanges whose label set was folded
        self.in_flight = 0
        self.llm_streams = 0  # LLM-route responses between their head and their end (captured exchanges)
        self.upstream_up = 0
        self.has_upstream = True  # False: the sidecar only tails logs; no model_upstream_up to alert on
        self.load_duration: float | None = None
        # client connections of the proxy port (server.py counts them; no model labels)
        self.client_connections = 0
        self.client_closed: dict[str, int] = dict.fromkeys(CLOSE_REASONS, 0)

    def _series(self, labels: tuple[str, str] | None) -> _Traffic:
        if labels is None:  # no exchange to decide from (a request rejected before it had one)
            labels = self.labels.default
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _Traffic()
        return series

    def record(
        self,
        route: str,
        method: bytes,
        code: int,
        duration: float,
        ttfb: float | None,
        request_size: int,
        response_size: int,
        trace_id: str | None,
        labels: tuple[str, str] | None = None,
    ) -> None:
        """Account one finished exchange (the only call on the hot path); `labels`: its (model, version)."""
        series = self._series(labels)
        key = self._count(series, route, method, code)
        hist = series.durations.get(key)
        if hist is None:
            hist = series.durations[key] = _Histogram(len(self.duration_bounds))
        i = hist.observe(self.duration_bounds, duration)
        if trace_id is not None:
            if hist.exemplars is None:
                hist.exemplars = {}
            hist.exemplars[i] = Exemplar({"trace_id": trace_id}, duration, self._clock())
        if ttfb is not None:
            self._observe(series.ttfb, route, self.duration_bounds, ttfb)
        self._observe(series.request_sizes, route, self.size_bounds, request_size)
        self._observe(series.response_sizes, route, self.size_bounds, response_size)

    def record_logged(
        self,
        route: str,
        method: bytes,
        code: int,
        duration: float | None,
        request_size: int | None,
        response_size: int | None,
        labels: tuple[str, str],
    ) -> None:
        """Account one exchange read from a log (sources/tail.py): what its line does not say is not observed."""
        series = self._series(labels)
        key = self._count(series, route, method, code)
        if duration is not None:
            hist = series.durations.get(key)
            if hist is None:
                hist = series.durations[key] = _Histogram(len(self.duration_bounds))
            hist.observe(self.duration_bounds, duration)
        if request_size is not None:
            self._observe(series.request_sizes, route, self.size_bounds, request_size)
        if response_size is not None:
            self._observe(series.response_sizes, route, self.size_bounds, response_size)

    def _count(self, series: _Traffic, route: str, method: bytes, code: int) -> tuple[str, str, str]:
        """Count one request of `series`; returns its label set (route, method, code), folded past the cap."""
        key = (route, METHODS.get(method, OTHER), CODE_LABELS.get(code, OTHER))
        n = series.requests.get(key)
        if n is None:
            key = self._admit(series, key)
            n = series.requests.get(key, 0)
        series.requests[key] = n + 1
        return key

    def _admit(self, series: _Traffic, key: tuple[str, str, str]) -> tuple[str, str, str]:
        """A new label set: kept while under max_series, else folded into route and code "other"."""
        if self.request_series < self.max_series:
            self.request_series += 1
            return key
        self.series_overflow += 1
        folded = (OTHER, key[1], OTHER)
        if folded not in series.requests:  # past the cap, at most one per (model, version, method)
            self.request_series += 1
        return folded

    def _observe(self, table: dict[str, _Histogram], route: str, bounds: tuple[float, ...], value: float) -> None:
        hist = table.get(route)
        if hist is None:
            hist = table[route] = _Histogram(len(bounds))
        hist.observe(bounds, value)

    def upstream_error(self, reason: str, labels: tuple[str, str] | None = None) -> None:
        self._series(labels).upstream_errors[reason] += 1

    def collect(self) -> Iterator[Metric]:
        """Build the metric families from the counters (scrape time)."""
        default = list(self.labels.default)
        pairs = sorted(self.series.items())
        requests = family("model_requests_total")
        durations = histogram_family("model_request_duration_seconds")
        for mv, series in pairs:
            for (route, method, code), n in sorted(series.requests.items()):
                requests.add_metric([route, method, code, *mv], n)
            for (route, method, code), hist in sorted(series.durations.items()):
                durations.add_metric([route, method, code, *mv], hist.buckets(self.duration_bounds), hist.sum)
        yield requests
        yield durations

        for name, attr, bounds in (
            ("model_time_to_first_byte_seconds", "ttfb", self.duration_bounds),
            ("model_request_size_bytes", "request_sizes", self.size_bounds),
            ("model_response_size_bytes", "response_sizes", self.size_bounds),
        ):
            histogram = histogram_family(name)
            for mv, series in pairs:
                for route, hist in sorted(getattr(series, attr).items()):
                    histogram.add_metric([route, *mv], hist.buckets(bounds), hist.sum)
            yield histogram

        yield _gauge("model_requests_in_flight", default, self.in_flight)
        yield _gauge("model_llm_streams_in_flight", default, self.llm_streams)

        # every reason at 0 for each label pair that has traffic (the default one before any)
        errors = family("model_upstream_errors_total")
        for mv, counts in [(mv, s.upstream_errors) for mv, s in pairs] or [(self.labels.default, {})]:
            for reason in UPSTREAM_ERROR_REASONS:
                errors.add_metric([reason, *mv], counts.get(reason, 0))
        yield errors

        # The model server's health belongs to every model it serves: one series per label pair
        # with traffic (never "other"), so an outage alert and its inhibitions match the traffic
        # alerts of the same model and version; the default pair before any traffic.
        served = [list(pair) for pair, _ in pairs if pair[0] != OTHER] or [default]
        if self.has_upstream:
            up = family("model_upstream_up")
            for labels in served:
                up.add_metric(labels, self.upstream_up)
            yield up
        if self.load_duration is not None:
            load = family("model_load_duration_seconds")
            for labels in served:
                load.add_metric(labels, self.load_duration)
            yield load

        overflow = family("model_exporter_label_overflow_total")
        for label, n in self.labels.overflow.items():
            overflow.add_metric([label], n)
        yield overflow
        folds = family("model_exporter_series_overflow_total")
        for name in FOLDED_FAMILIES:
            folds.add_metric([name], self.series_overflow)
        yield folds

        connections = family("model_exporter_client_connections")
        connections.add_metric([], self.client_connections)
        yield connections
        closed = family("model_exporter_client_connections_closed_total")
        for reason, n in self.client_closed.items():
            closed.add_metric([reason], n)
        yield closed
