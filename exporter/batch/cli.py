"""`model-exporter batch DATA... --baseline FILE [--push URL | --textfile DIR] [--json]`: the command line.

Exit status for a scheduler: 0 no drift and quality within limits, 1 drift or a quality failure,
2 an error (the message names the file, row, column or flag). The parser is all that `exporter.cli`
loads at start; the job (numpy, the analyzers) is imported when the command runs (batch/run.py).
"""

from __future__ import annotations

import argparse
from typing import Any

from exporter.baseline.defaults import DEFAULT_CHUNK_ROWS

DEFAULT_JOB = "model-exporter-batch"


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_batch_parser(sub: Any) -> None:
    batch = sub.add_parser(
        "batch",
        help="drift, quality and performance of a batch job's records; results to a Pushgateway or a textfile",
        description="Reads the files in chunks (memory does not grow with rows) through the sidecar's analyzers. "
        "Exit status: 0 clean, 1 drift or data-quality failure, 2 error.",
    )
    batch.add_argument(
        "data", nargs="+", metavar="DATA", help=".csv, .jsonl/.ndjson (optionally .gz), .parquet, or a prediction log"
    )
    batch.add_argument("--baseline", required=True, metavar="FILE", help="baseline built by `baseline build`")
    out = batch.add_mutually_exclusive_group()
    out.add_argument("--push", metavar="URL", help="Pushgateway base URL, e.g. http://pushgateway:9091")
    out.add_argument("--textfile", metavar="DIR", help="node_exporter textfile collector directory")
    batch.add_argument("--json", action="store_true", help="the summary as JSON on stdout")
    batch.add_argument("--config", metavar="FILE", help="sidecar config: its model, drift, quality and performance")
    batch.add_argument("--model", metavar="NAME", help="model label value")
    batch.add_argument("--model-version", metavar="V", help="version label value")
    batch.add_argument(
        "--job", default=DEFAULT_JOB, metavar="NAME", help=f"job label / grouping key (default {DEFAULT_JOB})"
    )
    batch.add_argument(
        "--instance", metavar="NAME", help="instance grouping key of the push (default: the model label value)"
    )
    batch.add_argument("--label", metavar="COL", help="ground-truth column (default: the baseline's label column)")
    batch.add_argument(
        "--exclude", action="append", default=[], metavar="COL", help="a data column to leave out (ids, timestamps)"
    )
    batch.add_argument(
        "--max-missing", type=_fraction, default=0.1, metavar="F", help="missing values per column (default 0.1)"
    )
    batch.add_argument(
        "--max-out-of-range",
        type=_fraction,
        default=0.05,
        metavar="F",
        help="values outside the baseline's range per column (default 0.05)",
    )
    batch.add_argument("--chunk-rows", type=_positive, default=DEFAULT_CHUNK_ROWS, metavar="N", help=argparse.SUPPRESS)


def run_batch(args: argparse.Namespace) -> int:
    from exporter.batch.run import run

    return run(args)
