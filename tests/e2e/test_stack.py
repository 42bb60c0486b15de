"""End to end: model server → two sidecars → Prometheus (shipped rules) → Alertmanager → webhook.

One stack per module (conftest.py `stack`); each test asks for the phases it needs
(drifted traffic, the drift alert delivered, the model server stopped), which run once, in
that order, whichever test comes first. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any, NamedTuple

import pytest
from bundle_support import DASHBOARDS, panels
from e2e_stack import DRIFTED_COLUMN, STABLE_NUMERIC, Stack, get_json, iter_samples
from harness import wait_until

from exporter.demo.model_server import MODEL_NAME, MODEL_VERSION
from exporter.drift.statistics import psi

pytestmark = pytest.mark.integration

WINDOWS = ("5m", "1h")
# Alerts that ModelUpstreamDown must mute for the same model (alertmanager.yml, inhibit_rules).
# ModelTrafficDrop has no version label, so no inhibition can match it to one version's outage.
MUTED_BY_UPSTREAM_DOWN = {"ModelHighErrorRate", "ModelLatencyBudgetBurn", "ModelAvailabilityBudgetBurn",
                          "ModelFeatureDrift", "ModelPredictionDrift"}


class NoData(NamedTuple):
    reason: str
    # True where another machine could have data (a GPU, a cgroup memory limit): then data is
    # fine. False where the test can never have any: data there means the entry is stale.
    machine_dependent: bool = False


# THE panels (or one target of a panel: "title / refId", or a variable: "$name") that cannot
# have data in this test, with the reason. Every other dashboard query must return data.
NO_DATA: dict[str, NoData] = {
    "GPU utilisation": NoData("no NVIDIA GPU on the test machine", machine_dependent=True),
    "GPU memory": NoData("no NVIDIA GPU on the test machine", machine_dependent=True),
    "GPU temperature": NoData("no NVIDIA GPU on the test machine", machine_dependent=True),
    "GPU power": NoData("no NVIDIA GPU on the test machine", machine_dependent=True),
    "Model server memory vs limit / B": NoData("the model server runs without a cgroup memory limit",
                                               machine_dependent=True),
    "Memory used of limit": NoData("the model server runs without a cgroup memory limit", machine_dependent=True),
    "Rows scored vs baselines / C": NoData("the same hour last week: needs a week of history"),
    "Fleet PSI against a day and a week ago (last hour) / A": NoData("the same hour yesterday: needs a day of history"),
    "Fleet PSI against a day and a week ago (last hour) / B": NoData("the same hour last week: needs a week of history"),
    # the demo model is a classifier: no regression errors
    "Fleet performance (all replicas, last hour) / C": NoData("the demo model is a classifier: no MAE"),
    "Fleet performance (all replicas, last hour) / D": NoData("the demo model is a classifier: no RMSE"),
    # the stack runs no batch job; tests/integration/test_batch.py queries these against a real Prometheus
    "Batch jobs: time since the last successful run": NoData("no batch job pushes in the e2e stack"),
    "Batch jobs: outcome of the last run": NoData("no batch job pushes in the e2e stack"),
    "Batch jobs: columns failing each check": NoData("no batch job pushes in the e2e stack"),
    "Batch jobs: records per second": NoData("no batch job pushes in the e2e stack"),
}

# Grafana's $__rate_interval is max($__interval + scrape interval, 4 × scrape interval): 12 s with
# the test's 3 s scrapes; 15 s (the shipped datasource's timeInterval) leaves a margin.
RATE_INTERVAL = "15s"
RANGE_STEP_S = 2.0


def assert_sidecars_always_scraped(stack: Stack) -> None:
    """Every scrape of both sidecars succeeded: a failed one marks their series stale (alerts
    flap) and fires ModelExporterDown, which mutes the model's other alerts."""
    up = stack.prom.values_by('min_over_time(up{job="model-exporter"}[1h])', "instance")
    durations = stack.prom.values_by('max_over_time(scrape_duration_seconds{job="model-exporter"}[1h])', "instance")
    assert up == dict.fromkeys(stack.instances, 1.0), \
        f"a scrape of a sidecar failed (min up: {up}; longest scrapes, s: {durations})"
    assert not stack.webhook.alerts("ModelExporterDown", status=None), stack.webhook.summary()


# -- 1. drift alert for the drifted column only --------------------------------------------


def test_feature_drift_alert_arrives_for_the_drifted_column_only(stack: Stack) -> None:
    stack.ensure_drift_alerting()
    prom = stack.prom
    # Let the rules run a few more times over the final windows before judging the others.
    prom.wait_rule_evaluations("model-data.alerts", 3)

    # The negative is not vacuous: every stable feature has a score on both sidecars and both
    # windows, over windows that meet the alert's floor of 500 rows.
    judged = prom.query('model_drift_score{job="model-exporter", role="feature"}'
                        " and on (job, instance, model, version, window) model_window_rows >= 500")
    judged_keys = {(r["metric"]["column"], r["metric"]["instance"], r["metric"]["window"]) for r in judged}
    for column in (*STABLE_NUMERIC, "region", DRIFTED_COLUMN):
        for instance in stack.instances:
            for window in WINDOWS:
                assert (column, instance, window) in judged_keys, \
                    f"no drift score over >= 500 rows for {column} on {instance} ({window}): {sorted(judged_keys)}"

    # Prometheus: no ModelFeatureDrift pending or firing but income's.
    alerts = prom.query('ALERTS{alertname="ModelFeatureDrift"}')
    assert {r["metric"]["column"] for r in alerts} == {DRIFTED_COLUMN}, \
        f"ModelFeatureDrift in Prometheus: {[r['metric'] for r in alerts]}"

    # The webhook: income from both sidecars and both windows, nothing else, via the warning route.
    delivered = stack.webhook.alerts("ModelFeatureDrift", status=None)
    columns = {a["labels"]["column"] for _, a in delivered}
    assert columns == {DRIFTED_COLUMN}, f"ModelFeatureDrift delivered for {sorted(columns)}\n{stack.webhook.summary()}"
    for column in STABLE_NUMERIC:
        assert column not in columns
    assert {receiver for receiver, _ in delivered} == {"ticket"}
    _, alert = delivered[0]
    labels, annotations = alert["labels"], alert["annotations"]
    assert labels["severity"] == "warning"
    assert (labels["model"], labels["version"], labels["role"], labels["method"]) == (MODEL_NAME, MODEL_VERSION, "feature", "wasserstein")  # the default decision's numeric method
    assert DRIFTED_COLUMN in annotations["summary"] and MODEL_NAME in annotations["summary"]
    assert DRIFTED_COLUMN in annotations["description"]
    assert annotations["runbook_url"].endswith("#modelfeaturedrift")
    assert_sidecars_always_scraped(stack)


# -- 2. fleet PSI recording rule against a hand computation ----------------------------------


def _bins(stack: Stack, column: str) -> tuple[dict[str, float], dict[str, float]]:
    """(summed bin counts over both sidecars, baseline ratios) of a feature column, from /metrics."""
    counts: dict[str, float] = {}
    ratios: dict[str, float] = {}
    for sidecar in stack.sidecars:
        mine: dict[str, float] = {}
        for s in sidecar.metrics():
            if s.labels.get("role") != "feature" or s.labels.get("column") != column:
                continue
            if s.name == "model_column_bin_total":
                counts[s.labels["bin"]] = counts.get(s.labels["bin"], 0.0) + s.value
            elif s.name == "model_column_baseline_ratio":
                mine[s.labels["bin"]] = s.value
        assert not ratios or mine == ratios, "the two sidecars export different baseline ratios"
        ratios = mine
    assert counts and counts.keys() == ratios.keys(), f"bins {sorted(counts)} vs baseline bins {sorted(ratios)}"
    return counts, ratios


def _prometheus_bins(stack: Stack, column: str) -> dict[tuple[str, str], float]:
    result = stack.prom.query(f'model_column_bin_total{{job="model-exporter", role="feature", column="{column}"}}')
    return {(r["metric"]["instance"], r["metric"]["bin"]): float(r["value"][1]) for r in result}


def test_fleet_psi_rule_matches_psi_of_the_summed_bin_counts(stack: Stack) -> None:
    stack.ensure_drift_traffic()
    prom = stack.prom
    # The sidecars are younger than the rule's 1h window and Prometheus saw every counter at 0
    # before the first row (ensure_drift_traffic waits for it): the hour's increase is the count.
    per_sidecar = {}
    for sidecar, instance in zip(stack.sidecars, stack.instances):
        for s in sidecar.metrics():
            if s.name == "model_column_bin_total" and s.labels["role"] == "feature" and s.labels["column"] == DRIFTED_COLUMN:
                per_sidecar[(instance, s.labels["bin"])] = s.value
    assert wait_until(lambda: _prometheus_bins(stack, DRIFTED_COLUMN) == per_sidecar, 30.0, 0.2), (
        f"Prometheus did not catch up with the sidecars' bin counters:\n"
        f"sidecars {per_sidecar}\nprometheus {_prometheus_bins(stack, DRIFTED_COLUMN)}")
    prom.wait_rule_evaluations("model-drift.rules", 2)

    counts, ratios = _bins(stack, DRIFTED_COLUMN)
    assert sum(counts.values()) == sum(stack.rows_sent.values())
    order = sorted(counts)
    by_hand = float(psi([ratios[b] for b in order], [counts[b] for b in order]))

    selector = f'model="{MODEL_NAME}", version="{MODEL_VERSION}", role="feature"'
    (fleet,) = prom.query(f'model:column_psi:1h{{{selector}, column="{DRIFTED_COLUMN}"}}')
    recorded = float(fleet["value"][1])
    live = prom.values_by(f'model:column_bin:live_ratio1h{{{selector}, column="{DRIFTED_COLUMN}"}}', "bin")
    total = sum(counts.values())
    detail = (f"recorded {recorded}, by hand {by_hand}\nlive ratios (Prometheus vs hand): "
              + json.dumps({b: [live.get(b), counts[b] / total] for b in order}, indent=1))
    assert by_hand > 0.25, f"income should drift by far more than a major shift\n{detail}"
    assert math.isclose(recorded, by_hand, rel_tol=0.01), detail

    # The stable columns stay below the moderate-shift reading over the fleet as well.
    for column in STABLE_NUMERIC:
        (row,) = prom.query(f'model:column_psi:1h{{{selector}, column="{column}"}}')
        assert float(row["value"][1]) < 0.1, f"fleet PSI of stable {column}: {row}"


# -- 3. upstream down: paged, and the model's drift alerts muted -------------------------------


def _am_alerts(stack: Stack, alertname: str | None = None) -> list[dict[str, Any]]:
    params = {"filter": f'alertname="{alertname}"'} if alertname else {}
    return get_json(stack.alertmanager_url + "/api/v2/alerts", **params)  # type: ignore[no-any-return]


def test_upstream_down_pages_and_inhibits_the_drift_alerts(stack: Stack) -> None:
    stack.ensure_upstream_down()
    expected = set(stack.instances)
    assert wait_until(lambda: expected <= stack.upstream_down_instances(), 60.0, 0.2), \
        f"ModelUpstreamDown did not reach the webhook for {sorted(expected)}\n{stack.diagnostics()}"
    delivered = stack.webhook.alerts("ModelUpstreamDown")
    assert {receiver for receiver, _ in delivered} == {"page"}
    for _, alert in delivered:
        assert alert["labels"]["severity"] == "critical"
        assert (alert["labels"]["model"], alert["labels"]["version"]) == (MODEL_NAME, MODEL_VERSION)
        assert alert["annotations"]["runbook_url"].endswith("#modelupstreamdown")

    def drift_muted() -> bool:
        drift = _am_alerts(stack, "ModelFeatureDrift")
        return bool(drift) and all(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in drift)

    wait_until(drift_muted, 30.0, 0.2)
    upstream = {a["fingerprint"] for a in _am_alerts(stack, "ModelUpstreamDown")}
    drift = _am_alerts(stack, "ModelFeatureDrift")
    # The drift alerts are still active (their windows still drift): muted, not resolved.
    assert {(a["labels"]["column"], a["labels"]["instance"]) for a in drift} >= \
        {(DRIFTED_COLUMN, instance) for instance in stack.instances}, drift
    for alert in _am_alerts(stack):
        if alert["labels"]["alertname"] in MUTED_BY_UPSTREAM_DOWN and alert["labels"].get("model") == MODEL_NAME:
            status = alert["status"]
            assert status["state"] == "suppressed" and status["inhibitedBy"], \
                f"{alert['labels']} is not inhibited by ModelUpstreamDown: {status}"
            assert set(status["inhibitedBy"]) <= upstream, (status, upstream)
    # Nothing reached the webhook for a stable column meanwhile.
    assert {a["labels"]["column"] for _, a in stack.webhook.alerts("ModelFeatureDrift", status=None)} == {DRIFTED_COLUMN}
    assert_sidecars_always_scraped(stack)


# -- 4. every dashboard query returns data ---------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", re.DOTALL)


def substitute(expr: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, expr)


def _key_matches(key: str, title: str, ref: str | None) -> bool:
    return key == title or (ref is not None and key == f"{title} / {ref}")


def exemption(title: str, ref: str | None = None) -> NoData | None:
    for key, entry in NO_DATA.items():
        if _key_matches(key, title, ref):
            return entry
    return None


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    # By now: traffic went through, alerts fired, the model server stopped (5xx, upstream errors).
    stack.ensure_upstream_down()
    prom = stack.prom
    # Variable values: one model, version and sidecar as a user would pick them; "All" for the rest.
    chosen = {"model": MODEL_NAME, "version": MODEL_VERSION, "instance": stack.instances[0]}
    failures: list[str] = []
    used_keys: set[str] = set()
    titles: list[str] = []
    end = time.time()
    builtins = {"__rate_interval": RATE_INTERVAL, "__interval": f"{RANGE_STEP_S:g}s",
                "__interval_ms": str(int(RANGE_STEP_S * 1000)), "__range": f"{int(end - stack.started)}s",
                "__range_s": str(int(end - stack.started)), "__range_ms": str(int((end - stack.started) * 1000))}
    queried = 0

    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        values = dict(builtins)
        for variable in dashboard.get("templating", {}).get("list", []):
            name = variable["name"]
            if variable["type"] == "datasource":
                values[name] = "prometheus"
                continue
            if variable["type"] != "query":
                continue
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            query = substitute(query, values)
            match = _LABEL_VALUES.fullmatch(query)
            assert match, f"{path.name}: ${name}: unsupported variable query {query!r}"
            options = prom.label_values(match.group(2), match.group(1), stack.started)
            key = f"${name}"
            if not options and exemption(key) is None:
                failures.append(f"{path.name}: variable ${name} ({query}) has no values")
            elif options and (entry := exemption(key)) is not None and not entry.machine_dependent:
                failures.append(f"{path.name}: variable ${name} has values now: remove it from NO_DATA")
            used_keys.update(k for k in NO_DATA if k == key)
            if name in chosen:
                assert chosen[name] in options, f"{path.name}: ${name} offers {options}, not {chosen[name]}"
                values[name] = chosen[name]
            elif variable.get("includeAll"):
                values[name] = variable.get("allValue") or "(" + "|".join(map(re.escape, options)) + ")"
            else:
                values[name] = options[0] if options else ""

        for panel in panels(dashboard):
            if panel.get("type") == "row":
                continue
            titles.append(panel["title"])
            for target in panel.get("targets", []):
                if "expr" not in target:
                    continue
                where = f"{path.name} / {panel['title']} / {target['refId']}"
                expr = substitute(target["expr"], values)
                if "$" in expr or "[[" in expr:
                    failures.append(f"{where}: unresolved variable in {expr}")
                    continue
                # Grafana runs a range query over the dashboard's time range (here: the test's
                # lifetime) unless the target is instant-only (tables).
                if target.get("instant") and not target.get("range"):
                    result = prom.query(expr, end)
                else:
                    result = prom.query_range(expr, stack.started, end, RANGE_STEP_S)
                queried += 1
                has_data = any(not math.isnan(float(v)) for v in iter_samples(result))
                entry = exemption(panel["title"], target["refId"])
                used_keys.update(k for k in NO_DATA if _key_matches(k, panel["title"], target["refId"]))
                if entry is None and not has_data:
                    failures.append(f"{where}: no data\n    {expr}")
                elif entry is not None and has_data and not entry.machine_dependent:
                    failures.append(f"{where}: has data now ({entry.reason}?): remove it from NO_DATA")

    stale = set(NO_DATA) - used_keys
    assert not stale, f"NO_DATA names panels/targets/variables that no dashboard has: {sorted(stale)}"
    ambiguous = {t for t in titles if titles.count(t) > 1 and any(_key_matches(k, t, None) or k.startswith(t + " / ")
                                                                   for k in NO_DATA)}
    assert not ambiguous, f"NO_DATA keys match panels of the same title on several dashboards: {ambiguous}"
    assert queried > 50, f"only {queried} dashboard queries found"
    assert not failures, "dashboard queries without data:\n" + "\n".join(failures) + f"\n\n{stack.diagnostics()}"
