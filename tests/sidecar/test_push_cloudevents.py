"""CloudEvents parsing (both content modes, as KServe and Seldon send them) and the request/response join."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from exporter.config import ConfigError, PushConfig, from_dict
from exporter.events import Event
from exporter.labels import LabelPolicy
from exporter.sidecar.cloudevents import Rejected, parse
from exporter.sidecar.push import PushSource

V2_REQUEST = json.dumps({"inputs": [{"name": "age", "shape": [2], "datatype": "FP32", "data": [41.0, 35.5]}]}).encode()
V2_RESPONSE = json.dumps({"model_name": "credit", "outputs": [{"name": "label", "shape": [2], "datatype": "INT64",
                                                                "data": [1, 0]}]}).encode()


def kserve_headers(kind: str, rid: str = "0f5c6a2e-1", isvc: str = "credit", endpoint: str = "default") -> dict[str, str]:
    """The headers of KServe's logger (pkg/logger: binary mode, its extension attributes)."""
    return {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": rid,
        "ce-type": f"org.kubeflow.serving.inference.{kind}",
        "ce-source": "http://localhost:9081/",
        "ce-time": "2026-11-29T21:00:00.123456789Z",
        "ce-inferenceservicename": isvc,
        "ce-namespace": "models",
        "ce-component": "predictor",
        "ce-endpoint": endpoint,
        "ce-metadata": "{}",
    }


def seldon_headers(kind: str, rid: str = "puid-7") -> dict[str, str]:
    """The headers of Seldon Core's executor logger (binary mode, its extension attributes)."""
    return {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": rid,
        "ce-type": f"io.seldon.serving.inference.{kind}",
        "ce-source": "http://credit-default.models:8000/",
        "ce-requestid": rid,
        "ce-modelid": "classifier",
        "ce-inferenceservicename": "credit",
        "ce-namespace": "models",
        "ce-endpoint": "default",
        "ce-protocol": "v2",
    }


def structured(kind: str, rid: str, data: object | None = None, data_base64: bytes | None = None,
               **extensions: str) -> bytes:
    doc: dict[str, object] = {"specversion": "1.0", "id": rid, "type": kind, "source": "/logger",
                              "datacontenttype": "application/json", **extensions}
    if data is not None:
        doc["data"] = data
    if data_base64 is not None:
        doc["data_base64"] = base64.b64encode(data_base64).decode()
    return json.dumps(doc).encode()


# ---------------------------------------------------------------- parsing


def test_kserve_binary_mode() -> None:
    event = parse(kserve_headers("request"), V2_REQUEST)
    assert (event.mode, event.platform, event.half, event.id) == ("binary", "kserve", "request", "0f5c6a2e-1")
    assert event.data == V2_REQUEST and event.content_type == "application/json"
    assert event.extensions["inferenceservicename"] == "credit" and event.extensions["endpoint"] == "default"
    assert event.time == pytest.approx(1795986000.123456)


def test_seldon_binary_mode() -> None:
    event = parse(seldon_headers("response"), V2_RESPONSE)
    assert (event.platform, event.half) == ("seldon", "response")
    assert event.extensions["protocol"] == "v2" and event.extensions["modelid"] == "classifier"


def test_structured_mode_json_data_and_base64_data() -> None:
    headers = {"content-type": "application/cloudevents+json; charset=utf-8"}
    doc = json.loads(V2_REQUEST)
    event = parse(headers, structured("org.kubeflow.serving.inference.request", "r1", data=doc,
                                      inferenceservicename="credit"))
    assert event.mode == "structured" and json.loads(event.data) == doc
    assert event.extensions == {"inferenceservicename": "credit"}
    binary = parse(headers, structured("io.seldon.serving.inference.response", "r1", data_base64=V2_RESPONSE))
    assert binary.data == V2_RESPONSE and binary.half == "response"


@pytest.mark.parametrize(
    ("headers", "body", "reason", "words"),
    [
        ({"content-type": "application/json"}, b"{}", "missing_attribute", "ce-specversion, ce-id"),
        ({**kserve_headers("request"), "ce-id": ""}, b"{}", "missing_attribute", "ce-id is required"),
        ({k: v for k, v in kserve_headers("request").items() if k != "ce-source"}, b"{}", "missing_attribute",
         "ce-source is required"),
        ({**kserve_headers("request"), "ce-type": "io.seldon.serving.feedback"}, b"{}", "unsupported_type",
         "'io.seldon.serving.feedback' is not an inference event"),
        ({**kserve_headers("request"), "ce-specversion": "0.3"}, b"{}", "unsupported_specversion", "only 1.0"),
        ({"content-type": "application/cloudevents-batch+json"}, b"[]", "unsupported_content_type", "one event per"),
        ({"content-type": "application/cloudevents+xml"}, b"<e/>", "unsupported_content_type", "only application/"),
        ({"content-type": "application/cloudevents+json"}, b"[1]", "invalid_envelope", "expected a JSON object"),
        ({"content-type": "application/cloudevents+json"}, b"{nope", "invalid_envelope", "not JSON"),
        ({"content-type": "application/cloudevents+json"},
         b'{"specversion":"1.0","id":"a","type":"t","source":"s","data_base64":"***"}', "invalid_envelope",
         "data_base64: expected base64"),
        ({"content-type": "application/cloudevents+json"},
         b'{"specversion":"1.0","id":{"x":1},"type":"t","source":"s"}', "invalid_envelope", "attribute 'id'"),
    ],
)
def test_malformed_events_are_named(headers: dict[str, str], body: bytes, reason: str, words: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse(headers, body)
    assert caught.value.reason == reason
    assert words in str(caught.value)


# ---------------------------------------------------------------- the join


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sink:
    """An EventSink that keeps what it is given (the link's own bounds are tested with the link)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def submit(self, event: Event) -> None:
        self.events.append(event)

    def drop(self, reason: str) -> None:
        raise AssertionError("push never drops before submitting")


def source(settings: PushConfig | None = None, policy: LabelPolicy | None = None) -> tuple[PushSource, Sink, Clock]:
    sink, clock = Sink(), Clock()
    conf = settings or PushConfig()
    labels = policy or LabelPolicy()
    return PushSource(sink, lambda: labels, lambda: conf, "x-request-id", clock=clock, wall=lambda: 5000.0), sink, clock


def test_request_then_response_joins_into_one_event() -> None:
    push, sink, _ = source()
    assert push.receive(kserve_headers("request"), V2_REQUEST) == (200, "accepted: waiting for the other half\n")
    assert sink.events == [] and len(push.pending) == 1 and push.bytes == len(V2_REQUEST)
    status, _ = push.receive(kserve_headers("response"), V2_RESPONSE)
    assert status == 200
    [event] = sink.events
    assert (event.request_body, event.response_body, event.status, event.duration) == (V2_REQUEST, V2_RESPONSE, 200, 0)
    assert event.request_headers[b"x-request-id"] == b"0f5c6a2e-1"
    assert (event.model, event.version) == ("credit", "default")
    assert event.time == pytest.approx(1795986000.123456)  # the response's ce-time
    assert push.joined == 1 and not push.pending and push.bytes == 0
    assert push.received[("org.kubeflow.serving.inference.request", "binary")] == 1


def test_out_of_order_halves_join_and_seldon_protocol_names_the_route() -> None:
    push, sink, _ = source()
    push.receive(seldon_headers("response"), V2_RESPONSE)
    push.receive(seldon_headers("request"), V2_REQUEST)
    [event] = sink.events
    assert event.request_body == V2_REQUEST and event.response_body == V2_RESPONSE
    assert event.target == b"/v2/models/credit/infer"  # ce-protocol v2: the worker picks the V2 adapter by route


def test_mixed_modes_join_by_id() -> None:
    push, sink, _ = source()
    push.receive({"content-type": "application/cloudevents+json"},
                 structured("org.kubeflow.serving.inference.response", "abc", data=json.loads(V2_RESPONSE),
                            inferenceservicename="credit", endpoint="canary"))
    push.receive(kserve_headers("request", rid="abc", endpoint="canary"), V2_REQUEST)
    [event] = sink.events
    assert json.loads(event.response_body) == json.loads(V2_RESPONSE)
    assert (event.model, event.version) == ("credit", "canary")


def test_a_duplicate_half_is_counted_and_the_first_kept() -> None:
    push, sink, _ = source()
    push.receive(kserve_headers("request"), V2_REQUEST)
    push.receive(kserve_headers("request"), b'{"inputs": []}')
    push.receive(kserve_headers("response"), V2_RESPONSE)
    assert push.duplicates == 1 and sink.events[0].request_body == V2_REQUEST


def test_unmatched_halves_expire_and_a_request_is_still_analysed() -> None:
    push, sink, clock = source(PushConfig(ttl=30.0))
    push.receive(kserve_headers("request", rid="only-request"), V2_REQUEST)
    clock.now += 10
    push.receive(kserve_headers("response", rid="only-response"), V2_RESPONSE)
    clock.now += 20.5  # the request is 30.5 s old, the response 20.5 s
    push.expire()
    assert push.unmatched[("request", "expired")] == 1 and push.unmatched[("response", "expired")] == 0
    [event] = sink.events
    assert (event.status, event.request_body, event.response_body) == (0, V2_REQUEST, b"")
    clock.now += 10
    push.expire()
    assert push.unmatched[("response", "expired")] == 1
    assert len(sink.events) == 1  # a response alone cannot be read without its request
    assert not push.pending and push.bytes == 0
    # a late partner of an expired half is only a new half
    push.receive(kserve_headers("response", rid="only-request"), V2_RESPONSE)
    assert push.joined == 0 and len(push.pending) == 1


def test_caps_evict_the_oldest_half_and_count_it() -> None:
    push, sink, _ = source(PushConfig(cache_size=2, cache_bytes=10 * len(V2_REQUEST)))
    for rid in ("a", "b", "c"):
        push.receive(kserve_headers("request", rid=rid), V2_REQUEST)
    assert list(push.pending) == ["b", "c"] and push.unmatched[("request", "evicted")] == 1
    assert [e.request_headers[b"x-request-id"] for e in sink.events] == [b"a"]
    push, sink, _ = source(PushConfig(cache_size=100, cache_bytes=len(V2_RESPONSE) + 10))
    push.receive(kserve_headers("response", rid="big-1"), V2_RESPONSE)
    push.receive(kserve_headers("response", rid="big-2"), V2_RESPONSE)
    assert list(push.pending) == ["big-2"] and push.unmatched[("response", "evicted")] == 1
    assert push.bytes == len(V2_RESPONSE) and sink.events == []
    # a half larger than the whole cache is turned away alone: the others stay
    push.receive(kserve_headers("request", rid="huge"), b"x" * (len(V2_RESPONSE) + 11))
    assert list(push.pending) == ["big-2"] and push.unmatched[("request", "evicted")] == 1
    assert [e.request_headers[b"x-request-id"] for e in sink.events] == [b"huge"]  # still analysed


def test_rejections_are_counted_with_their_status() -> None:
    push, _, _ = source()
    status, message = push.receive({"content-type": "application/json"}, b"{}")
    assert status == 400 and "not a CloudEvent" in message
    status, _ = push.receive({"content-type": "application/cloudevents-batch+json"}, b"[]")
    assert status == 415
    push.too_large()
    assert push.rejected["missing_attribute"] == 1
    assert push.rejected["unsupported_content_type"] == 1 and push.rejected["too_large"] == 1


def test_labels_follow_the_policy() -> None:
    push, sink, _ = source(policy=LabelPolicy(name="fixed", version="7"))
    push.receive(kserve_headers("request"), V2_REQUEST)
    push.receive(kserve_headers("response"), V2_RESPONSE)
    assert (sink.events[0].model, sink.events[0].version) == ("fixed", "7")
    capped = LabelPolicy(max_names=1)
    push, sink, _ = source(policy=capped)
    for rid, isvc in (("1", "first"), ("2", "second")):
        push.receive(kserve_headers("request", rid=rid, isvc=isvc), V2_REQUEST)
        push.receive(kserve_headers("response", rid=rid, isvc=isvc), V2_RESPONSE)
    assert [e.model for e in sink.events] == ["first", "other"] and capped.overflow["model"] == 1


def test_push_config_keys_and_errors() -> None:
    config = from_dict({"push": {"path": "/events", "ttl": "2m", "cache_size": 5, "cache_bytes": 1024,
                                 "max_body_bytes": 4096, "enabled": False}})
    assert config.push == replace(PushConfig(), path="/events", ttl=120.0, cache_size=5, cache_bytes=1024,
                                  max_body_bytes=4096, enabled=False)
    with pytest.raises(ConfigError, match=r"push.path: expected a path of its own on the metrics port"):
        from_dict({"push": {"path": "/metrics"}})
    with pytest.raises(ConfigError, match=r"push.ttl: expected a duration"):
        from_dict({"push": {"ttl": "soon"}})
    with pytest.raises(ConfigError, match=r"push.size: unknown key \(allowed: cache_bytes"):
        from_dict({"push": {"size": 1}})


def test_the_push_endpoint_is_fixed_at_start() -> None:
    from exporter.config import Config
    from exporter.sidecar.settings import RestartOnly

    before = Config()
    moved = replace(before, push=replace(before.push, path="/events"))
    assert RestartOnly.of(moved).change_from(RestartOnly.of(before)) == (
        "push_path: changed from /cloudevents to /events; this needs a restart"
    )
    caps = replace(before, push=replace(before.push, ttl=5.0, cache_size=10))
    assert RestartOnly.of(caps).change_from(RestartOnly.of(before)) is None  # caps apply on reload
