"""Helpers shared across test folders (tests/integration: processes, ports, HTTP; tests/bundle:
repository paths, dashboards, external tools) are importable from every test, not copied."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
for shared in (TESTS / "integration", TESTS / "bundle"):
    if str(shared) not in sys.path:
        sys.path.insert(0, str(shared))
