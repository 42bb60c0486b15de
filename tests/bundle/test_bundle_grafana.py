"""grafana/: provisioning points at the shipped Prometheus and dashboards; dashboards are well-formed, use their variables and parse."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bundle_support import (
    GRAFANA, PROMETHEUS, RUNBOOKS, dashboard_queries, dashboards, load_yaml, panels, require_tool,
)

# File stem → uid. Stable: links, bookmarks and GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH use them.
EXPECTED_UIDS = {
    "overview": "model-overview",
    "drift": "model-drift",
    "performance": "model-performance",
    "resources": "model-resources",
    "streaming": "model-streaming",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Metrics whose panels must tell versions apart (canary and blue-green rollouts).
VERSIONED = re.compile(r"\bmodel_(requests_total|request_duration_seconds|rows_total|prediction_rows_total|"
                       r"time_to_first_byte_seconds|drift_score|drift_threshold|column_bin_total)\b|model:column_")
RUNBOOK_DASHBOARDS = {"Overview": "overview", "Drift & data quality": "drift", "Performance & fairness": "performance",
                      "Resources": "resources", "Streaming & LLM": "streaming"}

BOARDS = dashboards()
ALL_PANELS = [(stem, panel) for stem, board in BOARDS.items() for panel in panels(board)]


def _panel_id(item: tuple[str, dict[str, Any]]) -> str:
    return f"{item[0]}:{item[1]['title']}"


# -- provisioning -----------------------------------------------------------------------

def test_datasource_provisioning_points_at_the_compose_prometheus() -> None:
    (source,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert (source["type"], source["uid"], source["url"]) == ("prometheus", "prometheus", "http://prometheus:9090")
    # $__rate_interval is derived from the scrape interval Grafana is told about
    scrape_interval = load_yaml(PROMETHEUS / "prometheus.yml")["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape_interval


def test_dashboard_provider_reads_the_mounted_folder() -> None:
    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "model-exporter.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


# -- dashboards -------------------------------------------------------------------------

def test_dashboard_uids_are_the_stable_ones() -> None:
    assert {stem: board["uid"] for stem, board in BOARDS.items()} == EXPECTED_UIDS
    titles = [board["title"] for board in BOARDS.values()]
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("stem", sorted(EXPECTED_UIDS))
def test_dashboard_shape_and_variables(stem: str) -> None:
    board = BOARDS[stem]
    assert board["schemaVersion"] == 39
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("model", "version", "instance"):
        assert variables[name]["type"] == "query"
        query = variables[name]["query"]
        query = query["query"] if isinstance(query, dict) else query
        assert re.fullmatch(rf"label_values\(.+, {name}\)", query), query
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("stem", sorted(EXPECTED_UIDS))
def test_panels_do_not_overlap(stem: str) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(BOARDS[stem]):
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("item", ALL_PANELS, ids=_panel_id)
def test_panel_uses_the_datasource_variable_and_has_unit_and_description(item: tuple[str, dict[str, Any]]) -> None:
    _, panel = item
    assert panel["datasource"] == DATASOURCE
    assert panel["targets"], "a panel without queries"
    for target in panel["targets"]:
        assert target["datasource"] == DATASOURCE
    assert panel["fieldConfig"]["defaults"].get("unit"), "no unit"
    assert len(panel.get("description", "")) >= 20, "no description (or a title repeated)"


@pytest.mark.parametrize("item", ALL_PANELS, ids=_panel_id)
def test_panel_queries_use_rate_interval_and_the_model_variables(item: tuple[str, dict[str, Any]]) -> None:
    _, panel = item
    for target in panel["targets"]:
        expr = target["expr"]
        ranges = re.findall(r"\b(?:rate|irate|increase)\s*\([^\[]*\[([^\]]+)\]", expr)
        assert all(r == "$__rate_interval" for r in ranges), f"{expr}: ranges {ranges}"
        assert "$model" in expr or "$instance" in expr, f"{expr} ignores the dashboard's variables"


@pytest.mark.parametrize("item", ALL_PANELS, ids=_panel_id)
def test_traffic_and_drift_panels_split_by_version(item: tuple[str, dict[str, Any]]) -> None:
    _, panel = item
    if panel["type"] != "timeseries":
        return
    for target in panel["targets"]:
        if VERSIONED.search(target["expr"]):
            assert "{{version}}" in target["legendFormat"], f"{panel['title']}: legend {target['legendFormat']!r}"


def _as_rule_expr(expr: str) -> str:
    """A dashboard query with its variables filled in, as promtool can parse it."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$__interval", "1m")
    return re.sub(r"\$\{?[A-Za-z_]+\}?", ".*", expr)


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    rules = []
    for stem, board in BOARDS.items():
        for where, expr in dashboard_queries(board):
            match = re.fullmatch(r"label_values\((.+), *([A-Za-z_]+)\)", expr)
            rules.append({"record": "dashboard:query:" + str(len(rules)), "expr": _as_rule_expr(
                match.group(1) if match else expr), "labels": {"where": where}})
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runbooks_name_panels_that_exist() -> None:
    text = RUNBOOKS.read_text(encoding="utf-8")
    references = re.findall(r"(Overview|Drift & data quality|Performance & fairness|Resources|Streaming & LLM)"
                            r" → \*([^*]+)\*", text)
    assert references
    for dashboard, title in references:
        titles = {panel["title"] for panel in panels(BOARDS[RUNBOOK_DASHBOARDS[dashboard]])}
        assert title in titles, f"docs/runbooks.md names {dashboard} → {title!r}; panels: {sorted(titles)}"
