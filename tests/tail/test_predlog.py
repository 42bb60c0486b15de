"""The prediction log codec: every record round-trips; every broken line is named by line and field."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.predlog import Body, PredictionLogError, PredictionRecord, encode, iter_records, parse_line

FULL = PredictionRecord(
    time=1764450000.25,
    status=200,
    model="iris",
    version="3",
    id="req-1",
    route="/v2/models/iris/infer?x=1",
    method="POST",
    duration=0.0125,
    request=Body(b'{"inputs":[]}', "application/json"),
    response=Body(b"\x1f\x8b\x08\x00binary\xff", "application/json", "gzip", truncated=True),
)


def test_round_trip_bodies_text_and_binary() -> None:
    line = encode(FULL)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    obj = json.loads(line)
    assert obj["request"] == {"content_type": "application/json", "body": '{"inputs":[]}'}
    assert obj["response"]["encoding"] == "base64"  # not UTF-8: marked, and base64
    assert obj["response"]["truncated"] is True
    assert parse_line(line, "f:1") == FULL


def test_round_trip_rows_and_minimal() -> None:
    rows = PredictionRecord(time=1.0, status=200, features=[{"a": 1.5, "b": "x"}], predictions=[{"y": None}])
    assert parse_line(encode(rows), "f:1") == rows
    minimal = parse_line(b'{"time": 5, "status": 503}', "f:1")
    assert minimal == PredictionRecord(time=5.0, status=503)


def test_one_row_object_and_rfc3339_time() -> None:
    rec = parse_line(b'{"time":"2026-11-29T21:40:00Z","status":200,"features":{"a":1}}', "f:1")
    assert rec.features == [{"a": 1}]
    assert rec.time == datetime(2026, 11, 29, 21, 40, tzinfo=UTC).timestamp()


def test_unicode_text_body_stays_text() -> None:
    rec = PredictionRecord(time=1.0, status=200, request=Body("héllo ✓".encode()))
    obj = json.loads(encode(rec))
    assert "encoding" not in obj["request"] and obj["request"]["body"] == "héllo ✓"
    assert parse_line(encode(rec), "f:1") == rec


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", "f:7: invalid JSON"),
        (b"[1]", "f:7: expected a JSON object per line, got list"),
        (b'{"status":200}', "f:7: field 'time': required"),
        (b'{"time":"yesterday","status":200}', "f:7: field 'time': expected epoch seconds or an RFC 3339"),
        (b'{"time":"2026-11-29T21:40:00","status":200}', "field 'time'"),  # no offset: ambiguous
        (b'{"time":1,"status":"200"}', "f:7: field 'status': expected an HTTP status code"),
        (b'{"time":1,"status":200,"duration":-1}', "field 'duration': expected seconds, a number >= 0"),
        (b'{"time":1,"status":200,"v":2}', "field 'v': expected format version 1"),
        (b'{"time":1,"status":200,"colour":1}', "field 'colour': expected no such field"),
        (b'{"time":1,"status":200,"route":"v2/x"}', "field 'route': expected the request target"),
        (b'{"time":1,"status":200,"model":3}', "field 'model': expected a string or null"),
        (b'{"time":1,"status":200,"request":"abc"}', "field 'request': expected an object"),
        (b'{"time":1,"status":200,"request":{"body":"a","encoding":"hex"}}', "field 'request.encoding'"),
        (
            b'{"time":1,"status":200,"request":{"body":"a!!","encoding":"base64"}}',
            "field 'request.body': expected base64",
        ),
        (b'{"time":1,"status":200,"request":{"body":"a","content_type":1}}', "field 'request.content_type'"),
        (b'{"time":1,"status":200,"request":{"body":"a","x":1}}', "field 'request.x'"),
        (b'{"time":1,"status":200,"response":{"body":"a"}}', "field 'request': required with 'response'"),
        (b'{"time":1,"status":200,"features":[]}', "field 'features': expected an object of column values"),
        (b'{"time":1,"status":200,"features":[{"a":[1]}]}', "field 'features[0].a': expected a scalar"),
        (b'{"time":1,"status":200,"predictions":[3]}', "field 'predictions[0]': expected an object"),
        (
            b'{"time":1,"status":200,"features":{"a":1},"request":{"body":""}}',
            "either bodies (request/response) or rows",
        ),
        (b'{"time":1,"status":200}\xff', "f:7: "),
    ],
)
def test_errors_name_line_and_field(line: bytes, message: str) -> None:
    with pytest.raises(PredictionLogError) as err:
        parse_line(line, "f:7")
    assert message in str(err.value)


def test_nan_is_refused_by_the_encoder() -> None:
    with pytest.raises(ValueError):
        encode(PredictionRecord(time=1.0, status=200, features=[{"a": float("nan")}]))


def test_iter_records_plain_and_gzip(tmp_path: Path) -> None:
    records = [PredictionRecord(time=float(i), status=200, features=[{"a": i}]) for i in range(5)]
    data = b"".join(encode(r) for r in records)
    plain = tmp_path / "a.predlog"
    plain.write_bytes(b"\n" + data + b"\n\n")  # blank lines are skipped
    gz = tmp_path / "a.predlog.gz"
    gz.write_bytes(gzip.compress(data))
    assert list(iter_records(str(plain))) == records
    assert list(iter_records(str(gz))) == records


def test_iter_records_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "b.predlog"
    path.write_bytes(encode(FULL) + b"\n" + b'{"time":1}\n')
    with pytest.raises(PredictionLogError, match=r"b\.predlog:3: field 'status': expected"):
        list(iter_records(str(path)))
