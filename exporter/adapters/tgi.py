"""Hugging Face Text Generation Inference: `/generate` (JSON) and `/generate_stream` (server-sent events).

One row per exchange. Request columns: `prompt_chars` (characters of `inputs`) and
`prompt_messages` (1). Response columns: `completion_chars` (of `generated_text`, or of the
streamed non-special token texts) and `finish_reason` (`details.finish_reason`: `eos_token`
and `stop_sequence` are stops). Tokens: completion from `details.generated_tokens` (sent when
the request set `parameters.details`, and always on the last stream event), prompt from the
`details.prefill` tokens when the request set `decoder_input_details`; without details the
completion tokens are the streamed token events (estimated). TGI's OpenAI-compatible
`/v1/chat/completions` is the openai adapter's.
"""

from __future__ import annotations

from typing import Any

from exporter.adapters._llm import (
    count,
    ended_by_error,
    error_generation,
    finish_reason,
    is_sse,
    sse_events,
    stream_docs,
)
from exporter.adapters._payload import guarded, header_id, loads, loads_object, row_ids, sniff_object
from exporter.adapters.base import Generation, Message, PayloadError, Rows

_ROUTES = ("/generate", "/generate_stream")


class _Generated:
    def __init__(self, streamed: bool) -> None:
        self.chars = 0
        self.generation = Generation("generate", streamed=streamed, complete=not streamed)

    def details(self, details: Any) -> None:
        if type(details) is not dict:
            return
        g = self.generation
        g.finish_reason = finish_reason(details.get("finish_reason")) or g.finish_reason
        generated = count(details.get("generated_tokens"))
        if generated is not None:
            g.usage = True
            g.completion_tokens = generated
        prefill = details.get("prefill")
        if type(prefill) is list and prefill:
            g.prompt_tokens = len(prefill)

    def add(self, doc: Any, end: int) -> None:
        if type(doc) is list:  # some versions answer /generate with a list of one
            doc = doc[0] if len(doc) == 1 else None
        if type(doc) is not dict:
            raise PayloadError("unsupported_shape", "generation is not an object")
        g = self.generation
        if ended_by_error(g, doc):
            return
        token = doc.get("token")
        if g.streamed and type(token) is dict:
            text = token.get("text")
            if not token.get("special") and type(text) is str and text:
                self.chars += len(text)
                g.content_ends.append(end)
        elif not g.streamed and type(doc.get("generated_text")) is str:
            self.chars += len(doc["generated_text"])
        if doc.get("details") is not None:
            self.details(doc["details"])
            g.complete = True
        elif g.streamed and doc.get("generated_text") is not None:
            g.complete = True


class TGIAdapter:
    name = "tgi"

    def match_route(self, request: Message) -> bool:
        return request.path.rstrip("/") in _ROUTES

    def match_body(self, request: Message) -> bool:
        doc = sniff_object(request.body)
        return doc is not None and type(doc.get("inputs")) is str and "model" not in doc

    @guarded
    def parse_request(self, request: Message) -> Rows:
        doc = loads_object(request.body)
        inputs = doc.get("inputs")
        if type(inputs) is not str:
            raise PayloadError("unsupported_shape", "`inputs` must be a string")
        return Rows(
            columns={"prompt_chars": [len(inputs)], "prompt_messages": [1]}, n=1, ids=row_ids(header_id(request), 1)
        )

    @guarded
    def parse_response(self, request: Message, response: Message) -> Rows:
        if is_sse(response):
            out = _Generated(streamed=True)
            events, cut = sse_events(response.body)
            for doc, end in stream_docs([(data, end) for _, data, end in events], cut):
                out.add(doc, end)
            g = out.generation
            if g.completion_tokens is None:
                g.completion_tokens = len(g.content_ends)
        else:
            out = _Generated(streamed=False)
            out.add(loads(response.body), len(response.body))
        g = out.generation
        return Rows(
            columns={"completion_chars": [out.chars], "finish_reason": [g.finish_reason]},
            n=1,
            ids=row_ids(header_id(request), 1),
            llm=g,
        )

    @guarded
    def parse_error(self, request: Message, response: Message) -> Generation:
        return error_generation("generate", response.body)


adapter = TGIAdapter()
