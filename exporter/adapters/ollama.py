"""Ollama's native API: `/api/generate` and `/api/chat` (newline-delimited JSON streams, or one
JSON object with `"stream": false`), `/api/embed` and `/api/embeddings`.

One row per exchange. Request columns: `prompt_chars` (of `prompt`, of the messages' contents,
or of `input`) and `prompt_messages`. Response columns: `completion_chars` (of `response` or
`message.content` over all lines) and `finish_reason` (`done_reason`), or for embeddings
`embeddings`. Tokens: `prompt_eval_count` and `eval_count` of the final (`"done": true`) line;
without them the completion tokens are the lines that carry content (estimated). Ollama's
OpenAI-compatible `/v1/...` routes are the openai adapter's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from exporter.adapters._llm import (
    content_type,
    count,
    ended_by_error,
    error_generation,
    finish_reason,
    ndjson_lines,
    stream_docs,
    text_chars,
)
from exporter.adapters._payload import guarded, header_id, loads_object, row_ids
from exporter.adapters.base import Generation, Message, PayloadError, Rows

_ROUTE = re.compile(r"/api/(generate|chat|embed|embeddings)/?\Z")


def _operation(path: str) -> str:
    m = _ROUTE.search(path)
    kind = m.group(1) if m else "generate"
    return "embeddings" if kind.startswith("embed") else kind


class _Answer:
    def __init__(self, op: str, streamed: bool) -> None:
        self.chars = 0
        self.embeddings: int | None = None
        self.model: str | None = None
        self.generation = Generation(op, streamed=streamed, complete=not streamed)

    def add(self, doc: Any, end: int) -> None:
        if type(doc) is not dict:
            raise PayloadError("unsupported_shape", "response line is not an object")
        g = self.generation
        if ended_by_error(g, doc):
            return
        if self.model is None and type(doc.get("model")) is str:
            self.model = doc["model"]
        if g.operation == "embeddings":
            vectors = doc.get("embeddings")
            self.embeddings = len(vectors) if type(vectors) is list else int(type(doc.get("embedding")) is list)
        else:
            message = doc.get("message")
            text = message if type(message) is dict else None
            chars = text_chars(doc.get("response") if text is None else text.get("content"))
            self.chars += chars
            carried = chars > 0 or (text is not None and bool(text.get("thinking") or text.get("tool_calls")))
            if carried and g.streamed:
                g.content_ends.append(end)
        if doc.get("done") is True:
            g.complete = True
            g.finish_reason = finish_reason(doc.get("done_reason"))
            prompt, completion = count(doc.get("prompt_eval_count")), count(doc.get("eval_count"))
            if prompt is not None or completion is not None:
                g.usage = True
                g.prompt_tokens = prompt
                g.completion_tokens = completion if completion is not None else 0
        elif g.operation == "embeddings":
            prompt = count(doc.get("prompt_eval_count"))
            if prompt is not None:
                g.usage = True
                g.prompt_tokens, g.completion_tokens = prompt, 0


class OllamaAdapter:
    name = "ollama"

    def match_route(self, request: Message) -> bool:
        return _ROUTE.search(request.path) is not None

    def match_body(self, request: Message) -> bool:
        return False  # its bodies look like OpenAI completions: by route (or model.protocol) only

    @guarded
    def parse_request(self, request: Message) -> Rows:
        doc = loads_object(request.body)
        if type(doc.get("messages")) is list:
            messages = doc["messages"]
            chars: int | None = sum(text_chars(m.get("content")) for m in messages if type(m) is dict)
            n = len(messages)
        else:
            prompt = doc.get("prompt", doc.get("input"))
            if type(prompt) is str:
                chars, n = len(prompt), 1
            elif type(prompt) is list and all(type(p) is str for p in prompt):
                chars, n = sum(map(len, prompt)), len(prompt)
            else:
                raise PayloadError("unsupported_shape", "neither `messages`, `prompt` nor `input` as text")
        model = doc.get("model")
        return Rows(
            columns={"prompt_chars": [chars], "prompt_messages": [n]},
            n=1,
            ids=row_ids(header_id(request), 1),
            model=model if type(model) is str and model else None,
        )

    @guarded
    def parse_response(self, request: Message, response: Message) -> Rows:
        op = _operation(request.path)
        lines, cut = ndjson_lines(response.body)
        streamed = content_type(response) == "application/x-ndjson" or len(lines) > 1
        out = _Answer(op, streamed)
        docs = stream_docs(lines, cut) if streamed else [(loads_object(response.body), len(response.body))]
        for doc, end in docs:
            out.add(doc, end)
        g = out.generation
        if streamed and not g.usage and op != "embeddings":
            g.completion_tokens = len(g.content_ends)
        if op == "embeddings":
            columns: dict[str, Sequence[Any]] = {"embeddings": [out.embeddings]}
        else:
            columns = {"completion_chars": [out.chars], "finish_reason": [g.finish_reason]}
        return Rows(columns=columns, n=1, ids=row_ids(header_id(request), 1), model=out.model, llm=g)

    @guarded
    def parse_error(self, request: Message, response: Message) -> Generation:
        return error_generation(_operation(request.path), response.body)


adapter = OllamaAdapter()
