"""The config checks that need the baseline: pure functions, each error naming the YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.baseline.load import load_baseline
from exporter.config import DRIFT_METHODS, ConfigError, from_dict
from exporter.drift.methods import METHODS
from exporter.worker.checks import check_against_baseline, load_checked_baseline

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-baseline.json"


def test_config_names_exactly_the_registered_drift_methods() -> None:
    assert DRIFT_METHODS == tuple(METHODS)


def test_a_fitting_config_passes() -> None:
    config = from_dict({"drift": {"columns": {"age": {"method": "ks", "threshold": 0.2},
                                              "region": {"method": ["chisquare", "psi"]}}},
                        "quality": {"bounds": {"income": {"min": 0}}}})
    check_against_baseline(config, load_baseline(DEMO))


@pytest.mark.parametrize("raw,message", [
    ({"drift": {"columns": {"agee": {"method": "ks"}}}},
     "drift.columns.agee: the baseline has no feature or prediction column 'agee' (its columns: age, credit_score, "
     "debt_ratio, income, label, probability, region, tenure_months)"),
    ({"drift": {"columns": {"outcome": {"method": "psi"}}}},
     "drift.columns.outcome: the baseline has no feature or prediction column 'outcome'"),
    ({"quality": {"bounds": {"region": {"min": 0}}}},
     "quality.bounds.region: bounds apply to numeric columns; 'region' is categorical"),
    ({"drift": {"columns": {"age": {"method": "chisquare"}}}},
     "drift.columns.age.method: drift method 'chisquare' does not apply to numeric columns"),
    ({"drift": {"numeric_methods": ["psi", "linf"]}},
     "drift.numeric_methods: drift method 'linf' does not apply to numeric columns"),
    ({"drift": {"categorical_methods": ["ks"]}},
     "drift.categorical_methods: drift method 'ks' does not apply to categorical columns"),
    ({"drift": {"columns": {"region": {"method": "psi", "threshold": {"wasserstein": 0.3}}}}},
     "drift.columns.region.threshold.wasserstein: drift method 'wasserstein' does not apply to categorical columns"),
])
def test_settings_that_do_not_fit_the_baseline_name_their_path(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_against_baseline(from_dict(raw), load_baseline(DEMO))
    assert str(err.value).startswith(message)


def test_an_unreadable_baseline_is_a_config_error(tmp_path: Path) -> None:
    assert load_checked_baseline(from_dict({})) is None
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=str(missing)):
        load_checked_baseline(from_dict({"baseline": str(missing)}))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match=str(broken)):
        load_checked_baseline(from_dict({"baseline": str(broken)}))
