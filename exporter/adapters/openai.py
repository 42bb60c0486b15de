"""OpenAI-compatible APIs: chat completions, completions, embeddings and the Responses API,
plain JSON and server-sent event streams.

One row per exchange. Request columns: `prompt_chars` (characters of all text message contents,
prompts or inputs) and `prompt_messages` (messages, prompts or inputs). Response columns:
`completion_chars` (characters generated over all choices) and `finish_reason` (of the first
choice that reports one), or for embeddings `embeddings` (vectors returned).

The response's `Generation` (analyzers/llm.py) carries the tokens: `usage` when the server sends
it (in a chat or completions stream, the final chunk's, sent when the client set
`stream_options.include_usage`; in a Responses stream, `response.completed`'s). Without usage,
completion tokens are the stream's content events (one token per event for most servers),
marked as estimated, and prompt tokens are not counted. A content event is a chunk whose delta
carries text, reasoning text or tool call arguments (a role-only chunk does not), or a
Responses `*.delta` event of output text, reasoning or function call arguments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from exporter.adapters._llm import (
    count,
    ended_by_error,
    error_generation,
    error_of,
    finish_reason,
    is_sse,
    sse_events,
    stream_docs,
    text_chars,
)
from exporter.adapters._payload import guarded, header_id, loads_object, row_ids, sniff_object
from exporter.adapters.base import Generation, Message, PayloadError, Rows

_ROUTE = re.compile(r"/(?:(?:chat/)?completions|embeddings|responses)/?\Z")
# Responses API stream events whose delta is generated content
_DELTA_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
        "response.function_call_arguments.delta",
    }
)
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def operation(path: str) -> str:
    """chat | completion | embeddings | responses, from the request path."""
    tail = path.rstrip("/").rsplit("/", 2)
    if tail[-1] == "completions":
        return "chat" if tail[-2] == "chat" else "completion"
    return tail[-1] if tail[-1] in ("embeddings", "responses") else "chat"


def _prompt(doc: dict[str, Any]) -> tuple[int | None, int]:
    """(prompt_chars, prompt_messages) of a chat, completions or embeddings request."""
    if "messages" in doc:
        messages = doc["messages"]
        if type(messages) is not list:
            raise PayloadError("unsupported_shape", "`messages` must be a list")
        chars = sum(text_chars(m.get("content")) for m in messages if type(m) is dict)
        return chars, len(messages)
    for key in ("prompt", "input"):
        if key in doc:
            prompt = doc[key]
            if type(prompt) is str:
                return len(prompt), 1
            if type(prompt) is list and all(type(p) is str for p in prompt):
                return sum(map(len, prompt)), len(prompt)
            if type(prompt) is list and all(type(p) is dict for p in prompt):
                # Responses API input items: messages with a content string or parts
                return sum(text_chars(p.get("content")) for p in prompt), len(prompt)
            if type(prompt) is list:
                # token ids ([1, 2] or [[1, 2], [3]]): no characters to count
                return None, len(prompt) if prompt and type(prompt[0]) is list else 1
            raise PayloadError("unsupported_shape", f"`{key}` must be a string, strings or token ids")
    raise PayloadError("unsupported_shape", "neither `messages`, `prompt` nor `input` in the request")


def _model(doc: dict[str, Any]) -> str | None:
    model = doc.get("model")
    return model if type(model) is str and model else None


class _Completion:
    """Accumulates generated characters, finish reason and usage over a response's chunks."""

    def __init__(self, op: str, streamed: bool) -> None:
        self.chars = 0
        self.generation = Generation(op, streamed=streamed, complete=not streamed)
        self.model: str | None = None
        self.id: str | None = None
        self.embeddings: int | None = None

    def usage(self, usage: Any) -> None:
        if type(usage) is not dict:
            return
        g = self.generation
        prompt = count(usage.get("prompt_tokens", usage.get("input_tokens")))
        completion = count(usage.get("completion_tokens", usage.get("output_tokens")))
        if prompt is not None or completion is not None:
            g.usage = True
            g.prompt_tokens = prompt
            g.completion_tokens = completion if completion is not None else (0 if g.operation == "embeddings" else None)

    def finish(self, reason: Any) -> None:
        if self.generation.finish_reason is None:
            self.generation.finish_reason = finish_reason(reason)

    def add(self, doc: Any, end: int) -> None:
        """One chat/completions response or stream chunk (`end`: its offset in the stream)."""
        if type(doc) is not dict:
            raise PayloadError("unsupported_shape", "completion chunk is not an object")
        g = self.generation
        if ended_by_error(g, doc):  # an error event in a stream
            return
        self.model = self.model or _model(doc)
        if self.id is None and type(doc.get("id")) is str:
            self.id = doc["id"]
        self.usage(doc.get("usage"))
        data = doc.get("data")
        if g.operation == "embeddings" and type(data) is list:
            self.embeddings = len(data)
            return
        choices = doc.get("choices")
        if type(choices) is not list:
            return
        carried = False
        for choice in choices:
            if type(choice) is not dict:
                continue
            message = choice.get("delta" if g.streamed else "message")
            if type(message) is dict:
                chars = text_chars(message.get("content"))
                carried = carried or chars > 0 or bool(message.get("reasoning_content") or message.get("tool_calls"))
            else:
                chars = text_chars(choice.get("text"))
                carried = carried or chars > 0
            self.chars += chars
            if choice.get("finish_reason") is not None:
                self.finish(choice["finish_reason"])
                g.complete = True
        if carried and g.streamed:
            g.content_ends.append(end)

    def add_response(self, doc: Any) -> None:
        """A Responses API response object (plain JSON, or the `response` of a final stream event)."""
        if type(doc) is not dict:
            raise PayloadError("unsupported_shape", "response is not an object")
        g = self.generation
        self.model = self.model or _model(doc)
        if self.id is None and type(doc.get("id")) is str:
            self.id = doc["id"]
        self.usage(doc.get("usage"))
        if not g.streamed:
            for item in doc.get("output") or ():
                if type(item) is dict and item.get("type") == "message":
                    self.chars += text_chars(item.get("content"))
        status = doc.get("status")
        if status == "completed":
            self.finish("stop")
        elif status == "incomplete":
            details = doc.get("incomplete_details")
            self.finish(details.get("reason") if type(details) is dict else "other")
        elif status == "failed":
            error = doc.get("error")
            g.error_type = "server_error" if type(error) is not dict else error_of({"error": error})

    def add_event(self, doc: Any, end: int) -> None:
        """One Responses API stream event."""
        if type(doc) is not dict:
            raise PayloadError("unsupported_shape", "response event is not an object")
        kind = doc.get("type")
        g = self.generation
        if kind in _DELTA_EVENTS:
            delta = doc.get("delta")
            if type(delta) is str and delta:
                if kind == "response.output_text.delta":
                    self.chars += len(delta)
                g.content_ends.append(end)
        elif kind in _FINAL_EVENTS:
            self.add_response(doc.get("response"))
            g.complete = True
        elif kind == "error":
            g.error_type = error_of({"error": doc}) or "other"
            g.complete = True


def _parse_stream(op: str, body: bytes) -> _Completion:
    completion = _Completion(op, streamed=True)
    events, cut = sse_events(body)
    items = []
    for _, data, end in events:
        if data.strip() == b"[DONE]":
            completion.generation.complete = True
            continue
        items.append((data, end))
    for doc, end in stream_docs(items, cut):
        if op == "responses":
            completion.add_event(doc, end)
        else:
            completion.add(doc, end)
    g = completion.generation
    if g.usage:
        if g.completion_tokens is None:
            g.completion_tokens = len(g.content_ends)
    elif op != "embeddings":
        g.completion_tokens = len(g.content_ends)
    return completion


class OpenAIAdapter:
    """Adapter for OpenAI-compatible APIs (vLLM, TGI, llama.cpp, Ollama, gateways, …)."""

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
        if operation(request.path) == "responses" and type(doc.get("instructions")) is str:
            chars = (chars or 0) + len(doc["instructions"])
        return Rows(
            columns={"prompt_chars": [chars], "prompt_messages": [messages]},
            n=1,
            ids=row_ids(header_id(request), 1),
            model=_model(doc),
        )

    @guarded
    def parse_response(self, request: Message, response: Message) -> Rows:
        op = operation(request.path)
        if is_sse(response):
            completion = _parse_stream(op, response.body)
        else:
            completion = _Completion(op, streamed=False)
            doc = loads_object(response.body)
            if op == "responses":
                completion.add_response(doc)
            else:
                completion.add(doc, len(response.body))
        g = completion.generation
        if op == "embeddings":
            columns: dict[str, Sequence[Any]] = {"embeddings": [completion.embeddings]}
        else:
            columns = {"completion_chars": [completion.chars], "finish_reason": [g.finish_reason]}
        return Rows(
            columns=columns,
            n=1,
            ids=row_ids(header_id(request) or completion.id, 1),
            model=completion.model,
            llm=g,
        )

    @guarded
    def parse_error(self, request: Message, response: Message) -> Generation:
        return error_generation(operation(request.path), response.body)


adapter = OpenAIAdapter()
