"""OpenAI-compatible `/v1/chat/completions` and `/v1/completions`, plain JSON and SSE streams.

One row per exchange. Request columns: `prompt_chars` (characters of all text message
contents, or of the prompt strings) and `prompt_messages` (messages, or prompts). Response
columns: `completion_chars` (characters generated over all choices) and `finish_reason`
(of the first choice that reports one). Token counts go to `Rows.counts`: `prompt` and
`completion` from `usage` when the server sends it (in a stream, the final chunk's usage,
sent when the client set `stream_options.include_usage`). When a stream carries no usage,
`completion` is the number of chunks that carry generated content (one token per chunk for
most servers) and `prompt` is not counted; a plain response without usage counts nothing.
"""

from __future__ import annotations

import re
from typing import Any

from exporter.adapters._payload import guarded, header_id, loads, loads_object, row_ids, sniff_object
from exporter.adapters.base import Message, PayloadError, Rows

_ROUTE = re.compile(r"/(?:chat/)?completions/?\Z")


def _text_chars(content: Any) -> int:
    """Characters of a message content: a string, or a list of parts of which text parts count."""
    if type(content) is str:
        return len(content)
    if type(content) is list:
        total = 0
        for part in content:
            if type(part) is dict and type(part.get("text")) is str:
                total += len(part["text"])
            elif type(part) is str:
                total += len(part)
        return total
    return 0


def _prompt(doc: dict[str, Any]) -> tuple[int | None, int]:
    """(prompt_chars, prompt_messages) of a chat or completions request."""
    if "messages" in doc:
        messages = doc["messages"]
        if type(messages) is not list:
            raise PayloadError("unsupported_shape", "`messages` must be a list")
        chars = sum(_text_chars(m.get("content")) for m in messages if type(m) is dict)
        return chars, len(messages)
    if "prompt" in doc:
        prompt = doc["prompt"]
        if type(prompt) is str:
            return len(prompt), 1
        if type(prompt) is list and all(type(p) is str for p in prompt):
            return sum(map(len, prompt)), len(prompt)
        if type(prompt) is list:
            # token ids ([1, 2] or [[1, 2], [3]]): no characters to count
            return None, len(prompt) if prompt and type(prompt[0]) is list else 1
        raise PayloadError("unsupported_shape", "`prompt` must be a string, strings or token ids")
    raise PayloadError("unsupported_shape", "neither `messages` nor `prompt` in the request")


def _model(doc: dict[str, Any]) -> str | None:
    model = doc.get("model")
    return model if type(model) is str and model else None


class _Completion:
    """Accumulates generated characters, finish reason and usage over a response's chunks."""

    def __init__(self) -> None:
        self.chars = 0
        self.finish: str | None = None
        self.usage: dict[str, int] = {}
        self.content_chunks = 0
        self.model: str | None = None
        self.id: str | None = None

    def add(self, doc: Any, streamed: bool) -> None:
        if type(doc) is not dict:
            raise PayloadError("unsupported_shape", "completion chunk is not an object")
        self.model = self.model or _model(doc)
        if self.id is None and type(doc.get("id")) is str:
            self.id = doc["id"]
        usage = doc.get("usage")
        if type(usage) is dict:
            for kind in ("prompt", "completion"):
                value = usage.get(f"{kind}_tokens")
                if type(value) is int and value >= 0:
                    self.usage[kind] = value
        choices = doc.get("choices")
        if type(choices) is not list:
            return
        carried = False
        for choice in choices:
            if type(choice) is not dict:
                continue
            message = choice.get("delta" if streamed else "message")
            text = message.get("content") if type(message) is dict else choice.get("text")
            chars = _text_chars(text)
            self.chars += chars
            carried = carried or chars > 0
            if self.finish is None and type(choice.get("finish_reason")) is str:
                self.finish = choice["finish_reason"]
        self.content_chunks += carried


def _events(body: bytes) -> tuple[list[bytes], bool]:
    """The `data` payloads of a server-sent event stream, in order, and whether the last was cut off."""
    events: list[bytes] = []
    data: list[bytes] = []
    for line in body.splitlines():
        if not line:
            if data:
                events.append(b"\n".join(data))
                data = []
        elif line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        # other fields (event:, id:, retry:) and comments (:) carry nothing we count
    if data:
        events.append(b"\n".join(data))  # a last event without its blank line
    return events, not body.endswith((b"\n", b"\r"))


_SSE_FIELDS = (b"data:", b":", b"event:", b"id:", b"retry:")


def _is_stream(response: Message) -> bool:
    """An SSE body: by content type, or by its first line when the type was not captured."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "text/event-stream" or response.body.lstrip().startswith(_SSE_FIELDS)


class OpenAIAdapter:
    """Adapter for OpenAI-compatible completion APIs (vLLM, TGI, llama.cpp, Ollama, …)."""

    name = "openai"

    def match_route(self, request: Message) -> bool:
        return _ROUTE.search(request.path) is not None

    def match_body(self, request: Message) -> bool:
        doc = sniff_object(request.body)
        return (
            doc is not None and type(doc.get("model")) is str and (type(doc.get("messages")) is list or "prompt" in doc)
        )

    @guarded
    def parse_request(self, request: Message) -> Rows:
        doc = loads_object(request.body)
        chars, messages = _prompt(doc)
        return Rows(
            columns={"prompt_chars": [chars], "prompt_messages": [messages]},
            n=1,
            ids=row_ids(header_id(request), 1),
            model=_model(doc),
        )

    @guarded
    def parse_response(self, request: Message, response: Message) -> Rows:
        completion = _Completion()
        if _is_stream(response):
            events, cut = _events(response.body)
            for i, event in enumerate(events):
                if event.strip() == b"[DONE]":
                    continue
                try:
                    chunk = loads(event)
                except PayloadError:
                    if cut and i == len(events) - 1:
                        continue  # the stream stopped mid-line (client went away): not an error
                    raise
                completion.add(chunk, streamed=True)
            counts = completion.usage or {"completion": completion.content_chunks}
        else:
            completion.add(loads_object(response.body), streamed=False)
            counts = completion.usage
        return Rows(
            columns={"completion_chars": [completion.chars], "finish_reason": [completion.finish]},
            n=1,
            ids=row_ids(header_id(request) or completion.id, 1),
            model=completion.model,
            counts=counts,
        )


adapter = OpenAIAdapter()
