"""Load a baseline file: JSON, schema, semantic checks, sha256; every error names the file and field."""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, NoReturn

from exporter.baseline.format import (
    FORMAT_VERSION,
    Baseline,
    BaselineError,
    CategoricalColumn,
    Column,
    NumericColumn,
    Source,
    content_sha256,
    derive_psi_groups,
)
from exporter.baseline.schema import Path, first_error, render_path, show


def load_baseline(path: str | os.PathLike[str], *, require_sha: bool = True) -> Baseline:
    """Read and validate a baseline file (`require_sha=False` accepts unsealed partition files)."""
    origin = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise BaselineError(f"{origin}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise BaselineError(f"{origin}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{origin}: line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})") from None
    except ValueError as exc:
        raise BaselineError(f"{origin}: invalid JSON ({exc})") from None
    return parse_baseline(doc, origin, require_sha=require_sha)


def parse_baseline(doc: Any, origin: str = "baseline", *, require_sha: bool = True) -> Baseline:
    """Validate a decoded JSON document and build the typed Baseline."""
    def fail(path: Path, message: str) -> NoReturn:
        where = f"{origin}: {render_path(path)}: " if path else f"{origin}: "
        raise BaselineError(where + message)

    if not isinstance(doc, dict):
        fail((), f"expected a JSON object at the top level, got {show(doc)}")
    version = doc.get("format_version")
    if "format_version" in doc and version != FORMAT_VERSION:
        fail(("format_version",), f"unsupported version {show(version)} (this model-exporter reads version 1)")
    error = first_error(doc)
    if error is not None:
        fail(*error)
    if "sha256" in doc:
        computed = content_sha256(doc)
        if computed != doc["sha256"]:
            fail(("sha256",), f"does not match the content (file says {doc['sha256'][:12]}…, content hashes to "
                 f"{computed[:12]}…): the file was edited or damaged; rebuild it, or reseal it with "
                 "`model-exporter baseline merge FILE -o FILE`")
    elif require_sha:
        fail(("sha256",), "required field is missing (seal a file written by another tool with "
             "`model-exporter baseline merge FILE -o FILE`)")
    columns = tuple(_column(fail, c, i, doc["source"]["rows"]) for i, c in enumerate(doc["columns"]))
    seen: dict[str, int] = {}
    for i, col in enumerate(columns):
        if col.name in seen:
            fail(("columns", i, "name"), f"duplicate column name {show(col.name)} (also columns[{seen[col.name]}])")
        seen[col.name] = i
    return Baseline(created=doc["created"], source=Source(tuple(doc["source"]["files"]), doc["source"]["rows"]),
                    columns=columns, performance=dict(doc.get("performance", {})), sha256=doc.get("sha256", ""))


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON; the format has no NaN or Infinity")


def _column(fail: Any, c: Mapping[str, Any], i: int, rows: int) -> Column:
    """Semantic checks the schema cannot express, then the typed column."""
    at: Path = ("columns", i)
    if c["count"] != rows:
        fail((*at, "count"), f"expected source.rows = {rows}, got {c['count']}")
    if c["null_count"] > c["count"]:
        fail((*at, "null_count"), f"expected at most count = {c['count']}, got {c['null_count']}")
    valid = c["count"] - c["null_count"]
    if c["type"] == "categorical":
        if len(c["counts"]) != len(c["categories"]):
            fail((*at, "counts"), f"expected {len(c['categories'])} values (one per category), got {len(c['counts'])}")
        first: dict[str, int] = {}
        for j, name in enumerate(c["categories"]):
            if name in first:
                fail((*at, "categories", j), f"duplicate category {show(name)} (also categories[{first[name]}])")
            first[name] = j
        total = sum(c["counts"]) + c["other_count"]
        if total != valid:
            fail((*at, "counts"), f"counts plus other_count add up to {total}, expected count - null_count = {valid}")
        return CategoricalColumn(name=c["name"], role=c["role"], count=c["count"], null_count=c["null_count"],
                                 categories=tuple(c["categories"]), counts=tuple(c["counts"]),
                                 other_count=c["other_count"])
    edges = c["edges"]
    for key in ("min", "max", "mean", "std"):
        if not math.isfinite(c[key]):
            fail((*at, key), f"expected a finite number, got {show(c[key])}")
    for j in range(1, len(edges)):
        if not edges[j] > edges[j - 1]:
            fail((*at, "edges", j),
                 f"expected values in increasing order, got {show(edges[j])} after {show(edges[j - 1])}")
    if c["min"] > c["max"]:
        fail((*at, "max"), f"expected at least min = {show(c['min'])}, got {show(c['max'])}")
    if len(c["counts"]) != len(edges) + 1:
        fail((*at, "counts"), f"expected {len(edges) + 1} values (len(edges) + 1), got {len(c['counts'])}")
    if sum(c["counts"]) != valid:
        fail((*at, "counts"), f"values add up to {sum(c['counts'])}, expected count - null_count = {valid}")
    groups = c.get("psi_groups")
    if groups is None:
        groups = derive_psi_groups(c["counts"])
    elif groups[0] != 0:
        fail((*at, "psi_groups", 0), f"expected 0 (the first coarse bin starts at fine bin 0), got {groups[0]}")
    for j in range(1, len(groups)):
        if not groups[j - 1] < groups[j] < len(c["counts"]):
            fail((*at, "psi_groups", j), f"expected increasing fine-bin indexes below {len(c['counts'])}, "
                 f"got {groups[j]} after {groups[j - 1]}")
    return NumericColumn(name=c["name"], role=c["role"], count=c["count"], null_count=c["null_count"],
                         min=float(c["min"]), max=float(c["max"]), mean=float(c["mean"]), std=float(c["std"]),
                         edges=tuple(float(e) for e in edges), counts=tuple(c["counts"]), psi_groups=tuple(groups))
