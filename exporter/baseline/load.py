"""Load a baseline file: JSON, schema, semantic checks, sha256; every error names the file and field."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NoReturn

from exporter.baseline.format import (
    READABLE_VERSIONS,
    Baseline,
    BaselineError,
    CategoricalColumn,
    Column,
    IgnoredColumn,
    NumericColumn,
    Source,
    above_edge,
    content_sha256,
    derive_psi_groups,
)
from exporter.baseline.schema import SCHEMAS, Path, first_error, render_path, show


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
    if "format_version" in doc and (version not in READABLE_VERSIONS or isinstance(version, bool)):
        fail(
            ("format_version",),
            f"unsupported version {show(version)} (this model-exporter reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS[:-1]))} and {READABLE_VERSIONS[-1]})",
        )
    error = first_error(doc, SCHEMAS[version if version in SCHEMAS else max(SCHEMAS)])
    if error is not None:
        fail(*error)
    if "sha256" in doc:
        computed = content_sha256(doc)
        if computed != doc["sha256"]:
            fail(
                ("sha256",),
                f"does not match the content (file says {doc['sha256'][:12]}…, content hashes to "
                f"{computed[:12]}…): the file was edited or damaged; rebuild it, or reseal it with "
                "`model-exporter baseline merge FILE -o FILE`",
            )
    elif require_sha:
        fail(
            ("sha256",),
            "required field is missing (seal a file written by another tool with "
            "`model-exporter baseline merge FILE -o FILE`)",
        )
    version = int(doc["format_version"])  # present and readable: the schema and the check above say so
    columns = tuple(_column(fail, c, i, doc["source"]["rows"], version) for i, c in enumerate(doc["columns"]))
    seen: dict[str, int] = {}
    for i, col in enumerate(columns):
        if col.name in seen:
            fail(("columns", i, "name"), f"duplicate column name {show(col.name)} (also columns[{seen[col.name]}])")
        seen[col.name] = i
    ignored: dict[str, int] = {}
    for i, entry in enumerate(doc.get("ignored_columns", ())):
        name = entry["name"]
        if name in seen:
            fail(("ignored_columns", i, "name"), f"{show(name)} is a column of the baseline (columns[{seen[name]}])")
        if name in ignored:
            fail(("ignored_columns", i, "name"), f"duplicate name {show(name)} (also ignored_columns[{ignored[name]}])")
        ignored[name] = i
    _check_positions(fail, doc, sum(c.role == "feature" for c in columns))
    return Baseline(
        created=doc["created"],
        source=Source(tuple(doc["source"]["files"]), doc["source"]["rows"]),
        columns=columns,
        performance=dict(doc.get("performance", {})),
        sha256=doc.get("sha256", ""),
        # a version 2 file stays one when written again (same content, same sha256); version 1 reads as 2
        format_version=max(version, 2),
        ignored=tuple(IgnoredColumn(e["name"], e["reason"], e.get("position")) for e in doc.get("ignored_columns", ())),
    )


def _check_positions(fail: Any, doc: Mapping[str, Any], features: int) -> None:
    """Ignored columns' positions: unique, and inside the features plus the ignored columns that have one."""
    entries = [(i, e["position"]) for i, e in enumerate(doc.get("ignored_columns", ())) if "position" in e]
    width = features + len(entries)
    first: dict[int, int] = {}
    for i, pos in entries:
        if pos in first:
            fail(("ignored_columns", i, "position"), f"duplicate position {pos} (also ignored_columns[{first[pos]}])")
        if pos >= width:
            fail(
                ("ignored_columns", i, "position"),
                f"expected a value below {width} (the {features} features and the {len(entries)} ignored "
                f"columns with a position), got {pos}",
            )
        first[pos] = i


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON; the format has no NaN or Infinity")


def _column(fail: Any, c: Mapping[str, Any], i: int, rows: int, version: int) -> Column:
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
        return CategoricalColumn(
            name=c["name"],
            role=c["role"],
            count=c["count"],
            null_count=c["null_count"],
            categories=tuple(c["categories"]),
            counts=tuple(c["counts"]),
            other_count=c["other_count"],
        )
    edges = c["edges"]
    for key in ("min", "max", "mean", "std"):
        if not math.isfinite(c[key]):
            fail((*at, key), f"expected a finite number, got {show(c[key])}")
    for j in range(1, len(edges)):
        if not edges[j] > edges[j - 1]:
            fail(
                (*at, "edges", j),
                f"expected values in increasing order, got {show(edges[j])} after {show(edges[j - 1])}",
            )
    if c["min"] > c["max"]:
        fail((*at, "max"), f"expected at least min = {show(c['min'])}, got {show(c['max'])}")
    if len(c["counts"]) != len(edges) + 1:
        fail((*at, "counts"), f"expected {len(edges) + 1} values (len(edges) + 1), got {len(c['counts'])}")
    if sum(c["counts"]) != valid:
        fail((*at, "counts"), f"values add up to {sum(c['counts'])}, expected count - null_count = {valid}")
    n = len(c["counts"])
    groups: list[int] = list(c.get("psi_groups", ()))
    if groups and groups[0] != 0:
        fail((*at, "psi_groups", 0), f"expected 0 (the first coarse bin starts at fine bin 0), got {groups[0]}")
    for j in range(1, len(groups)):
        if not groups[j - 1] < groups[j] < n:
            fail(
                (*at, "psi_groups", j),
                f"expected increasing fine-bin indexes below {n}, got {groups[j]} after {groups[j - 1]}",
            )
    if version >= 2 and groups and (len(groups) < 3 or groups[1] != 1 or groups[-1] != n - 1):
        fail(
            (*at, "psi_groups"),
            f"expected the below and above bins (fine bins 0 and {n - 1}) to be coarse bins "
            f"of their own: a list starting 0, 1 and ending {n - 1}, got [{', '.join(map(str, groups))}]",
        )
    means: list[float | None] = list(c.get("means", ()))
    if means and len(means) != n:
        fail((*at, "means"), f"expected {n} values (one per fine bin), got {len(means)}")
    for j, (m, k) in enumerate(zip(means, c["counts"])):
        if (m is None) != (k == 0) or (m is not None and not math.isfinite(m)):
            fail(
                (*at, "means", j),
                f"expected a finite number for a bin with values and null for an empty one, got {show(m)}",
            )
    col = NumericColumn(
        name=c["name"],
        role=c["role"],
        count=c["count"],
        null_count=c["null_count"],
        min=float(c["min"]),
        max=float(c["max"]),
        mean=float(c["mean"]),
        std=float(c["std"]),
        edges=tuple(float(e) for e in edges),
        counts=tuple(c["counts"]),
        psi_groups=tuple(groups),
        means=tuple(None if m is None else float(m) for m in means),
    )
    if version < 2:
        return upgrade_v1(col, fail, at)
    return col if groups else replace(col, psi_groups=derive_psi_groups(col.counts))


def upgrade_v1(col: NumericColumn, fail: Any = None, at: Path = ()) -> NumericColumn:
    """A format version 1 column as version 2: an above bin after the last edge, below and above coarse bins of their own.

    Version 1's last fine bin, [edges[-1], +inf), holds the values equal to the training max (the
    last edge): it becomes [edges[-1], next double), and an empty above bin follows. A version 1
    file merged from partitions whose values passed the reference's max counts those in the max
    bin; they cannot be told apart any more.
    """
    try:
        top = above_edge(col.edges[-1])
    except BaselineError as exc:
        if fail is None:
            raise
        fail((*at, "edges", len(col.edges) - 1), str(exc))
    counts = (*col.counts, 0)
    groups = sorted({*col.psi_groups, 1, len(col.counts)}) if col.psi_groups else derive_psi_groups(counts)
    return replace(col, edges=(*col.edges, top), counts=counts, psi_groups=tuple(groups))
