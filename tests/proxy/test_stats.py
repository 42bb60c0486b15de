"""RED counters render to the right samples; exemplars carry the W3C trace id."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest

from exporter.labels import LabelPolicy
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


def test_every_series_of_an_exchange_carries_its_labels() -> None:
    stats = TrafficStats((0.01, 0.1, 1.0), (100.0, 1000.0), clock=lambda: 1700000000.0)  # no model configured
    registry = CollectorRegistry()
    registry.register(stats)  # type: ignore[arg-type]
    route = "/v2/models/{model}/infer"
    iris = stats.labels.decide("iris", None)
    wine = stats.labels.decide("wine", "2")
    stats.record(route, b"POST", 200, 0.05, 0.04, 10, 20, None, iris)
    stats.record(route, b"POST", 200, 0.05, 0.04, 10, 20, None, iris)
    stats.record(route, b"POST", 500, 0.05, 0.04, 10, 20, None, wine)
    stats.upstream_error("reset", wine)
    stats.record("/invocations", b"POST", 200, 0.05, None, 10, 20, None, stats.labels.decide())
    get = registry.get_sample_value
    iris_l = {"model": "iris", "version": "unknown"}
    wine_l = {"model": "wine", "version": "2"}
    assert get("model_requests_total", {"route": route, "method": "POST", "code": "200", **iris_l}) == 2
    assert get("model_requests_total", {"route": route, "method": "POST", "code": "500", **wine_l}) == 1
    assert get("model_requests_total", {"route": route, "method": "POST", "code": "200", **wine_l}) is None
    assert get("model_request_duration_seconds_count", {"route": route, "method": "POST", "code": "200", **iris_l}) == 2
    assert get("model_time_to_first_byte_seconds_count", {"route": route, **iris_l}) == 2
    assert get("model_request_size_bytes_count", {"route": route, **wine_l}) == 1
    assert get("model_response_size_bytes_sum", {"route": route, **iris_l}) == 40
    assert get("model_requests_total", {"route": "/invocations", "method": "POST", "code": "200",
                                        "model": "unknown", "version": "unknown"}) == 1
    assert get("model_upstream_errors_total", {"reason": "reset", **wine_l}) == 1
    assert get("model_upstream_errors_total", {"reason": "reset", **iris_l}) == 0  # every pair with traffic, from 0
    # no exchange behind in-flight: the configured labels, here none, so "unknown"
    unknown = {"model": "unknown", "version": "unknown"}
    assert get("model_requests_in_flight", unknown) == 0
    assert get("model_requests_in_flight", iris_l) is None
    # the model server's health: one series per pair it served, so outage alerts match traffic alerts
    stats.upstream_up = 1
    stats.load_duration = 2.5
    for labels in (iris_l, wine_l, unknown):
        assert get("model_upstream_up", labels) == 1
        assert get("model_load_duration_seconds", labels) == 2.5


def test_health_gauges_before_traffic_and_never_for_other() -> None:
    stats = TrafficStats((0.1,), (100.0,), labels=LabelPolicy(max_names=1))
    registry = CollectorRegistry()
    registry.register(stats)  # type: ignore[arg-type]
    assert registry.get_sample_value("model_upstream_up", {"model": "unknown", "version": "unknown"}) == 0
    stats.record("/v2/models/{model}/infer", b"POST", 404, 0.01, None, 1, 1, None, stats.labels.decide("x", None, False))
    stats.record("/v2/models/{model}/infer", b"POST", 200, 0.01, None, 1, 1, None, stats.labels.decide("iris", None))
    assert registry.get_sample_value("model_upstream_up", {"model": "iris", "version": "unknown"}) == 0
    assert registry.get_sample_value("model_upstream_up", {"model": "other", "version": "other"}) is None
    assert registry.get_sample_value("model_upstream_up", {"model": "unknown", "version": "unknown"}) is None


def test_a_rejected_request_and_idle_errors_use_the_default_labels() -> None:
    stats, registry = _stats()
    stats.record("other", b"", 400, 0.0, None, 0, 10, None)  # rejected before it was an exchange
    assert registry.get_sample_value("model_requests_total", {"route": "other", "method": "other", "code": "400",
                                                              "model": "fraud", "version": "3"}) == 1
    fresh = TrafficStats((0.1,), (100.0,))
    reg = CollectorRegistry()
    reg.register(fresh)  # type: ignore[arg-type]
    assert reg.get_sample_value("model_upstream_errors_total", {"reason": "refused", "model": "unknown",
                                                                "version": "unknown"}) == 0


def test_label_overflow_is_counted() -> None:
    stats = TrafficStats((0.1,), (100.0,), labels=LabelPolicy(max_names=1))
    registry = CollectorRegistry()
    registry.register(stats)  # type: ignore[arg-type]
    assert stats.labels.decide("a", None) == ("a", "unknown")
    assert stats.labels.decide("b", None) == ("other", "other")
    assert stats.labels.decide("a", "1") == ("a", "1")
    assert stats.labels.decide("a", "2") == ("a", "other")
    assert registry.get_sample_value("model_exporter_label_overflow_total", {"label": "model"}) == 1
    assert registry.get_sample_value("model_exporter_label_overflow_total", {"label": "version"}) == 1


# ------------------------------------------------------------ bounded label values


def test_status_codes_outside_the_registry_become_other() -> None:
    stats, registry = _stats()
    for code in (200, 418, 499, 599, 299, 1000, 42):
        stats.record("/invocations", b"POST", code, 0.05, 0.04, 1, 1, None)
    codes = {s.labels["code"]: s.value for m in registry.collect() for s in m.samples if s.name == "model_requests_total"}
    assert codes == {"200": 1, "418": 1, "499": 1, "other": 4}


def test_label_sets_beyond_the_cap_fold_into_route_and_code_other_and_each_fold_is_counted() -> None:
    stats = TrafficStats((0.1,), (100.0,), "fraud", "3", max_series=3)
    registry = CollectorRegistry()
    registry.register(stats)  # type: ignore[arg-type]
    for code in (200, 201, 202):
        stats.record("/invocations", b"POST", code, 0.05, None, 1, 1, None)
    for code in (203, 204, 203):
        stats.record("/invocations", b"GET", code, 0.05, None, 1, 1, None)
    stats.record("/invocations", b"POST", 200, 0.05, None, 1, 1, None)  # one it kept still counts as itself
    samples = [s for m in registry.collect() for s in m.samples]
    requests = {(s.labels["route"], s.labels["method"], s.labels["code"]): s.value
                for s in samples if s.name == "model_requests_total"}
    assert requests == {("/invocations", "POST", "200"): 2, ("/invocations", "POST", "201"): 1,
                        ("/invocations", "POST", "202"): 1, ("other", "GET", "other"): 3}
    durations = {(s.labels["route"], s.labels["code"]) for s in samples if s.name == "model_request_duration_seconds_count"}
    assert durations == {(r, c) for r, _, c in requests}
    overflow = {s.labels["family"]: s.value for s in samples if s.name == "model_exporter_series_overflow_total"}
    assert overflow == {"model_requests_total": 3, "model_request_duration_seconds": 3}


def test_series_overflow_is_exposed_at_zero() -> None:
    _, registry = _stats()
    overflow = {s.labels["family"]: s.value for m in registry.collect() for s in m.samples
                if s.name == "model_exporter_series_overflow_total"}
    assert overflow == {"model_requests_total": 0, "model_request_duration_seconds": 0}
