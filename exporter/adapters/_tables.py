"""Build columnar Rows from the row and column layouts that JSON protocols share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.adapters._payload import b64decode
from exporter.adapters.base import PayloadError, Rows


def positional(k: int) -> list[str]:
    """Generated column names x0, x1, … for payloads that send none."""
    return [f"x{j}" for j in range(k)]


def cell(value: Any) -> Any:
    """A TF Serving `{"b64": "..."}` value becomes bytes; anything else stays as sent."""
    if type(value) is dict and len(value) == 1 and "b64" in value:
        return b64decode(value["b64"])
    return value


def _is_b64(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and "b64" in value


def from_records(records: Sequence[Any], b64: bool = False) -> Rows:
    """Rows from objects `{column: value}`; a key missing in some rows is a None there."""
    names: dict[str, None] = {}
    for record in records:
        if type(record) is not dict:
            raise PayloadError("unsupported_shape", "rows mix objects and other values")
        names.update(dict.fromkeys(record))
    columns: dict[str, list[Any]] = {}
    for name in names:
        values = [record.get(name) for record in records]
        columns[name] = [cell(v) for v in values] if b64 else values
    return Rows(columns=dict(columns), n=len(records))


def from_row_lists(rows: Sequence[Any], names: Sequence[Any] | None = None, b64: bool = False) -> Rows:
    """Rows from lists of values; column names given (dataframe_split, Seldon) or positional."""
    if not all(type(row) is list for row in rows):
        raise PayloadError("unsupported_shape", "rows mix lists and other values")
    width = len(rows[0]) if rows else (len(names) if names else 0)
    for row in rows:
        if len(row) != width:
            raise PayloadError("inconsistent_rows", f"row of {len(row)} values, expected {width}")
    generated = not names
    if names:
        if len(names) != width:
            raise PayloadError("inconsistent_rows", f"{len(names)} column names for rows of {width} values")
        if len(set(map(str, names))) != len(names):
            raise PayloadError("unsupported_shape", "duplicate column names")
        keys = [str(name) for name in names]
    else:
        keys = positional(width)
    columns: dict[str, Sequence[Any]] = {}
    for j, key in enumerate(keys):
        values = [row[j] for row in rows]
        columns[key] = [cell(v) for v in values] if b64 else values
    return Rows(columns=columns, n=len(rows), positional=generated)


def from_instances(items: Any, names: Sequence[Any] | None = None, b64: bool = False) -> Rows:
    """Rows from a list of instances: all objects, all lists, or all scalars (one column)."""
    if type(items) is not list:
        raise PayloadError("unsupported_shape", f"expected a list of rows, got {type(items).__name__}")
    if not items:
        return Rows(columns={}, n=0)
    first = items[0]
    if type(first) is dict and not (b64 and _is_b64(first)):
        return from_records(items, b64=b64)
    if type(first) is list:
        return from_row_lists(items, names=names, b64=b64)
    for item in items:
        if type(item) is list or (type(item) is dict and not (b64 and _is_b64(item))):
            raise PayloadError("unsupported_shape", "rows mix scalars with lists or objects")
    key = str(names[0]) if names and len(names) == 1 else "x0"
    values = [cell(v) for v in items] if b64 else list(items)
    return Rows(columns={key: values}, n=len(items), positional=key == "x0")


def from_columns(mapping: dict[str, Any], b64: bool = False) -> Rows:
    """Rows from named columns `{name: [values]}`; an unbatched scalar per name is one row."""
    if not mapping:
        return Rows(columns={}, n=0)
    batched = [type(v) is list for v in mapping.values()]
    if not any(batched):
        return Rows(columns={k: [cell(v) if b64 else v] for k, v in mapping.items()}, n=1)
    if not all(batched):
        raise PayloadError("inconsistent_rows", "columns mix lists and single values")
    lengths = {len(v) for v in mapping.values()}
    if len(lengths) != 1:
        raise PayloadError("inconsistent_rows", f"columns of different lengths {sorted(lengths)}")
    columns = {k: ([cell(x) for x in v] if b64 else v) for k, v in mapping.items()}
    return Rows(columns=columns, n=lengths.pop())
