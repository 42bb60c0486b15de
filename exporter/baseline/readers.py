"""Training data in chunks of rows: CSV, JSON Lines (either optionally gzipped) and Parquet (pyarrow).

Memory is bounded by the chunk size: a reader holds one chunk of rows at a time.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from exporter.baseline.defaults import DEFAULT_CHUNK_ROWS
from exporter.baseline.format import BaselineError
from exporter.events import Extraction
from exporter.predlog import SUFFIXES as PREDLOG_SUFFIXES
from exporter.predlog import PredictionLogError

# A prediction log's records as (path:line, extraction): the worker's adapters, passed in by the CLI
# (this package does not import the worker; exporter/worker/replay.py)
PredlogReader = Callable[[str], Iterator[tuple[str, Extraction]]]

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Chunk:
    """Columns of `rows` rows; a column absent from a file (or a JSON line) is absent or None."""

    columns: dict[str, Sequence[Any] | np.ndarray]
    rows: int


ChunkSource = Callable[[], Iterator[Chunk]]


def data_format(path: str) -> str:
    """csv, jsonl, parquet or predlog, from the file name; BaselineError for anything else."""
    if path.lower().endswith(PREDLOG_SUFFIXES):
        return "predlog"
    name = path.lower().removesuffix(".gz")
    for suffix, kind in FORMATS.items():
        if name.endswith(suffix) and not (kind == "parquet" and path.lower().endswith(".gz")):
            return kind
    raise BaselineError(f"{path}: unknown data format (expected .csv, .jsonl or .ndjson, optionally .gz, or .parquet)")


def open_source(
    paths: Sequence[str], chunk_rows: int = DEFAULT_CHUNK_ROWS, predlog: PredlogReader | None = None
) -> ChunkSource:
    """A re-iterable source over all files in order; checks names and readability up front."""
    for path in paths:
        kind = data_format(path)
        if kind == "predlog" and predlog is None:
            raise BaselineError(f"{path}: a prediction log needs the protocol adapters (model-exporter baseline build)")
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            reason = "no such file" if not os.path.exists(path) else "not a readable file"
            raise BaselineError(f"{path}: cannot read ({reason})")
        if kind == "parquet":
            _pyarrow(path)

    def chunks() -> Iterator[Chunk]:
        for path in paths:
            if predlog is not None and data_format(path) == "predlog":
                yield from predlog_chunks(path, predlog, chunk_rows)
            else:
                yield from read_chunks(path, chunk_rows)

    return chunks


def read_chunks(path: str, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
    """The file's rows in chunks of at most `chunk_rows`."""
    kind = data_format(path)
    if kind == "predlog":
        raise BaselineError(f"{path}: a prediction log is read with predlog_chunks (it needs the protocol adapters)")
    if kind == "parquet":
        yield from _read_parquet(path, chunk_rows)
        return
    try:
        with _open_text(path) as f:
            yield from (_read_csv(f, path, chunk_rows) if kind == "csv" else _read_jsonl(f, path, chunk_rows))
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise BaselineError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def predlog_chunks(path: str, reader: PredlogReader, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
    """A prediction log's rows in chunks: each record's feature and prediction columns side by side.

    A record whose payload the adapters cannot read stops the build (file:line and the reason): a
    baseline must not silently leave traffic out.
    """
    columns: dict[str, list[Any]] = {}
    rows = 0
    try:
        for where, ex in reader(path):
            if ex.errors:
                side, reason = ex.errors[0]
                raise BaselineError(f"{where}: the {side} payload cannot be read ({reason.replace('_', ' ')})")
            n = ex.features.n if ex.features is not None else 0
            for part in (ex.features, ex.predictions):
                if part is None or part.n != n:
                    continue  # no predictions (an error status), or not one per row: features only
                for name, values in part.columns.items():
                    column = columns.get(name)
                    if column is None:
                        column = columns[name] = [None] * rows
                    column.extend(values)
            rows += n
            for column in columns.values():
                if len(column) < rows:
                    column.extend([None] * (rows - len(column)))
            if rows >= chunk_rows:
                yield Chunk(dict(columns), rows)
                columns, rows = {}, 0
    except PredictionLogError as exc:
        raise BaselineError(str(exc)) from None
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if rows:
        yield Chunk(dict(columns), rows)


def _open_text(path: str) -> TextIO:
    if path.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _read_csv(f: TextIO, path: str, chunk_rows: int) -> Iterator[Chunk]:
    reader = csv.reader(f)
    try:
        header = next(reader, None)
        if header is None:
            raise BaselineError(f"{path}: empty file (expected a header row with the column names)")
        for i, name in enumerate(header):
            if not name or name in header[:i]:
                what = "an empty column name" if not name else f"duplicate column name {name!r}"
                raise BaselineError(f"{path}:1: {what} in the header (column {i + 1})")
        rows: list[list[str]] = []
        for row in reader:
            if len(row) != len(header):
                if not row:
                    continue  # a blank line
                raise BaselineError(
                    f"{path}:{reader.line_num}: expected {len(header)} fields as in the header, got {len(row)}"
                )
            rows.append(row)
            if len(rows) == chunk_rows:
                yield Chunk(dict(zip(header, zip(*rows))), len(rows))
                rows = []
    except csv.Error as exc:
        raise BaselineError(f"{path}:{reader.line_num}: unreadable CSV ({exc})") from None
    if rows:
        yield Chunk(dict(zip(header, zip(*rows))), len(rows))


def _read_jsonl(f: TextIO, path: str, chunk_rows: int) -> Iterator[Chunk]:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for lineno, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BaselineError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise BaselineError(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")
        rows.append(obj)
        lines.append(lineno)
        if len(rows) == chunk_rows:
            yield _jsonl_chunk(rows, lines, path)
            rows, lines = [], []
    if rows:
        yield _jsonl_chunk(rows, lines, path)


def _jsonl_chunk(rows: list[dict[str, Any]], lines: list[int], path: str) -> Chunk:
    names = dict.fromkeys(k for row in rows for k in row)
    columns: dict[str, Sequence[Any] | np.ndarray] = {}
    for name in names:
        values = [row.get(name) for row in rows]
        for i, v in enumerate(values):
            if isinstance(v, (dict, list)):
                raise BaselineError(
                    f"{path}:{lines[i]}: column {name!r}: nested {type(v).__name__} values are not "
                    "supported (flatten it into scalar columns)"
                )
        columns[name] = values
    return Chunk(columns, len(rows))


def _pyarrow(path: str) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise BaselineError(
            f"{path}: reading Parquet needs pyarrow, which is not installed "
            "(pip install pyarrow, or convert the file to CSV or JSON Lines)"
        ) from None
    return pq


def _read_parquet(path: str, chunk_rows: int) -> Iterator[Chunk]:
    pq = _pyarrow(path)
    import pyarrow as pa

    try:
        # pre_buffer=False: pre-buffering keeps every row group read so far in Arrow memory until the
        # iterator ends (the whole file, in the end); without it memory stays at a row group or two
        batches = pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=chunk_rows)
        for batch in batches:
            columns: dict[str, Sequence[Any] | np.ndarray] = {}
            for name, arr in zip(batch.schema.names, batch.columns):
                t = arr.type
                if pa.types.is_integer(t):  # exact: an id of 2**53 + 1 must not read as 2**53
                    columns[name] = arr.to_numpy(zero_copy_only=False) if arr.null_count == 0 else arr.to_pylist()
                elif pa.types.is_floating(t):
                    columns[name] = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
                elif pa.types.is_nested(t):
                    raise BaselineError(f"{path}: column {name!r}: nested Arrow type {t} is not supported")
                elif (
                    pa.types.is_boolean(t)
                    or pa.types.is_string(t)
                    or pa.types.is_large_string(t)
                    or pa.types.is_dictionary(t)
                ):
                    columns[name] = arr.to_pylist()
                else:  # dates, timestamps, decimals, binary: their text form
                    columns[name] = [None if v is None else str(v) for v in arr.to_pylist()]
            yield Chunk(columns, batch.num_rows)
    except (OSError, pa.ArrowException) as exc:
        raise BaselineError(f"{path}: cannot read Parquet ({exc})") from None
