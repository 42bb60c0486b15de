"""The demo's training data and baseline, drawn from the same distributions the traffic uses."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from exporter.baseline.build import BuildOptions, build_baseline
from exporter.baseline.format import save_baseline
from exporter.baseline.readers import open_source
from exporter.demo.model_server import THRESHOLD, predict
from exporter.demo.traffic import sample_rows

PREDICTIONS = ("probability", "label")  # the model's outputs, as the V2 response names them
GROUND_TRUTH = "outcome"


def write_training_csv(path: Path, rows: int = 20_000, seed: int = 7) -> None:
    """Features, the model's outputs and a ground-truth outcome drawn from its probability."""
    rng = np.random.default_rng(seed)
    columns = sample_rows(rng, rows, drifted=False)
    probability = predict({k: np.asarray(v) for k, v in columns.items()})
    columns["probability"] = [float(p) for p in probability]
    columns["label"] = [int(p >= THRESHOLD) for p in probability]
    columns[GROUND_TRUTH] = [int(u < p) for u, p in zip(rng.random(rows), probability)]
    names = list(columns)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(zip(*(columns[n] for n in names)))


def build_demo_baseline(directory: Path, created: str | None = None) -> Path:
    """Write training.csv and baseline.json into `directory`; returns the baseline path."""
    data = directory / "training.csv"
    write_training_csv(data)
    options = BuildOptions(predictions=PREDICTIONS, label=GROUND_TRUTH, categorical=("label", GROUND_TRUTH))
    created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = build_baseline(open_source([str(data)]), options, files=[data.name], created=created)
    out = directory / "baseline.json"
    save_baseline(result.baseline, out)
    return out


# The baseline shipped for docker-compose (examples/demo-baseline.json) is this build, dated so.
SHIPPED_CREATED = "2026-11-26T00:00:00Z"


if __name__ == "__main__":  # python -m exporter.demo.training DIR: regenerate the shipped baseline
    import sys

    print(build_demo_baseline(Path(sys.argv[1]), SHIPPED_CREATED))
