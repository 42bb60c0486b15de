"""The prediction store: sampling, the rate cap, redaction, rotation bounds, a full disk and a slow one.

Real files throughout: a full disk is a path linked to /dev/full (the kernel answers every write
with ENOSPC); a slow disk is a FIFO nobody reads yet (the writer thread blocks in open()).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import threading
from pathlib import Path

from exporter.config import PredictionLogConfig
from exporter.events import Event
from exporter.predlog import TAILED_HEADER, iter_records
from exporter.worker.store import PredictionStore

V2 = b'{"id":"r","inputs":[{"name":"age","shape":[1],"datatype":"FP64","data":[41]},{"name":"ssn","shape":[1],"datatype":"BYTES","data":["123-45-6789"]}]}'
V2_OUT = b'{"outputs":[{"name":"score","shape":[1],"datatype":"FP64","data":[0.8]}]}'
JSON = {b"content-type": b"application/json"}


def event(i: int, body: bytes = V2, headers: dict[bytes, bytes] | None = None) -> Event:
    request_headers = {**JSON, b"x-request-id": f"req-{i}".encode(), **(headers or {})}
    return Event(1.0e9 + i, "/v2/models/{model}/infer", b"/v2/models/m/infer", 200, 0.004,
                 request_headers, body, JSON, V2_OUT, "m", "1")  # fmt: skip


def config(path: Path, **kwargs: object) -> PredictionLogConfig:
    return PredictionLogConfig(path=str(path), **kwargs)  # type: ignore[arg-type]


def test_every_exchange_round_trips_through_the_log(tmp_path: Path) -> None:
    path = tmp_path / "p.predlog"
    store = PredictionStore(config(path), "x-request-id")
    store.offer([event(i) for i in range(5)])
    store.close()
    records = list(iter_records(str(path)))
    assert [r.id for r in records] == [f"req-{i}" for i in range(5)]
    first = records[0]
    assert (first.model, first.version, first.route, first.status, first.duration) == (
        "m",
        "1",
        "/v2/models/m/infer",
        200,
        0.004,
    )
    assert first.request is not None and first.request.data == V2 and first.request.content_type == "application/json"
    assert first.response is not None and first.response.data == V2_OUT
    assert store.counters.records == 5 and store.counters.bytes == path.stat().st_size


def test_sampling_fraction(tmp_path: Path) -> None:
    path = tmp_path / "p.predlog"
    store = PredictionStore(config(path, sample=0.25, queue_size=4000), "x-request-id", rng=random.Random(7).random)
    store.offer([event(i) for i in range(4000)])
    store.close()
    draws = random.Random(7)
    expected = [f"req-{i}" for i in range(4000) if draws.random() < 0.25]
    assert [r.id for r in iter_records(str(path))] == expected
    assert 1000 - 3 * 27.4 < len(expected) < 1000 + 3 * 27.4  # binomial(4000, 0.25): sd 27.4
    assert store.counters.dropped == dict.fromkeys(store.counters.dropped, 0)  # not sampled is not dropped


def test_rate_cap_is_counted(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "p.predlog"
    store = PredictionStore(config(path, max_rate=10.0), "x-request-id", clock=lambda: now[0])
    store.offer([event(i) for i in range(100)])
    now[0] = 1.0
    store.offer([event(i) for i in range(100, 200)])
    store.close()
    assert len(list(iter_records(str(path)))) == 20
    assert store.counters.dropped["rate_limit"] == 180


def test_rotation_keeps_at_most_max_files(tmp_path: Path) -> None:
    path = tmp_path / "p.predlog"
    store = PredictionStore(config(path, max_bytes=4000, max_files=3, queue_size=200), "x-request-id")
    store.offer([event(i) for i in range(200)])
    store.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["p.predlog", "p.predlog.1", "p.predlog.2", "p.predlog.3"]
    sizes = [p.stat().st_size for p in tmp_path.iterdir()]
    assert max(sizes) <= 4000
    kept = [r.id for name in reversed(names) for r in iter_records(str(tmp_path / name))]
    assert kept == [f"req-{i}" for i in range(200 - len(kept), 200)]  # the newest, in order, none lost in between
    assert store.counters.rotations >= 4 and store.counters.records == 200


def test_redaction_of_json_paths(tmp_path: Path) -> None:
    path = tmp_path / "p.predlog"
    redact = ("$.inputs[1].data", "$.outputs[*].data")
    store = PredictionStore(config(path, redact=redact), "x-request-id")
    gz = gzip.compress(V2)
    store.offer([event(0), event(1, gz, {b"content-encoding": b"gzip"}), event(2, b"\x00binary")])
    store.close()
    (record,) = list(iter_records(str(path)))
    assert record.request is not None and record.response is not None
    doc = json.loads(record.request.data)
    assert doc["inputs"][1]["data"] == ["[REDACTED]"] and doc["inputs"][0]["data"] == [41]  # shape kept
    assert json.loads(record.response.data)["outputs"][0]["data"] == ["[REDACTED]"]
    assert b"123-45-6789" not in path.read_bytes()
    assert store.counters.dropped["unredactable"] == 2  # gzip and binary bodies: never written unredacted


def test_tailed_exchanges_are_not_written_again(tmp_path: Path) -> None:
    path = tmp_path / "p.predlog"
    store = PredictionStore(config(path), "x-request-id")
    store.offer([event(0, headers={TAILED_HEADER: b"1"}), event(1)])
    store.close()
    assert [r.id for r in iter_records(str(path))] == ["req-1"]


def test_a_full_disk_drops_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "p.predlog"
    path.symlink_to("/dev/full")  # every write: ENOSPC from the kernel
    store = PredictionStore(config(path), "x-request-id")
    store.offer([event(i) for i in range(50)])
    store.close()
    assert store.counters.dropped["disk_full"] == 50
    assert store.counters.records == 0
    assert os.readlink(path) == "/dev/full"  # never rotated (nothing was ever written)


def test_a_slow_disk_fills_the_queue_and_never_blocks(tmp_path: Path) -> None:
    path = tmp_path / "p.predlog"
    os.mkfifo(path)  # open() for writing blocks until a reader comes: the writer thread is stuck
    store = PredictionStore(config(path, queue_size=10), "x-request-id")
    store.offer([event(i) for i in range(100)])  # returns: the worker's thread never waits on the disk
    dropped = store.counters.dropped["queue_full"]
    assert 89 <= dropped <= 90  # the queue holds 10, the stuck writer thread may hold one more
    received = bytearray()

    def read() -> None:
        with open(path, "rb") as fifo:
            received.extend(fifo.read())

    reader = threading.Thread(target=read)
    reader.start()
    store.close()
    reader.join()
    assert received.count(b"\n") == 100 - dropped
