"""RED counters render to the right samples; exemplars carry the W3C trace id."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest

from exporter.proxy.stats import TrafficStats, trace_id_from_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _stats() -> tuple[TrafficStats, CollectorRegistry]:
    stats = TrafficStats((0.01, 0.1, 1.0), (100.0, 1000.0), "fraud", "3", clock=lambda: 1700000000.0)
    registry = CollectorRegistry()
    registry.register(stats)  # type: ignore[arg-type]
    return stats, registry


def test_record_counts_histograms_and_sizes() -> None:
    stats, registry = _stats()
    stats.record("/invocations", b"POST", 200, 0.05, 0.04, 150, 50, None)
    stats.record("/invocations", b"POST", 200, 0.5, 0.3, 150, 5000, None)
    stats.record("/invocations", b"BREW", 404, 0.005, None, 0, 10, None)
    get = registry.get_sample_value
    labels = {"route": "/invocations", "method": "POST", "code": "200", "model": "fraud", "version": "3"}
    assert get("model_requests_total", labels) == 2
    assert get("model_request_duration_seconds_bucket", {**labels, "le": "0.01"}) == 0
    assert get("model_request_duration_seconds_bucket", {**labels, "le": "0.1"}) == 1
    assert get("model_request_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 2
    assert get("model_request_duration_seconds_sum", labels) == 0.55
    assert get("model_requests_total", {**labels, "method": "other", "code": "404"}) == 1
    route = {"route": "/invocations", "model": "fraud", "version": "3"}
    assert get("model_time_to_first_byte_seconds_count", route) == 2  # the 404 had no first byte timing
    assert get("model_response_size_bytes_bucket", {**route, "le": "100.0"}) == 2
    assert get("model_response_size_bytes_bucket", {**route, "le": "1000.0"}) == 2
    assert get("model_response_size_bytes_count", route) == 3
    assert get("model_request_size_bytes_sum", route) == 300


def test_upper_bound_is_inclusive() -> None:
    stats, registry = _stats()
    stats.record("other", b"GET", 200, 0.1, None, 0, 0, None)
    labels = {"route": "other", "method": "GET", "code": "200", "model": "fraud", "version": "3"}
    assert registry.get_sample_value("model_request_duration_seconds_bucket", {**labels, "le": "0.1"}) == 1


def test_exemplar_from_traceparent_in_openmetrics() -> None:
    stats, registry = _stats()
    stats.record("/invocations", b"POST", 200, 0.05, 0.04, 1, 1, TRACE)
    text = generate_latest(registry).decode()
    line = next(x for x in text.splitlines() if 'le="0.1"' in x and "duration" in x)
    assert f'# {{trace_id="{TRACE}"}} 0.05 1700000000.0' in line


def test_traceparent_parsing() -> None:
    assert trace_id_from_traceparent(f"00-{TRACE}-00f067aa0ba902b7-01".encode()) == TRACE
    assert trace_id_from_traceparent(f"00-{TRACE.upper()}-00f067aa0ba902b7-01".encode()) == TRACE
    assert trace_id_from_traceparent(b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01") is None
    assert trace_id_from_traceparent(b"garbage") is None
    assert trace_id_from_traceparent(b'00-"}{injected-00f067aa0ba902b7-01') is None


def test_upstream_errors_and_gauges() -> None:
    stats, registry = _stats()
    stats.upstream_error("timeout")
    stats.in_flight = 3
    mv = {"model": "fraud", "version": "3"}
    assert registry.get_sample_value("model_upstream_errors_total", {**mv, "reason": "timeout"}) == 1
    assert registry.get_sample_value("model_upstream_errors_total", {**mv, "reason": "reset"}) == 0
    assert registry.get_sample_value("model_requests_in_flight", mv) == 3
    assert registry.get_sample_value("model_load_duration_seconds", mv) is None  # not ready yet
