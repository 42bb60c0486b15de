"""`model-exporter baseline build|merge`: the baseline file from training data or from partitions."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from exporter.baseline.defaults import DEFAULT_CHUNK_ROWS, DEFAULT_PSI_BINS
from exporter.events import Extraction


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    return parse


def _columns(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def add_baseline_parser(sub: Any) -> None:
    """Add `baseline build` and `baseline merge` to the top-level subparsers."""
    baseline = sub.add_parser("baseline", help="build the training baseline file (or merge partition baselines)")
    actions = baseline.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="baseline from training data (CSV, JSON Lines, Parquet)",
        description="Two passes over the data in chunks; memory does not grow with rows.",
    )
    build.add_argument(
        "data",
        nargs="+",
        metavar="DATA",
        help=".csv, .jsonl/.ndjson (optionally .gz), .parquet, or prediction logs .predlog (optionally .gz)",
    )
    build.add_argument("-o", "--output", required=True, metavar="FILE", help="baseline file to write")
    build.add_argument(
        "--prediction",
        action="extend",
        type=_columns,
        default=[],
        metavar="COL",
        help="a prediction column (repeat, or comma-separate, for several)",
    )
    build.add_argument("--label", metavar="COL", help="the label (ground truth) column")
    build.add_argument(
        "--positive",
        default="1",
        metavar="CLASS",
        help="the positive class of a binary label, for the reference precision, recall, F1 and ROC AUC "
        "(default 1; the same as the config's performance.positive)",
    )
    build.add_argument(
        "--categorical",
        action="extend",
        type=_columns,
        default=[],
        metavar="COL",
        help="treat a column as categorical even if its values are numbers",
    )
    build.add_argument(
        "--exclude",
        action="extend",
        type=_columns,
        default=[],
        metavar="COL",
        help="leave a column out (ids, timestamps)",
    )
    build.add_argument("--top-k", type=_at_least(1), default=50, metavar="K", help="categories kept (default 50)")
    build.add_argument("--bins", type=_at_least(2), default=50, metavar="N", help="fine quantile bins (default 50)")
    build.add_argument(
        "--psi-bins",
        type=_at_least(2),
        default=DEFAULT_PSI_BINS,
        metavar="N",
        help=f"coarse PSI bins (default {DEFAULT_PSI_BINS})",
    )
    build.add_argument(
        "--sample-size",
        type=_at_least(1),
        default=100_000,
        metavar="N",
        help="values sampled per numeric column for the quantiles (default 100000)",
    )
    build.add_argument(
        "--chunk-rows",
        type=_at_least(1),
        default=DEFAULT_CHUNK_ROWS,
        metavar="N",
        help=f"rows read at a time (default {DEFAULT_CHUNK_ROWS})",
    )
    build.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    build.add_argument(
        "--edges-from",
        metavar="BASELINE",
        help="partition mode: take columns, roles, edges and categories from this baseline",
    )
    merge = actions.add_parser(
        "merge",
        help="add up partition baselines built on the same edges",
        description="Counts add; partitions must share edges and categories. "
        "Also seals (adds sha256 to) one file written by another tool.",
    )
    merge.add_argument("parts", nargs="+", metavar="PART")
    merge.add_argument("-o", "--output", required=True, metavar="FILE")
    merge.add_argument("--psi-bins", type=_at_least(2), default=DEFAULT_PSI_BINS, metavar="N")


def run_baseline(
    args: argparse.Namespace,
    *,
    stderr: TextIO | None = None,
    now: datetime | None = None,
    predlog: Callable[[str], Iterator[tuple[str, Extraction]]] | None = None,
) -> int:
    """Run `baseline build|merge`; 0 on success, 2 with a one-line error on a user mistake.

    `predlog`: reads a prediction log's records through the protocol adapters (exporter/worker/replay.py).
    """
    # imported here, not at the top: registering the command must not load numpy (see __init__)
    from exporter.baseline.build import BuildOptions, build_baseline, format_report
    from exporter.baseline.format import BaselineError, save_baseline
    from exporter.baseline.load import load_baseline
    from exporter.baseline.merge import merge_all
    from exporter.baseline.readers import open_source

    err = stderr or sys.stderr
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        if args.baseline_command == "merge":
            parts = [load_baseline(path, require_sha=False) for path in args.parts]
            merged = merge_all(parts, psi_bins=args.psi_bins)
            save_baseline(merged, args.output)
            print(
                f"{args.output}: {len(merged.columns)} columns, {merged.source.rows} rows from "
                f"{len(parts)} partition(s)",
                file=err,
            )
            return 0
        if args.bins < args.psi_bins:
            raise BaselineError(f"--psi-bins: expected at most --bins = {args.bins}, got {args.psi_bins}")
        like = load_baseline(args.edges_from) if args.edges_from else None
        options = BuildOptions(
            predictions=tuple(args.prediction),
            label=args.label,
            categorical=tuple(args.categorical),
            exclude=tuple(args.exclude),
            top_k=args.top_k,
            bins=args.bins,
            psi_bins=args.psi_bins,
            sample_size=args.sample_size,
            seed=args.seed,
            like=like,
            positive=args.positive,
        )
        source = open_source(args.data, args.chunk_rows, predlog)
        result = build_baseline(source, options, files=args.data, created=created)
        print(format_report(result.report), file=err)
        for warning in result.warnings:
            print(f"model-exporter: warning: {warning}", file=err)
        save_baseline(result.baseline, args.output)
        perf = ", ".join(f"{k} {v:.4g}" for k, v in result.baseline.performance.items())
        ignored = ", ".join(f"{c.name} ({c.reason.replace('_', ' ')})" for c in result.baseline.ignored)
        print(
            f"{args.output}: {len(result.baseline.columns)} columns, {result.baseline.source.rows} rows"
            + (f"; ignored: {ignored}" if ignored else "")
            + (f"; reference performance: {perf}" if perf else ""),
            file=err,
        )
        return 0
    except BaselineError as exc:
        print(f"model-exporter: error: {exc}", file=err)
        return 2
