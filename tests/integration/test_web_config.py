"""TLS and basic auth on the metrics port (exporter-toolkit web config), with a real Prometheus scraping.

Certificates come from the openssl command line; failure cases are checked with curl.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from bundle_support import require_tool
from harness import Sidecar, free_port, run_cli, spawn_sidecar, wait_until
from stand_in import StandIn

USER, PASSWORD = "prometheus", "s3cret-scrape"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run([require_tool("openssl"), *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    return d


def web_config(pki: Path, client_auth: str = "NoClientCert") -> Path:
    doc: dict[str, Any] = {
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "client_auth_type": client_auth,
                              "client_ca_file": "ca.crt"},
        "basic_auth_users": {USER: bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=6)).decode()},
    }
    path = pki / f"web-{client_auth}.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def tls_sidecar(tmp_path_factory: pytest.TempPathFactory, stand_in: StandIn) -> Iterator[Any]:
    """Start a sidecar whose metrics port speaks TLS; ready once /-/healthy answers over HTTPS."""
    started: list[Sidecar] = []

    def start(web: Path, ca: Path, *cert: str) -> tuple[Sidecar, str]:
        sidecar = spawn_sidecar(tmp_path_factory.mktemp("tls-sidecar"), stand_in.url, None, ("--web-config", str(web)))
        started.append(sidecar)
        base = sidecar.metrics_url.replace("http://", "https://")
        ok = wait_until(lambda: not sidecar.running() or curl(base + "/-/healthy", "--cacert", str(ca), *cert) == (0, "200"),
                        timeout=20)
        assert ok and sidecar.running(), sidecar.stderr()[-3000:]
        return sidecar, base

    yield start
    for sidecar in started:
        sidecar.stop()


def curl(url: str, *args: str) -> tuple[int, str]:
    """(curl's exit status, the HTTP status it printed)."""
    result = subprocess.run([require_tool("curl"), "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                             *args, url], capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout


def test_prometheus_scrapes_over_tls_with_basic_auth_and_curl_sees_the_failures(
        tls_sidecar: Any, pki: Path, tmp_path: Path) -> None:
    sidecar, base = tls_sidecar(web_config(pki), pki / "ca.crt")
    ca = ("--cacert", str(pki / "ca.crt"))
    assert curl(base + "/metrics", *ca, "-u", f"{USER}:{PASSWORD}") == (0, "200")
    assert curl(base + "/metrics", *ca, "-u", f"{USER}:wrong") == (0, "401")
    assert curl(base + "/metrics", *ca) == (0, "401")
    assert curl(base + "/-/reload", *ca, "-X", "POST") == (0, "401")
    assert curl(base + "/-/reload", *ca, "-u", f"{USER}:{PASSWORD}", "-X", "POST",
                "-H", "Content-Type: application/x-www-form-urlencoded", "-d", "a=b") == (0, "415")
    assert curl(base + "/-/healthy", *ca) == (0, "200")  # probes stay open: they reveal nothing
    code, status = curl(sidecar.metrics_url + "/metrics")  # plain HTTP to the TLS port
    assert code != 0 or status not in ("200", "401"), (code, status)

    prometheus = require_tool("prometheus")
    port = free_port()
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [{
        "job_name": "model-exporter", "scheme": "https",
        "tls_config": {"ca_file": str(pki / "ca.crt")},
        "basic_auth": {"username": USER, "password": PASSWORD},
        "static_configs": [{"targets": [base.split("://", 1)[1]]}],
    }]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        import json
        import urllib.request

        def up() -> float | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?query=up", timeout=2) as r:
                    result = json.load(r)["data"]["result"]
            except OSError:
                return None
            return float(result[0]["value"][1]) if result else None

        assert wait_until(lambda: up() == 1.0, timeout=30), "Prometheus could not scrape over TLS with basic auth"
    finally:
        proc.terminate()
        proc.wait(10)


def test_client_certificates_when_required(tls_sidecar: Any, pki: Path) -> None:
    ca = ("--cacert", str(pki / "ca.crt"))
    cert = ("--cert", str(pki / "client.crt"), "--key", str(pki / "client.key"))
    _, base = tls_sidecar(web_config(pki, "RequireAndVerifyClientCert"), pki / "ca.crt", *cert)
    assert curl(base + "/metrics", *ca, *cert, "-u", f"{USER}:{PASSWORD}") == (0, "200")
    code, status = curl(base + "/metrics", *ca, "-u", f"{USER}:{PASSWORD}")  # no client certificate
    assert code != 0 and status == "000", (code, status)


def test_a_bad_web_config_is_refused_by_run_and_check_config(tmp_path: Path, pki: Path, stand_in: StandIn) -> None:
    bad = tmp_path / "web.yml"
    bad.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "server.crt"}}))
    expected = f"{bad}: tls_server_config.key_file: expected a file path (required), got None"
    config = tmp_path / "cfg.yml"
    config.write_text(yaml.safe_dump({"upstream": {"url": stand_in.url}, "web_config": str(bad),
                                      "listen": f"127.0.0.1:{free_port()}", "metrics_listen": f"127.0.0.1:{free_port()}"}))
    for argv in (("check-config", str(config)), ("run", "--config", str(config))):
        result = run_cli(*argv, timeout=60)
        assert result.returncode == 2 and expected in result.stderr, (argv, result.stderr)
    missing_key = tmp_path / "web2.yml"
    missing_key.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": str(pki / "server.crt"),
                                                                 "key_file": str(tmp_path / "nope.key")}}))
    result = run_cli("check-config", str(config), "--web-config", str(missing_key))
    assert result.returncode == 2 and "cannot load cert_file" in result.stderr, result.stderr
