"""Metric names and label matchers referenced by the shipped rules and dashboards.

PromQL is parsed roughly: identifiers are `[a-zA-Z_:][a-zA-Z0-9_:]*` outside string
literals; those starting with `model_` are exporter metrics, those containing a colon are
recording-rule outputs. Good enough for the queries we ship, which a test also parses
with promtool.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bundle_support import dashboard_queries, dashboards, rules

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_:$])[A-Za-z_:][A-Za-z0-9_:]*")
_SELECTOR = re.compile(r"(?<![A-Za-z0-9_:$])([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:\\.|[^"\\])*"\s*,?')


def queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every rule expression and dashboard query."""
    for path, rule in rules():
        name = rule.get("record") or rule.get("alert")
        yield f"{path.name}: {name}", rule["expr"]
    for dashboard in dashboards().values():
        yield from dashboard_queries(dashboard)


def identifiers(expr: str) -> set[str]:
    """Identifiers outside string literals (metric names, functions, keywords, labels)."""
    return set(_IDENTIFIER.findall(_STRING.sub('""', expr)))


def metric_names(expr: str) -> set[str]:
    """Exporter metric names (`model_…`, no colon) referenced by a query."""
    return {name for name in identifiers(expr) if name.startswith("model_") and ":" not in name}


def recorded_references(expr: str) -> set[str]:
    """Recording-rule outputs (names with a colon) referenced by a query."""
    return {name for name in identifiers(expr) if ":" in name and not name.startswith(":")}


def label_matchers(expr: str) -> Iterator[tuple[str, str]]:
    """(metric, label) for every label matcher written as `metric{label=…}`."""
    for metric, body in _SELECTOR.findall(expr):
        for label in _MATCHER.findall(body):
            yield metric, label


def referenced_metric_names() -> dict[str, set[str]]:
    """Exporter metric name → where it is referenced (rules and dashboards)."""
    found: dict[str, set[str]] = {}
    for where, expr in queries():
        for name in metric_names(expr):
            found.setdefault(name, set()).add(where)
    return found
