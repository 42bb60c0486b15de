"""Snapshots of the worker's windows and counters in `state_dir`, restored at start.

Without them a worker restart or a rollout empties every window: the 1-hour drift window is
blind for an hour. A snapshot is written every SNAPSHOT_SECONDS and when the worker stops
cleanly, atomically (a temporary file, fsync, rename), as JSON (nothing executable is read
back). It is restored only onto the same baseline (its sha256) with the same columns, bins and
windows; anything else is ignored with a log line.

Windows are always restored: a slice that expired while the worker was down expires on the
next read. Counters are restored only from a snapshot written at a clean stop: one from a
crash lags the counts already scraped, and a counter that goes back reads as a reset to
Prometheus, whose rate() would then count the whole value again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from exporter.worker.analysis import Analysis

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILE_NAME = "analysis-state.json"
SNAPSHOT_SECONDS = 60.0


def _layout_digest(analysis: Analysis) -> str:
    columns = analysis.columns
    if columns is None:
        return ""
    text = repr((columns.layout, columns.window_spec, [(t.col.name, t.labels) for t in columns.by_name.values()]))
    return hashlib.sha256(text.encode()).hexdigest()


Key = TypeVar("Key", bound=tuple[str, ...])


def _pairs(table: Mapping[Key, int]) -> list[list[Any]]:
    return [[*key, n] for key, n in sorted(table.items())]


def snapshot(analysis: Analysis, clean: bool) -> dict[str, Any]:
    """The worker's state as a JSON document."""
    content = analysis.content
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "written": time.time(),
        "clean": clean,
        "baseline_sha256": analysis.columns.baseline.sha256 if analysis.columns is not None else "",
        "layout": _layout_digest(analysis),
        "bound": list(analysis.bound) if analysis.bound is not None else None,
        "counters": {
            "rows": _pairs(content.rows),
            "prediction_rows": _pairs(content.prediction_rows),
            "errors": _pairs(content.errors),
            "skipped": _pairs(analysis.skipped),
        },
    }
    columns = analysis.columns
    if columns is not None:
        doc["columns"] = {
            f"{role}/{name}": {"quality": t.quality, "coarse_total": t.coarse_total.tolist()}
            for (role, name), t in columns.by_name.items()
        }
        doc["schema_errors"] = columns.schema_errors
        doc["windows"] = {name: {"head": w.head, "ring": w.ring.tolist()} for name, w in columns.windows.items()}
    return doc


def restore(analysis: Analysis, doc: dict[str, Any]) -> str | None:
    """Put a snapshot's state into a fresh Analysis; None when restored, else why not."""
    if doc.get("format_version") != FORMAT_VERSION:
        return f"format_version {doc.get('format_version')!r} (expected {FORMAT_VERSION})"
    sha = analysis.columns.baseline.sha256 if analysis.columns is not None else ""
    if doc.get("baseline_sha256") != sha:
        return "it was written for another baseline (sha256 differs)"
    if doc.get("layout") != _layout_digest(analysis):
        return "its columns, bins or windows differ from this configuration's"
    columns = analysis.columns
    if columns is not None:
        for name, saved in doc.get("windows", {}).items():
            window = columns.windows.get(name)
            ring = np.asarray(saved["ring"], dtype=np.int64)
            if window is None or ring.shape != window.ring.shape:
                return f"window {name!r} has another shape"
            window.ring[:] = ring
            window.total[:] = ring.sum(axis=0)
            window.head = saved["head"]
    if analysis.bound is None and doc.get("bound") is not None:
        analysis.bound = (str(doc["bound"][0]), str(doc["bound"][1]))
        if columns is not None:
            columns.model = list(analysis.bound)
    if not doc.get("clean"):
        return None  # windows only: see the module docstring
    counters = doc["counters"]
    content = analysis.content
    content.rows = {(str(m), str(v)): int(n) for m, v, n in counters["rows"]}
    content.prediction_rows = {(str(m), str(v)): int(n) for m, v, n in counters["prediction_rows"]}
    content.errors = {(str(m), str(v), str(s), str(r)): int(n) for m, v, s, r, n in counters["errors"]}
    analysis.skipped = {(str(m), str(v)): int(n) for m, v, n in counters["skipped"]}
    if columns is not None:
        for key, saved in doc.get("columns", {}).items():
            role, _, name = key.partition("/")
            tracked = columns.find(role, name)
            if tracked is not None:
                tracked.quality.update({k: int(v) for k, v in saved["quality"].items() if k in tracked.quality})
                tracked.coarse_total[:] = np.asarray(saved["coarse_total"], dtype=np.int64)
        columns.schema_errors.update(
            {k: int(v) for k, v in doc.get("schema_errors", {}).items() if k in columns.schema_errors}
        )
    return None


def save(directory: str, doc: dict[str, Any]) -> None:
    """Write atomically: readers see the old snapshot or the new one, never half of one."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".analysis-state-", dir=path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path / FILE_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(directory: str) -> dict[str, Any] | None:
    """The last snapshot, or None when there is none or it cannot be read (logged)."""
    path = Path(directory) / FILE_NAME
    try:
        with path.open(encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("state snapshot %s cannot be read, starting empty: %s", path, exc)
        return None
    return doc if isinstance(doc, dict) else None
