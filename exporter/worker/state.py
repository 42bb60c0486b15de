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

Ground truth too: the performance, estimate and segment windows (restored when the task, the
class set and the segment layout agree) and the predictions waiting for their labels in the
join cache (so a label that arrives after a rollout still finds its prediction); the label
counters and the performance counters with the other counters, from a clean stop only.
Windows are stored sparse: most of a performance window's cells are empty score bins.

The LLM counters and histograms (every model_llm_* family: analyzers/llm.py) are counters too,
restored from a clean stop only. A histogram written with other buckets than this release's
starts empty; entries that are malformed, or beyond what the routes, the label policy's caps and
the fixed vocabularies allow, are left out (logged). A snapshot without them (an older release)
restores everything else.

A snapshot malformed part way through (edited by hand, or a field shaped otherwise) is dropped
whole, with a log line naming the error: the worker starts empty rather than half restored,
and never fails to start over it (Analysis._restore).
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

from exporter.analyzers.performance import Prediction
from exporter.drift.windows import SlidingCounts
from exporter.labels import MAX_VALUE_CHARS
from exporter.worker.labels_join import Entry

if TYPE_CHECKING:
    from exporter.worker.analysis import Analysis

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILE_NAME = "analysis-state.json"
SNAPSHOT_SECONDS = 60.0
# The built-in route templates and "other" (proxy/routes.py, which the worker does not import):
# the routes a snapshot's LLM series may have besides the configured ones. A test checks it.
BUILTIN_ROUTES = 64


def _layout_digest(analysis: Analysis) -> str:
    columns = analysis.columns
    if columns is None:
        return ""
    text = repr((columns.layout, columns.window_spec, [(t.col.name, t.labels) for t in columns.by_name.values()]))
    return hashlib.sha256(text.encode()).hexdigest()


Key = TypeVar("Key", bound=tuple[str, ...])


def _pairs(table: Mapping[Key, int]) -> list[list[Any]]:
    return [[*key, n] for key, n in sorted(table.items())]


def _sparse(array: np.ndarray) -> dict[str, Any]:
    flat = array.reshape(-1)
    at = np.flatnonzero(flat)
    return {"shape": list(array.shape), "at": at.tolist(), "values": flat[at].tolist()}


def _dense(doc: dict[str, Any], like: np.ndarray) -> np.ndarray | None:
    """The array a `_sparse` document holds, if it has `like`'s shape; else None."""
    if list(like.shape) != list(doc.get("shape", ())):
        return None
    out = np.zeros(like.size, dtype=like.dtype)
    at = np.asarray(doc["at"], dtype=np.intp)
    if at.size and (at.min() < 0 or at.max() >= like.size):
        return None
    out[at] = np.asarray(doc["values"], dtype=like.dtype)
    return out.reshape(like.shape)


def _windows_doc(windows: Mapping[str, SlidingCounts]) -> dict[str, Any]:
    return {name: {"head": w.head, "width": w.width, "ring": _sparse(w.ring)} for name, w in windows.items()}


def _restore_windows(windows: Mapping[str, SlidingCounts], saved: Mapping[str, Any]) -> bool:
    """Put saved windows back (all or none); False when one has another width or shape."""
    rings = {}
    for name, window in windows.items():
        doc = saved.get(name)
        if doc is None:
            continue
        ring = _dense(doc["ring"], window.ring)
        if ring is None or doc.get("width") != window.width:
            return False
        rings[name] = (ring, doc["head"])
    for name, (ring, head) in rings.items():
        window = windows[name]
        window.ring[:] = ring
        window.total[:] = ring.sum(axis=0)
        window.head = head
    return True


def _ground_truth(analysis: Analysis) -> dict[str, Any]:
    perf = analysis.performance
    segments = perf.segments
    joins = analysis.joins
    return {
        "task": perf.task,
        "size": perf.size,
        "classes": list(perf.classes),
        "windows": _windows_doc(perf.windows),
        "expected": _windows_doc(perf.expected),
        "cumulative": _sparse(perf.cumulative),
        "segments": {"columns": segments.columns, "values": segments.values, "windows": _windows_doc(segments.windows)},
        "joins": {
            # id, time, predicted value, score, segment indices, joined already
            "entries": [
                [rid, e.time, e.prediction.value, e.prediction.score, list(e.prediction.segments), e.joined]
                for rid, e in joins.entries.items()
            ],
            "outcomes": joins.outcomes,
            "evictions": joins.evictions,
            "delays": list(analysis.delays),
        },
    }


def _restore_ground_truth(analysis: Analysis, doc: dict[str, Any], clean: bool) -> None:
    """The ground-truth half of `restore`: what does not fit this configuration is left out (logged)."""
    perf = analysis.performance
    same_task = doc.get("task") == perf.task and doc.get("size") == perf.size
    classes = [str(c) for c in doc.get("classes", [])]
    if same_task and (classes == perf.classes or not perf.fixed):
        perf.classes = classes
        perf._indices = {c: i for i, c in enumerate(classes)}
        if not (_restore_windows(perf.windows, doc["windows"]) and _restore_windows(perf.expected, doc["expected"])):
            log.warning("performance windows not restored: their widths or shapes differ from this configuration's")
        if clean:
            cumulative = _dense(doc["cumulative"], perf.cumulative)
            if cumulative is not None:
                perf.cumulative[:] = cumulative
    else:
        log.warning("performance windows not restored: the task or the class set differs from this configuration's")
    segments = perf.segments
    saved = doc.get("segments", {})
    same_segments = saved.get("columns") == segments.columns and saved.get("values") == segments.values
    if same_segments and not _restore_windows(segments.windows, saved.get("windows", {})):
        same_segments = False
    joins = analysis.joins
    saved_joins = doc.get("joins", {})
    # a prediction remembered as another task's (a class for a regression) would score wrong: left out
    for rid, at, value, score, keys, joined in saved_joins.get("entries", []) if same_task else ():
        prediction = Prediction(value, score, tuple(int(k) for k in keys) if same_segments else ())
        joins.entries[str(rid)] = Entry(float(at), prediction, bool(joined))
    joins.resize(joins.size, joins.ttl)  # a smaller cache_size now: the oldest go, counted
    if clean:
        joins.outcomes.update({k: int(v) for k, v in saved_joins.get("outcomes", {}).items() if k in joins.outcomes})
        joins.evictions.update({k: int(v) for k, v in saved_joins.get("evictions", {}).items() if k in joins.evictions})
        delays = saved_joins.get("delays", [])
        if len(delays) == len(analysis.delays):
            analysis.delays[:] = [float(d) for d in delays]


def _restore_llm(analysis: Analysis, doc: Any) -> None:
    """The LLM part of the counters, bounded as the live state is: by the routes and the label policy's caps."""
    if doc is None:
        return  # written by a release without it
    model = analysis.config.model
    names = model.max_names + len(model.known) + 2  # "unknown" and "other" too (exporter/labels.py)
    versions = model.max_names + 2
    routes = analysis.config.metrics.routes
    configured = (model.name, model.version, *model.known, *(r.name for r in routes))
    longest = max([MAX_VALUE_CHARS, *(len(v) for v in configured if v)])
    for note in analysis.llm.restore(doc, BUILTIN_ROUTES + len(routes), names * versions, longest):
        log.warning("LLM counters in the state snapshot left out: %s", note)


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
    doc["ground_truth"] = _ground_truth(analysis)
    doc["llm"] = analysis.llm.to_doc()
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
    if "ground_truth" in doc:
        _restore_ground_truth(analysis, doc["ground_truth"], bool(doc.get("clean")))
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
    _restore_llm(analysis, doc.get("llm"))
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
