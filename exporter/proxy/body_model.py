"""The top-level `"model"` string of an LLM request body, found without parsing the body.

An LLM request names its model in the body (`{"model": "llama3", "messages": [...]}`), not in
the path, and that name must become the exchange's `model` label in the proxy, where every
series of the exchange is labelled (exporter/labels.py). Parsing a prompt of hundreds of kB
as JSON on the hot path would cost milliseconds; this costs a regex search and, for each
candidate key, two C-speed passes over the bytes before it:

1. find `"model"` followed by `:` and a string value of at most MAX_VALUE_CHARS plain characters
   (a value with escapes or longer is no label value; the label policy would refuse it anyway);
2. keep the first candidate at nesting depth 1: the bytes before it, with every JSON string
   blanked out (strings may hold brackets), open one more `{`/`[` than they close.

A key inside a string cannot match: its quotes are escaped there (`\\"model\\"`). The result is
client text: the label policy caps it like a path segment (`model.max_names`, `model.known`).
"""

from __future__ import annotations

import re

from exporter.labels import MAX_VALUE_CHARS

_CANDIDATE = re.compile(rb'(?<!\\)"model"[ \t\r\n]*:[ \t\r\n]*"([^"\\\x00-\x1f]{1,%d})"' % MAX_VALUE_CHARS)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def body_model(body: bytes) -> str | None:
    """The value of the body's top-level "model" key if it is a short plain string, else None."""
    start = body.find(b"{")
    if start < 0 or body[:start].strip():
        return None  # not a JSON object
    for m in _CANDIDATE.finditer(body, start):
        before = _STRING.sub(b"", body[start : m.start()])
        depth = before.count(b"{") + before.count(b"[") - before.count(b"}") - before.count(b"]")
        if depth == 1:
            try:
                return m.group(1).decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None
