"""Rules and dashboards reference only metrics the exporter defines (exporter/metrics/definitions.py)."""

from __future__ import annotations

from bundle_support import recorded_names
from metric_names import label_matchers, metric_names, queries, recorded_references, referenced_metric_names

from exporter.metrics.definitions import METRICS, MetricDef, exposed_names

# Metric names (with their labels, from DESIGN.md's metric contract) that rules and
# dashboards use before the exporter defines them: remove each entry when its metric lands in
# definitions.py (a test below fails while a defined name is still listed here).
PENDING: dict[str, tuple[str, ...]] = {}

# Labels every scraped series carries, whatever the exporter defines.
TARGET_LABELS = {"job", "instance"}


def _defined() -> dict[str, MetricDef]:
    return {name: metric for metric in METRICS for name in exposed_names(metric)}


def test_every_referenced_metric_is_defined_or_pending() -> None:
    defined = _defined()
    unknown = {name: sorted(where) for name, where in referenced_metric_names().items()
               if name not in defined and name not in PENDING}
    assert not unknown, f"metrics neither in exporter.metrics.definitions.METRICS nor in PENDING: {unknown}"


def test_pending_lists_only_undefined_names() -> None:
    landed = sorted(set(PENDING) & set(_defined()))
    assert not landed, f"now defined in exporter/metrics/definitions.py, remove from PENDING in {__file__}: {landed}"


def test_pending_names_are_referenced() -> None:
    unused = sorted(set(PENDING) - set(referenced_metric_names()))
    assert not unused, f"PENDING names no rule or dashboard uses: {unused}"


def test_label_matchers_use_labels_the_metric_has() -> None:
    defined = _defined()
    wrong = []
    for where, expr in queries():
        for metric, label in label_matchers(expr):
            if metric in defined:
                definition = defined[metric]
                allowed = set(definition.labels) | TARGET_LABELS
                if definition.model_level:
                    allowed |= {"model", "version"}
                if metric.endswith("_bucket"):
                    allowed.add("le")
            elif metric in PENDING:
                allowed = set(PENDING[metric]) | TARGET_LABELS | {"model", "version"}
            else:
                continue
            if label not in allowed:
                wrong.append(f"{where}: {metric}{{{label}}} (labels: {sorted(allowed)})")
    assert not wrong, "label matchers on labels the metric does not have:\n" + "\n".join(wrong)


def test_recording_rule_outputs_referenced_are_recorded() -> None:
    recorded = recorded_names()
    missing = sorted({f"{where}: {name}" for where, expr in queries()
                      for name in recorded_references(expr) if name not in recorded})
    assert not missing, f"references to recording rules that do not exist: {missing}"


def test_the_parser_sees_metric_names_but_not_strings_or_durations() -> None:
    expr = ('sum by (model) (rate(model_rows_total{column="model_fake"}[5m] offset 6d23h30m))'
            ' / on (model) group_left model:rows:rate5m + label_values(model_window_rows, model)'
            ' + rate(model_tokens_total[$__rate_interval])')
    assert metric_names(expr) == {"model_rows_total", "model_window_rows", "model_tokens_total"}
    assert recorded_references(expr) == {"model:rows:rate5m"}
