"""`run --tail` throughput on one core: a prediction log of V2 requests with 20 features.

The file is written once (--lines records; each a V2 infer request of 20 one-value FP64 inputs
and its response, as the prediction store writes them). Then, in interleaved rounds:

- reference: read the file line by line and `json.loads` each line (the least any reader does);
- tail: what the sidecar's proxy process does per line under `run --tail` (exporter/sources/tail.py):
  the follower reads whole lines from the file, the prediction log parser validates each record
  (base64/UTF-8 bodies included), the route and label policy decide its labels, the traffic
  metrics count it, and an Event is handed to the link. The link here only counts what it is
  handed: the worker's payload parsing is another process (bench/pipeline_throughput.py).

Medians of the rounds, lines per second, and the tail/reference ratio. Target: >= 20,000 lines/s.
The process pins itself to one CPU (--cpu, default the last allowed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporter.config import Config, TailConfig, TailSource  # noqa: E402  (after the path tweak)
from exporter.events import Event  # noqa: E402
from exporter.labels import LabelPolicy  # noqa: E402
from exporter.metrics.definitions import DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS  # noqa: E402
from exporter.predlog import Body, PredictionRecord, encode  # noqa: E402
from exporter.proxy.routes import RouteTable  # noqa: E402
from exporter.proxy.stats import TrafficStats  # noqa: E402
from exporter.sources.tail import Tailer  # noqa: E402

FEATURES = 20
TARGET = 20_000


def write_log(path: str, lines: int, seed: int) -> int:
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for i in range(lines):
            inputs = [
                {"name": f"f{j}", "shape": [1], "datatype": "FP64", "data": [round(rng.gauss(0, 3), 6)]}
                for j in range(FEATURES)
            ]
            request = json.dumps({"id": f"r{i}", "inputs": inputs}, separators=(",", ":")).encode()
            response = json.dumps(
                {
                    "model_name": "demo",
                    "outputs": [{"name": "score", "shape": [1], "datatype": "FP64", "data": [rng.random()]}],
                },
                separators=(",", ":"),
            ).encode()
            f.write(
                encode(
                    PredictionRecord(
                        time=1.7e9 + i,
                        status=200,
                        model="demo",
                        id=f"r{i}",
                        route="/v2/models/demo/infer",
                        duration=0.004,
                        request=Body(request, "application/json"),
                        response=Body(response, "application/json"),
                    )
                )
            )
    return os.path.getsize(path)


class CountingLink:
    """Takes every event (queue never full); counts them."""

    max_queue = 1 << 30
    queue_depth = 0
    up = True

    def __init__(self) -> None:
        self.events = 0

    def submit(self, event: Event) -> None:
        self.events += 1

    def drop(self, reason: str) -> None:
        raise AssertionError(reason)


def reference(path: str, lines: int) -> float:
    started = time.perf_counter()
    n = 0
    with open(path, "rb") as f:
        for line in f:
            json.loads(line)
            n += 1
    assert n == lines
    return time.perf_counter() - started


def tail(path: str, lines: int) -> float:
    config = Config(tail=TailConfig(sources=(TailSource(path),), from_start=True))
    stats = TrafficStats(DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS, labels=LabelPolicy())
    link = CountingLink()
    started = time.perf_counter()
    tailer = Tailer(config, stats, RouteTable(), link)
    while tailer.step():
        pass
    elapsed = time.perf_counter() - started
    tailer.follower.close()
    assert link.events == lines and sum(tailer.records) == lines, (link.events, tailer.records)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last allowed)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    allowed = sorted(os.sched_getaffinity(0))
    cpu = args.cpu if args.cpu is not None else allowed[-1]
    os.sched_setaffinity(0, {cpu})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "traffic.predlog")
        size = write_log(path, args.lines, args.seed)
        print(
            f"prediction log: {args.lines} lines, {size / args.lines:.0f} bytes/line, 20-feature V2 bodies; CPU {cpu}"
        )
        runs: dict[str, list[float]] = {"reference": [], "tail": []}
        paths: dict[str, Callable[[str, int], float]] = {"reference": reference, "tail": tail}
        for _ in range(args.rounds):  # interleaved: drift on a shared machine hits both alike
            for name, run in paths.items():
                runs[name].append(args.lines / run(path, args.lines))
    ref, got = statistics.median(runs["reference"]), statistics.median(runs["tail"])
    print(f"{'path':<10} {'lines/s (median)':>17} {'min':>10} {'max':>10}")
    for name, rates in runs.items():
        print(f"{name:<10} {statistics.median(rates):>17,.0f} {min(rates):>10,.0f} {max(rates):>10,.0f}")
    verdict = "meets" if got >= TARGET else "MISSES"
    print(f"tail / reference: {got / ref:.2f}x; target >= {TARGET:,} lines/s: {verdict}")
    return 0 if got >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
