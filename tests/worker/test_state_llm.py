"""Snapshots carry the LLM counters and histograms: every model_llm_* sample survives a clean stop, not a crash."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from exporter.config import Config, LLMConfig
from exporter.events import MARK, Event
from exporter.labels import MAX_VALUE_CHARS
from exporter.proxy.routes import RouteTable
from exporter.worker import state
from exporter.worker.analysis import Analysis

CHAT = "/v1/chat/completions"
JSON = {b"content-type": b"application/json"}
SSE = {b"content-type": b"text/event-stream"}


def _analysis(states: Path) -> Analysis:
    return Analysis(dataclasses.replace(Config(), state_dir=str(states), llm=LLMConfig(prices=(("m", 1.0, 2.0),))))


def _request(streamed: bool) -> bytes:
    return json.dumps({"model": "m", "stream": streamed, "messages": [{"role": "user", "content": "hi"}]}).encode()


def _chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> bytes:
    delta = {} if content is None else {"content": content}
    doc = {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(doc)}\n\n".encode()


def _stream(tokens: int, version: str = "1") -> Event:
    """A streamed chat answer, each token in its own read 20 ms apart, usage in the last event."""
    events = [_chunk(f"t{i}", "stop" if i == tokens - 1 else None) for i in range(tokens)]
    events.append(_chunk(choices=[], usage={"prompt_tokens": 7, "completion_tokens": tokens}) + b"data: [DONE]\n\n")
    body, marks = b"", []
    for i, part in enumerate(events):
        body += part
        marks.append(MARK.pack(len(body), 0.1 + 0.02 * i))
    duration = 0.2 + 0.02 * tokens
    return Event(
        0.0, CHAT, CHAT.encode(), 200, duration, JSON, _request(True), SSE, body, "m", version, b"".join(marks)
    )


def _answer(finish: str = "length") -> Event:
    doc = {
        "id": "c2",
        "model": "m",
        "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 30},
    }
    return Event(0.0, CHAT, CHAT.encode(), 200, 0.7, JSON, _request(False), JSON, json.dumps(doc).encode(), "m", "1")


def _error() -> Event:
    body = json.dumps({"error": {"type": "rate_limit_error", "message": "slow down"}}).encode()
    return Event(0.0, CHAT, CHAT.encode(), 429, 0.01, JSON, _request(False), JSON, body, "m", "1")


def _llm_samples(analysis: Analysis) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    return sorted(
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in analysis.collect()
        for s in family.samples
        if s.name.startswith("model_llm_")
    )


def _value(analysis: Analysis, name: str, **labels: str) -> float:
    return sum(v for n, ls, v in _llm_samples(analysis) if n == name and labels.items() <= dict(ls).items())


def _served(states: Path) -> Analysis:
    analysis = _analysis(states)
    analysis.process([_stream(5), _stream(3, version="2"), _answer(), _answer("stop"), _error()])
    assert _value(analysis, "model_llm_time_to_first_token_seconds_count") == 2
    assert _value(analysis, "model_llm_requests_total", streamed="false") == 2
    assert _value(analysis, "model_llm_errors_total", type="rate_limit_error") == 1
    assert _value(analysis, "model_llm_cost_total") > 0
    return analysis


def _saved(states: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((states / state.FILE_NAME).read_text())
    return doc


def _write(states: Path, doc: dict[str, Any]) -> None:
    (states / state.FILE_NAME).write_text(json.dumps(doc))


def test_a_clean_stop_restores_every_llm_sample(tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = _served(states)
    first.save_state(clean=True)
    second = _analysis(states)
    assert second.restored
    assert _llm_samples(second) == _llm_samples(first)
    # and they count on from there
    second.process([_stream(4)])
    assert _value(second, "model_llm_time_to_first_token_seconds_count") == 3


def test_after_a_crash_llm_counters_start_at_zero(tmp_path: Path) -> None:
    states = tmp_path / "state"
    _served(states).save_state(clean=False)  # a periodic snapshot: it may lag counts already scraped
    second = _analysis(states)
    assert second.restored
    assert _llm_samples(second) == []


def test_a_histogram_with_other_buckets_is_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    states = tmp_path / "state"
    first = _served(states)
    first.save_state(clean=True)
    doc = _saved(states)
    doc["llm"]["bounds"]["ttft"] = [0.1, 1.0, 10.0]  # as written by a release with other buckets
    _write(states, doc)
    with caplog.at_level(logging.WARNING):
        second = _analysis(states)
    assert "ttft" in caplog.text
    assert _value(second, "model_llm_time_to_first_token_seconds_count") == 0
    assert _value(second, "model_llm_time_to_first_token_seconds_bucket") == 0
    kept = [s for s in _llm_samples(first) if not s[0].startswith("model_llm_time_to_first_token_seconds")]
    assert [s for s in _llm_samples(second) if not s[0].startswith("model_llm_time_to_first_token_seconds")] == kept


def test_a_snapshot_of_the_previous_release_restores_the_rest(tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = _served(states)
    first.save_state(clean=True)
    doc = _saved(states)
    del doc["llm"]
    _write(states, doc)
    second = _analysis(states)
    assert second.restored
    assert _llm_samples(second) == []
    assert second.content.errors == first.content.errors and second.content.rows == first.content.rows


@pytest.mark.parametrize(
    "llm",
    [
        "not an object",
        {"series": "nope", "cost": 3},
        {"bounds": [], "series": [[CHAT, "m"]], "cost": [["m", "1", "prompt", float("nan")]]},
        {"series": [[CHAT, "m", "1", {"requests": [["chat", "true", -1]]}]]},
        {"series": [[CHAT, "m", "1", {"requests": [], "tokens": [], "finish": {"stop": 10**400}}]]},
        {"series": [[CHAT, "m", "1", None], [CHAT, ["m"], "1", {}], [7, "m", "1", {}]]},
    ],
)
def test_a_malformed_llm_part_is_left_out_without_a_crash(tmp_path: Path, llm: Any) -> None:
    states = tmp_path / "state"
    _served(states).save_state(clean=True)
    doc = _saved(states)
    doc["llm"] = llm
    _write(states, doc)
    second = _analysis(states)
    assert second.restored
    assert _llm_samples(second) == []


def test_bad_entries_go_the_good_ones_stay(tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = _served(states)
    first.save_state(clean=True)
    doc = _saved(states)
    good = doc["llm"]["series"][0]
    body = dict(good[3], requests=[["no-such-operation", "true", 1]])
    doc["llm"]["series"].append([CHAT, "m", "bad", body])  # a label value outside its vocabulary
    doc["llm"]["series"][1][3]["durations"] = [["true", [1, 2], 0.5]]  # too few buckets
    _write(states, doc)
    second = _analysis(states)
    assert "bad" not in {dict(labels)["version"] for _, labels, _ in _llm_samples(second)}
    assert _value(second, "model_llm_requests_total", version=good[2]) > 0
    assert _value(second, "model_llm_requests_total", version=doc["llm"]["series"][1][2]) == 0


def test_a_hand_edited_file_cannot_inflate_the_series(tmp_path: Path) -> None:
    states = tmp_path / "state"
    first = _served(states)
    first.save_state(clean=True)
    doc = _saved(states)
    body = doc["llm"]["series"][0][3]
    doc["llm"]["series"] = [[CHAT, f"m{i}", "1", body] for i in range(1000)]
    doc["llm"]["series"] += [[f"/route{i}", "m", "1", body] for i in range(1000)]
    doc["llm"]["series"].append([CHAT, "x" * 10_000, "1", body])
    doc["llm"]["cost"] = [[f"m{i}", "1", "prompt", 1.0] for i in range(1000)]
    _write(states, doc)
    second = _analysis(states)
    model = second.config.model
    pairs = (model.max_names + len(model.known) + 2) * (model.max_names + 2)
    assert len(second.llm.series) <= pairs + state.BUILTIN_ROUTES  # each row above is a new pair or route
    assert max(len(model) for _, model, _ in second.llm.series) <= MAX_VALUE_CHARS
    assert len(second.llm.cost) <= 2 * pairs


def test_the_route_cap_covers_the_built_in_routes() -> None:
    assert len(RouteTable().names) <= state.BUILTIN_ROUTES
