"""alertmanager/: amtool accepts the config, routes go where alertmanager/tests/routes.yml says, inhibitions mute what they should."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from bundle_support import ALERTMANAGER, RULE_TESTS, alert_rules, load_yaml, require_tool
from harness import free_port

CONFIG = ALERTMANAGER / "alertmanager.yml"
ROUTES = load_yaml(ALERTMANAGER / "tests" / "routes.yml")
INHIBITIONS = load_yaml(ALERTMANAGER / "tests" / "inhibitions.yml")
# What an outage explains (issue 6: latency, errors, drift), for the same model and version:
# a model server down makes its version's requests fail and its replica's drift stale; a
# sidecar that is not scraped only leaves its own replica's drift stale.
MUTED_BY_OUTAGE = {
    "ModelUpstreamDown": {"ModelHighErrorRate", "ModelLatencyBudgetBurn", "ModelAvailabilityBudgetBurn",
                          "ModelFeatureDrift", "ModelPredictionDrift"},
    "ModelExporterDown": {"ModelFeatureDrift", "ModelPredictionDrift"},
}
# Labels that tell apart what an alert is about: an inhibition between two alerts that both
# carry one of them must require it equal, or an outage of one model, version or replica
# mutes another's alerts.
SCOPE_LABELS = ("model", "version", "instance")


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


def _alert_label_names() -> dict[str, set[str]]:
    """Alert name → the labels it fires with, from the promtool cases of prometheus/tests."""
    found: dict[str, set[str]] = {}
    for path in RULE_TESTS:
        for group in load_yaml(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    found.setdefault(case["alertname"], set()).update(alert["exp_labels"])
    return found


def _full_labels() -> dict[str, dict[str, str]]:
    """Alert name → labels as it fires (one value per label; `model` = m), for every alert rule."""
    names = _alert_label_names()
    out = {}
    for rule in alert_rules():
        labels = {name: f"{name}-value" for name in names.get(rule["alert"], set())}
        labels.update({"alertname": rule["alert"], "severity": rule["labels"]["severity"], "model": "m"})
        out[f"{rule['alert']}/{rule['labels']['severity']}"] = labels
    return out


def test_outages_mute_the_alerts_they_explain_and_only_those() -> None:
    alerts = _full_labels()
    rules = load_yaml(CONFIG)["inhibit_rules"]
    for source_name, explained in MUTED_BY_OUTAGE.items():
        source = alerts[f"{source_name}/critical"]
        for key, target in alerts.items():
            if target["alertname"] == source_name:
                continue
            shared = {k: source[k] for k in SCOPE_LABELS if k in source and k in target}
            muted = _inhibited(rules, source, {**target, **shared})
            assert muted is (target["alertname"] in explained), f"{source_name} → {key}"
    # every alert name an inhibition names exists
    named = {name for rule in rules for m in rule["source_matchers"] + rule["target_matchers"]
             for name in re.findall(r"Model[A-Za-z]+", m)}
    assert named <= {a["alertname"] for a in alerts.values()}, f"inhibit_rules name alerts that do not exist: {sorted(named)}"


def test_inhibitions_never_cross_models_versions_or_replicas() -> None:
    """For every (source, target) pair a rule covers, each scope label both alerts carry is in `equal`."""
    alerts = _full_labels()
    assert {"instance", "version"} <= set(alerts["ModelFeatureDrift/warning"]), "drift alerts are per replica"
    crossing = []
    for i, rule in enumerate(load_yaml(CONFIG)["inhibit_rules"]):
        equal = set(rule.get("equal", []))
        for source_key, source in alerts.items():
            if not _matches(rule["source_matchers"], source):
                continue
            for target_key, target in alerts.items():
                if target is source or not _matches(rule["target_matchers"], target):
                    continue
                if "alertname" in equal and source["alertname"] != target["alertname"]:
                    continue
                missing = [label for label in SCOPE_LABELS if label in source and label in target and label not in equal]
                if missing:
                    crossing.append(f"inhibit_rules[{i}]: {source_key} → {target_key} without equal {missing}")
    assert not crossing, "\n".join(crossing)


def test_critical_mutes_warning_of_the_same_alert_model_and_version() -> None:
    rules = load_yaml(CONFIG)["inhibit_rules"]
    assert any(r["source_matchers"] == ['severity="critical"'] and r["target_matchers"] == ['severity="warning"']
               and sorted(r["equal"]) == ["alertname", "model", "version"] for r in rules)


# -- inhibitions in a real Alertmanager -------------------------------------------------


def _http(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read()
    return json.loads(text) if text.strip() else None


def _poll(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The shipped routes and inhibit_rules in a real Alertmanager on 127.0.0.1; receivers that send nothing."""
    binary = require_tool("prometheus-alertmanager")
    root = tmp_path_factory.mktemp("alertmanager")
    config = load_yaml(CONFIG)
    config["receivers"] = [{"name": r["name"]} for r in config["receivers"]]
    (root / "alertmanager.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for _ in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = (root / f"log-{port}.txt").open("wb")
        process = subprocess.Popen([binary, f"--config.file={root / 'alertmanager.yml'}",
                                    f"--storage.path={root / f'data-{port}'}", f"--web.listen-address=127.0.0.1:{port}",
                                    "--cluster.listen-address="], stdout=log, stderr=subprocess.STDOUT)
        def started(process: subprocess.Popen[bytes] = process, url: str = url) -> bool:
            return process.poll() is not None or _http(f"{url}/api/v2/status") is not None

        try:
            if _poll(started, 30.0) and process.poll() is None:
                yield url
                return
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            log.close()
    pytest.fail("Alertmanager did not start:\n" + "\n".join(p.read_text(errors="replace")[-3000:]
                                                          for p in root.glob("log-*.txt")))


def _isolated(labels: dict[str, Any], case: int) -> dict[str, str]:
    """A case's labels with its own model values, so that no case's source reaches another case's target."""
    out = {k: str(v) for k, v in labels.items()}
    if "model" in out:
        out["model"] = f"{out['model']}--case{case}"
    return out


@pytest.fixture(scope="module")
def inhibited_in_alertmanager(alertmanager: str) -> dict[int, bool]:
    """Case index → whether Alertmanager reports the case's target inhibited by the case's source."""
    assert all("model" in case["target"] for case in INHIBITIONS), "every target needs a model (case isolation)"
    now = datetime.now(UTC)
    window = {"startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat()}
    sources = [_isolated(case["source"], i) for i, case in enumerate(INHIBITIONS)]
    targets = [_isolated(case["target"], i) for i, case in enumerate(INHIBITIONS)]
    # Alertmanager's inhibitor takes in alerts in the order they arrive: once the last source
    # (a sentinel) mutes its target, every source before it is known.
    sentinel_source = {"alertname": "ModelUpstreamDown", "severity": "critical", "model": "sentinel", "version": "1",
                       "instance": "sentinel:9110"}
    sentinel_target = {"alertname": "ModelHighErrorRate", "severity": "critical", "model": "sentinel", "version": "1"}
    _http(f"{alertmanager}/api/v2/alerts", [{"labels": labels, **window} for labels in sources])
    _http(f"{alertmanager}/api/v2/alerts", [{"labels": sentinel_source, **window}])
    _http(f"{alertmanager}/api/v2/alerts", [{"labels": labels, **window} for labels in [*targets, sentinel_target]])

    def state() -> dict[frozenset[tuple[str, str]], dict[str, Any]]:
        return {frozenset(a["labels"].items()): a["status"] for a in _http(f"{alertmanager}/api/v2/alerts")}

    assert _poll(lambda: state()[frozenset(sentinel_target.items())]["inhibitedBy"], 20.0), \
        "the sentinel target was never inhibited"
    statuses = state()
    out = {}
    for i, target in enumerate(targets):
        status = statuses[frozenset(target.items())]
        assert (status["state"] == "suppressed") is bool(status["inhibitedBy"]), status
        out[i] = bool(status["inhibitedBy"])
    return out


@pytest.mark.integration
@pytest.mark.parametrize("index", range(len(INHIBITIONS)),
                         ids=[f"{c['source']['alertname']}-{c['target']['alertname']}-{c['inhibited']}" for c in INHIBITIONS])
def test_inhibition_in_a_real_alertmanager(index: int, inhibited_in_alertmanager: dict[int, bool]) -> None:
    case = INHIBITIONS[index]
    assert inhibited_in_alertmanager[index] is case["inhibited"], f"{case['source']} → {case['target']}"


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

