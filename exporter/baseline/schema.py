"""The baseline file's JSON Schema (draft 2020-12) and a small validator for the keywords it uses."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

# One source of truth: docs/baseline.md prints this schema, load_baseline validates against it.
# The validator below implements exactly the keywords used here; a keyword it does not know
# fails loudly (tests walk the whole schema), so the schema cannot silently outgrow it.
_COUNT = {"type": "integer", "minimum": 0}
_COMMON = {
    "name": {"type": "string", "minLength": 1},
    "role": {"enum": ["feature", "prediction", "label"]},
    "type": {"enum": ["numeric", "categorical"]},
    "count": _COUNT,
    "null_count": _COUNT,
}


def _schema(version: int) -> dict[str, Any]:
    """The schema of one format version: 2 adds `ignored_columns` and has at least two edges per numeric column, 3 `means`."""
    top: dict[str, Any] = {
        "format_version": {"const": version},
        "created": {"type": "string", "format": "date-time"},
        "source": {
            "type": "object",
            "required": ["files", "rows"],
            "additionalProperties": False,
            "properties": {"files": {"type": "array", "items": {"type": "string"}}, "rows": _COUNT},
        },
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "performance": {"type": "object", "additionalProperties": {"type": "number"}},
        "columns": {"type": "array", "items": {"$ref": "#/$defs/column"}},
    }
    defs: dict[str, Any] = {}
    if version >= 2:
        top["ignored_columns"] = {"type": "array", "items": {"$ref": "#/$defs/ignored"}}
        defs["ignored"] = {
            "type": "object",
            "required": ["name", "reason"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "reason": {"enum": list(IGNORED_REASONS)},
                "position": _COUNT,
            },
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:model-exporter:baseline:{version}",
        "title": f"model-exporter baseline file, format_version {version}",
        "type": "object",
        "required": ["format_version", "created", "source", "columns"],
        "additionalProperties": False,
        "properties": top,
        "$defs": {
            "column": {
                "type": "object",
                "required": ["name", "role", "type", "count", "null_count"],
                "properties": _COMMON,
                "allOf": [
                    {"if": {"properties": {"type": {"const": "numeric"}}}, "then": {"$ref": "#/$defs/numeric"}},
                    {"if": {"properties": {"type": {"const": "categorical"}}}, "then": {"$ref": "#/$defs/categorical"}},
                ],
            },
            "numeric": {
                "required": ["min", "max", "mean", "std", "edges", "counts"],
                "additionalProperties": False,
                "properties": {
                    **_COMMON,
                    "min": {"type": "number"},
                    "max": {"type": "number"},
                    "mean": {"type": "number"},
                    "std": {"type": "number", "minimum": 0},
                    "edges": {"type": "array", "minItems": 1 if version == 1 else 2, "items": {"type": "number"}},
                    "counts": {"type": "array", "minItems": 2 if version == 1 else 3, "items": _COUNT},
                    "psi_groups": {"type": "array", "minItems": 1, "items": _COUNT},
                    **({"means": {"type": "array", "items": {"type": ["number", "null"]}}} if version >= 3 else {}),
                },
            },
            "categorical": {
                "required": ["categories", "counts", "other_count"],
                "additionalProperties": False,
                "properties": {
                    **_COMMON,
                    "categories": {"type": "array", "items": {"type": "string"}},
                    "counts": {"type": "array", "items": _COUNT},
                    "other_count": _COUNT,
                },
            },
            **defs,
        },
    }


IGNORED_REASONS = ("excluded", "all_null")  # why a column of the training data has no baseline column
SCHEMA: dict[str, Any] = _schema(3)  # the format written; docs/baseline.md prints it
SCHEMAS: dict[int, dict[str, Any]] = {1: _schema(1), 2: _schema(2), 3: SCHEMA}  # every version read

Path = tuple[str | int, ...]
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
_TYPES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "null",
}


def render_path(path: Path) -> str:
    """JSON path as a reader writes it: columns[3].edges[5]."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def show(value: Any) -> str:
    """A value as JSON, shortened for an error message."""
    text = (
        json.dumps(value, allow_nan=True)
        if not isinstance(value, (dict, list))
        else _TYPES["object" if isinstance(value, dict) else "array"]
    )
    return text if len(text) <= 40 else text[:37] + "..."


def first_error(instance: Any, schema: Mapping[str, Any] = SCHEMA) -> tuple[Path, str] | None:
    """The first violation of `schema` as (path, message), or None when `instance` is valid."""
    return next(_errors(instance, schema, (), schema), None)


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    kinds: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "null": type(None),
    }
    return isinstance(value, kinds[name])


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"unsupported $ref {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    resolved: Mapping[str, Any] = node  # a $ref in our own schema always names an object
    return resolved


def _errors(value: Any, schema: Mapping[str, Any], path: Path, root: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    for key, arg in schema.items():
        if key in ("$schema", "$id", "title", "$defs", "then"):
            continue
        if key == "$ref":
            yield from _errors(value, _resolve(arg, root), path, root)
        elif key == "type":
            kinds = [arg] if isinstance(arg, str) else list(arg)  # one type, or a list of allowed ones
            if not any(_is_type(value, kind) for kind in kinds):
                yield path, f"expected {' or '.join(_TYPES[kind] for kind in kinds)}, got {show(value)}"
                return  # the other keywords would only repeat the type error
        elif key == "const":
            if value != arg or isinstance(value, bool) != isinstance(arg, bool):
                yield path, f"expected {show(arg)}, got {show(value)}"
        elif key == "enum":
            if value not in arg:
                yield path, f"expected one of {', '.join(show(a) for a in arg)}, got {show(value)}"
        elif key == "minimum":
            if _is_type(value, "number") and value < arg:
                yield path, f"expected a value >= {arg}, got {show(value)}"
        elif key == "minLength":
            if isinstance(value, str) and len(value) < arg:
                yield path, "expected a non-empty string" if arg == 1 else f"expected at least {arg} characters"
        elif key == "pattern":
            if isinstance(value, str) and not re.search(arg, value):
                yield path, f"expected a string matching {arg}, got {show(value)}"
        elif key == "format":
            if arg != "date-time":
                raise ValueError(f"unsupported format {arg!r}")
            if isinstance(value, str) and not _is_utc_time(value):
                yield path, f"expected an ISO-8601 UTC time like 2024-05-01T12:00:00Z, got {show(value)}"
        elif key == "required":
            if isinstance(value, dict):
                for name in arg:
                    if name not in value:
                        yield (*path, name), "required field is missing"
        elif key == "properties":
            if isinstance(value, dict):
                for name, sub in arg.items():
                    if name in value:
                        yield from _errors(value[name], sub, (*path, name), root)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                known = schema.get("properties", {})
                for name in value:
                    if name in known:
                        continue
                    if arg is False:
                        yield (*path, name), f"unknown field (expected one of: {', '.join(known)})"
                    elif isinstance(arg, dict):
                        yield from _errors(value[name], arg, (*path, name), root)
        elif key == "items":
            if isinstance(value, list):
                for i, item in enumerate(value):
                    yield from _errors(item, arg, (*path, i), root)
        elif key == "minItems":
            if isinstance(value, list) and len(value) < arg:
                yield path, f"expected at least {arg} item{'s' if arg != 1 else ''}, got {len(value)}"
        elif key == "allOf":
            for sub in arg:
                yield from _errors(value, sub, path, root)
        elif key == "if":
            if next(_errors(value, arg, path, root), None) is None and "then" in schema:
                yield from _errors(value, schema["then"], path, root)
        else:
            raise ValueError(f"schema keyword {key!r} is not supported by this validator")


def _is_utc_time(text: str) -> bool:
    if not _DATE_TIME.match(text):
        return False
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
