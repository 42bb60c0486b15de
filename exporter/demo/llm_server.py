"""A stand-in LLM server that streams on a set schedule: the response head at once, then the
first token after `first_token_delay` seconds, then one token every `token_gap` seconds.

It speaks the protocols the LLM adapters read, shaped after each server's documented payloads:
OpenAI-compatible `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/responses`
(server-sent events with `"stream": true`, `stream_options.include_usage` honoured); TGI
`/generate` and `/generate_stream`; Ollama `/api/generate`, `/api/chat` (NDJSON unless
`"stream": false`) and `/api/embed`. A request for `max_tokens` (`max_output_tokens`,
`parameters.max_new_tokens`, `options.num_predict`) gets that many tokens and finish reason
`length`; otherwise `tokens` and `stop`. The model `missing` is answered 404 with an OpenAI
error. Prompt tokens are the prompt's whitespace-separated words.

With `record=True` every response body is kept, as sent, in `app[SENT]` (tests and the benchmark
compare it with what the client received through the sidecar).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

SENT: web.AppKey[list[bytes]] = web.AppKey("sent", list)
FIRST_TOKEN_DELAY: web.AppKey[float] = web.AppKey("first_token_delay", float)
TOKEN_GAP: web.AppKey[float] = web.AppKey("token_gap", float)
TOKENS: web.AppKey[int] = web.AppKey("tokens", int)
RECORD: web.AppKey[bool] = web.AppKey("record", bool)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _words(value: Any) -> int:
    """Whitespace-separated words of the text in a prompt, messages or input (the prompt tokens)."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    if isinstance(value, dict):
        return _words(value.get("content")) + _words(value.get("text"))
    return 0


class _Stream:
    """One streamed response: writes its pieces on the schedule and keeps what it sent."""

    def __init__(self, request: web.Request, content_type: str) -> None:
        self.request = request
        self.response = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
        self.sent: list[bytes] = []

    async def start(self) -> None:
        await self.response.prepare(self.request)

    async def write(self, data: bytes) -> None:
        self.sent.append(data)
        await self.response.write(data)

    async def tokens(self, n: int, piece: Callable[[int], bytes]) -> None:
        app = self.request.app
        await asyncio.sleep(app[FIRST_TOKEN_DELAY])
        for i in range(n):
            if i:
                await asyncio.sleep(app[TOKEN_GAP])
            await self.write(piece(i))

    async def finish(self) -> web.StreamResponse:
        if self.request.app[RECORD]:  # before the end goes out: a client that has it finds it recorded
            self.request.app[SENT].append(b"".join(self.sent))
        await self.response.write_eof()
        return self.response


def _plan(app: web.Application, requested: Any) -> tuple[int, str]:
    """(tokens to generate, finish reason) for a request's max-tokens field."""
    if isinstance(requested, int) and not isinstance(requested, bool) and requested > 0:
        return requested, "length"
    return app[TOKENS], "stop"


def _token(i: int) -> str:
    return f" tok{i}"


def _json(request: web.Request, doc: Any, status: int = 200) -> web.Response:
    body = _dumps(doc)
    if request.app[RECORD]:
        request.app[SENT].append(body)
    return web.Response(body=body, status=status, content_type="application/json")


def _missing(request: web.Request) -> web.Response:
    error = {"message": "The model `missing` does not exist", "type": "invalid_request_error", "param": "model",
             "code": "model_not_found"}  # fmt: skip
    return _json(request, {"error": error}, status=404)


async def openai_completions(request: web.Request) -> web.StreamResponse:
    doc = await request.json()
    model = doc.get("model", "")
    if model == "missing":
        return _missing(request)
    chat = request.path.endswith("/chat/completions")
    n, finish = _plan(request.app, doc.get("max_tokens", doc.get("max_completion_tokens")))
    prompt = _words(doc.get("messages") if chat else doc.get("prompt"))
    usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
    rid, created = f"{'chatcmpl' if chat else 'cmpl'}-{time.monotonic_ns()}", int(time.time())
    kind = "chat.completion" if chat else "text_completion"
    if not doc.get("stream"):
        await asyncio.sleep(request.app[FIRST_TOKEN_DELAY] + request.app[TOKEN_GAP] * max(n - 1, 0))
        text = "".join(_token(i) for i in range(n))
        choice = {"index": 0, "message": {"role": "assistant", "content": text}} if chat else {"index": 0, "text": text}
        return _json(
            request,
            {
                "id": rid,
                "object": kind,
                "created": created,
                "model": model,
                "choices": [{**choice, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            },
        )

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = {"id": rid, "object": f"{kind}.chunk" if chat else kind, "created": created, "model": model,
                "choices": choices, **extra}  # fmt: skip
        return b"data: " + _dumps(body) + b"\n\n"

    def delta(i: int) -> bytes:
        if chat:
            return chunk([{"index": 0, "delta": {"content": _token(i)}, "logprobs": None, "finish_reason": None}])
        return chunk([{"index": 0, "text": _token(i), "logprobs": None, "finish_reason": None}])

    with_usage = bool((doc.get("stream_options") or {}).get("include_usage"))
    stream = _Stream(request, "text/event-stream")
    await stream.start()
    if chat:  # the role comes first, before any token: it is not the first token
        await stream.write(chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]))
    await stream.tokens(n, delta)
    last = (
        {"index": 0, "delta": {}, "finish_reason": finish}
        if chat
        else {"index": 0, "text": "", "finish_reason": finish}
    )
    await stream.write(chunk([last]))
    if with_usage:
        await stream.write(chunk([], usage=usage))
    await stream.write(b"data: [DONE]\n\n")
    return await stream.finish()


async def openai_embeddings(request: web.Request) -> web.StreamResponse:
    doc = await request.json()
    if doc.get("model") == "missing":
        return _missing(request)
    inputs = doc.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    prompt = _words(inputs)
    data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(items))]
    return _json(request, {"object": "list", "data": data, "model": doc.get("model"),
                           "usage": {"prompt_tokens": prompt, "total_tokens": prompt}})  # fmt: skip


async def openai_responses(request: web.Request) -> web.StreamResponse:
    doc = await request.json()
    model = doc.get("model", "")
    if model == "missing":
        return _missing(request)
    n, finish = _plan(request.app, doc.get("max_output_tokens"))
    prompt = _words(doc.get("input")) + _words(doc.get("instructions"))
    rid = f"resp_{time.monotonic_ns()}"
    text = "".join(_token(i) for i in range(n))
    status = "completed" if finish == "stop" else "incomplete"
    final = {"id": rid, "object": "response", "created_at": int(time.time()), "status": status, "model": model,
             "incomplete_details": None if status == "completed" else {"reason": "max_output_tokens"},
             "output": [{"type": "message", "id": "msg_1", "status": status, "role": "assistant",
                         "content": [{"type": "output_text", "text": text, "annotations": []}]}],
             "usage": {"input_tokens": prompt, "output_tokens": n, "total_tokens": prompt + n}}  # fmt: skip
    if not doc.get("stream"):
        await asyncio.sleep(request.app[FIRST_TOKEN_DELAY] + request.app[TOKEN_GAP] * max(n - 1, 0))
        return _json(request, final)
    seq = iter(range(1 << 30))

    def event(kind: str, **body: Any) -> bytes:
        return b"event: %s\ndata: %s\n\n" % (
            kind.encode(),
            _dumps({"type": kind, "sequence_number": next(seq), **body}),
        )

    stream = _Stream(request, "text/event-stream")
    await stream.start()
    await stream.write(event("response.created", response={**final, "status": "in_progress", "output": []}))
    await stream.tokens(n, lambda i: event("response.output_text.delta", item_id="msg_1", output_index=0,
                                           content_index=0, delta=_token(i)))  # fmt: skip
    await stream.write(event("response.output_text.done", item_id="msg_1", output_index=0, content_index=0, text=text))
    await stream.write(event(f"response.{status}", response=final))
    return await stream.finish()


async def tgi_generate(request: web.Request) -> web.StreamResponse:
    doc = await request.json()
    params = doc.get("parameters") or {}
    n, finish = _plan(request.app, params.get("max_new_tokens"))
    reason = "length" if finish == "length" else "eos_token"
    text = "".join(_token(i) for i in range(n))
    details = {"finish_reason": reason, "generated_tokens": n, "seed": None}
    if not request.path.endswith("_stream"):
        await asyncio.sleep(request.app[FIRST_TOKEN_DELAY] + request.app[TOKEN_GAP] * max(n - 1, 0))
        return _json(request, {"generated_text": text, **({"details": details} if params.get("details") else {})})

    def token(i: int) -> bytes:
        last = i == n - 1
        body = {
            "index": i + 1,
            "token": {"id": 100 + i, "text": _token(i), "logprob": -0.25, "special": False},
            "generated_text": text if last else None,
            "details": details if last else None,
            "top_tokens": None,
        }
        return b"data:" + _dumps(body) + b"\n\n"

    stream = _Stream(request, "text/event-stream")
    await stream.start()
    await stream.tokens(n, token)
    return await stream.finish()


async def ollama(request: web.Request) -> web.StreamResponse:
    doc = await request.json()
    model = doc.get("model", "")
    if model == "missing":
        return _json(request, {"error": f"model '{model}' not found"}, status=404)
    chat = request.path.endswith("/chat")
    n, finish = _plan(request.app, (doc.get("options") or {}).get("num_predict"))
    prompt = _words(doc.get("messages") if chat else doc.get("prompt"))
    created = "2024-06-01T12:00:00.000000Z"

    def line(text: str, done: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "created_at": created}
        if chat:
            body["message"] = {"role": "assistant", "content": text}
        else:
            body["response"] = text
        body["done"] = done
        if done:
            body.update(done_reason=finish, total_duration=1_000_000, load_duration=1000, prompt_eval_count=prompt,
                        prompt_eval_duration=1000, eval_count=n, eval_duration=900_000)  # fmt: skip
        return body

    if doc.get("stream") is False:
        await asyncio.sleep(request.app[FIRST_TOKEN_DELAY] + request.app[TOKEN_GAP] * max(n - 1, 0))
        return _json(request, line("".join(_token(i) for i in range(n)), True))
    stream = _Stream(request, "application/x-ndjson")
    await stream.start()
    await stream.tokens(n, lambda i: _dumps(line(_token(i), False)) + b"\n")
    await stream.write(_dumps(line("", True)) + b"\n")
    return await stream.finish()


async def ollama_embed(request: web.Request) -> web.StreamResponse:
    doc = await request.json()
    inputs = doc.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    return _json(request, {"model": doc.get("model"), "embeddings": [[0.1, 0.2] for _ in items],
                           "prompt_eval_count": _words(inputs)})  # fmt: skip


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": []})


def make_llm_app(
    first_token_delay: float = 0.1, token_gap: float = 0.02, tokens: int = 16, record: bool = False
) -> web.Application:
    app = web.Application()
    add_llm_routes(app, first_token_delay, token_gap, tokens, record)
    app.router.add_get("/v1/models", models)
    return app


def add_llm_routes(
    app: web.Application, first_token_delay: float, token_gap: float, tokens: int, record: bool = False
) -> None:
    """The LLM routes on an app of its own or beside another model's (the demo model server's)."""
    app[FIRST_TOKEN_DELAY] = first_token_delay
    app[TOKEN_GAP] = token_gap
    app[TOKENS] = tokens
    app[RECORD] = record
    app[SENT] = []
    app.router.add_post("/v1/chat/completions", openai_completions)
    app.router.add_post("/v1/completions", openai_completions)
    app.router.add_post("/v1/embeddings", openai_embeddings)
    app.router.add_post("/v1/responses", openai_responses)
    app.router.add_post("/generate", tgi_generate)
    app.router.add_post("/generate_stream", tgi_generate)
    app.router.add_post("/api/generate", ollama)
    app.router.add_post("/api/chat", ollama)
    app.router.add_post("/api/embed", ollama_embed)
