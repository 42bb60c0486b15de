"""The baseline file: typed columns, canonical JSON with its sha256, and the coarse PSI bin rule."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from exporter.baseline.defaults import DEFAULT_PSI_BINS

FORMAT_VERSION = 3  # what this version writes
READABLE_VERSIONS = (1, 2, 3)  # version 1 files are read as version 2 (load.upgrade_v1); 1 and 2 have no means
ROLES = ("feature", "prediction", "label")
TYPES = ("numeric", "categorical")
BOOLEAN_KEYS = frozenset({"true", "false"})  # the canonical keys of booleans in every training file and payload


class BaselineError(ValueError):
    """A bad baseline file, bad training data or a bad flag; the message names the file/flag and field."""


@dataclass(frozen=True)
class NumericColumn:
    """A numeric column: moments, fine quantile bins between explicit below/above bins, and the coarse PSI bins.

    Fine bin 0 is (-inf, edges[0]), bin i is [edges[i-1], edges[i]), the last bin is
    [edges[-1], +inf); so len(counts) == len(edges) + 1. The builder's edges run from the
    training min to the next double above the max (`above_edge`), so the first and the last
    fine bins hold exactly the values below and above the training range: empty in training,
    and each a coarse PSI bin of its own. `psi_groups[g]` is the first fine bin of coarse bin
    g; coarse bin g runs up to the next group's start (the last to the end).
    """

    name: str
    role: str
    count: int  # rows, including nulls
    null_count: int  # absent, null, empty, NaN or ±inf
    min: float
    max: float
    mean: float
    std: float  # population standard deviation (ddof=0)
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    psi_groups: tuple[int, ...]
    # mean of the training values in each fine bin (None where a bin is empty); () when unknown
    # (format versions 1 and 2): Wasserstein then places a bin's mass at its midpoint
    means: tuple[float | None, ...] = ()
    type: ClassVar[str] = "numeric"

    @property
    def valid(self) -> int:
        return self.count - self.null_count

    @cached_property
    def edges_array(self) -> np.ndarray:
        return np.asarray(self.edges, dtype=np.float64)

    @cached_property
    def counts_array(self) -> np.ndarray:
        return np.asarray(self.counts, dtype=np.int64)


@dataclass(frozen=True)
class CategoricalColumn:
    """A categorical column: the top-K categories (most frequent first) and an "other" bucket."""

    name: str
    role: str
    count: int
    null_count: int
    categories: tuple[str, ...]
    counts: tuple[int, ...]
    other_count: int
    type: ClassVar[str] = "categorical"

    @property
    def valid(self) -> int:
        return self.count - self.null_count

    @cached_property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.categories)}

    @property
    def boolean(self) -> bool:
        """True for a column of booleans: categories "true"/"false" only, and nothing else in training."""
        return bool(self.categories) and self.other_count == 0 and set(self.categories) <= BOOLEAN_KEYS

    @cached_property
    def lookup(self) -> dict[str, int]:
        """Canonical key → bin: the index, plus the keys "1" and "0" for true and false in a boolean column."""
        table = dict(self.index)
        if self.boolean:
            for number, key in (("1", "true"), ("0", "false")):
                if key in table:
                    table[number] = table[key]
        return table

    @cached_property
    def counts_array(self) -> np.ndarray:
        """Counts per bin: one per category, then the "other" bin."""
        return np.asarray((*self.counts, self.other_count), dtype=np.int64)


Column = NumericColumn | CategoricalColumn


@dataclass(frozen=True)
class Source:
    files: tuple[str, ...]
    rows: int


@dataclass(frozen=True)
class IgnoredColumn:
    """A column of the training data the baseline leaves out on purpose; live values of it are no schema error.

    `reason`: "excluded" (--exclude) or "all_null" (a feature without a single value).
    `position`: its index among the columns a positional payload carries (the training file's
    columns without the label and prediction ones, in file order); None when unknown.
    """

    name: str
    reason: str
    position: int | None = None


@dataclass(frozen=True)
class Baseline:
    """A parsed baseline file; `sha256` is empty until `seal` computes it."""

    created: str
    source: Source
    columns: tuple[Column, ...]
    performance: Mapping[str, float] = field(default_factory=dict)
    sha256: str = ""
    format_version: int = FORMAT_VERSION
    ignored: tuple[IgnoredColumn, ...] = ()  # training columns left out on purpose (format version 2)

    def column(self, name: str) -> Column:
        """The column called `name`; KeyError if the baseline has none."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def by_role(self, role: str) -> tuple[Column, ...]:
        return tuple(col for col in self.columns if col.role == role)


def above_edge(value: float) -> float:
    """The last edge of a column whose largest training value is `value`: the next double above it."""
    edge = float(np.nextafter(value, np.inf))
    if not np.isfinite(edge):
        raise BaselineError(f"{value!r} is the largest double: no room for a bin above the training range")
    return edge


def derive_psi_groups(counts: Sequence[int] | np.ndarray, bins: int = DEFAULT_PSI_BINS) -> tuple[int, ...]:
    """Coarse PSI bins from fine counts: the below and above bins alone, the rest about 1/bins of the rows each.

    The first and the last fine bin (values below and above the training range) are coarse bins
    of their own, so every method sees values that leave the range. Between them, for each
    target j·total/bins (j = 1 … bins−1) a group ends at the fine bin whose cumulative count is
    nearest the target; a boundary that would leave a group without rows is dropped.
    """
    n = len(counts)
    if n < 3:
        return tuple(range(n))
    inner = _group_inner(np.asarray(counts, dtype=np.float64)[1:-1], bins)
    return (0, *(1 + g for g in inner), n - 1)


def _group_inner(c: np.ndarray, bins: int) -> tuple[int, ...]:
    """Groups of consecutive bins of about 1/bins of the total each (starts, the first 0)."""
    total = float(c.sum())
    if total <= 0 or len(c) == 1:
        return (0,)
    cum = np.cumsum(c)
    targets = total * np.arange(1, bins) / bins
    ends = np.searchsorted(cum, targets, side="left")
    nearer = (ends > 0) & (targets - cum[np.maximum(ends - 1, 0)] < cum[ends] - targets)
    groups = [0]
    for start in np.unique(np.where(nearer, ends - 1, ends) + 1).tolist():
        before = cum[start - 1] if 0 < start < len(c) else None
        if before is not None and before > (cum[groups[-1] - 1] if groups[-1] else 0.0) and before < total:
            groups.append(int(start))
    return tuple(groups)


def column_to_dict(col: Column) -> dict[str, Any]:
    head: dict[str, Any] = {
        "name": col.name,
        "role": col.role,
        "type": col.type,
        "count": col.count,
        "null_count": col.null_count,
    }
    if isinstance(col, NumericColumn):
        return {
            **head,
            "min": col.min,
            "max": col.max,
            "mean": col.mean,
            "std": col.std,
            "edges": list(col.edges),
            "counts": list(col.counts),
            "psi_groups": list(col.psi_groups),
            **({"means": list(col.means)} if col.means else {}),
        }
    return {**head, "categories": list(col.categories), "counts": list(col.counts), "other_count": col.other_count}


def to_dict(baseline: Baseline) -> dict[str, Any]:
    """The JSON document, in the order a reader expects (sha256 only once sealed)."""
    doc: dict[str, Any] = {
        "format_version": baseline.format_version,
        "created": baseline.created,
        "source": {"files": list(baseline.source.files), "rows": baseline.source.rows},
    }
    if baseline.sha256:
        doc["sha256"] = baseline.sha256
    if baseline.performance:
        doc["performance"] = dict(baseline.performance)
    doc["columns"] = [column_to_dict(col) for col in baseline.columns]
    if baseline.ignored:
        doc["ignored_columns"] = [
            {"name": c.name, "reason": c.reason, **({"position": c.position} if c.position is not None else {})}
            for c in baseline.ignored
        ]
    return doc


def content_sha256(doc: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of everything but the sha256 field.

    Canonical: keys sorted, separators "," and ":", no whitespace, UTF-8, numbers as Python's
    json module writes them (shortest round-trip repr for floats).
    """
    content = {k: v for k, v in doc.items() if k != "sha256"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def seal(baseline: Baseline) -> Baseline:
    """The same baseline with its sha256 computed."""
    return replace(baseline, sha256=content_sha256(to_dict(replace(baseline, sha256=""))))


def dumps(baseline: Baseline) -> str:
    """The sealed baseline as indented JSON text."""
    return json.dumps(to_dict(seal(baseline)), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def save_baseline(baseline: Baseline, path: str | os.PathLike[str]) -> None:
    """Write the sealed baseline atomically (a reader never sees half a file)."""
    target = Path(path)
    text = dumps(baseline)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide the file from the sidecar's user
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        raise BaselineError(f"{path}: cannot write ({exc.strerror or exc})") from None
