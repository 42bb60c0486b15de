"""The baseline shipped for docker-compose is what the demo's training data builds."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from exporter.baseline.load import load_baseline
from exporter.demo.model_server import FEATURES
from exporter.demo.training import SHIPPED_CREATED, build_demo_baseline

SHIPPED = Path(__file__).parent.parent / "examples" / "demo-baseline.json"

# Floats are compared to this relative tolerance, not bit for bit: the baseline's edges,
# means and ratios come out of numpy/scipy reductions whose summation order (and so the
# last one or two of the 16 significant digits) changes between releases. 1e-9 is far
# below anything that moves a drift score, far above that rounding noise.
REL_TOL = 1e-9
# The sha256 is computed over the floats' text, so it follows the floats' last digit.
DERIVED_FROM_FLOATS = {"sha256"}


def assert_same_baseline(rebuilt: Any, shipped: Any, path: str = "$") -> None:
    """Structure, keys, counts, strings and categories exactly; floats to REL_TOL."""
    if isinstance(shipped, dict):
        assert isinstance(rebuilt, dict), f"{path}: expected an object"
        assert rebuilt.keys() == shipped.keys(), f"{path}: keys {sorted(rebuilt)} != {sorted(shipped)}"
        for key in shipped:
            if key not in DERIVED_FROM_FLOATS:
                assert_same_baseline(rebuilt[key], shipped[key], f"{path}.{key}")
    elif isinstance(shipped, list):
        assert isinstance(rebuilt, list) and len(rebuilt) == len(shipped), f"{path}: length differs"
        for i, (a, b) in enumerate(zip(rebuilt, shipped)):
            assert_same_baseline(a, b, f"{path}[{i}]")
    elif isinstance(shipped, float):
        assert isinstance(rebuilt, float), f"{path}: expected a float, got {rebuilt!r}"
        assert math.isclose(rebuilt, shipped, rel_tol=REL_TOL, abs_tol=1e-300), f"{path}: {rebuilt!r} != {shipped!r}"
    else:  # int, str, bool, None: exact (counts, names, categories)
        assert type(rebuilt) is type(shipped) and rebuilt == shipped, f"{path}: {rebuilt!r} != {shipped!r}"


def test_shipped_demo_baseline_is_reproducible(tmp_path: Path) -> None:
    rebuilt = build_demo_baseline(tmp_path, SHIPPED_CREATED)
    try:
        assert_same_baseline(json.loads(rebuilt.read_text()), json.loads(SHIPPED.read_text()))
    except AssertionError as exc:
        raise AssertionError(f"{exc}; regenerate with: python -m exporter.demo.training DIR && "
                             "cp DIR/baseline.json examples/demo-baseline.json") from None


def test_the_comparison_catches_what_it_protects() -> None:
    shipped = json.loads(SHIPPED.read_text())
    nudged = json.loads(SHIPPED.read_text())
    nudged["columns"][0]["edges"][1] *= 1 + 1e-14  # rounding noise: accepted
    nudged["sha256"] = "0" * 64
    assert_same_baseline(nudged, shipped)
    for change in (lambda b: b["columns"][0]["edges"].__setitem__(1, b["columns"][0]["edges"][1] * 1.001),
                   lambda b: b["columns"][0].__setitem__("count", 19_999),
                   lambda b: b["columns"].pop()):
        broken = json.loads(SHIPPED.read_text())
        change(broken)
        try:
            assert_same_baseline(broken, shipped)
        except AssertionError:
            continue
        raise AssertionError("a real difference passed the comparison")


def test_shipped_demo_baseline_covers_the_demo_schema() -> None:
    baseline = load_baseline(SHIPPED)
    assert [c.name for c in baseline.by_role("feature")] == [f.name for f in FEATURES]
    assert [c.name for c in baseline.by_role("prediction")] == ["probability", "label"]
    assert baseline.source.rows == 20_000
