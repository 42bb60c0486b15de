"""The demo's ground truth: ids as the sidecar derives them, coverage, and the concept drift it injects."""

from __future__ import annotations

import numpy as np

from exporter.demo.traffic import CONCEPT_DRIFT_SHARE, label_records, outcomes


def _response(rid: str, probabilities: list[float]) -> dict[str, object]:
    return {"id": rid, "outputs": [{"name": "probability", "data": probabilities},
                                   {"name": "label", "data": [int(p >= 0.5) for p in probabilities]}]}


def test_records_use_the_row_ids_of_the_sidecar() -> None:
    rng = np.random.default_rng(0)
    assert [r["id"] for r in label_records(rng, _response("demo-1", [0.9]), False, 1.0)] == ["demo-1"]
    assert [r["id"] for r in label_records(rng, _response("demo-2", [0.9, 0.1, 0.5]), False, 1.0)] == [
        "demo-2:0", "demo-2:1", "demo-2:2"]
    assert label_records(rng, _response("demo-3", [0.9, 0.1]), False, 0.0) == []
    assert label_records(rng, {"outputs": []}, False, 1.0) == []


def test_outcomes_follow_the_probability_and_drift_flips_a_share() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 50_000)
    predicted = (p >= 0.5).astype(int)
    calm = np.asarray(outcomes(rng, p.tolist(), drifted=False))
    drifted = np.asarray(outcomes(rng, p.tolist(), drifted=True))
    assert abs(calm.mean() - p.mean()) < 0.01  # calibrated
    accuracy = (calm == predicted).mean()
    expected = (1 - CONCEPT_DRIFT_SHARE) * accuracy + CONCEPT_DRIFT_SHARE * (1 - accuracy)
    assert abs((drifted == predicted).mean() - expected) < 0.01
    assert (drifted == predicted).mean() < accuracy - 0.1
