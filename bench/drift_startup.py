"""Start-up: time from a fresh drift monitor to its first fresh scrape, 200 numeric columns, every method.

The worker's monitor (`CriticalValues(background=True)`) never simulates a critical value on
the scrape path: a value that needs a simulation is computed by a background thread and reads
+inf (no alarm) until known. This bench builds a 200-column baseline, loads a monitor per
numeric method (`drift.numeric_methods: [METHOD]`; the default decision's Wasserstein comes
with it), feeds it 300 rows (a window just past drift.min_rows, where PSI, KL and JS need
simulations) and times the first scrape; then how long until the background has every
critical value. Side by side, the same with the simulations on the scrape path (the old
behaviour) on 20 columns.  Target (issue 11): first fresh scrape <= 1 s after start.
Usage: python bench/drift_startup.py [--columns 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporter.adapters import Rows  # noqa: E402
from exporter.analyzers.columns import ColumnMonitor  # noqa: E402
from exporter.baseline import Baseline  # noqa: E402
from exporter.baseline.build import BuildOptions, build_baseline  # noqa: E402
from exporter.baseline.readers import Chunk  # noqa: E402
from exporter.config import Config, DriftConfig  # noqa: E402
from exporter.drift import METHODS  # noqa: E402
from exporter.drift.thresholds import CriticalValues  # noqa: E402
from exporter.events import Extraction  # noqa: E402

WINDOW_ROWS = 300


def first_scrape(baseline: Baseline, method: str, rows: dict[str, list[float]], background: bool) -> tuple[float, float]:
    """(seconds from start to the end of the first scrape, seconds until every critical value is known)."""
    config = dataclasses.replace(Config(), drift=dataclasses.replace(DriftConfig(), numeric_methods=(method,)))
    started = time.perf_counter()
    critical = CriticalValues(background=background)
    monitor = ColumnMonitor(baseline, config, critical=critical)
    now = time.time()
    monitor.update([Extraction("m", "1", Rows(dict(rows), WINDOW_ROWS))], now)
    list(monitor.collect(now))
    scraped = time.perf_counter() - started
    critical.wait()
    return scraped, time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--columns", type=int, default=200)
    ap.add_argument("--old-columns", type=int, default=20, help="columns for the scrape-path comparison")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    train_rows = 20_000
    shapes = [lambda n: rng.normal(0, 1, n), lambda n: rng.lognormal(0, 0.7, n), lambda n: rng.poisson(3, n) * 1.0]
    data = {f"f{i}": shapes[i % 3](train_rows) for i in range(args.columns)}
    baseline = build_baseline(lambda: iter([Chunk(data, train_rows)]), BuildOptions(), files=["synthetic"],
                              created="2024-01-01T00:00:00Z").baseline
    live = {name: list(values[:WINDOW_ROWS]) for name, values in data.items()}
    few = list(baseline.columns[: args.old_columns])
    small = dataclasses.replace(baseline, columns=tuple(few))
    live_small = {c.name: live[c.name] for c in few}
    print(f"{args.columns} numeric columns, a {WINDOW_ROWS}-row window, alpha {DriftConfig().false_alarm_rate}")
    head = ("method", "first scrape (s)", "all critical values (s)",
            f"scrape-path simulation, {args.old_columns} cols (s)", "ratio per column")
    print("  ".join(head))
    worst = 0.0
    for method, spec in METHODS.items():
        if "numeric" not in spec.column_types:
            continue
        scraped, ready = first_scrape(baseline, method, live, background=True)
        old, _ = first_scrape(small, method, live_small, background=False)
        ratio = (old / args.old_columns) / (scraped / args.columns)
        worst = max(worst, scraped)
        print(f"{method:12s}  {scraped:16.3f}  {ready:23.2f}  {old:37.2f}  {ratio:15.0f}x")
    verdict = "PASS" if worst <= 1.0 else "MISS"
    print(f"\nverdict: first fresh scrape <= 1 s for {args.columns} columns, every method: {verdict} "
          f"(worst {worst:.3f} s)")
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
