"""Fuzz properties of LLM streams through a real sidecar: truncated and malformed streams.

The upstream (fuzz_upstream.RawUpstream) answers `/v1/chat/completions` with an OpenAI-style
event stream built from random tokens, which the case may cut at any byte (the server stopped
mid-stream but framed what it sent) or break with an event that is not JSON, in a
Content-Length or a chunked body split at random. Properties:

- the client gets the stream byte-exact, whatever it holds (the proxy never alters a stream);
- afterwards, every exchange was analysed exactly once: counted as an LLM request, or as a
  response payload error (a broken event in the middle); a stream cut before its finish chunk
  is counted as incomplete, one cut only after it is not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fuzz_budget import count, fuzz_settings, run_property
from fuzz_client import RawClient
from fuzz_upstream import Plan, RawUpstream
from harness import Sidecar, start_sidecar, wait_until
from hypothesis import given, note
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

ROUTE = "/v1/chat/completions"
CONFIG = {"upstream": {"connect_timeout": "2s", "read_timeout": "5s",
                       "health": {"path": "/v2/health/ready", "interval": "1s", "timeout": "1s"}}}
REQUEST = json.dumps({"model": "fuzz", "messages": [{"role": "user", "content": "go"}], "stream": True}).encode()


@dataclass
class Tally:
    """What the cases sent, for the module's final accounting."""

    cases: int = 0
    broken: int = 0  # with an event that is not JSON before the end
    cut_before_finish: int = 0  # no finish chunk reached the client: must count as incomplete
    cut: int = 0  # cut anywhere: may count as incomplete


@dataclass
class Stack:
    sidecar: Sidecar
    upstream: RawUpstream
    host: str
    port: int
    tally: Tally = field(default_factory=Tally)
    before: dict[str, float] = field(default_factory=dict)


def totals(sidecar: Sidecar) -> dict[str, float]:
    samples = sidecar.metrics()

    def total(name: str, **labels: str) -> float:
        return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())

    return {
        "requests": total("model_llm_requests_total", route=ROUTE),
        "errors": total("model_payload_errors_total", side="response"),
        "incomplete": total("model_llm_incomplete_streams_total", route=ROUTE),
        "dropped": total("model_exporter_events_dropped_total"),
        "queue": total("model_exporter_queue_depth"),
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    upstream = RawUpstream().start()
    sidecar = start_sidecar(tmp_path_factory.mktemp("fuzz-llm"), upstream.url, CONFIG)
    sidecar.wait_analysis()
    host, port = sidecar.proxy_url.removeprefix("http://").split(":")
    try:
        s = Stack(sidecar, upstream, host, int(port))
        s.before = totals(sidecar)
        yield s
    finally:
        sidecar.stop()
        upstream.stop()


def chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> bytes:
    doc = {"id": "c", "object": "chat.completion.chunk", "model": "fuzz",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, int, bool]:
    """(body, offset where the finish chunk ends, whether a broken event was put before it)."""
    tokens = draw(st.lists(st.text(min_size=1, max_size=6), max_size=12))
    events = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": t}) for t in tokens]
    broken = draw(st.booleans())
    if broken:
        events.insert(draw(st.integers(0, len(events))), b"data: {\"choices\": [\n\n")
    finish = b"".join(events) + chunk({}, draw(st.sampled_from(["stop", "length", "tool_calls"])))
    usage = draw(st.booleans())
    tail = (chunk({}, None, usage={"prompt_tokens": 2, "completion_tokens": len(tokens)}) if usage else b"")
    return finish + tail + b"data: [DONE]\n\n", len(finish), broken


def response(body: bytes, chunked: bool, pieces: list[int]) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    if not chunked:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    out, start = [head + b"Transfer-Encoding: chunked\r\n\r\n"], 0
    for end in [*sorted({p for p in pieces if 0 < p < len(body)}), len(body)]:
        if end > start:
            out.append(b"%x\r\n%b\r\n" % (end - start, body[start:end]))
        start = end
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def read_body(client: RawClient) -> bytes:
    resp = client.response("POST")
    assert resp is not None and resp.final is not None and resp.status == 200
    return resp.final.content


def test_llm_streams(stack: Stack) -> None:
    ids = iter(range(1 << 30))

    @fuzz_settings("llm_streams")
    @given(stream=streams(), cut=st.none() | st.integers(0, 4000), chunked=st.booleans(),
           pieces=st.lists(st.integers(0, 4000), max_size=4))
    def prop(stream: tuple[bytes, int, bool], cut: int | None, chunked: bool, pieces: list[int]) -> None:
        body, finish_end, broken = stream
        if cut is not None:
            body = body[: cut % (len(body) + 1)]
        key = f"llm{next(ids)}"
        stack.upstream.plan(key, Plan(response(body, chunked, pieces)))
        note(f"body: {body!r}")
        with RawClient(stack.host, stack.port) as client:
            client.send(b"POST %b HTTP/1.1\r\nHost: x\r\nX-Fuzz-Id: %b\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%b" % (ROUTE.encode(), key.encode(), len(REQUEST), REQUEST))
            assert read_body(client) == body, "the stream reached the client altered"
        stack.upstream.take(key)
        tally = stack.tally
        tally.cases += 1
        # a whole broken event is an invalid_json; one the cut falls inside is only the cut
        tally.broken += int(broken and b'{"choices": [\n\n' in body)
        tally.cut += int(cut is not None)
        tally.cut_before_finish += int(cut is not None and len(body) < finish_end - 2 and not broken)
        count("llm_streams")

    run_property("llm_streams", prop)


def test_every_stream_was_analysed_once(stack: Stack) -> None:
    tally = stack.tally
    assert tally.cases > 0
    before = stack.before

    def caught_up() -> dict[str, float] | None:
        now = totals(stack.sidecar)
        seen = now["requests"] - before["requests"] + now["errors"] - before["errors"]
        return now if now["queue"] == 0 and seen >= tally.cases else None

    now = wait_until(caught_up, timeout=60)
    assert now, f"analysis did not catch up: {totals(stack.sidecar)} vs {before}, {tally}"
    assert now["dropped"] == before["dropped"], "events dropped: the accounting below would not hold"
    requests, errors = now["requests"] - before["requests"], now["errors"] - before["errors"]
    assert requests + errors == tally.cases, (requests, errors, tally)
    assert errors == tally.broken, (errors, tally)
    incomplete = now["incomplete"] - before["incomplete"]
    assert tally.cut_before_finish <= incomplete <= tally.cut, (incomplete, tally)
    assert "Traceback" not in stack.sidecar.stderr()
