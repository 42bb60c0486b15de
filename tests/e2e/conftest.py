"""Fixtures of the end-to-end tests: the whole stack, started once per module, on loopback.

The helpers of tests/integration (sidecar process, ports, HTTP) and tests/bundle (repository
paths, dashboard loading, external tools) are shared, not copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from bundle_support import require_tool
from e2e_stack import Stack, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Demo model server, two sidecars, Prometheus, Alertmanager and a webhook receiver.

    Missing prometheus/prometheus-alertmanager binaries: a failure under CI=true, else a skip.
    """
    binaries = {name: require_tool(name) for name in ("prometheus", "prometheus-alertmanager")}
    with ExitStack() as resources:
        yield start_stack(tmp_path_factory.mktemp("e2e"), binaries, resources)
