"""Shared helpers of the bundle tests: repository paths, external tools, rule and dashboard loading."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "prometheus"
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTMANAGER = REPO / "alertmanager"
GRAFANA = REPO / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RUNBOOKS = REPO / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/model-exporter/model-exporter/blob/main/docs/runbooks.md"


def require_tool(name: str) -> str:
    """Path of an external tool; missing is a failure under CI=true, otherwise a skip."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found on PATH (Debian: apt-get install prometheus prometheus-alertmanager)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@cache
def _load_yaml_cached(path: Path) -> Any:
    return load_yaml(path)


def rules() -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every rule (recording or alerting) of prometheus/rules/, with its file."""
    for path in RULES:
        for group in _load_yaml_cached(path)["groups"]:
            for rule in group["rules"]:
                yield path, rule


def alert_rules() -> list[dict[str, Any]]:
    return [rule for _, rule in rules() if "alert" in rule]


def recorded_names() -> set[str]:
    return {rule["record"] for _, rule in rules() if "record" in rule}


def dashboards() -> dict[str, dict[str, Any]]:
    """File stem → parsed dashboard JSON."""
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in DASHBOARDS}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"{dashboard['uid']} / {panel['title']} / {target['refId']}", target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            yield f"{dashboard['uid']} / ${variable['name']}", query["query"] if isinstance(query, dict) else query
