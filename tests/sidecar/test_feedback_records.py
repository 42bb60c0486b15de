"""POST /feedback bodies: one record, an array, JSON Lines; each bad record named by index and field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.config import ConfigError, from_dict
from exporter.events import Label
from exporter.sidecar.feedback import answer, parse_feedback


def test_one_record() -> None:
    labels, failures = parse_feedback(b'{"id": "r1", "label": 1, "time": 1700000000, "value": 12.5}')
    assert labels == [Label("r1", 1, 1700000000.0, 12.5)] and failures == []


def test_array_and_json_lines_agree() -> None:
    records = [{"id": "a", "label": "cat"}, {"id": 7, "label": True, "time": "2026-01-31T12:00:00Z"}]
    as_array, _ = parse_feedback(json.dumps(records).encode())
    as_lines, _ = parse_feedback(b"\n".join(json.dumps(r).encode() for r in records) + b"\n\n")
    assert as_array == as_lines == [Label("a", "cat", None, None), Label("7", True, 1769860800.0, None)]


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"label": 1}, "id"),
        ({"id": "", "label": 1}, "id"),
        ({"id": True, "label": 1}, "id"),
        ({"id": "x" * 300, "label": 1}, "id"),
        ({"id": "a"}, "label"),
        ({"id": "a", "label": None}, "label"),
        ({"id": "a", "label": [1]}, "label"),
        ({"id": "a", "label": 1, "time": "yesterday"}, "time"),
        ({"id": "a", "label": 1, "time": "2026-01-31T12:00:00"}, "time"),  # no zone
        ({"id": "a", "label": 1, "time": -5}, "time"),
        ({"id": "a", "label": 1, "value": "12"}, "value"),
        ({"id": "a", "label": 1, "value": -3}, "value"),
        ({"id": "a", "label": 1, "colour": "red"}, "colour"),
        ("just a string", "record"),
    ],
)
def test_a_bad_record_names_its_field(record: object, field: str) -> None:
    labels, failures = parse_feedback(json.dumps(record).encode())
    assert labels == []
    assert [(i, f) for i, f, _ in failures] == [(0, field)]


def test_a_batch_keeps_its_good_records_and_lists_the_bad() -> None:
    body = json.dumps([{"id": "a", "label": 1}, {"id": "b"}, {"id": "c", "label": 0}, "x"]).encode()
    labels, failures = parse_feedback(body)
    assert [label.id for label in labels] == ["a", "c"]
    assert [(i, f) for i, f, _ in failures] == [(1, "label"), (3, "record")]
    status, doc = answer(len(labels), failures)
    assert status == 400
    parsed = json.loads(doc)
    assert parsed["accepted"] == 2
    assert parsed["failed"][0] == {"index": 1, "field": "label", "error": parsed["failed"][0]["error"]}
    assert parsed["failed"][0]["error"].startswith("record 1: label: required")


def test_json_lines_with_a_broken_line() -> None:
    labels, failures = parse_feedback(b'{"id": "a", "label": 1}\n{"id": \n{"id": "c", "label": 0}\n')
    assert [label.id for label in labels] == ["a", "c"]
    assert [(i, f) for i, f, _ in failures] == [(1, "body")]


@pytest.mark.parametrize("body", [b"", b"   ", b"\xff\xfe", b"[]"])
def test_an_empty_or_undecodable_body_fails(body: bytes) -> None:
    labels, failures = parse_feedback(body)
    assert labels == [] and len(failures) == 1


def test_answers() -> None:
    assert answer(3, [])[0] == 200
    status, body = answer(0, [], dropped=3)
    assert status == 503 and json.loads(body)["dropped"] == 3


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"labels": {"cache_size": 0}}, "labels.cache_size: expected a positive integer, got 0"),
        ({"labels": {"ttl": "soon"}}, "labels.ttl: expected a duration"),
        ({"performance": {"task": "ranking"}}, "performance.task: expected one of auto, classification, regression"),
        ({"performance": {"threshold": 1.5}}, "performance.threshold: expected a number between 0 and 1"),
        ({"performance": {"tolerance": -1}}, "performance.tolerance: expected a number from 0 to 1"),
        ({"performance": {"colour": 1}}, "performance.colour: unknown key"),
    ],
)
def test_bad_labels_and_performance_settings_name_their_path(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(section)
    assert message in str(info.value)


def test_labels_and_performance_settings() -> None:
    config = from_dict({"labels": {"cache_size": 10, "ttl": "2h"}, "performance": {"positive": True, "score": "p"}})
    assert (config.labels.cache_size, config.labels.ttl) == (10, 7200.0)
    assert (config.performance.positive, config.performance.score) == ("true", "p")


def test_the_endpoint_asks_for_basic_auth_when_configured() -> None:
    import asyncio
    import base64

    import bcrypt

    from exporter.events import Feedback
    from exporter.sidecar.admin import make_admin_router
    from exporter.sidecar.http import Request
    from exporter.sidecar.web_config import BasicAuth

    got: list[Feedback] = []

    def labels(feedback: Feedback) -> int:
        got.append(feedback)
        return 0

    async def render(accept: str | None, accept_encoding: str | None) -> tuple[bytes, str, str | None]:
        return b"", "text/plain", None

    auth = BasicAuth((("alice", bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()),))
    router = make_admin_router(render, lambda: (True, ""), None, auth, labels=labels)
    body = json.dumps({"id": "a", "label": 1}).encode()
    json_type = {"content-type": "application/json"}
    good = "Basic " + base64.b64encode(b"alice:secret").decode()

    async def post(headers: dict[str, str]) -> int:
        return (await router.handle(Request("POST", "/feedback", headers, body))).status

    assert asyncio.run(post(json_type)) == 401
    assert asyncio.run(post({**json_type, "authorization": "Basic " + base64.b64encode(b"alice:no").decode()})) == 401
    assert got == []
    assert asyncio.run(post({**json_type, "authorization": good})) == 200
    assert [label.id for label in got[0].labels] == ["a"]
    # dropped by a full queue: 503, the count in the answer
    router = make_admin_router(render, lambda: (True, ""), None, None, labels=lambda feedback: len(feedback.labels))
    response = asyncio.run(router.handle(Request("POST", "/feedback", json_type, body)))
    assert (response.status, json.loads(response.body)["dropped"]) == (503, 1)


def test_the_link_bounds_labels_in_flight_and_never_blocks() -> None:
    from typing import cast

    from exporter.config import Config, LabelsConfig
    from exporter.events import LABELS, Feedback, FrameReader, encode
    from exporter.sidecar.link import WorkerLink

    class Transport:
        def __init__(self) -> None:
            self.written = bytearray()

        def write(self, data: bytes) -> None:
            self.written += data

        def get_write_buffer_size(self) -> int:
            return 0

    link = WorkerLink(Config(labels=LabelsConfig(queue_size=5)))
    batch = Feedback(1.0, [Label(str(i), 1, None, None) for i in range(3)], 0)
    assert link.submit_labels(batch) == 3  # no worker yet
    transport = Transport()
    link.connection_made(cast(Any, transport))
    assert link.submit_labels(batch) == 0
    assert link.submit_labels(batch) == 3  # 6 would be in flight: over 5
    assert link.labels_dropped == {"queue_full": 3, "worker_down": 3}
    link.data_received(encode(LABELS, 3))  # the worker processed them
    assert link.submit_labels(batch) == 0
    frames = FrameReader().feed(bytes(transport.written))
    assert [(kind, len(payload.labels)) for kind, payload in frames] == [(LABELS, 3), (LABELS, 3)]


def test_labels_never_overtake_the_events_submitted_before_them() -> None:
    import asyncio
    from typing import cast

    from exporter.config import Config
    from exporter.events import EVENTS, LABELS, Event, Feedback, FrameReader
    from exporter.sidecar.link import WorkerLink

    class Transport:
        def __init__(self) -> None:
            self.written = bytearray()

        def write(self, data: bytes) -> None:
            self.written += data

        def get_write_buffer_size(self) -> int:
            return 0

    async def scenario() -> list[int]:
        link = WorkerLink(Config())
        transport = Transport()
        link.connection_made(cast(Any, transport))
        link.submit(Event(1.0, "/r", b"/r", 200, 0.01, {}, b"", {}, b"", "m", "1"))  # batched, not yet sent
        link.submit_labels(Feedback(1.0, [Label("a", 1, None, None)], 0))
        return [kind for kind, _ in FrameReader().feed(bytes(transport.written))]

    assert asyncio.run(scenario()) == [EVENTS, LABELS]
