"""Render the metric reference (docs/metrics.md) from the definitions: `python -m exporter.metrics.docs`."""

from __future__ import annotations

from exporter.metrics.definitions import DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS, METRICS


def render() -> str:
    lines = [
        "# Metric reference",
        "",
        "Generated from `exporter/metrics/definitions.py` by `make docs`; a test checks it is current.",
        "",
        "Every metric marked *model-level* also carries the `model` and `version` labels.",
        "Histograms expose `_bucket`, `_sum` and `_count` series.",
        "",
        "| metric | type | labels | description |",
        "|---|---|---|---|",
    ]
    for m in METRICS:
        labels = ", ".join(f"`{label}`" for label in m.labels) or "—"
        if m.model_level:
            labels += " (model-level)"
        lines.append(f"| `{m.name}` | {m.type} | {labels} | {m.help} |")
    lines += [
        "",
        "Default buckets (configurable under `metrics:`):",
        "",
        f"- durations (seconds): {', '.join(f'{b:g}' for b in DEFAULT_DURATION_BUCKETS)}",
        f"- sizes (bytes): {', '.join(f'{b:g}' for b in DEFAULT_SIZE_BUCKETS)}",
        "",
        "The exporter also exposes its own `process_*`, `python_gc_*` and `python_info` metrics.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
