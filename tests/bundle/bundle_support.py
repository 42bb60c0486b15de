"""Shared helpers of the bundle tests: repository paths, external tools, rule and dashboard loading."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
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


LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_RUN_FLAGS = {"--upstream": "upstream", "--listen": "listen", "--metrics-listen": "metrics_listen",
              "--model": "model", "--model-version": "model_version"}


def sidecar_sources(args: Sequence[str]) -> list[Any]:
    """What the sidecar's scrape-time collectors would watch, given `model-exporter run` flags as a manifest passes them.

    Built the way `run` builds its configuration (defaults, then flags); --baseline is left
    out (its file is the container's). A process collector is there when the model server's
    process can be found: resources.pid/match, or an upstream on loopback (the listener).
    """
    from exporter.config import Config, apply_flags
    from exporter.sidecar.startup import resource_sources

    assert args[0] == "run", args
    flags = {}
    for flag, value in zip(args[1::2], args[2::2], strict=True):
        assert flag in _RUN_FLAGS or flag == "--baseline", f"flag {flag} not understood here"
        if flag in _RUN_FLAGS:
            flags[_RUN_FLAGS[flag]] = str(value)
    return resource_sources(apply_flags(Config(), **flags))


def watches_a_process(sources: list[Any]) -> bool:
    from exporter.collectors.process import ProcessCollector

    return any(isinstance(source, ProcessCollector) for source in sources)
