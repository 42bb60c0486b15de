"""Fixtures: the stand-in model server, sidecar processes, external tools.

`sidecar` is one process per test module, shared by the tests that only need a healthy
upstream (they assert on metric deltas, never on absolute counts). Tests that need their
own configuration start one with `sidecar_factory`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bundle_support import require_tool
from harness import SHARED_CONFIG, SHARED_MODEL, Sidecar, SidecarFactory, start_sidecar
from stand_in import StandIn


@pytest.fixture(scope="session")
def stand_in() -> Iterator[StandIn]:
    server = StandIn().start()
    yield server
    server.stop()


@pytest.fixture
def sidecar_factory(tmp_path_factory: pytest.TempPathFactory, stand_in: StandIn) -> Iterator[SidecarFactory]:
    """`sidecar_factory(upstream=stand_in.url, config=None, args=(), ports_in_config=False)` starts a sidecar for this test."""
    started: list[Sidecar] = []

    def start(upstream: str | None = stand_in.url, config: dict[str, Any] | None = None, args: tuple[str, ...] = (),
              ports_in_config: bool = False) -> Sidecar:
        sidecar = start_sidecar(tmp_path_factory.mktemp("sidecar"), upstream, config, args, ports_in_config)
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        sidecar.stop()


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, stand_in: StandIn) -> Iterator[Sidecar]:
    model, version = SHARED_MODEL
    process = start_sidecar(tmp_path_factory.mktemp("sidecar"), stand_in.url, SHARED_CONFIG,
                            ("--model", model, "--model-version", version))
    yield process
    process.stop()


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")
