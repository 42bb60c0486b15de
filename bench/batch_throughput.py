"""`model-exporter batch` throughput on a 20-column Parquet file, beside the reference of just reading it.

A Parquet file of --rows rows (16 numeric float64 columns, 4 string categorical ones; row groups
of 100,000) and a baseline built from a sample of the same distributions are written to a temp
dir. Each round then times, one after the other on the same file:

- `read_table`: pyarrow.parquet.read_table, the whole file into Arrow memory (the floor);
- `read_chunks`: exporter.baseline.readers.read_chunks, the chunked reader batch uses (Arrow →
  numpy / Python lists, flat memory);
- `batch`: the batch job in this process: read_chunks + the worker's ColumnMonitor (drift and
  quality of every column) + the verdict, what `model-exporter batch` does after start-up;
- `batch_cli`: `python -m exporter batch FILE --baseline B --json` end to end, start-up and all.

Rounds are interleaved (--rounds, default 3) and the table shows each figure's median, with
rows/s and the ratio to read_chunks, then the CLI's peak RSS beside the size of the file in
Arrow memory (flat memory: the CLI holds a chunk, not the file). Target: batch >= 200,000 rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from exporter.baseline.build import BuildOptions, build_baseline  # noqa: E402
from exporter.baseline.defaults import DEFAULT_CHUNK_ROWS  # noqa: E402
from exporter.baseline.format import save_baseline  # noqa: E402
from exporter.baseline.readers import Chunk, read_chunks  # noqa: E402
from exporter.batch.job import BatchJob, batch_config, run_job  # noqa: E402
from exporter.batch.output import judge  # noqa: E402
from exporter.config import Config  # noqa: E402

NUMERIC, CATEGORICAL = 16, 4
CATEGORIES = [f"cat{i:02d}" for i in range(12)]
TARGET_ROWS_PER_S = 200_000
# run argv[1:], print its exit status, peak RSS and stdout as JSON
SPAWN = (
    "import json, os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)\n"
    "out = p.stdout.read()\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(json.dumps({'rc': os.waitstatus_to_exitcode(status), 'maxrss_kb': usage.ru_maxrss, 'stdout': out.decode()}))"
)


def columns(rows: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for i in range(NUMERIC):
        data[f"n{i:02d}"] = rng.normal(i, 1 + i / 10, rows) if i % 2 else rng.lognormal(0, 0.7, rows)
    weights = np.linspace(3, 1, len(CATEGORIES))
    weights /= weights.sum()
    for i in range(CATEGORICAL):
        data[f"c{i}"] = np.asarray(CATEGORIES, dtype=object)[rng.choice(len(CATEGORIES), rows, p=weights)]
    return data


def write_inputs(directory: Path, rows: int) -> tuple[Path, Path]:
    data = directory / "scores.parquet"
    writer: pq.ParquetWriter | None = None
    step = 100_000
    for start in range(0, rows, step):
        part = columns(min(step, rows - start), seed=start)
        table = pa.table({k: pa.array(v.tolist() if v.dtype == object else v) for k, v in part.items()})
        writer = writer or pq.ParquetWriter(data, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    sample = columns(50_000, seed=10**9)
    chunk = Chunk({k: v.tolist() if v.dtype == object else v for k, v in sample.items()}, 50_000)
    result = build_baseline(lambda: iter([chunk]), BuildOptions(), files=["bench"], created="2026-01-01T00:00:00Z")
    baseline = directory / "baseline.json"
    save_baseline(result.baseline, baseline)
    return data, baseline


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    rows = fn()
    return time.perf_counter() - start, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="write the medians here too")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        data, baseline = write_inputs(Path(tmp), args.rows)
        print(f"{args.rows:,} rows x {NUMERIC + CATEGORICAL} columns, {data.stat().st_size / 1e6:.1f} MB Parquet; "
              f"{args.rounds} interleaved rounds", flush=True)
        config = batch_config(Config(), str(baseline))

        def read_table() -> int:
            return int(pq.read_table(data).num_rows)

        def chunks() -> int:
            return sum(chunk.rows for chunk in read_chunks(str(data), DEFAULT_CHUNK_ROWS))

        def batch() -> int:
            job = BatchJob(config)
            result = run_job(job, [str(data)], DEFAULT_CHUNK_ROWS)
            judge(result.samples, 0.1, 0.05, [])
            return result.records

        peaks: list[float] = []

        def batch_cli() -> int:
            # through a small helper: a child forked from this process (which holds the file after
            # read_table) would report this process's pages as its own peak RSS
            out = subprocess.run(
                [sys.executable, "-c", SPAWN, sys.executable, "-m", "exporter", "batch", str(data),
                 "--baseline", str(baseline), "--json"],
                cwd=REPO, capture_output=True, text=True, check=False,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            done = json.loads(out.stdout)
            if done["rc"] not in (0, 1):
                raise SystemExit(f"batch CLI failed ({done['rc']}): {out.stderr}")
            peaks.append(done["maxrss_kb"] / 1024)
            return int(json.loads(done["stdout"])["records"])

        runs: dict[str, Callable[[], int]] = {
            "read_table": read_table, "read_chunks": chunks, "batch": batch, "batch_cli": batch_cli,
        }
        arrow_mb = pq.read_table(data).nbytes / 1e6
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(args.rounds):
            for name, fn in runs.items():
                elapsed, rows = timed(fn)
                assert rows == args.rows, (name, rows)
                seconds[name].append(elapsed)
            print(f"round {r + 1}: " + ", ".join(f"{n} {s[-1]:.2f}s" for n, s in seconds.items()), flush=True)

        peak_mb = max(peaks)
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    reference = medians["read_chunks"]
    print(f"\n{'path':<12} {'median s':>9} {'rows/s':>12} {'vs read_chunks':>15}")
    for name, s in medians.items():
        print(f"{name:<12} {s:>9.3f} {args.rows / s:>12,.0f} {reference / s:>14.2f}x")
        spread = max(seconds[name]) / min(seconds[name])
        if spread > 1.5:
            print(f"  note: noisy ({name}: rounds differ {spread:.1f}x); rerun with more --rounds on a quieter machine")
    rate = args.rows / medians["batch"]
    verdict = "PASS" if rate >= TARGET_ROWS_PER_S else "FAIL"
    print(f"\nbatch: {rate:,.0f} rows/s (target >= {TARGET_ROWS_PER_S:,}): {verdict}; "
          f"end to end with start-up: {args.rows / medians['batch_cli']:,.0f} rows/s")
    print(f"batch CLI peak RSS: {peak_mb:,.0f} MB (the file in Arrow memory: {arrow_mb:,.0f} MB; "
          f"chunks of {DEFAULT_CHUNK_ROWS:,} rows)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": args.rows, "seconds": medians}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
