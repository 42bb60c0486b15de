"""`promtool check metrics` accepts the sidecar's /metrics, without a single lint warning."""

from __future__ import annotations

import secrets
import subprocess

import pytest
from harness import Sidecar, fetch

pytestmark = pytest.mark.integration


def make_traffic(sidecar: Sidecar) -> None:
    """Successes, upstream errors and a traced request, so every traffic family has samples."""
    url = sidecar.proxy_url
    assert fetch(url + "/v2/models/m/infer", "POST", b'{"inputs": []}').status == 200
    assert fetch(url + "/v1/chat/completions", "POST", b'{"messages": []}',
                 [("traceparent", f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01")]).status == 200
    assert fetch(url + "/status/404").status == 404
    assert fetch(url + "/status/500").status == 500
    assert fetch(url + "/reset").status == 502
    assert fetch(url + "/malformed").status == 502
    assert fetch(url + "/chunked").status == 200


def test_metrics_pass_promtool_lint(sidecar: Sidecar, promtool: str) -> None:
    make_traffic(sidecar)
    sidecar.wait_sample("model_upstream_errors_total", lambda v: v >= 2)
    text = sidecar.metrics_text()
    result = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, output
    assert output.strip() == "", output
