"""OpenAI-compatible streams and prompts beyond the golden pairs: cut streams, token ids, n > 1."""

from __future__ import annotations

import json

import pytest
from adapters_support import assert_valid

from exporter.adapters import openai
from exporter.adapters.base import Message, PayloadError, Rows

CHAT = Message("/v1/chat/completions", "/v1/chat/completions", {}, b'{"model": "m", "messages": []}')


def sse(*chunks: object, done: bool = True) -> bytes:
    events = [f"data: {json.dumps(c)}\n\n" for c in chunks] + (["data: [DONE]\n\n"] if done else [])
    return "".join(events).encode()


def chunk(content: str | None = None, finish: str | None = None, **extra: object) -> dict[str, object]:
    delta = {} if content is None else {"content": content}
    return {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def parse_stream(body: bytes) -> Rows:
    rows = openai.adapter.parse_response(CHAT, Message(CHAT.path, CHAT.route, {"content-type": "text/event-stream"}, body))
    assert_valid(rows)
    return rows


def test_stream_cut_mid_line_keeps_what_arrived() -> None:
    body = sse(chunk("Hello"), chunk(" world"), done=False) + b'data: {"id": "c1", "choi'
    rows = parse_stream(body)
    assert rows.columns == {"completion_chars": [11], "finish_reason": [None]}
    assert rows.llm is not None
    assert (rows.llm.completion_tokens, rows.llm.usage, rows.llm.complete) == (2, False, False)


def test_last_event_without_trailing_newline_still_counts() -> None:
    body = sse(chunk("Hi", "stop"), done=False) + b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}'
    g = parse_stream(body).llm
    assert g is not None and (g.prompt_tokens, g.completion_tokens, g.usage) == (3, 1, True)


def test_broken_chunk_in_the_middle_is_invalid_json() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_stream(sse(chunk("a")).replace(b'"a"', b'"a') + sse(chunk("b")))
    assert caught.value.reason == "invalid_json"


def test_multiple_choices_and_usage_null_chunks() -> None:
    doc = {"id": "c", "model": "m", "choices": [
        {"index": 0, "message": {"content": "yes"}, "finish_reason": "stop"},
        {"index": 1, "message": {"content": "no!"}, "finish_reason": "length"}], "usage": None}
    rows = openai.adapter.parse_response(CHAT, Message(CHAT.path, CHAT.route, {}, json.dumps(doc).encode()))
    assert rows.columns == {"completion_chars": [6], "finish_reason": ["stop"]}
    assert rows.llm is not None and (rows.llm.prompt_tokens, rows.llm.completion_tokens) == (None, None)


@pytest.mark.parametrize(("prompt", "chars", "count"), [
    ("abc", 3, 1), (["ab", "c"], 3, 2), ([1, 2, 3], None, 1), ([[1, 2], [3]], None, 2), ([], 0, 0),
])
def test_prompt_forms(prompt: object, chars: int | None, count: int) -> None:
    body = json.dumps({"model": "m", "prompt": prompt}).encode()
    rows = openai.adapter.parse_request(Message("/v1/completions", "/v1/completions", {}, body))
    assert rows.columns == {"prompt_chars": [chars], "prompt_messages": [count]}


def test_a_cut_inside_a_field_name_leaves_the_events_before_it_whole() -> None:
    # the stream stopped two bytes into the next line: the broken event before is still an error
    body = sse(chunk("a")) + b'data: {"choices": [\n\n' + b"da"
    with pytest.raises(PayloadError) as caught:
        parse_stream(body)
    assert caught.value.reason == "invalid_json"
    rows = parse_stream(sse(chunk("a"), chunk("b"), done=False) + b"event: mess")
    assert rows.llm is not None and rows.llm.content_ends and len(rows.llm.content_ends) == 2
