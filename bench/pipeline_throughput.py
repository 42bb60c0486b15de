"""Adapter + row extraction throughput on one core: V2 requests with 20 FP32 features.

Scenarios: single-row requests (shape [1, 20]) and 32-row batches (shape [32, 20], flat data
as tritonclient sends it, and nested data). Each is run through the exporter's V2 adapter
(`exporter.adapters.v2.adapter.parse_request`, which parses the body and builds the columns)
and through a reference doing the same work the plain way: `json.loads` and a Python loop
that appends every value to its column. Rounds are interleaved; medians are reported with
the exporter/reference ratio.  Targets: >= 20,000 single-row requests/s and >= 200,000 rows/s
for 32-row batches. The process pins itself to one CPU (--cpu, default the last allowed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporter.adapters import detect  # noqa: E402  (after the path tweak, for runs from a checkout)
from exporter.adapters.base import Message  # noqa: E402
from exporter.adapters.v2 import adapter  # noqa: E402

FEATURES = 20
PATH = "/v2/models/demo/infer"
ROUTE = "/v2/models/{model}/infer"
TARGETS = {"single": ("req/s", 20_000), "batch32": ("rows/s", 200_000), "batch32-nested": ("rows/s", 200_000)}


def make_bodies(rows: int, nested: bool, count: int, seed: int) -> list[bytes]:
    """`count` distinct request bodies, FP32 values printed the way clients print float32."""
    rng = random.Random(seed)
    bodies = []
    for i in range(count):
        values = [float(f"{rng.gauss(0.0, 3.0):.7g}") for _ in range(rows * FEATURES)]
        data: Any = [values[r * FEATURES:(r + 1) * FEATURES] for r in range(rows)] if nested else values
        doc = {"id": f"req-{i:06d}", "inputs": [{"name": "input-0", "shape": [rows, FEATURES], "datatype": "FP32", "data": data}]}
        bodies.append(json.dumps(doc, separators=(",", ":")).encode())
    return bodies


def exporter_parse(body: bytes) -> int:
    return adapter.parse_request(Message(PATH, ROUTE, {}, body)).n


def exporter_detect_parse(body: bytes) -> int:
    request = Message(PATH, ROUTE, {}, body)
    found = detect(request)
    assert found is not None
    return found.parse_request(request).n


def reference_parse(body: bytes) -> int:
    """The plain way: stdlib JSON, then every value appended to its column by a Python loop."""
    doc = json.loads(body)
    columns: dict[str, list[Any]] = {}
    n = 0
    for tensor in doc["inputs"]:
        n, width = tensor["shape"][0], tensor["shape"][1]
        data = tensor["data"]
        flat = [v for row in data for v in row] if data and isinstance(data[0], list) else data
        names = [f"{tensor['name']}[{j}]" for j in range(width)]
        for name in names:
            columns[name] = []
        for i in range(n):
            for j, name in enumerate(names):
                columns[name].append(flat[i * width + j])
    ids = [f"{doc['id']}:{i}" for i in range(n)] if n > 1 else [doc["id"]]
    assert len(ids) == n
    return n


def rate(fn: Callable[[bytes], int], bodies: list[bytes], duration: float) -> tuple[float, float]:
    """(requests/s, rows/s) of `fn` over `bodies`, cycled for about `duration` seconds."""
    requests = rows = 0
    start = time.perf_counter()
    deadline = start + duration
    while True:
        for body in bodies:
            rows += fn(body)
        requests += len(bodies)
        now = time.perf_counter()
        if now >= deadline:
            return requests / (now - start), rows / (now - start)


def pin(cpu: int | None) -> str:
    """Pin this process to one CPU (what `taskset -c` does); say which, or why not."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this platform)"
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1] if cpu is None else cpu
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        return f"not pinned (CPU {cpu}: {exc.strerror})"
    return f"pinned to CPU {cpu}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    scenarios = {
        "single": make_bodies(1, nested=False, count=512, seed=1),
        "batch32": make_bodies(32, nested=False, count=64, seed=2),
        "batch32-nested": make_bodies(32, nested=True, count=64, seed=3),
    }
    variants: dict[str, Callable[[bytes], int]] = {
        "exporter": exporter_parse, "detect+exporter": exporter_detect_parse, "reference": reference_parse}
    for bodies in scenarios.values():  # warm up caches and code paths
        for fn in variants.values():
            rate(fn, bodies, 0.2)
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {s: {v: [] for v in variants} for s in scenarios}
    for _ in range(args.rounds):
        for scenario, bodies in scenarios.items():
            for variant, fn in variants.items():
                samples[scenario][variant].append(rate(fn, bodies, args.duration))
    results: dict[str, Any] = {}
    for scenario, by_variant in samples.items():
        results[scenario] = {variant: {"req_per_s": statistics.median(s[0] for s in runs),
                                       "rows_per_s": statistics.median(s[1] for s in runs),
                                       "spread": max(s[0] for s in runs) / min(s[0] for s in runs)}
                             for variant, runs in by_variant.items()}
    return results


def report(results: dict[str, Any], placement: str, args: argparse.Namespace) -> None:
    print(f"V2 FP32 x {FEATURES} features; {placement}; {args.rounds} interleaved rounds x {args.duration:g} s; medians")
    print(f"{'scenario':16} {'exporter':>26} {'detect+exporter':>26} {'reference (json+loop)':>26} {'ratio':>7}  target")
    noisy = False
    for scenario, res in results.items():
        unit, target = TARGETS[scenario]
        key = "req_per_s" if unit == "req/s" else "rows_per_s"

        def cell(variant: str, res: dict[str, Any] = res) -> str:
            r = res[variant]
            return f"{r['req_per_s']:>9,.0f} req/s {r['rows_per_s']:>9,.0f} rows/s"

        ratio = res["exporter"][key] / res["reference"][key]
        verdict = "PASS" if res["exporter"][key] >= target else "FAIL"
        print(f"{scenario:16} {cell('exporter'):>26} {cell('detect+exporter'):>26} {cell('reference'):>26} "
              f"{ratio:>6.2f}x  >= {target:,} {unit} {verdict}")
        noisy = noisy or any(r["spread"] > 1.5 for r in res.values())
    if noisy:
        print("note: noisy (rounds disagree by more than 1.5x); rerun with more --rounds on a quieter machine")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last one allowed)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=1.5, help="seconds per variant per round")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args(argv)
    placement = pin(args.cpu)
    results = run(args)
    report(results, placement, args)
    if args.json:
        args.json.write_text(json.dumps({"placement": placement, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
