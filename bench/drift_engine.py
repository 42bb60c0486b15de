"""Drift engine on one core: ingest rate, scrape time and memory of the column monitor, quality checks on.

A baseline of 20 numeric + 5 categorical feature columns is built in memory (exporter.baseline.build)
from generated training data; a ColumnMonitor with the default config (windows 5m and 1h, PSI,
quality on) then ingests micro-batches shaped like the pipeline's (--batch extractions of
--request-rows rows each) on a simulated clock (--traffic rows/s, so both windows roll over):

- `numpy`: numeric columns as float32 arrays (V2 tensors), categorical columns as lists of str;
- `json`:  every column a Python list (what JSON payloads give), with some nulls and unseen categories.

Figures: ingest rows/s per variant (target >= 200,000), the time of `list(collect(now))` once the
critical values are cached (target <= 10 ms; the first scrape is shown apart), RSS growth over
--rows rows after a warm-up (target < 5 MB), and, as a reference, the same scores computed the
plain way from raw arrays of the 1 h window with numpy/scipy. The process pins itself to one CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from scipy import stats  # noqa: E402

from exporter.adapters import Rows  # noqa: E402  (after the path tweak, for runs from a checkout)
from exporter.analyzers.columns import ColumnMonitor  # noqa: E402
from exporter.baseline.build import BuildOptions, build_baseline  # noqa: E402
from exporter.baseline.format import Baseline, CategoricalColumn, NumericColumn  # noqa: E402
from exporter.baseline.readers import Chunk  # noqa: E402
from exporter.config import Config  # noqa: E402
from exporter.drift.statistics import psi  # noqa: E402
from exporter.drift.thresholds import CriticalValues  # noqa: E402
from exporter.events import Extraction  # noqa: E402

NUMERIC, CATEGORICAL = 20, 5
CATEGORIES = [f"cat{i:02d}" for i in range(12)]
TARGETS = {"ingest": 200_000, "scrape_ms": 10.0, "rss_mb": 5.0}


def training_data(rows: int, seed: int) -> dict[str, Any]:
    """Columns of the training set: varied numeric distributions, skewed categories."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for i in range(NUMERIC):
        kind = i % 4
        if kind == 0:
            data[f"n{i:02d}"] = rng.normal(i, 1 + i / 10, rows)
        elif kind == 1:
            data[f"n{i:02d}"] = rng.lognormal(0, 0.7, rows)
        elif kind == 2:
            data[f"n{i:02d}"] = rng.uniform(-5, 5, rows)
        else:
            data[f"n{i:02d}"] = rng.poisson(3 + i, rows).astype(np.float64)
    p = 1 / np.arange(1, len(CATEGORIES) + 1)
    for j in range(CATEGORICAL):
        data[f"c{j}"] = rng.choice(np.array(CATEGORIES), size=rows, p=p / p.sum()).tolist()
    return data


def make_baseline(rows: int, seed: int) -> tuple[Baseline, dict[str, np.ndarray]]:
    """The baseline built from generated training data, and that data as arrays."""
    data = training_data(rows, seed)
    chunks = [Chunk(data, rows)]
    result = build_baseline(lambda: iter(chunks), BuildOptions(), files=("generated",), created="2024-05-01T00:00:00Z")
    return result.baseline, {name: np.asarray(values) for name, values in data.items()}


def live_columns(rows: int, rng: np.random.Generator, train: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`rows` live rows resampled from the training data (no drift)."""
    idx = rng.integers(0, len(train["n00"]), rows)
    return {name: values[idx] for name, values in train.items()}


def make_batches(variant: str, count: int, batch: int, request_rows: int, train: dict[str, np.ndarray],
                 seed: int) -> list[list[Extraction]]:
    """`count` distinct micro-batches (reused cyclically, so generating them costs no ingest time)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        extractions = []
        sample = live_columns(batch * request_rows, rng, train)
        for k in range(batch):
            columns: dict[str, Any] = {}
            for name, values in sample.items():
                part = values[k * request_rows:(k + 1) * request_rows]
                if name.startswith("n") and variant == "numpy":
                    columns[name] = part.astype(np.float32)
                else:
                    columns[name] = part.tolist()
            if variant == "json":  # a little data-quality noise: nulls and unseen categories
                if rng.random() < 0.05:
                    columns["n03"][0] = None
                if rng.random() < 0.05:
                    columns["c1"][0] = "never-seen"
            extractions.append(Extraction("m", "1", Rows(columns, request_rows)))
        out.append(extractions)
    return out


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Clock:
    """Simulated time: each micro-batch advances it by its rows / traffic rate."""

    def __init__(self, traffic: float) -> None:
        self.traffic = traffic
        self.now = 1_700_000_000.0

    def tick(self, rows: int) -> float:
        self.now += rows / self.traffic
        return self.now


def ingest(monitor: ColumnMonitor, batches: list[list[Extraction]], rows: int,
           clock: Clock) -> tuple[float, float, int]:
    """Feed micro-batches until `rows` rows went in; (wall seconds, CPU seconds, rows)."""
    per_batch = sum(e.features.n for e in batches[0] if e.features is not None)
    n_batches = max(1, rows // per_batch)
    times = [clock.tick(per_batch) for _ in range(n_batches)]  # clock arithmetic out of the timed loop
    update = monitor.update
    start, cpu = time.perf_counter(), time.thread_time()
    for i, now in enumerate(times):
        update(batches[i % len(batches)], now)
    return time.perf_counter() - start, time.thread_time() - cpu, n_batches * per_batch


def time_calls(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def reference_scores(baseline: Baseline, train: dict[str, np.ndarray], window: dict[str, np.ndarray]) -> dict[str, float]:
    """Seconds to compute the drift scores from raw arrays of a window, the plain way, per kind of score."""
    timings = {"psi": 0.0, "ks+wasserstein": 0.0}
    for col in baseline.columns:
        raw = window[col.name]
        start = time.perf_counter()
        if isinstance(col, NumericColumn):
            groups = [-np.inf, *(col.edges[g - 1] for g in col.psi_groups[1:]), np.inf]
            expected = np.histogram(train[col.name], bins=groups)[0]
            observed = np.histogram(raw, bins=groups)[0]
        else:
            assert isinstance(col, CategoricalColumn)
            keys, counts = np.unique(raw, return_counts=True)
            lookup = dict(zip(keys.tolist(), counts.tolist()))
            observed = np.array([lookup.get(c, 0) for c in col.categories]
                                + [sum(v for k, v in lookup.items() if k not in col.index)])
            expected = col.counts_array
        psi(expected, observed)
        middle = time.perf_counter()
        if isinstance(col, NumericColumn):
            stats.ks_2samp(raw, train[col.name])
            stats.wasserstein_distance(raw, train[col.name])
        else:
            seen = expected > 0
            stats.chisquare(observed[seen], expected[seen] / expected[seen].sum() * observed[seen].sum())
        end = time.perf_counter()
        timings["psi"] += middle - start
        timings["ks+wasserstein"] += end - middle
    return timings


def pin(cpu: int | None) -> str:
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[-1] if cpu is None else cpu
    os.sched_setaffinity(0, {chosen})
    return f"CPU {chosen} (of {len(allowed)} allowed)"


def row(name: str, value: str, target: str, ok: bool | None) -> str:
    verdict = "" if ok is None else ("PASS" if ok else "FAIL")
    return f"{name:<44} {value:>16}  {target:<12} {verdict}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows ingested in the numpy run (memory measured over it)")
    ap.add_argument("--json-rows", type=int, default=None, help="rows ingested in the json run (default rows/5)")
    ap.add_argument("--batch", type=int, default=256, help="extractions per micro-batch")
    ap.add_argument("--request-rows", type=int, default=8, help="rows per extraction")
    ap.add_argument("--traffic", type=float, default=1000.0, help="simulated rows/s (sets how much the 1 h window holds)")
    ap.add_argument("--train-rows", type=int, default=50_000)
    ap.add_argument("--ref-rows", type=int, default=500_000, help="cap on the raw window rows of the scipy reference")
    ap.add_argument("--scrapes", type=int, default=50)
    ap.add_argument("--cpu", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    where = pin(args.cpu)
    baseline, train = make_baseline(args.train_rows, args.seed)
    config = Config()
    print(f"drift engine: {NUMERIC} numeric + {CATEGORICAL} categorical columns, windows "
          f"{', '.join(n for n, _ in config.drift.windows)}, methods psi, quality on; pinned to {where}")
    print(f"micro-batches of {args.batch} extractions x {args.request_rows} rows; simulated traffic "
          f"{args.traffic:,.0f} rows/s\n")

    results: list[str] = []
    rates: dict[str, float] = {}
    cpu_rates: dict[str, float] = {}
    rss: tuple[int, int] = (0, 0)
    kept: tuple[ColumnMonitor, Clock] | None = None
    json_rows = args.json_rows if args.json_rows is not None else args.rows // 5
    for variant, rows in (("numpy", args.rows), ("json", json_rows)):
        batches = make_batches(variant, 16, args.batch, args.request_rows, train, args.seed + 1)
        monitor = ColumnMonitor(baseline, config, critical=CriticalValues())
        clock = Clock(args.traffic)
        ingest(monitor, batches, 20 * args.batch * args.request_rows, clock)  # warm-up
        list(monitor.collect(clock.now))
        before = rss_bytes()
        seconds, cpu, done = ingest(monitor, batches, rows, clock)
        after = rss_bytes()
        rates[variant] = done / seconds
        cpu_rates[variant] = done / cpu
        if variant == "numpy":
            rss = (before, after)
            kept = (monitor, clock)
        print(f"  ingest {variant}: {done:,} rows in {seconds:.2f} s ({cpu:.2f} s of CPU)")

    # scrape: the numpy run's monitor, its windows full
    assert kept is not None
    monitor, clock = kept
    now = clock.now
    window_rows = {name: int(w.read(now)[-1]) for name, w in monitor.windows.items()}
    first = time_calls(lambda: list(monitor.collect(now)), 1)[0]
    scrape = time_calls(lambda: list(monitor.collect(now)), args.scrapes)
    registry = CollectorRegistry()
    registry.register(_At(monitor, now))
    exposition = time_calls(lambda: generate_latest(registry), max(5, args.scrapes // 5))
    series = sum(len(m.samples) for m in monitor.collect(now))

    # reference: the same scores from the raw values of the 1 h window
    ref_rows = min(window_rows["1h"], args.ref_rows)
    raw = live_columns(ref_rows, np.random.default_rng(args.seed + 2), train)
    ref = reference_scores(baseline, train, raw)

    print(f"  windows hold {', '.join(f'{n}: {r:,} rows' for n, r in window_rows.items())}; a scrape has {series} series\n")
    header = row("figure", "value", "target", None)
    print(header)
    print("-" * len(header))
    for variant, what in (("numpy", "numpy columns"), ("json", "python-list columns (JSON)")):
        results.append(row(f"ingest, {what}", f"{rates[variant]:,.0f} rows/s", f">= {TARGETS['ingest']:,}",
                           rates[variant] >= TARGETS["ingest"]))
        results.append(row("  per CPU second (excludes time descheduled)", f"{cpu_rates[variant]:,.0f} rows/s", "", None))
    med, worst = statistics.median(scrape) * 1e3, max(scrape) * 1e3
    results.append(row("scrape: every score, cached (median)", f"{med:.2f} ms", f"<= {TARGETS['scrape_ms']:g} ms",
                       med <= TARGETS["scrape_ms"]))
    results.append(row("scrape: every score, cached (max)", f"{worst:.2f} ms", "", None))
    results.append(row("scrape: first (critical values computed)", f"{first * 1e3:.2f} ms", "", None))
    results.append(row("scrape: + text exposition (median)", f"{statistics.median(exposition) * 1e3:.2f} ms", "", None))
    growth = (rss[1] - rss[0]) / 2**20
    results.append(row(f"RSS growth over {args.rows:,} rows", f"{growth:+.2f} MB", f"< {TARGETS['rss_mb']:g} MB",
                       growth < TARGETS["rss_mb"]))
    results.append(row(f"reference: PSI, np.histogram, {ref_rows:,} raw rows", f"{ref['psi'] * 1e3:.1f} ms", "", None))
    results.append(row("reference: + scipy ks_2samp/wasserstein/chisq", f"{(ref['psi'] + ref['ks+wasserstein']) * 1e3:.1f} ms",
                       "", None))
    print("\n".join(results))
    mem = NUMERIC + CATEGORICAL
    if ref_rows < window_rows["1h"]:
        print(f"\nreference measured on {ref_rows:,} of the 1 h window's {window_rows['1h']:,} rows (--ref-rows); "
              "its time grows at least linearly with the rows, the monitor's does not")
    print(f"raw 1 h window would hold {window_rows['1h'] * mem * 8 / 2**20:,.0f} MB of values "
          f"({window_rows['1h']:,} rows x {mem} columns x 8 bytes); the monitor's window ring holds "
          f"{sum(w.ring.nbytes for w in monitor.windows.values()) / 2**10:,.0f} KiB")
    return 0


class _At:
    def __init__(self, monitor: ColumnMonitor, now: float) -> None:
        self.monitor, self.now = monitor, now

    def collect(self) -> Any:
        return self.monitor.collect(self.now)


if __name__ == "__main__":
    raise SystemExit(main())
