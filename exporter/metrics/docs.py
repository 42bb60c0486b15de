"""Render the metric reference from the definitions: `python -m exporter.metrics.docs --write`.

Writes docs/metrics.md and the README section between the metrics markers.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from exporter.metrics.definitions import DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS, METRICS

BEGIN, END = "<!-- metrics:begin -->", "<!-- metrics:end -->"


def render() -> str:
    return "\n".join(
        [
            "# Metric reference",
            "",
            "Generated from `exporter/metrics/definitions.py` by `make docs`; a test checks it is current.",
            "",
            table(),
        ]
    )


def readme_section(readme: str) -> str:
    """README text with the metrics section replaced by the current table."""
    return re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: f"{BEGIN}\n{table()}{END}", readme, flags=re.S)


def table() -> str:
    lines = [
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
    if sys.argv[1:] == ["--write"]:
        root = Path(__file__).resolve().parents[2]
        (root / "docs" / "metrics.md").write_text(render())
        readme = root / "README.md"
        readme.write_text(readme_section(readme.read_text()))
    else:
        print(render(), end="")
