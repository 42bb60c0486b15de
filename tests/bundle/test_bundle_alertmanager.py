"""alertmanager/: amtool accepts the config, routes go where alertmanager/tests/routes.yml says, inhibitions mute what they should."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bundle_support import ALERTMANAGER, alert_rules, load_yaml, require_tool

CONFIG = ALERTMANAGER / "alertmanager.yml"
ROUTES = load_yaml(ALERTMANAGER / "tests" / "routes.yml")
INHIBITIONS = load_yaml(ALERTMANAGER / "tests" / "inhibitions.yml")
# The alerts an outage of the model server or of its sidecar explains (issue 6: latency,
# error and drift; and the traffic drop an outage causes).
MUTED_BY_OUTAGE = {"ModelHighErrorRate", "ModelLatencyBudgetBurn", "ModelAvailabilityBudgetBurn",
                   "ModelTrafficDrop", "ModelFeatureDrift", "ModelPredictionDrift"}


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("amtool"), *args], capture_output=True, text=True, timeout=60)


def test_amtool_check_config() -> None:
    result = _amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", ROUTES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c["labels"].items()))
def test_route(case: dict[str, Any]) -> None:
    labels = [f"{name}={value}" for name, value in case["labels"].items()]
    result = _amtool("config", "routes", "test", f"--config.file={CONFIG}",
                     f"--verify.receivers={','.join(case['receivers'])}", *labels)
    assert result.returncode == 0, f"{case['labels']} → {result.stdout.strip()}, expected {case['receivers']}"


def test_every_severity_the_rules_use_has_its_own_route() -> None:
    severities = {rule["labels"]["severity"] for rule in alert_rules()}
    receivers = {case["labels"].get("severity"): case["receivers"] for case in ROUTES}
    for severity in severities:
        assert severity in receivers, f"no routing case in alertmanager/tests/routes.yml for severity={severity}"
        assert receivers[severity] != ["default"], f"severity={severity} falls through to the default receiver"
    assert receivers["critical"] != receivers["warning"]


def test_grouping_and_default_webhook() -> None:
    config = load_yaml(CONFIG)
    assert config["route"]["group_by"] == ["alertname", "model"]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers[config["route"]["receiver"]]["webhook_configs"][0]["url"].startswith("http")


# -- inhibitions ------------------------------------------------------------------------

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    """Alertmanager matcher semantics: regexes are anchored; a missing label is the empty string."""
    for matcher in matchers:
        name, op, value = _MATCHER.match(matcher).groups()  # type: ignore[union-attr]
        actual = labels.get(name, "")
        ok = {"=": actual == value, "!=": actual != value,
              "=~": re.fullmatch(value, actual) is not None, "!~": re.fullmatch(value, actual) is None}[op]
        if not ok:
            return False
    return True


def _inhibited(rules: list[dict[str, Any]], source: dict[str, str], target: dict[str, str]) -> bool:
    for rule in rules:
        if (_matches(rule["source_matchers"], source) and _matches(rule["target_matchers"], target)
                and all(source.get(label, "") == target.get(label, "") for label in rule.get("equal", []))):
            return True
    return False


@pytest.mark.parametrize("case", INHIBITIONS,
                         ids=lambda c: f"{c['source']['alertname']}-{c['target']['alertname']}-{c['inhibited']}")
def test_inhibition(case: dict[str, Any]) -> None:
    rules = load_yaml(CONFIG)["inhibit_rules"]
    source = {k: str(v) for k, v in case["source"].items()}
    target = {k: str(v) for k, v in case["target"].items()}
    assert _inhibited(rules, source, target) is case["inhibited"]


def test_outages_mute_the_alerts_they_explain_and_only_those() -> None:
    alerts = {rule["alert"] for rule in alert_rules()}
    rules = load_yaml(CONFIG)["inhibit_rules"]
    for source in ("ModelUpstreamDown", "ModelExporterDown"):
        for target in alerts - {source}:
            muted = _inhibited(rules, {"alertname": source, "severity": "critical", "model": "m"},
                               {"alertname": target, "severity": "warning", "model": "m"})
            assert muted is (target in MUTED_BY_OUTAGE), f"{source} → {target}"
    # every alert name an inhibition names exists
    named = {name for rule in rules for m in rule["source_matchers"] + rule["target_matchers"]
             for name in re.findall(r"Model[A-Za-z]+", m)}
    assert named <= alerts, f"inhibit_rules name alerts that do not exist: {sorted(named - alerts)}"


def test_critical_mutes_warning_of_the_same_alert_and_model() -> None:
    rules = load_yaml(CONFIG)["inhibit_rules"]
    assert any(r["source_matchers"] == ['severity="critical"'] and r["target_matchers"] == ['severity="warning"']
               and sorted(r["equal"]) == ["alertname", "model"] for r in rules)


# -- the commented receivers ------------------------------------------------------------

def _uncommented(text: str) -> str:
    """The config with every 'fill in … and uncomment:' block uncommented."""
    lines, out, in_block = text.splitlines(), [], False
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith("#") and stripped.rstrip().endswith("and uncomment:"):
            in_block = True
            continue
        if in_block and stripped.startswith("# "):
            indent = line[: len(line) - len(stripped)]
            out.append(indent + stripped[2:])
            continue
        in_block = False
        out.append(line)
    return "\n".join(out) + "\n"


def test_ready_to_fill_receivers_are_valid_once_uncommented(tmp_path: Path) -> None:
    text = _uncommented(CONFIG.read_text(encoding="utf-8"))
    receivers = {r["name"]: r for r in yaml.safe_load(text)["receivers"]}
    configured = {key for r in receivers.values() for key in r if key.endswith("_configs")}
    assert {"pagerduty_configs", "slack_configs", "email_configs"} <= configured
    path = tmp_path / "alertmanager.yml"
    path.write_text(text, encoding="utf-8")
    result = _amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr

