"""/metrics answers gzip to whoever asks for it (Prometheus always does), as one gzip member curl can read.

The worker compresses its part, the proxy appends its own: these check the joined body against
a plain scrape of the same sidecar, through Python, through curl, and through promtool.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess

import pytest
from harness import OPENMETRICS_ACCEPT, Sidecar, fetch, promtool_check_metrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

pytestmark = pytest.mark.integration

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


def _names(text: str, openmetrics: bool) -> set[str]:
    parse = parse_openmetrics if openmetrics else parse_text
    return {f.name for f in parse(text)}


def _scrape(sidecar: Sidecar, accept: str | None, encoding: str | None) -> tuple[str | None, str | None, bytes]:
    headers = [(k, v) for k, v in (("Accept", accept), ("Accept-Encoding", encoding)) if v is not None]
    resp = fetch(sidecar.metrics_url + "/metrics", headers=headers)
    assert resp.status == 200
    assert resp.header("Vary") == "Accept-Encoding"
    return resp.header("Content-Type"), resp.header("Content-Encoding"), resp.body


@pytest.mark.parametrize("accept", [None, OPENMETRICS_ACCEPT, PROMETHEUS_ACCEPT])
def test_gzip_scrape_is_the_plain_scrape_compressed(sidecar: Sidecar, accept: str | None) -> None:
    sidecar.wait_analysis()
    plain_type, plain_encoding, plain = _scrape(sidecar, accept, None)
    zipped_type, zipped_encoding, zipped = _scrape(sidecar, accept, "gzip")
    assert plain_encoding is None and zipped_encoding == "gzip"
    assert plain_type == zipped_type
    text = gzip.decompress(zipped).decode()
    openmetrics = (zipped_type or "").startswith("application/openmetrics-text")
    assert openmetrics == (accept is not None)
    # the worker's families and the proxy's, in one exposition either way
    names = _names(text, openmetrics)
    assert names == _names(plain.decode(), openmetrics)
    assert {"model_rows", "model_requests", "model_exporter_collector_success"} <= names
    if openmetrics:
        assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    assert len(zipped) < len(plain)


def test_gzip_refused_by_q0_is_not_sent(sidecar: Sidecar) -> None:
    _, encoding, body = _scrape(sidecar, None, "gzip;q=0, identity")
    assert encoding is None
    assert b"model_requests_total" in body


def test_curl_reads_the_whole_compressed_scrape(sidecar: Sidecar) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed (.ci/run installs it)")
    sidecar.wait_analysis()
    for accept in ("text/plain", OPENMETRICS_ACCEPT):
        out = subprocess.run([curl, "-sS", "--fail", "--compressed", "-H", f"Accept: {accept}",
                              sidecar.metrics_url + "/metrics"], capture_output=True, timeout=30, check=True)
        text = out.stdout.decode()
        openmetrics = accept == OPENMETRICS_ACCEPT
        names = _names(text, openmetrics)
        # families of the worker's part (first) and of the proxy's (last): curl read every byte
        assert "model_rows" in names and "model_exporter_build_info" in names, text[-300:]
        if openmetrics:
            assert text.endswith("# EOF\n")


def test_promtool_checks_the_decompressed_scrape(sidecar: Sidecar, promtool: str) -> None:
    _, _, zipped = _scrape(sidecar, None, "gzip")
    code, output = promtool_check_metrics(promtool, gzip.decompress(zipped).decode())
    assert code == 0, output


@pytest.mark.parametrize("accept,encoding", [(None, None), (None, "gzip"), (OPENMETRICS_ACCEPT, None),
                                             (OPENMETRICS_ACCEPT, "gzip")])
def test_the_traffic_counters_appear_once(sidecar: Sidecar, accept: str | None, encoding: str | None) -> None:
    """The worker renders the proxy's counters from the snapshot the scrape sends: once, never twice."""
    sidecar.wait_analysis()
    _, got_encoding, body = _scrape(sidecar, accept, encoding)
    text = (gzip.decompress(body) if got_encoding == "gzip" else body).decode()
    name = "model_requests" if accept else "model_requests_total"
    assert text.count(f"# TYPE {name} counter\n") == 1
    assert text.count("# TYPE model_exporter_build_info gauge\n") == 1


def test_counters_stay_fresh_and_never_go_back_while_the_worker_stalls(sidecar: Sidecar) -> None:
    """A stopped worker cannot render the counters: the proxy does, with the requests made meanwhile;
    when the worker answers again, its (older) snapshots are not served over fresher counters."""
    import os
    import signal
    import time

    import psutil
    from harness import sum_samples

    sidecar.wait_analysis()
    [worker] = psutil.Process(sidecar.proc.pid).children()

    def requests_total() -> float:
        _, enc, body = _scrape(sidecar, None, "gzip")
        text = gzip.decompress(body).decode() if enc == "gzip" else body.decode()
        return sum_samples([s for f in parse_text(text) for s in f.samples], "model_requests_total")

    seen = [requests_total()]
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        for _ in range(3):
            assert fetch(sidecar.proxy_url + "/v2/health/ready").status == 200
            seen.append(requests_total())  # the worker does not answer: the proxy renders its counters
        assert seen[-1] >= seen[0] + 3  # fresh: every request made meanwhile is counted
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen.append(requests_total())
        time.sleep(0.05)
    assert seen == sorted(seen), seen  # a counter never goes back between two scrapes
