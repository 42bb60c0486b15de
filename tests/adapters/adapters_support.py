"""Shared helpers for the adapter tests: golden cases, messages, Rows normalised for comparison."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from exporter.adapters.base import PAYLOAD_ERROR_REASONS, Generation, Message, PayloadError, Rows

GOLDEN = Path(__file__).parent / "golden"
NAN = "<NaN>"  # NaN != NaN: compare through a marker


def golden_cases() -> list[tuple[str, dict[str, Any]]]:
    """(adapter name, case) for every golden case of every protocol."""
    out = []
    for path in sorted(GOLDEN.glob("*.json")):
        doc = json.loads(path.read_text())  # stdlib: golden files use NaN/Infinity tokens
        out.extend((doc["adapter"], case) for case in doc["cases"])
    return out


def body_bytes(side: dict[str, Any]) -> bytes:
    """A golden request/response body: exact text, or a JSON value serialised."""
    if "body_text" in side:
        return side["body_text"].encode()
    return json.dumps(side["body"]).encode()


def message(path: str, side: dict[str, Any], body: bytes | None = None) -> Message:
    return Message(path=path, route=path, headers=dict(side.get("headers", {})),
                   body=body_bytes(side) if body is None else body)


def plain(value: Any) -> Any:
    """A column value comparable with golden JSON: numpy → Python, NaN → marker, bytes → {"$bytes"}."""
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and math.isnan(value):
        return NAN
    if isinstance(value, bytes):
        return {"$bytes": value.decode("latin-1")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def rows_dict(rows: Rows) -> dict[str, Any]:
    """Every field of Rows, normalised; column order kept (a list of pairs)."""
    return {
        "n": rows.n,
        "columns": [(k, plain(list(v) if not isinstance(v, np.ndarray) else v)) for k, v in rows.columns.items()],
        "ids": rows.ids, "model": rows.model, "version": rows.version, "positional": rows.positional,
        "datatypes": rows.datatypes, "llm": generation_dict(rows.llm),
    }


def generation_dict(g: Generation | None) -> dict[str, Any] | None:
    """An LLM response's Generation as golden JSON writes it (defaults left out)."""
    if g is None:
        return None
    defaults = Generation(g.operation)
    return {k: getattr(g, k) for k in Generation.__slots__
            if k == "operation" or getattr(g, k) != getattr(defaults, k)}


def expected_dict(expect: dict[str, Any]) -> dict[str, Any]:
    """A golden expectation with the Rows defaults filled in."""
    return {
        "n": expect["n"],
        "columns": [(k, plain(v)) for k, v in expect["columns"].items()],
        "ids": expect.get("ids"), "model": expect.get("model"), "version": expect.get("version"),
        "positional": expect.get("positional", False), "datatypes": expect.get("datatypes", {}),
        "llm": expect.get("llm"),
    }


def assert_valid(result: Any) -> None:
    """The adapter contract: Rows whose every column has n values (ids too)."""
    assert isinstance(result, Rows), type(result)
    assert isinstance(result.n, int) and result.n >= 0
    for name, column in result.columns.items():
        assert isinstance(name, str)
        assert len(column) == result.n, (name, len(column), result.n)
    if result.ids is not None:
        assert len(result.ids) == result.n and all(isinstance(i, str) for i in result.ids)
    assert set(result.datatypes) <= set(result.columns)


def outcome(call: Any, *args: Any) -> Rows | PayloadError:
    """Call a parse method; return Rows (checked) or the PayloadError (reason checked)."""
    try:
        result = call(*args)
    except PayloadError as exc:
        assert exc.reason in PAYLOAD_ERROR_REASONS
        assert exc.reason != "internal", exc  # an internal error is an adapter bug
        return exc
    assert_valid(result)
    return result
