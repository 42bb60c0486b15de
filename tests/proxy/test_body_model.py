"""The top-level "model" of an LLM request body, found without parsing it (exporter/proxy/body_model.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.labels import MAX_VALUE_CHARS
from exporter.proxy.body_model import body_model


@pytest.mark.parametrize(("body", "model"), [
    (b'{"model": "gpt-4o", "messages": []}', "gpt-4o"),
    (b'{"messages": [{"role": "user", "content": "x"}], "model":"llama3"}', "llama3"),  # the openai client's order
    (b' \n{ "model" :\t"m" }', "m"),
    # a "model" key nested deeper than the top level is not the request's
    (b'{"metadata": {"model": "nested"}, "model": "top"}', "top"),
    (b'{"tools": [{"function": {"parameters": {"model": "x"}}}]}', None),
    (b'{"messages": [{"content": "{\\"model\\": \\"in a string\\"}"}], "model": "real"}', "real"),
    (b'{"messages": [{"content": "brackets ]]}} in a string"}], "model": "after"}', "after"),
    (b'{"model": "esc\\u0061ped"}', None),  # escapes: not a plain label value
    (b'{"model": 3}', None),
    (b'{"model": ""}', None),
    (b'["model", "x"]', None),
    (b"not json", None),
    (b"", None),
    (b'{"model": "' + b"x" * (MAX_VALUE_CHARS + 1) + b'"}', None),
])
def test_body_model(body: bytes, model: str | None) -> None:
    assert body_model(body) == model


@given(st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10), max_size=5))
def test_agrees_with_a_json_parser(doc: dict[str, object]) -> None:
    value = doc.get("model")
    expected = value if (isinstance(value, str) and 0 < len(value) <= MAX_VALUE_CHARS
                         and json.dumps(value, ensure_ascii=False) == f'"{value}"') else None
    for body in (json.dumps(doc), json.dumps(doc, ensure_ascii=False, separators=(",", ":"))):
        found = body_model(body.encode("utf-8", "surrogatepass"))
        if expected is not None and "\\" not in json.dumps(value):
            assert found == expected, body
        elif found is not None:
            assert found == value, body  # never a value other than the top-level one
