"""docs/baseline.md prints the schema the loader uses."""

from __future__ import annotations

import json
from pathlib import Path

from exporter.baseline.schema import SCHEMA

DOC = Path(__file__).resolve().parents[2] / "docs" / "baseline.md"


def test_docs_show_the_schema_in_force() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("## JSON Schema", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(block) == SCHEMA, "regenerate the block with json.dumps(SCHEMA, indent=2)"
