"""What the LLM adapters share: stream framing with byte offsets, and the fixed vocabularies.

Offsets are what the worker times events by: `end` is the offset in the response body just
past the bytes that complete an event (its dispatching blank line for server-sent events,
its newline for NDJSON), so the read that brought that byte is when a client could use it.
"""

from __future__ import annotations

import re
from typing import Any

from exporter.adapters._payload import loads
from exporter.adapters.base import FINISH_REASONS, LLM_ERROR_TYPES, Generation, Message, PayloadError

_LINE = re.compile(rb"([^\r\n]*)(\r\n|\r|\n)")
_SSE_FIELDS = (b"data:", b":", b"event:", b"id:", b"retry:")

# Finish reasons as servers spell them → FINISH_REASONS.
_FINISH = {reason: reason for reason in FINISH_REASONS} | {
    "eos_token": "stop",  # TGI
    "stop_sequence": "stop",  # TGI
    "end_turn": "stop",
    "max_tokens": "length",
    "max_output_tokens": "length",  # Responses API incomplete_details.reason
    "model_length": "length",
    "tool_use": "tool_calls",
}
# Error types as servers spell them → LLM_ERROR_TYPES (vLLM names exception classes, TGI its own).
_ERRORS = {t: t for t in LLM_ERROR_TYPES} | {
    "BadRequestError": "invalid_request_error",
    "NotFoundError": "not_found_error",
    "InternalServerError": "server_error",
    "validation": "invalid_request_error",  # TGI error_type
    "generation": "server_error",
    "incomplete_generation": "server_error",
    "overloaded": "overloaded_error",
    "api_error": "server_error",
    "requests": "rate_limit_error",
    "tokens": "rate_limit_error",
}


def finish_reason(value: Any) -> str | None:
    """A server's finish reason in the fixed vocabulary (None: none given)."""
    if type(value) is not str or not value:
        return None
    return _FINISH.get(value, "other")


def error_type(value: Any) -> str:
    """A server's error type in the fixed vocabulary."""
    return _ERRORS.get(value, "other") if type(value) is str else "other"


def error_of(doc: Any) -> str | None:
    """The error type of a JSON error document (OpenAI `{"error": {"type"}}`, vLLM, TGI, Ollama)."""
    if type(doc) is not dict:
        return None
    err = doc.get("error")
    if type(err) is dict:
        return error_type(err.get("type") or err.get("code"))
    if err is not None:  # TGI {"error": "...", "error_type": "validation"}, Ollama {"error": "..."}
        return error_type(doc.get("error_type"))
    if doc.get("object") == "error":  # vLLM: {"object": "error", "type": "BadRequestError", ...}
        return error_type(doc.get("type"))
    return None


def ended_by_error(g: Generation, doc: Any) -> bool:
    """True, with the generation marked ended by that error, when `doc` is an error document."""
    error = error_of(doc)
    if error is None:
        return False
    g.error_type = error
    g.complete = True
    return True


def count(value: Any) -> int | None:
    """A token count as sent: a non-negative int, else None."""
    return value if type(value) is int and value >= 0 else None


def text_chars(content: Any) -> int:
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


def content_type(message: Message) -> str:
    return message.headers.get("content-type", "").split(";")[0].strip().lower()


def is_sse(response: Message) -> bool:
    """A server-sent event body: by content type, or by its first line when the type was not captured."""
    return content_type(response) == "text/event-stream" or response.body.lstrip().startswith(_SSE_FIELDS)


def sse_events(body: bytes) -> tuple[list[tuple[str, bytes, int]], bool]:
    """(event name, data, end offset) of each event of a server-sent event stream, and whether
    the last of them may be incomplete: the body stopped before its blank line, mid-line.

    An event ends at its blank line; a last event whose blank line never came ends with its
    last line (servers that end the stream by closing). A partial line that is not data (a cut
    `event:` or comment) leaves the events before it whole.
    """
    events: list[tuple[str, bytes, int]] = []
    data: list[bytes] = []
    name = ""
    end = 0
    for m in _LINE.finditer(body):
        line = m.group(1)
        end = m.end()
        if not line:
            if data:
                events.append((name, b"\n".join(data), end))
            data, name = [], ""
        elif line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
        # other fields (id:, retry:) and comments (:) carry nothing we use
    rest = body[end:]
    if rest.startswith(b"data:"):
        value = rest[5:]
        data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        events.append((name, b"\n".join(data), len(body) if rest else end))
    return events, bool(rest) and bool(data)


def ndjson_lines(body: bytes) -> tuple[list[tuple[bytes, int]], bool]:
    """(line, end offset) of each non-empty line of a newline-delimited JSON body, and whether it
    stopped mid-line (the last line is then incomplete, and included)."""
    lines: list[tuple[bytes, int]] = []
    end = 0
    for m in _LINE.finditer(body):
        end = m.end()
        if m.group(1).strip():
            lines.append((m.group(1), end))
    rest = body[end:]
    if rest.strip():
        lines.append((rest, len(body)))
    return lines, bool(rest.strip())


def stream_docs(items: list[tuple[bytes, int]], cut: bool) -> list[tuple[Any, int]]:
    """The JSON documents of stream items; the last one of a cut stream may be partial (dropped),
    any other that is not JSON is an invalid_json."""
    out = []
    for i, (data, end) in enumerate(items):
        try:
            out.append((loads(data), end))
        except PayloadError:
            if cut and i == len(items) - 1:
                break  # the stream stopped mid-event (client gone, capture cut): not a payload error
            raise
    return out


def error_generation(operation: str, body: bytes) -> Generation:
    """The Generation of a non-2xx answer: its error type, "other" if the body names none."""
    try:
        doc = loads(body)
    except PayloadError:
        doc = None
    return Generation(operation, error_type=error_of(doc) or "other")
