"""Labels on one core: joining POST /feedback labels to cached predictions and scoring them, and memory.

The worker's Analysis with the default windows (5m, 1h) caches prediction rows of a binary
classifier with a score (the demo model's outputs: a class and a probability), segmented by one
column; labels then arrive in batches of --batch, as the proxy hands them over, most matching,
some unknown and some duplicates. Prints:

- labels/s through Analysis.labels (join, delay histogram, confusion cells, score histograms,
  segments, outcome values), target >= 50,000;
- the same with the reference: plain Python dict lookups and sklearn's metrics on the arrays,
  to show what the windows cost;
- resident memory growth over --labels labels after a warm-up of 500,000 (the cache is full from
  the start, so it is the growth of everything else), target: flat. Measured: +12 MB over 2 M
  labels and the same +12 MB over 6 M (the allocator's working set for the churn, not a leak).
The process pins itself to one CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporter.adapters import Rows  # noqa: E402  (after the path tweak)
from exporter.analyzers.performance import Prediction  # noqa: E402
from exporter.config import Config, LabelsConfig, PerformanceConfig  # noqa: E402
from exporter.events import Feedback, Label  # noqa: E402
from exporter.worker.analysis import Analysis  # noqa: E402

CACHE = 100_000


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def analysis() -> Analysis:
    config = dataclasses.replace(
        Config(),
        labels=LabelsConfig(cache_size=CACHE, ttl=3600.0),
        performance=PerformanceConfig(prediction="label", score="probability", segments=("region",)),
    )
    return Analysis(config)


def fill(a: Analysis, start: int, n: int, now: float, rng: np.random.Generator) -> None:
    """Put n predictions with ids start.. into the cache directly (extraction is benchmarked elsewhere)."""
    scores = rng.random(n)
    regions = rng.integers(0, 4, n)
    segments = [a.performance.segments.keys(Rows({"region": [r]}, 1), 1)[0] for r in ("n", "s", "e", "w")]
    for i in range(n):
        s = float(scores[i])
        a.joins.add(f"r{start + i}", now, Prediction("1" if s >= 0.5 else "0", s, segments[int(regions[i])]))


def batches(start: int, n: int, batch: int, rng: np.random.Generator) -> list[list[Label]]:
    labels = []
    for i in range(n):
        r = rng.random()
        rid = f"r{start + i}" if r < 0.9 else f"r{start + i - 1}" if r < 0.95 else f"unknown{i}"
        labels.append(Label(rid, int(rng.random() < 0.5), None, float(rng.uniform(0, 100))))
    return [labels[k : k + batch] for k in range(0, n, batch)]


def run(labels: int, batch: int) -> None:
    rng = np.random.default_rng(0)
    a = analysis()
    now = time.time()
    fill(a, 0, CACHE, now, rng)
    work = batches(0, CACHE, batch, rng)
    started = time.perf_counter()
    for b in work:
        a.labels(Feedback(now + 10, b, 0))
    elapsed = time.perf_counter() - started
    list(a.collect())
    print(f"join + score: {CACHE / elapsed:,.0f} labels/s ({batch}-label batches; target >= 50,000)")

    # reference: a dict join and sklearn on the arrays, no windows
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    cache = {f"r{i}": (int(s >= 0.5), float(s)) for i, s in enumerate(rng.random(CACHE))}
    flat = [label for b in work for label in b]
    started = time.perf_counter()
    y, yhat, s = [], [], []
    for label in flat:
        hit = cache.get(label.id)
        if hit is not None:
            y.append(label.label)
            yhat.append(hit[0])
            s.append(hit[1])
    accuracy_score(y, yhat), f1_score(y, yhat), roc_auc_score(y, s)
    reference = time.perf_counter() - started
    print(f"reference (dict join + sklearn once, no windows): {len(flat) / reference:,.0f} labels/s")

    # memory over many labels: predictions keep coming (the cache stays full), labels follow them;
    # measured after a warm-up of 500,000 labels (the allocator's working set for the churn)
    sent = CACHE
    chunk = 50_000
    before = 0.0
    while sent < CACHE + 500_000 + labels:
        if sent == CACHE + 500_000:
            before = rss_mb()
        fill(a, sent, chunk, now, rng)
        for b in batches(sent, chunk, batch, rng):
            a.labels(Feedback(now + 10, b, 0))
        sent += chunk
    list(a.collect())
    print(f"RSS growth over {labels:,} labels: {rss_mb() - before:+.1f} MB (target: flat, < 5 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=10_000_000, help="labels for the memory check")
    parser.add_argument("--batch", type=int, default=500, help="labels per POST")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    run(args.labels, args.batch)


if __name__ == "__main__":
    main()
