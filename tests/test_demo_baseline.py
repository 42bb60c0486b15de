"""The baseline shipped for docker-compose is exactly what the demo's training data builds."""

from __future__ import annotations

import json
from pathlib import Path

from exporter.baseline.load import load_baseline
from exporter.demo.model_server import FEATURES
from exporter.demo.training import SHIPPED_CREATED, build_demo_baseline

SHIPPED = Path(__file__).parent.parent / "examples" / "demo-baseline.json"


def test_shipped_demo_baseline_is_reproducible(tmp_path: Path) -> None:
    rebuilt = build_demo_baseline(tmp_path, SHIPPED_CREATED)
    assert json.loads(rebuilt.read_text()) == json.loads(SHIPPED.read_text()), \
        "regenerate with: python -m exporter.demo.training DIR && cp DIR/baseline.json examples/demo-baseline.json"


def test_shipped_demo_baseline_covers_the_demo_schema() -> None:
    baseline = load_baseline(SHIPPED)
    assert [c.name for c in baseline.by_role("feature")] == [f.name for f in FEATURES]
    assert [c.name for c in baseline.by_role("prediction")] == ["probability", "label"]
    assert baseline.source.rows == 20_000
