"""Soak: mixed traffic through a real sidecar for --duration seconds; nothing lost or altered, flat memory.

Starts, all on 127.0.0.1:
- the demo model server (exporter.demo.model_server.make_app) in a thread, with three extra
  routes: an SSE stream (POST /v1/chat/completions), a 1 MiB download (GET /blob) and a slow
  answer (GET /slow). Every response it sends is recorded (SHA-256 by the X-Soak-Id request
  header), so what a client receives is compared byte for byte with what the model server sent;
- `python -m exporter run --config soak.yml` with a baseline built from the demo's training data
  (exporter.demo.training.build_demo_baseline).

Then for --duration seconds, at about --rate requests/s over --connections keep-alive
connections: valid V2 infer requests, malformed payloads (invalid JSON, inconsistent tensors),
streamed SSE responses, slow clients (reading the 1 MiB download 16 KiB at a time), and clients
that hang up before their answer; meanwhile --scrapers concurrent scrapes of /metrics, and every
--reload-every seconds a reload (POST /-/reload) of a rewritten config file, every other one of
them invalid. Everything is bounded: requests by rate × duration, connections, bodies.

Checks (PASS/FAIL each; the exit status is 0 unless the sidecar could not start: 2):
- requests lost (no complete answer) and altered (bytes differ from the model server's): 0;
- RSS of the proxy plus its analysis worker (psutil) from the end of the warm-up to the end:
  growth < 5 %;
- series on /metrics from the end of the warm-up to the end: the same number;
- every injected fault is visible: malformed payloads in model_payload_errors_total{side="request"},
  hung-up clients as model_requests_total{code="499"}, a bad reload as
  model_exporter_config_last_reload_successful 0 (and 1 again after a good one), streams and slow
  clients counted on their routes.

    python bench/soak.py                  # 60 s
    python bench/soak.py --duration 600   # the 10-minute soak
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from exporter.demo.model_server import MODEL_NAME, MODEL_VERSION, make_app
from exporter.demo.traffic import build_infer_request, sample_rows
from exporter.demo.training import build_demo_baseline

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
MB = 1 << 20
TARGET_RSS_GROWTH = 0.05
BLOB_SIZE = 1 << 20
SLOW_READ = 16 * 1024  # a slow client reads this much...
SLOW_PAUSE_S = 0.01  # ...then waits this long
HANG_UP_AFTER_S = 0.1  # a hanging-up client leaves this long after sending; /slow answers after 1 s
SLOW_ANSWER_S = 1.0
SSE_EVENTS = 8
BLOB_SEEDS = 64  # distinct /blob targets: the proxy's route cache (bounded) holds them all after the warm-up
LABEL_CACHE_SIZE = 1000  # predictions kept for label joins (sidecar_config)
RSS_EVERY_S = 10.0
REQUEST_TIMEOUT_S = 30.0
START_TIMEOUT_S = 60.0
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"
# The traffic mix: (kind, weight); --mix replaces it (to find which kind a regression comes with).
MIX = (("infer", 70), ("malformed", 10), ("stream", 10), ("slow_reader", 5), ("hang_up", 5))
MALFORMED_BODIES = (
    b"{not json",
    json.dumps({"inputs": [{"name": "age", "shape": [3], "datatype": "FP32", "data": [41.0]}]}).encode(),
    json.dumps({"inputs": "age"}).encode(),
    gzip.compress(b"\x00\x01 not json either", mtime=0),
)


# ------------------------------------------------------------------ the model server


class Recorder:
    """SHA-256 of every response body the model server sent, by the request's X-Soak-Id."""

    def __init__(self) -> None:
        self.sent: dict[str, str] = {}
        self.lock = threading.Lock()

    def record(self, soak_id: str | None, body: bytes) -> None:
        if soak_id is not None:
            with self.lock:
                self.sent[soak_id] = hashlib.sha256(body).hexdigest()

    def take(self, soak_id: str) -> str | None:
        with self.lock:
            return self.sent.pop(soak_id, None)


def blob(seed: int) -> bytes:
    """The deterministic 1 MiB body of GET /blob?seed=N."""
    return random.Random(seed).randbytes(BLOB_SIZE)


def sse_events(soak_id: str) -> list[bytes]:
    """The events of one streamed completion, OpenAI style, ending with [DONE]."""
    events = [b"data: " + json.dumps({"id": soak_id, "choices": [{"index": 0, "delta": {"content": f"token {i} "}}]}
                                     ).encode() + b"\n\n" for i in range(SSE_EVENTS)]
    return events + [b"data: [DONE]\n\n"]


def model_server(recorder: Recorder) -> web.Application:
    """The demo model server plus the soak's routes; every response body is recorded."""
    app = make_app(load_seconds=0.5, latency_ms=2.0)

    @web.middleware
    async def record(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        if request.method == "POST" and request.path == "/v1/chat/completions":
            return await stream(request)  # the demo server's own stand-in LLM has this route: the soak's goes first
        response = await handler(request)
        if isinstance(response, web.Response) and response.body is not None:
            recorder.record(request.headers.get("X-Soak-Id"), bytes(response.body))  # type: ignore[arg-type]
        return response

    async def stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        soak_id = request.headers.get("X-Soak-Id", "")
        events = sse_events(soak_id)
        recorder.record(soak_id, b"".join(events))  # before the first byte leaves
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for event in events:
            await response.write(event)
            await asyncio.sleep(0.002)
        await response.write_eof()
        return response

    async def get_blob(request: web.Request) -> web.Response:
        return web.Response(body=blob(int(request.query.get("seed", "0"))), content_type="application/octet-stream")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(SLOW_ANSWER_S)
        return web.Response(text="slow\n")

    app.middlewares.append(record)
    app.router.add_get("/blob", get_blob)
    app.router.add_get("/slow", slow)
    return app


class ModelServerThread:
    """The model server on its own event loop in a daemon thread."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="model-server", daemon=True)
        self.runner = web.AppRunner(app, access_log=None)
        self.port = 0

    def start(self) -> int:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self.port

    async def _start(self) -> None:
        await self.runner.setup()
        sock = socket.socket()
        sock.bind((HOST, 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self.runner, sock, backlog=1024).start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# ------------------------------------------------------------------ the sidecar


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def sidecar_config(upstream_port: int, proxy_port: int, metrics_port: int, baseline: Path,
                   read_timeout: str = "10s") -> dict[str, object]:
    """The config file a reload re-reads; only upstream.read_timeout changes between reloads.

    labels.cache_size is small so that the label-join cache (every prediction with an id is kept
    for POST /feedback, 100,000 by default: tens of MB by design) is full before the warm-up ends:
    memory that grows after it is then not a cache filling up.
    """
    return {
        "upstream": {"url": f"http://{HOST}:{upstream_port}", "read_timeout": read_timeout,
                     "health": {"interval": "1s"}},
        "listen": f"{HOST}:{proxy_port}",
        "metrics_listen": f"{HOST}:{metrics_port}",
        "model": {"name": MODEL_NAME, "version": MODEL_VERSION},
        "baseline": str(baseline),
        "labels": {"cache_size": LABEL_CACHE_SIZE},
    }


@dataclass
class Sidecar:
    """The `python -m exporter run` process and the ways the soak looks at it."""

    proc: subprocess.Popen[bytes]
    proxy_port: int
    metrics_port: int
    config_path: Path
    log_path: Path

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(HOST, self.metrics_port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def reload(self) -> int:
        conn = http.client.HTTPConnection(HOST, self.metrics_port, timeout=30)
        try:
            conn.request("POST", "/-/reload", headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample on /metrics: {(name, sorted labels): value}."""
        status, body = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body.decode()) for s in family.samples}

    def rss(self) -> tuple[float, float]:
        """(proxy, analysis worker) resident memory in MB; the worker is the proxy's child."""
        proxy = psutil.Process(self.proc.pid)
        worker = sum(child.memory_info().rss for child in proxy.children(recursive=True))
        return proxy.memory_info().rss / MB, worker / MB

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # SIGINT: no rollout delay
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def start_sidecar(workdir: Path, upstream_port: int, baseline: Path) -> Sidecar:
    proxy_port, metrics_port = free_port(), free_port()
    config_path = workdir / "soak.yml"
    config_path.write_text(yaml.safe_dump(sidecar_config(upstream_port, proxy_port, metrics_port, baseline)))
    log_path = workdir / "sidecar.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "exporter", "run", "--config", str(config_path)],
                                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    sidecar = Sidecar(proc, proxy_port, metrics_port, config_path, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError):
            if sidecar.get("/-/ready", timeout=1)[0] == 200 and worker_ready(sidecar):
                return sidecar
        time.sleep(0.2)
    sidecar.stop()
    raise RuntimeError(f"the sidecar did not become ready within {START_TIMEOUT_S:g}s:\n{sidecar.log_tail()}")


def worker_ready(sidecar: Sidecar) -> bool:
    """The analysis worker answers scrapes with its families (model_rows_total is among them)."""
    return any(name == "model_rows_total" for name, _ in sidecar.samples())


# ------------------------------------------------------------------ HTTP on raw streams


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes  # de-chunked


class Connection:
    """One keep-alive client connection to the proxy port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> None:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.writer.write(request)
        await self.writer.drain()

    async def answer(self, slow: bool = False) -> Answer:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if headers.get("transfer-encoding", "").lower().endswith("chunked"):
            body = await self._chunked()
        elif "content-length" in headers:
            body = await self._exactly(int(headers["content-length"]), slow)
        else:
            body = await self.reader.read()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Answer(status, headers, body)

    async def _exactly(self, size: int, slow: bool) -> bytes:
        assert self.reader is not None
        if not slow:
            return await self.reader.readexactly(size)
        parts: list[bytes] = []
        while size > 0:
            part = await self.reader.readexactly(min(SLOW_READ, size))
            parts.append(part)
            size -= len(part)
            await asyncio.sleep(SLOW_PAUSE_S)
        return b"".join(parts)

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailer fields
                return b"".join(parts)
            parts.append((await self.reader.readexactly(size + 2))[:-2])

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def request(method: str, target: str, soak_id: str, body: bytes = b"", content_type: str = "application/json",
            extra: str = "") -> bytes:
    head = (f"{method} {target} HTTP/1.1\r\nHost: soak\r\nX-Soak-Id: {soak_id}\r\nX-Request-Id: {soak_id}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n")
    return head.encode() + body


# ------------------------------------------------------------------ the traffic


@dataclass
class Tally:
    """What the clients did and saw, per kind of traffic."""

    sent: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    altered: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # the first few losses and alterations

    def note(self, text: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(text)


class Traffic:
    """The client side of the soak: paced requests of every kind, each checked against the record."""

    def __init__(self, port: int, recorder: Recorder, rate: float, seed: int,
                 mix: tuple[tuple[str, int], ...] = MIX) -> None:
        self.port = port
        self.recorder = recorder
        self.interval = 1.0 / rate
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.tally = Tally()
        self.ids = 0
        self.next_send = time.monotonic()
        self.kinds = [kind for kind, weight in mix for _ in range(weight)]

    def new_id(self, kind: str) -> str:
        self.ids += 1
        return f"{kind}-{self.ids}"

    async def pace(self) -> None:
        """Wait for this request's turn: the rate is shared by every connection."""
        now = time.monotonic()
        self.next_send = max(self.next_send + self.interval, now)
        await asyncio.sleep(self.next_send - now)

    async def client(self, deadline: float) -> None:
        """One keep-alive connection sending the mix until `deadline`."""
        conn = Connection(self.port)
        while time.monotonic() < deadline:
            await self.pace()
            kind = self.rng.choice(self.kinds)
            try:
                await asyncio.wait_for(self.one(kind, conn), REQUEST_TIMEOUT_S)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                self.tally.lost[kind] += 1
                self.tally.note(f"{kind}: {type(exc).__name__}: {exc}")
                await conn.close()
        await conn.close()

    async def one(self, kind: str, conn: Connection) -> None:
        soak_id = self.new_id(kind)
        self.tally.sent[kind] += 1
        if kind == "hang_up":
            await self.hang_up(soak_id)
            return
        if kind == "slow_reader":
            fresh = Connection(self.port)  # its own connection: the slow read holds it
            try:
                answer = await self.exchange(fresh, request("GET", f"/blob?seed={self.ids % BLOB_SEEDS}", soak_id), slow=True)
            finally:
                await fresh.close()
        elif kind == "stream":
            body = json.dumps({"model": MODEL_NAME, "stream": True,
                               "messages": [{"role": "user", "content": f"hello {soak_id}"}]}).encode()
            answer = await self.exchange(conn, request("POST", "/v1/chat/completions", soak_id, body))
        elif kind == "malformed":
            body = self.rng.choice(MALFORMED_BODIES)
            extra = "Content-Encoding: gzip\r\n" if body[:2] == b"\x1f\x8b" else ""
            answer = await self.exchange(conn, request("POST", INFER_PATH, soak_id, body, extra=extra))
        else:
            rows = int(self.rng.choice([1, 1, 2, 4, 8]))
            body = json.dumps(build_infer_request(sample_rows(self.np_rng, rows, drifted=False), soak_id)).encode()
            answer = await self.exchange(conn, request("POST", INFER_PATH, soak_id, body))
        self.check(kind, soak_id, answer)

    async def exchange(self, conn: Connection, data: bytes, slow: bool = False) -> Answer:
        await conn.send(data)
        return await conn.answer(slow)

    def check(self, kind: str, soak_id: str, answer: Answer) -> None:
        """Byte for byte what the model server sent for this id (it records before the first byte)."""
        sent = self.recorder.take(soak_id)
        if sent is None:
            self.tally.lost[kind] += 1
            self.tally.note(f"{kind} {soak_id}: answered {answer.status}, but the model server never saw it")
        elif hashlib.sha256(answer.body).hexdigest() != sent:
            self.tally.altered[kind] += 1
            self.tally.note(f"{kind} {soak_id}: {len(answer.body)} bytes differ from what the model server sent")
        else:
            self.tally.ok[kind] += 1

    async def hang_up(self, soak_id: str) -> None:
        """A client that asks for a slow answer and leaves before it comes (a 499)."""
        _, writer = await asyncio.open_connection(HOST, self.port)
        writer.write(request("GET", "/slow", soak_id))
        await writer.drain()
        await asyncio.sleep(HANG_UP_AFTER_S)
        writer.transport.abort()
        self.tally.ok["hang_up"] += 1


async def scrape_loop(sidecar: Sidecar, deadline: float, stats: dict[str, list[float]]) -> None:
    """Scrapes /metrics back to back (in a thread: http.client blocks) until `deadline`."""
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            status, body = await asyncio.to_thread(sidecar.get, "/metrics")
        except OSError:
            status, body = 0, b""
        stats["seconds"].append(time.monotonic() - t0)
        stats["failed"].append(float(status != 200))
        if status == 200:  # samples in this scrape: a scrape without the worker's families would show here
            stats["series"].append(float(sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))))
        await asyncio.sleep(0.2)


async def rss_loop(sidecar: Sidecar, deadline: float, samples: list[float]) -> None:
    """Proxy + worker RSS every RSS_EVERY_S: a plateau and a leak look alike at two points only."""
    while time.monotonic() + RSS_EVERY_S < deadline:
        await asyncio.sleep(RSS_EVERY_S)
        samples.append(sum(await asyncio.to_thread(sidecar.rss)))


async def reload_loop(sidecar: Sidecar, deadline: float, every: float, upstream_port: int, baseline: Path,
                      outcome: list[tuple[bool, int, float]]) -> None:
    """Every `every` seconds rewrite the config file and reload; every other rewrite is invalid.

    Records (valid, HTTP status, model_exporter_config_last_reload_successful just after).
    """
    valid = True
    while time.monotonic() + every < deadline:
        await asyncio.sleep(every)
        config = sidecar_config(upstream_port, sidecar.proxy_port, sidecar.metrics_port, baseline,
                                read_timeout=random.choice(["10s", "11s", "12s"]) if valid else "forever")
        sidecar.config_path.write_text(yaml.safe_dump(config))
        status = await asyncio.to_thread(sidecar.reload)
        samples = await asyncio.to_thread(sidecar.samples)
        outcome.append((valid, status, total(samples, "model_exporter_config_last_reload_successful")))
        valid = not valid
    if outcome and not outcome[-1][0]:  # end on a good configuration
        config = sidecar_config(upstream_port, sidecar.proxy_port, sidecar.metrics_port, baseline)
        sidecar.config_path.write_text(yaml.safe_dump(config))
        status = await asyncio.to_thread(sidecar.reload)
        outcome.append((True, status, total(await asyncio.to_thread(sidecar.samples),
                                            "model_exporter_config_last_reload_successful")))


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in samples.items() if n == name and set(labels.items()) <= set(lab))


# ------------------------------------------------------------------ the run


@dataclass
class Snapshot:
    rss: tuple[float, float]
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Observed:
    """What the soak phase saw besides the traffic: scrapes, reloads, memory over time."""

    scrapes: dict[str, list[float]] = field(default_factory=lambda: {"seconds": [], "failed": [], "series": []})
    reloads: list[tuple[bool, int, float]] = field(default_factory=list)  # (valid, HTTP status, gauge after)
    rss: list[float] = field(default_factory=list)  # MB, proxy + worker, every RSS_EVERY_S


async def run_phase(args: argparse.Namespace, sidecar: Sidecar, traffic: Traffic, seconds: float,
                    observed: Observed | None, upstream_port: int, baseline: Path) -> None:
    """Traffic and scrapes for `seconds`; with `observed`, reloads and memory samples too."""
    deadline = time.monotonic() + seconds
    scrapes = observed.scrapes if observed is not None else {"seconds": [], "failed": [], "series": []}
    tasks = [traffic.client(deadline) for _ in range(args.connections)]
    tasks += [scrape_loop(sidecar, deadline, scrapes) for _ in range(args.scrapers)]
    if observed is not None:
        tasks.append(reload_loop(sidecar, deadline, args.reload_every, upstream_port, baseline, observed.reloads))
        tasks.append(rss_loop(sidecar, deadline, observed.rss))
    await asyncio.gather(*tasks)


def settle(sidecar: Sidecar) -> None:
    """Let the worker finish what is queued (no waiting events) before a snapshot."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if total(sidecar.samples(), "model_exporter_queue_depth") == 0:
            break
        time.sleep(0.2)
    time.sleep(1.0)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def delta(start: Snapshot, end: Snapshot, name: str, **labels: str) -> float:
    return total(end.samples, name, **labels) - total(start.samples, name, **labels)


def report(args: argparse.Namespace, traffic: Traffic, start: Snapshot, end: Snapshot, observed: Observed) -> None:
    t = traffic.tally
    print(f"\nsoak: {args.duration:g}s of mixed traffic after a {args.warmup:g}s warm-up, ~{args.rate:g} req/s over "
          f"{args.connections} connections, {args.scrapers} scrapers, a reload every {args.reload_every:g}s")
    print(f"{'traffic':<12} {'sent':>7} {'ok':>7} {'lost':>6} {'altered':>8}")
    for kind, _ in MIX:
        print(f"{kind:<12} {t.sent[kind]:>7} {t.ok[kind]:>7} {t.lost[kind]:>6} {t.altered[kind]:>8}")
    sent, lost, altered = sum(t.sent.values()), sum(t.lost.values()), sum(t.altered.values())
    print(f"{'total':<12} {sent:>7} {sum(t.ok.values()):>7} {lost:>6} {altered:>8}")
    for example in t.examples:
        print(f"  e.g. {example}")
    scrapes, failed = observed.scrapes["seconds"], int(sum(observed.scrapes["failed"]))
    series = observed.scrapes["series"]
    print(f"scrapes: {len(scrapes)}, failed {failed}, max {1000 * max(scrapes, default=0):.0f} ms, median "
          f"{1000 * float(np.median(scrapes or [0])):.0f} ms; samples per scrape {min(series, default=0):g} to "
          f"{max(series, default=0):g}")
    rss = [sum(start.rss), *observed.rss, sum(end.rss)]
    print(f"RSS, proxy + worker, every {RSS_EVERY_S:g}s (MB): {', '.join(f'{v:.1f}' for v in rss)}")
    results = [
        ("requests lost: 0", lost == 0, f"{lost} of {sent}"),
        ("requests altered: 0", altered == 0, f"{altered} of {sent}"),
        ("scrapes all answered", failed == 0, f"{failed} failed"),
    ]
    results += memory_results(start, end)
    results += series_results(start, end)
    results.append(("samples per scrape the same in every scrape", bool(series) and min(series) == max(series),
                    f"{min(series, default=0):g} to {max(series, default=0):g} over {len(series)} scrapes"))
    results += fault_results(traffic, start, end, observed.reloads)
    print("\ntargets:")
    for name, ok, detail in results:
        print(f"  {verdict(ok)}  {name:<58} {detail}")
    print(f"\n{sum(ok for _, ok, _ in results)}/{len(results)} targets met")


def memory_results(start: Snapshot, end: Snapshot) -> list[tuple[str, bool, str]]:
    before, after = sum(start.rss), sum(end.rss)
    growth = (after - before) / before
    return [("RSS growth, proxy + worker, < 5 %", growth < TARGET_RSS_GROWTH,
             f"{before:.1f} MB (proxy {start.rss[0]:.1f} + worker {start.rss[1]:.1f}) -> {after:.1f} MB "
             f"(proxy {end.rss[0]:.1f} + worker {end.rss[1]:.1f}): {100 * growth:+.1f} %")]


def series_results(start: Snapshot, end: Snapshot) -> list[tuple[str, bool, str]]:
    new = sorted({name for name, _ in end.samples.keys() - start.samples.keys()})
    gone = sorted({name for name, _ in start.samples.keys() - end.samples.keys()})
    detail = f"{len(start.samples)} -> {len(end.samples)}"
    if new or gone:
        detail += f" (new in: {', '.join(new[:5]) or '-'}; gone from: {', '.join(gone[:5]) or '-'})"
    return [("series on /metrics stable (start and end snapshots)",
             len(start.samples) == len(end.samples) and not new and not gone, detail)]


def fault_results(traffic: Traffic, start: Snapshot, end: Snapshot,
                  reloads: list[tuple[bool, int, float]]) -> list[tuple[str, bool, str]]:
    t = traffic.tally
    payload_errors = delta(start, end, "model_payload_errors_total", side="request")
    dropped = delta(start, end, "model_exporter_events_dropped_total")
    code_499 = delta(start, end, "model_requests_total", code="499")
    streams = delta(start, end, "model_requests_total", route="/v1/chat/completions")
    slow = delta(start, end, "model_requests_total", route="other", code="200")
    send_timeouts = delta(start, end, "model_exporter_client_connections_closed_total", reason="send_timeout")
    bad = [r for r in reloads if not r[0]]
    good = [r for r in reloads if r[0]]
    return [
        ("malformed payloads -> model_payload_errors_total{side=request}",
         payload_errors >= t.sent["malformed"] - dropped and payload_errors > 0,
         f"+{payload_errors:g} for {t.sent['malformed']} sent ({dropped:g} exchanges dropped from analysis)"),
        ("hung-up clients -> model_requests_total{code=499}", code_499 == t.sent["hang_up"] and code_499 > 0,
         f"+{code_499:g} for {t.sent['hang_up']} hang-ups"),
        ("streams -> model_requests_total{route=/v1/chat/completions}", streams == t.sent["stream"],
         f"+{streams:g} for {t.sent['stream']} streams"),
        ("slow readers served, none cut by send_timeout", slow >= t.ok["slow_reader"] and send_timeouts == 0,
         f"+{slow:g} on route other for {t.sent['slow_reader']} slow readers, {send_timeouts:g} send timeouts"),
        ("bad reload -> config_last_reload_successful 0", bool(bad) and all(s == 400 and v == 0 for _, s, v in bad),
         f"{len(bad)} bad reloads: " + ", ".join(f"HTTP {s}, gauge {v:g}" for _, s, v in bad[:3])),
        ("good reload -> config_last_reload_successful 1", bool(good) and all(s == 200 and v == 1 for _, s, v in good),
         f"{len(good)} good reloads: " + ", ".join(f"HTTP {s}, gauge {v:g}" for _, s, v in good[:3])),
    ]


def snapshot(sidecar: Sidecar) -> Snapshot:
    settle(sidecar)
    return Snapshot(sidecar.rss(), sidecar.samples())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of soak after the warm-up (600: the target mode)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of the same traffic before the start snapshot")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second, all kinds together")
    parser.add_argument("--connections", type=int, default=12, help="client connections")
    parser.add_argument("--scrapers", type=int, default=3, help="concurrent /metrics scrapers")
    parser.add_argument("--reload-every", type=float, default=10.0, help="seconds between reloads")
    parser.add_argument("--mix", type=parse_mix, default=MIX,
                        help="kind=weight,... of " + ", ".join(k for k, _ in MIX) + " (default: "
                        + ",".join(f"{k}={w}" for k, w in MIX) + "); the fault checks of kinds left out fail")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def parse_mix(text: str) -> tuple[tuple[str, int], ...]:
    """`infer=70,hang_up=5` -> (("infer", 70), ("hang_up", 5))."""
    known = {kind for kind, _ in MIX}
    mix = []
    for item in text.split(","):
        kind, _, weight = item.partition("=")
        if kind.strip() not in known or not weight.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected kind=weight with a kind among {sorted(known)}, got {item!r}")
        mix.append((kind.strip(), int(weight)))
    return tuple(mix)


async def soak(args: argparse.Namespace, sidecar: Sidecar, recorder: Recorder, upstream_port: int,
               baseline: Path) -> None:
    warm = Traffic(sidecar.proxy_port, recorder, args.rate, args.seed, args.mix)
    await run_phase(args, sidecar, warm, args.warmup, None, upstream_port, baseline)
    start = await asyncio.to_thread(snapshot, sidecar)
    traffic = Traffic(sidecar.proxy_port, recorder, args.rate, args.seed + 1, args.mix)
    traffic.ids = warm.ids
    observed = Observed()
    await run_phase(args, sidecar, traffic, args.duration, observed, upstream_port, baseline)
    end = await asyncio.to_thread(snapshot, sidecar)
    report(args, traffic, start, end, observed)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    recorder = Recorder()
    server = ModelServerThread(model_server(recorder))
    upstream_port = server.start()
    print(f"model server on {HOST}:{upstream_port}; building the demo baseline in {workdir} ...", flush=True)
    baseline = build_demo_baseline(workdir)
    try:
        sidecar = start_sidecar(workdir, upstream_port, baseline)
    except RuntimeError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        server.stop()
        return 2
    print(f"sidecar pid {sidecar.proc.pid}: proxy {HOST}:{sidecar.proxy_port}, metrics {HOST}:{sidecar.metrics_port}; "
          f"warming up for {args.warmup:g}s, then {args.duration:g}s of soak", flush=True)
    try:
        asyncio.run(soak(args, sidecar, recorder, upstream_port, baseline))
    finally:
        alive = sidecar.proc.poll() is None
        sidecar.stop()
        server.stop()
        print(f"sidecar still running at the end: {verdict(alive)}; log: {sidecar.log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
