"""prometheus/: the config and rules pass promtool, every alert is unit-tested, annotated and has a runbook."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from bundle_support import (
    PROMETHEUS,
    RULE_TESTS,
    RULES,
    RUNBOOK_BASE,
    RUNBOOKS,
    alert_rules,
    load_yaml,
    require_tool,
    rules,
)
from metric_names import recorded_references

from exporter.drift.statistics import EPSILON, psi
from exporter.metrics.definitions import DEFAULT_DURATION_BUCKETS, LLM_TTFT_BUCKETS

# The floor of issue 6, plus the availability-SLO burn alert.
REQUIRED_ALERTS = {
    "ModelExporterDown", "ModelUpstreamDown", "ModelUpstreamNeverReady", "ModelHighErrorRate",
    "ModelLatencyBudgetBurn", "ModelAvailabilityBudgetBurn", "ModelFeatureDrift", "ModelPredictionDrift",
    "ModelMissingValues", "ModelOutOfRangeValues", "ModelSchemaMismatch", "ModelTrafficDrop", "ModelTrafficSpike",
    "ModelPerformanceDrop", "ModelGPUMemoryNearFull", "ModelServerMemoryNearLimit",
    "ModelExporterDroppingEvents", "ModelExporterConfigReloadFailed",
    "ModelBatchJobStale", "ModelBatchJobFailed", "ModelBatchDrift", "ModelBatchDataQuality",
    "ModelTimeToFirstTokenBudgetBurn", "ModelLLMLengthFinishRising",
}
# Alerts about the sidecar process rather than a model: no `model` in their description.
NOT_MODEL_LEVEL = {"ModelExporterDroppingEvents", "ModelExporterConfigReloadFailed"}
# Alerts on a state (down, failed) rather than a measured value: no $value in the description.
STATE_ALERTS = {"ModelExporterDown", "ModelUpstreamDown", "ModelUpstreamNeverReady", "ModelExporterConfigReloadFailed",
                "ModelBatchJobFailed"}
# Alerts per column: the description names it.
COLUMN_ALERTS = {"ModelFeatureDrift", "ModelPredictionDrift", "ModelMissingValues", "ModelOutOfRangeValues"}
WINDOW_ROWS_ALERTS = COLUMN_ALERTS
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=PROMETHEUS.parent)


def _alerts_by_name() -> dict[str, list[dict[str, Any]]]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rule in alert_rules():
        by_name.setdefault(rule["alert"], []).append(rule)
    return by_name


# -- promtool ---------------------------------------------------------------------------

def test_promtool_check_config() -> None:
    promtool = require_tool("promtool")
    result = _run(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    # rule_files resolve relative to the config file: all of them were found
    assert f"{len(RULES)} rule files found" in result.stdout, result.stdout


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    result = _run(promtool, "check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    """All files of prometheus/tests at once, one promtool each (it runs a file's tests serially)."""
    promtool = require_tool("promtool")
    processes = {path.name: subprocess.Popen([promtool, "test", "rules", str(path)], stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True)
                 for path in RULE_TESTS}
    failures = []
    for name, process in processes.items():
        output, _ = process.communicate(timeout=120)
        if process.returncode != 0:
            failures.append(f"--- {name}\n{output}")
    assert not failures, "\n".join(failures)


# -- the config -------------------------------------------------------------------------

def test_prometheus_config_scrapes_the_sidecar_and_alerts_to_alertmanager() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["model-exporter"]["static_configs"] for t in sc["targets"]]
    assert targets == ["model-exporter:9110"]
    alertmanagers = [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    assert alertmanagers == ["alertmanager:9093"]
    # the rules select the sidecar's `up` by this job name
    selectors = set(re.findall(r'up\{job="([^"]+)"\}', " ".join(r["expr"] for r in alert_rules())))
    assert selectors == {"model-exporter"}


def test_rule_tests_load_the_rules_they_exercise() -> None:
    """Each test file loads the alerts it tests and every recording rule they depend on (transitively)."""
    records = _records()
    used: set[Path] = set()
    for path in RULE_TESTS:
        document = load_yaml(path)
        loaded = {p.resolve() for pattern in document["rule_files"] for p in path.parent.glob(pattern)}
        used |= loaded
        loaded_rules = [rule for p in loaded for group in load_yaml(p)["groups"] for rule in group["rules"]]
        loaded_alerts = {rule["alert"]: rule for rule in loaded_rules if "alert" in rule}
        needed: set[str] = set()
        for group in document["tests"]:
            for case in group.get("alert_rule_test", []):
                assert case["alertname"] in loaded_alerts, f"{path.name} tests {case['alertname']} without loading it"
                needed |= {ref for rule in loaded_rules if rule.get("alert") == case["alertname"]
                           for ref in recorded_references(rule["expr"])}
            for case in group.get("promql_expr_test", []):
                needed |= recorded_references(case["expr"])
        pending = set(needed)
        while pending:  # the recording rules those depend on
            name = pending.pop()
            new = recorded_references(records.get(name, "")) - needed
            needed |= new
            pending |= new
        missing = needed - {rule["record"] for rule in loaded_rules if "record" in rule}
        assert not missing, f"{path.name} does not load the recording rules {sorted(missing)}"
    assert used == {p.resolve() for p in RULES}, "rule files no unit test loads"


# -- alerts -----------------------------------------------------------------------------

def test_required_alerts_exist() -> None:
    missing = REQUIRED_ALERTS - set(_alerts_by_name())
    assert not missing, f"alerts missing from prometheus/rules: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(REQUIRED_ALERTS))
def test_alert_has_severity_and_annotations(name: str) -> None:
    for rule in _alerts_by_name()[name]:
        assert rule["labels"]["severity"] in {"critical", "warning"}
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}
        assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{name.lower()}"
        description = annotations["description"]
        if name not in NOT_MODEL_LEVEL:
            assert "$labels.model" in description
        if name not in STATE_ALERTS:
            assert "$value" in description
        if name in COLUMN_ALERTS:
            assert "$labels.column" in description


def test_budget_burn_alerts_page_fast_and_ticket_slow() -> None:
    by_name = _alerts_by_name()
    for name in ("ModelLatencyBudgetBurn", "ModelAvailabilityBudgetBurn", "ModelTimeToFirstTokenBudgetBurn"):
        assert sorted(r["labels"]["severity"] for r in by_name[name]) == ["critical", "warning"]
        windows = {s: set(re.findall(r"burn_rate:rate(\w+)", r["expr"])) for r in by_name[name]
                   for s in [r["labels"]["severity"]]}
        assert windows == {"critical": {"5m", "1h", "30m", "6h"}, "warning": {"2h", "1d", "6h", "3d"}}


def test_data_alerts_need_a_minimum_window_and_honour_thresholds() -> None:
    by_name = _alerts_by_name()
    floors = set()
    for name in WINDOW_ROWS_ALERTS:
        (rule,) = by_name[name]
        match = re.search(r"model_window_rows\s*>=\s*(\d+)", rule["expr"])
        assert match, f"{name} does not require model_window_rows >= N"
        floors.add(int(match.group(1)))
    assert len(floors) == 1, f"the drift and quality alerts disagree on the minimum window: {floors}"
    for name in ("ModelFeatureDrift", "ModelPredictionDrift"):
        (rule,) = by_name[name]
        # one mechanism: the sidecar's decision, which honours each column's floor and the window's size
        assert re.search(r"model_drift_detected\s*==\s*1", rule["expr"])
        assert "model_drift_threshold" not in rule["expr"]


@cache
def _rule_test_cases() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, case) for path in RULE_TESTS for group in load_yaml(path)["tests"]
            for case in group.get("alert_rule_test", [])]


@pytest.mark.parametrize("name", sorted(REQUIRED_ALERTS))
def test_alert_is_unit_tested_firing_and_quiet(name: str) -> None:
    cases = [case for _, case in _rule_test_cases() if case["alertname"] == name]
    quiet = [case for case in cases if not case.get("exp_alerts")]
    assert quiet, f"no promtool case where {name} must not fire"
    fired = [alert for case in cases for alert in case.get("exp_alerts") or []]
    for rule in _alerts_by_name()[name]:
        severity = rule["labels"]["severity"]
        matching = [a for a in fired if a["exp_labels"].get("severity") == severity]
        assert matching, f"no promtool case where {name} fires with severity {severity}"
        for alert in matching:
            assert set(alert.get("exp_annotations", {})) == {"summary", "description", "runbook_url"}


def test_recording_rules_with_exact_values_are_tested() -> None:
    tested = " ".join(case["expr"] for path in RULE_TESTS for group in load_yaml(path)["tests"]
                      for case in group.get("promql_expr_test", []))
    for name in ("model:slo_latency_burn_rate:", "model:slo_availability_burn_rate:", "model:column_psi:1h",
                 "model:column_bin:live_ratio1h", "model:request_error_ratio:", "model:rows:rate1h_week_ago",
                 "model:slo_ttft_burn_rate:", "model:llm_length_finish_ratio:rate1h"):
        assert name in tested, f"no promql_expr_test covers {name}"


# -- SLOs -------------------------------------------------------------------------------

def _records() -> dict[str, str]:
    return {rule["record"]: rule["expr"] for _, rule in rules() if "record" in rule}


def test_slo_objectives_are_set_in_one_place() -> None:
    records = _records()
    slo_rules = [rule for path, rule in rules() if path.name == "slo.yml"]
    objectives = [r for r in slo_rules if r.get("record", "").endswith("_objective")]
    assert sorted(r["record"] for r in objectives) == [
        "model:slo_availability_objective", "model:slo_latency_objective", "model:slo_ttft_objective"]
    for slo in ("availability", "latency", "ttft"):
        assert records[f"model:slo_{slo}_error_budget"] == f"1 - model:slo_{slo}_objective"
        for window in SLO_WINDOWS:
            expr = records[f"model:slo_{slo}_burn_rate:rate{window}"]
            assert f"group_left model:slo_{slo}_error_budget" in expr
    # the latency threshold: one constant, and the bucket every latency SLI rule selects
    threshold = float(re.fullmatch(r"vector\((.+)\)", records["model:slo_latency_threshold_seconds"]).group(1))
    assert threshold in DEFAULT_DURATION_BUCKETS
    buckets = {float(le) for name, expr in records.items() for le in re.findall(r'le="([^"]+)"', expr)
               if name.startswith("model:request_slow_ratio:")}
    assert buckets == {threshold}
    assert {f"model:request_slow_ratio:rate{w}" for w in SLO_WINDOWS} <= set(records)
    assert {f"model:request_error_ratio:rate{w}" for w in SLO_WINDOWS} <= set(records)
    # the time-to-first-token threshold likewise, a boundary of the TTFT histogram
    threshold = float(re.fullmatch(r"vector\((.+)\)", records["model:slo_ttft_threshold_seconds"]).group(1))
    assert threshold in LLM_TTFT_BUCKETS
    buckets = {float(le) for name, expr in records.items() for le in re.findall(r'le="([^"]+)"', expr)
               if name.startswith("model:llm_ttft_slow_ratio:")}
    assert buckets == {threshold}
    assert {f"model:llm_ttft_slow_ratio:rate{w}" for w in SLO_WINDOWS} <= set(records)


# -- runbooks ---------------------------------------------------------------------------

def _runbook_sections() -> dict[str, str]:
    text = RUNBOOKS.read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_alert_has_a_runbook_section_and_no_section_is_stale() -> None:
    sections = _runbook_sections()
    alerts = set(_alerts_by_name())
    assert set(sections) == alerts
    for name, body in sections.items():
        assert "**Meaning.**" in body and "**Check first.**" in body, name
        # GitHub's anchor for "## ModelFeatureDrift" is #modelfeaturedrift
        assert re.fullmatch(r"[A-Za-z]+", name)


def test_runbook_urls_point_at_this_file() -> None:
    assert RUNBOOK_BASE.endswith("/" + RUNBOOKS.relative_to(PROMETHEUS.parent).as_posix())


# -- fleet drift ------------------------------------------------------------------------

def test_fleet_psi_rule_smooths_like_the_exporter() -> None:
    """drift.yml clamps with the exporter's epsilon, and its promtool case equals exporter.drift.statistics.psi."""
    clamped = {name: expr for name, expr in _records().items() if expr.lstrip().startswith("clamp_min(")}
    assert set(clamped) == {"model:column_bin:baseline_ratio", "model:column_bin:live_ratio1h"}
    for name, expr in clamped.items():
        floor = re.search(r",\s*([0-9.eE+-]+)\s*\)\s*$", expr)
        assert floor and float(floor.group(1)) == EPSILON, name
    (case,) = [case for path in RULE_TESTS for group in load_yaml(path)["tests"]
               for case in group.get("promql_expr_test", []) if "model:column_psi:1h" in case["expr"]]
    (sample,) = case["exp_samples"]
    # the case: baseline a 0.5, b 0.4, c 0.1; live over both replicas a 180, b 60, c 0
    assert sample["value"] == round(psi([0.5, 0.4, 0.1], [180, 60, 0]), 6)
