"""One-command demo: the demo model server, the sidecar in front of it, and traffic through it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp

from exporter.demo.model_server import FEATURES, MODEL_NAME, MODEL_VERSION, NumericFeature
from exporter.demo.traffic import (
    CONCEPT_DRIFT_SHARE,
    LABEL_COVERAGE,
    LABEL_DELAY_S,
    LabelPlan,
    TrafficSummary,
    build_infer_request,
    generate_traffic,
)
from exporter.demo.training import build_demo_baseline

HEALTHY_TIMEOUT_S = 20.0
MODEL_READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
POLL_S = 0.1
OUTPUT_TAIL_CHARS = 4000
# The directory holding the `exporter` package, so children import this same copy
# whether it is installed or run from a source checkout.
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class DemoError(Exception):
    """A demo start-up failure, reported in one message without a traceback."""


@dataclass
class _Child:
    """A subprocess with its combined stdout/stderr captured in a temporary file."""

    name: str
    process: subprocess.Popen[bytes]
    output: IO[bytes]

    def output_tail(self) -> str:
        """Return the end of what the child printed."""
        self.output.flush()
        self.output.seek(0)
        text = self.output.read().decode(errors="replace").strip()
        return text[-OUTPUT_TAIL_CHARS:] or "(no output)"

    def check_running(self) -> None:
        """Raise DemoError, with the child's output, if it has exited."""
        code = self.process.poll()
        if code is not None:
            raise DemoError(f"the {self.name} exited with code {code}:\n{self.output_tail()}")

    def stop(self) -> None:
        """Interrupt the child (kill it if it lingers) and release its output file.

        SIGINT, as Ctrl-C would: the sidecar skips the drain delay it keeps for rollouts (SIGTERM).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()


def _start(name: str, args: Sequence[str]) -> _Child:
    """Start a child Python process that imports this copy of the package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"  # so a crash's last lines are in the captured output
    output = tempfile.TemporaryFile()
    try:
        # A new session keeps the terminal's Ctrl-C away from the children: the runner
        # stops traffic first and then terminates them in order.
        process = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    except BaseException:
        output.close()
        raise
    return _Child(name, process, output)


async def _wait_for_200(url: str, timeout: float, children: Sequence[_Child], stop: asyncio.Event) -> bool:
    """Poll url until it answers 200; return False if stopped, raise DemoError on exit or timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
        while loop.time() < deadline:
            for child in children:
                child.check_running()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
                return False
    tails = "\n".join(f"--- {child.name} output ---\n{child.output_tail()}" for child in children)
    raise DemoError(f"{url} did not answer 200 within {timeout:.0f} s\n{tails}")


def _example_body() -> str:
    """Return a one-row infer request body at the training means, for the banner's curl."""
    row: dict[str, list[float | int | str | None]] = {}
    for feature in FEATURES:
        if isinstance(feature, NumericFeature):
            row[feature.name] = [round(feature.mean) if feature.datatype.startswith("INT") else feature.mean]
        else:
            row[feature.name] = [feature.categories[0]]
    return json.dumps(build_infer_request(row, "example-1"), separators=(",", ":"))


def _banner(
    proxy_url: str,
    metrics_url: str,
    model_url: str,
    rate: float,
    duration: float | None,
    drift_after: float,
) -> str:
    """Return the text telling the user where to look."""
    until = f"for {duration:g} s" if duration is not None else "until Ctrl-C"
    lines = [
        "model-exporter demo is running",
        f"  proxy    {proxy_url}  (forwards to the demo model server at {model_url})",
        f"  metrics  {metrics_url}/metrics",
        f"  traffic  {rate:g} req/s {until}; after {drift_after:g} s: income +1.5 sd, region skewed to 'west',",
        "           5% null debt_ratio, 4% ages past the training range, 5% unseen region 'central',",
        f"           and {CONCEPT_DRIFT_SHARE:.0%} of outcomes against the model (concept drift)",
        f"  labels   {LABEL_COVERAGE:.0%} of rows get their true outcome {LABEL_DELAY_S:g} s later: POST {metrics_url}/feedback",
        "what to look at (drift scores need 200 rows in a window; thresholds come with them):",
        f"  curl -s {metrics_url}/metrics | grep -E '^model_(drift_score|drift_threshold)' | grep 'window=\"5m\"'",
        f"  curl -s {metrics_url}/metrics | grep -E '^model_column_(missing|out_of_range|unseen)_total'",
        f"  curl -s {metrics_url}/metrics | grep -E '^model_(performance_score|performance_threshold|labels_total)'",
        "try:",
        f"  curl -s {proxy_url}/v2/models/{MODEL_NAME}/infer -H 'Content-Type: application/json' \\",
        f"       -d '{_example_body()}'",
        f"  curl -s {metrics_url}/metrics | grep '^model_'",
        "Ctrl-C stops the demo.",
    ]
    return "\n".join(lines)


async def _run(
    duration: float | None,
    proxy_port: int,
    metrics_port: int,
    model_port: int,
    rate: float,
    drift_after: float,
) -> TrafficSummary | None:
    """Start both children, run traffic through the proxy, and stop the children again."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        stop.set()
        # A second Ctrl-C interrupts the graceful shutdown instead of being ignored.
        loop.remove_signal_handler(signal.SIGINT)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(sig, on_signal)

    model_url = f"http://127.0.0.1:{model_port}"
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    metrics_url = f"http://127.0.0.1:{metrics_port}"
    children: list[_Child] = []
    workdir = tempfile.TemporaryDirectory(prefix="model-exporter-demo-")
    try:
        baseline = build_demo_baseline(Path(workdir.name))
        print(f"baseline built from 20,000 demo training rows: {baseline}", flush=True)
        children.append(_start("demo model server", ["-m", "exporter.demo.model_server", "--port", str(model_port)]))
        # fairness: the demo's labels are segmented by region (its drift skews toward 'west')
        config = Path(workdir.name) / "config.yml"
        config.write_text("performance:\n  segments: [region]\n")
        sidecar_args = ["-m", "exporter", "run", "--config", str(config), "--upstream", model_url]
        sidecar_args += ["--listen", f"127.0.0.1:{proxy_port}"]
        sidecar_args += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
        sidecar_args += ["--model", MODEL_NAME, "--model-version", MODEL_VERSION, "--baseline", str(baseline)]
        children.append(_start("sidecar", sidecar_args))
        if not await _wait_for_200(f"{metrics_url}/-/healthy", HEALTHY_TIMEOUT_S, children, stop):
            return None
        # Wait on the model server directly: polling through the proxy would put the
        # loading phase's 503s into the demo's error-rate metrics.
        if not await _wait_for_200(f"{model_url}/v2/health/ready", MODEL_READY_TIMEOUT_S, children, stop):
            return None
        print(_banner(proxy_url, metrics_url, model_url, rate, duration, drift_after), flush=True)
        return await generate_traffic(
            proxy_url,
            rate,
            duration,
            drift_after=drift_after,
            stop=stop,
            report=lambda message: print(message, flush=True),
            labels=LabelPlan(f"{metrics_url}/feedback"),
        )
    finally:
        # Sidecar first, so it does not count the model server's shutdown as upstream errors.
        for child in reversed(children):
            child.stop()
        workdir.cleanup()


def run_demo(
    duration: float | None,
    proxy_port: int,
    metrics_port: int,
    model_port: int,
    rate: float,
    drift_after: float,
) -> int:
    """Run the demo model server, the sidecar and traffic through it; return the exit code."""
    if rate <= 0 or (duration is not None and duration <= 0):
        message = f"rate and duration must be > 0, got rate={rate} and duration={duration}"
        print(f"model-exporter demo: {message}", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(_run(duration, proxy_port, metrics_port, model_port, rate, drift_after))
    except DemoError as exc:
        print(f"model-exporter demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if summary is None:
        print("model-exporter demo: interrupted while starting", file=sys.stderr)
        return 130
    print(summary.format())
    return 0
