"""Helpers for integration tests: ports, a small HTTP client, and the sidecar process."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.samples import Sample

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
OPENMETRICS_ACCEPT = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# The shared `sidecar` fixture: a read timeout far above any delay its tests use, a fast probe.
SHARED_CONFIG: dict[str, Any] = {
    "upstream": {
        "connect_timeout": "1s",
        "read_timeout": "10s",
        "health": {"path": "/v2/health/ready", "interval": "0.2s", "timeout": "1s"},
    },
}
SHARED_MODEL = ("iris", "3")  # --model / --model-version of the shared sidecar


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now and this run has not handed out.

    The kernel may give the same ephemeral port to two binds in a row once the first socket
    is closed; two such calls for one sidecar's proxy and metrics ports would collide.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy and return it; the last falsy value after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)



# -- HTTP -------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def fetch(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: Iterable[tuple[str, str]] = (),
    timeout: float = 10.0,
) -> Response:
    """One request on a fresh connection; nothing decoded (gzip stays gzip), no redirects."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        return send(conn, method, parts.path + (f"?{parts.query}" if parts.query else ""), body, headers)
    finally:
        conn.close()


def send(
    conn: http.client.HTTPConnection,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """One request on an existing (possibly kept-alive) connection."""
    conn.putrequest(method, target, skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    data = resp.read()
    return Response(resp.status, resp.getheaders(), data)


# -- the sidecar process ----------------------------------------------------------------


@dataclass
class Sidecar:
    """A running `python -m exporter run` process and ways to look at it."""

    proc: subprocess.Popen[bytes]
    proxy_url: str
    metrics_url: str
    log_dir: Path
    argv: list[str] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        """The YAML file the sidecar was started with (rewrite it, then reload)."""
        return self.log_dir / "config.yml"

    def stderr(self) -> str:
        return (self.log_dir / "stderr.log").read_text(errors="replace")

    def metrics_text(self, openmetrics: bool = False) -> str:
        headers = [("Accept", OPENMETRICS_ACCEPT)] if openmetrics else []
        resp = fetch(self.metrics_url + "/metrics", headers=headers)
        assert resp.status == 200, f"/metrics answered {resp.status}: {resp.body[:500]!r}"
        return resp.body.decode()

    def metrics(self, openmetrics: bool = False) -> list[Sample]:
        text = self.metrics_text(openmetrics)
        parse = parse_openmetrics if openmetrics else parse_text
        return [s for family in parse(text) for s in family.samples]

    def sample(self, name: str, **labels: str) -> float:
        """Sum of the samples called `name` whose labels include `labels` (0.0 if none)."""
        return sum_samples(self.metrics(), name, **labels)

    def wait_sample(self, name: str, check: Callable[[float], bool], timeout: float = 5.0, **labels: str) -> float:
        """Poll /metrics until `check(sample(name, **labels))` holds; assert with what was seen."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.sample(name, **labels)
            if check(value):
                return value
            if time.monotonic() >= deadline:
                seen = [s for s in self.metrics() if s.name == name]
                raise AssertionError(f"{name}{labels} = {value}, check failed for {timeout}s; samples: {seen}")
            time.sleep(0.05)

    def wait_analysis(self, timeout: float = 20.0) -> None:
        """Poll /metrics until the analysis worker has its configuration and answers scrapes.

        It starts after /-/healthy, and may answer a scrape before it has loaded its configuration
        (with no families at all); `model_rows_total` is there once it has.
        """
        deadline = time.monotonic() + timeout
        while True:
            samples = self.metrics()
            if any(s.name == "model_rows_total" for s in samples) and sum_samples(
                    samples, "model_exporter_collector_success", collector="pipeline") == 1:
                return
            if time.monotonic() >= deadline:
                raise AssertionError(f"the analysis worker did not answer a scrape with its metrics within {timeout}s")
            time.sleep(0.05)

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (a sidecar then skips its rollout delay), then SIGKILL if not gone within STOP_TIMEOUT_S."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


SidecarFactory = Callable[..., Sidecar]


def sum_samples(samples: Iterable[Sample], name: str, **labels: str) -> float:
    return float(sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items()))


def start_sidecar(
    log_dir: Path,
    upstream: str | None,
    config: dict[str, Any] | None = None,
    args: Sequence[str] = (),
    ports_in_config: bool = False,
) -> Sidecar:
    """Start the sidecar from its CLI on free loopback ports; return once /-/healthy is 200.

    The ports go to --listen/--metrics-listen, or with `ports_in_config` into the config file's
    `listen`/`metrics_listen` (so a reload sees a change to them: flags override the file).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):  # a free port can be taken between free_port() and bind()
        sidecar = spawn_sidecar(log_dir, upstream, config, args, ports_in_config)
        healthy = wait_until(lambda s=sidecar: not s.running() or _healthy(s), STARTUP_TIMEOUT_S)
        if healthy and sidecar.running():
            return sidecar
        sidecar.stop()
        stderr = sidecar.stderr()
        if "address already in use" in stderr.lower() and attempt < 2:
            continue
        state = f"exited with {sidecar.proc.returncode}" if sidecar.proc.returncode is not None else "still running"
        raise AssertionError(
            f"sidecar did not answer /-/healthy within {STARTUP_TIMEOUT_S}s ({state})\n"
            f"argv: {' '.join(sidecar.argv)}\nstderr:\n{stderr[-5000:]}"
        )
    raise AssertionError("unreachable")


def spawn_sidecar(log_dir: Path, upstream: str | None, config: dict[str, Any] | None, args: Sequence[str],
           ports_in_config: bool = False) -> Sidecar:
    proxy, metrics = free_port(), free_port()
    argv = [sys.executable, "-m", "exporter", "run"]
    if ports_in_config:
        config = {**(config or {}), "listen": f"127.0.0.1:{proxy}", "metrics_listen": f"127.0.0.1:{metrics}"}
    else:
        argv += ["--listen", f"127.0.0.1:{proxy}", "--metrics-listen", f"127.0.0.1:{metrics}"]
    if upstream is not None:
        argv += ["--upstream", upstream]
    if config is not None:
        config_path = log_dir / "config.yml"
        config_path.write_text(yaml.safe_dump(config))
        argv += ["--config", str(config_path)]
    argv += list(args)
    with open(log_dir / "stdout.log", "wb") as out, open(log_dir / "stderr.log", "wb") as err:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=cli_env())
    return Sidecar(proc, f"http://127.0.0.1:{proxy}", f"http://127.0.0.1:{metrics}", log_dir, argv)


def cli_env() -> dict[str, str]:
    """Environment for `python -m exporter ...`: this checkout first on the path, unbuffered output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def run_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `python -m exporter ARGS...` (the `model-exporter` console script) to completion."""
    return subprocess.run([sys.executable, "-m", "exporter", *args], cwd=REPO_ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def promtool_check_metrics(promtool: str, text: str) -> tuple[int, str]:
    """`promtool check metrics` on an exposition: (exit status, everything it printed)."""
    result = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30,
                            check=False)
    return result.returncode, (result.stdout + result.stderr).decode(errors="replace")


def metric_snapshot(samples: Iterable[Sample], prefixes: tuple[str, ...]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(name, sorted labels): value} of the samples whose name starts with one of `prefixes`."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples if s.name.startswith(prefixes)}


def snapshot_diff(before: dict[Any, float], after: dict[Any, float]) -> dict[Any, float]:
    """Samples whose value changed (a sample absent on one side counts as 0 there)."""
    return {key: after.get(key, 0.0) - before.get(key, 0.0) for key in before.keys() | after.keys()
            if after.get(key, 0.0) != before.get(key, 0.0)}


def _healthy(sidecar: Sidecar) -> bool:
    try:
        return fetch(sidecar.metrics_url + "/-/healthy", timeout=1.0).status == 200
    except OSError:
        return False
