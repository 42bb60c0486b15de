"""Proxy overhead benchmark: direct vs sidecar (vs nginx), measured side by side in one run.

(A) fixed rate: open-loop load at --rate req/s over --conns keep-alive connections against an
    upstream with a --delay-ms service time; latency percentiles per path and the sidecar's
    added p50/p99 vs direct.  Targets: +<= 1 ms at p50, +<= 3 ms at p99.
(B) saturation: wrk (or a closed-loop Python generator) against a 0 ms upstream; sidecar
    throughput as a share of direct.  Target: >= 25 %.

Placement: load generator, wrk and the stand-in upstream on --client-cpu (0); the sidecar
(and nginx, 1 worker) alone on --proxy-cpu (1).  Rounds are interleaved and medians reported.
All traffic goes to 127.0.0.1.  See bench/README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httptools
import numpy as np

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
    uvloop = None

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
INFER_PATH = "/v2/models/demo/infer"
REQ_BODY = json.dumps({
    "id": "bench-0001",
    "parameters": {"content_type": "np"},
    "inputs": [{"name": "input-0", "shape": [1, 8], "datatype": "FP32",
                "data": [0.125, 1.5, -2.25, 3.0, 0.75, -0.5, 12.0, 7.25]}],
}, separators=(",", ":")).encode()  # ~200 bytes
RESP_BODY = (b'{"model_name":"demo","model_version":"1","id":"bench-0001","outputs":'
             b'[{"name":"p","shape":[1,1],"datatype":"FP32","data":[0.5]}]}')  # ~120 bytes
RESP_KEEP = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
             % len(RESP_BODY)) + RESP_BODY
RESP_CLOSE = RESP_KEEP.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)


def new_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if uvloop else asyncio.new_event_loop()


# ---------------------------------------------------------------- stand-in upstream (subprocess)
class ServerProtocol(asyncio.Protocol):
    """A bench server's connection: requests parsed by httptools (on_* callbacks), closed on garbage.
    The stand-ins here, in llm_streams.py and in scrape_stall.py answer in on_message_complete."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport:
                self.transport.close()


class UpstreamProtocol(ServerProtocol):
    """HTTP/1.1 keep-alive server: answers every request with a small JSON body after delay_s."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def on_message_complete(self) -> None:
        keep = self.parser.should_keep_alive()
        if self.delay_s > 0:  # timer, never a blocking sleep; equal delays keep responses in order
            asyncio.get_running_loop().call_later(self.delay_s, self._respond, keep)
        else:
            self._respond(keep)

    def _respond(self, keep: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(RESP_KEEP if keep else RESP_CLOSE)
        if not keep:
            self.transport.close()


def serve_upstream(ports: list[int], delay_ms: float) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        servers = [await loop.create_server(lambda: UpstreamProtocol(delay_ms / 1000.0), HOST, p,
                                            backlog=1024, reuse_address=True) for p in ports]
        await stop
        for s in servers:
            s.close()

    loop = new_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


# ---------------------------------------------------------------- load generator (in-process)
class ClientConn(asyncio.Protocol):
    """One keep-alive client connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            if self.waiter and not self.waiter.done():
                self.waiter.set_exception(e)

    def on_message_complete(self) -> None:
        if self.waiter and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    async def request(self, raw: bytes) -> int:
        if self.transport is None:
            raise ConnectionError("not connected")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await asyncio.wait_for(self.waiter, 10.0)


def build_request(port: int) -> bytes:
    return (f"POST {INFER_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(REQ_BODY)}\r\n\r\n").encode() + REQ_BODY


async def _load(port: int, conns: int, rate: float | None, warmup: float, duration: float) -> dict[str, Any]:
    """Open loop when rate is set (latency from the *scheduled* send time and from the actual
    send), closed loop (as fast as responses come back) when rate is None."""
    loop = asyncio.get_running_loop()
    raw = build_request(port)
    clients = []
    for _ in range(conns):
        _, proto = await loop.create_connection(ClientConn, HOST, port)
        sock = proto.transport.get_extra_info("socket") if proto.transport else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        clients.append(proto)
    t0 = time.perf_counter() + 0.05
    t_meas, t_end = t0 + warmup, t0 + warmup + duration
    lag: list[float] = []
    lat_sched: list[float] = []
    lat_send: list[float] = []
    errors = 0
    interval = conns / rate if rate else 0.0

    async def worker(i: int, c: ClientConn) -> None:
        nonlocal errors
        k = 0
        while True:
            now = time.perf_counter()
            ts = t0 + (i / conns + k) * interval if rate else max(now, t0)
            if ts >= t_end:
                return
            k += 1
            if ts > now:
                await asyncio.sleep(ts - now)
            t_send = time.perf_counter()
            try:
                status = await c.request(raw)
            except (TimeoutError, ConnectionError, httptools.HttpParserError):
                errors += 1
                return
            t_done = time.perf_counter()
            if ts >= t_meas:
                if status != 200:
                    errors += 1
                lag.append(max(0.0, t_send - ts))
                # uvloop timers have 1 ms resolution and may fire early: an early send counts as on time
                lat_sched.append(t_done - min(ts, t_send))
                lat_send.append(t_done - t_send)

    try:
        await asyncio.wait_for(asyncio.gather(*(worker(i, c) for i, c in enumerate(clients))),
                               warmup + duration + 15.0)
    finally:
        for c in clients:
            if c.transport:
                c.transport.close()
    return {"n": len(lat_sched), "errors": errors, "rps": len(lat_sched) / duration,
            **pcts("", lat_sched), **pcts("send_", lat_send),
            "send_lag_p99_ms": float(np.percentile(lag, 99) * 1000.0) if lag else float("nan")}


def pcts(prefix: str, lat: list[float]) -> dict[str, float]:
    if not lat:
        return {f"{prefix}{k}_ms": float("nan") for k in ("p50", "p90", "p99", "max")}
    a = np.asarray(lat) * 1000.0
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {f"{prefix}p50_ms": float(p50), f"{prefix}p90_ms": float(p90),
            f"{prefix}p99_ms": float(p99), f"{prefix}max_ms": float(a.max())}


def run_load(port: int, conns: int, rate: float | None, warmup: float, duration: float) -> dict[str, Any]:
    loop = new_loop()
    try:
        return loop.run_until_complete(_load(port, conns, rate, warmup, duration))
    finally:
        loop.close()


# ---------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pinned(cpu: int | None) -> Callable[[], None] | None:
    # Same as `taskset -c CPU`, applied in the child before exec so every thread inherits it.
    return None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))


class Procs:
    """Every process started by the bench; stop_all() runs in a finally."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, cmd: list[str], cpu: int | None) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")
        p = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             preexec_fn=pinned(cpu))
        log.close()
        p.name = name  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    def log_tail(self, name: str) -> str:
        f = self.tmp / f"{name}.log"
        return f.read_text(errors="replace")[-2000:] if f.exists() else ""

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def http_ok(port: int, path: str, method: str = "GET") -> bool:
    try:
        c = http.client.HTTPConnection(HOST, port, timeout=1.0)
        c.request(method, path, body=REQ_BODY if method == "POST" else None)
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def wait_ready(procs: Procs, p: subprocess.Popen[bytes], checks: list[tuple[int, str, str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"{p.name} exited with {p.returncode}:\n{procs.log_tail(p.name)}")  # type: ignore[attr-defined]
        if all(http_ok(port, path, m) for port, path, m in checks):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{p.name} not ready after {timeout:.0f}s:\n{procs.log_tail(p.name)}")  # type: ignore[attr-defined]


NGINX_CONF = """worker_processes 1;
error_log {tmp}/nginx-error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/nginx-body; proxy_temp_path {tmp}/nginx-proxy;
  fastcgi_temp_path {tmp}/nginx-fcgi; uwsgi_temp_path {tmp}/nginx-uwsgi; scgi_temp_path {tmp}/nginx-scgi;
  upstream model {{ server {host}:{up}; keepalive 64; }}
  server {{
    listen {host}:{port} backlog=1024;
    location / {{ proxy_pass http://model; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
"""


def start_paths(args: argparse.Namespace, procs: Procs, tag: str, delay_ms: float,
                errors: dict[str, str]) -> dict[str, int]:
    """Start upstream, sidecar and nginx for one scenario; returns {path: port} of those that are up."""
    up = free_port()
    me = [sys.executable, str(Path(__file__).resolve())]
    u = procs.start(f"{tag}-upstream", me + ["--serve-upstream", "--port", str(up), "--delay-ms", str(delay_ms)],
                    args.client_cpu)
    wait_ready(procs, u, [(up, "/", "GET")], 15)
    ports = {"direct": up}
    if "sidecar" in args.paths:
        px, mx = free_port(), free_port()
        fill = {"python": sys.executable, "bench": str(Path(__file__).resolve()), "repo": str(REPO),
                "upstream": f"http://{HOST}:{up}", "listen": f"{HOST}:{px}", "metrics_listen": f"{HOST}:{mx}",
                "up_port": up, "px_port": px, "mx_port": mx, "delay_ms": delay_ms}
        if args.sidecar_cmd:
            cmd = [w.format(**fill) for w in shlex.split(args.sidecar_cmd)]
        else:
            cmd = [sys.executable, "-m", "exporter", "run", "--upstream", fill["upstream"],
                   "--listen", fill["listen"], "--metrics-listen", fill["metrics_listen"]]
        try:
            s = procs.start(f"{tag}-sidecar", cmd + args.sidecar_args, args.proxy_cpu)
            wait_ready(procs, s, [(mx, "/-/healthy", "GET"), (px, INFER_PATH, "POST")], args.start_timeout)
            ports["sidecar"] = px
        except (RuntimeError, OSError) as e:
            errors["sidecar"] = str(e)
            print(f"!! sidecar unavailable ({tag}): {e}", file=sys.stderr)
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if "nginx" in args.paths and nginx:
        nx = free_port()
        d = Path(tempfile.mkdtemp(prefix=f"nginx-{tag}-", dir=procs.tmp))
        d.chmod(0o755)
        (d / "nginx.conf").write_text(NGINX_CONF.format(tmp=d, host=HOST, up=up, port=nx))
        try:
            n = procs.start(f"{tag}-nginx", [nginx, "-e", str(d / "nginx-error.log"), "-p", str(d),
                                             "-c", str(d / "nginx.conf"), "-g", "daemon off;"], args.proxy_cpu)
            wait_ready(procs, n, [(nx, INFER_PATH, "POST")], 15)
            ports["nginx"] = nx
        except (RuntimeError, OSError) as e:
            errors["nginx"] = str(e)
            print(f"!! nginx unavailable ({tag}): {e}", file=sys.stderr)
    return ports


def run_wrk(wrk: str, port: int, args: argparse.Namespace, script: Path) -> dict[str, Any]:
    cmd = [wrk, "-t1", f"-c{args.sat_conns}", f"-d{args.sat_duration:g}s", "-s", str(script),
           f"http://{HOST}:{port}{INFER_PATH}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.sat_duration + 30,
                         preexec_fn=pinned(args.client_cpu)).stdout
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not m:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    sock = re.search(r"Socket errors:.*", out)
    return {"rps": float(m.group(1)), "errors": int(bad.group(1)) if bad else 0,
            "socket_errors": sock.group(0) if sock else ""}


# ---------------------------------------------------------------- orchestration and report
def median_of(rounds: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k, v in rounds[0].items() if isinstance(v, (int, float))]
    return {k: float(statistics.median(r[k] for r in rounds)) for k in keys}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def scenario_fixed(args: argparse.Namespace, procs: Procs, errors: dict[str, str]) -> dict[str, Any]:
    ports = start_paths(args, procs, "fixed", args.delay_ms, errors)
    raw: dict[str, list[dict[str, Any]]] = {p: [] for p in ports}
    for r in range(args.rounds):
        for path, port in ports.items():
            res = run_load(port, args.conns, args.rate, args.warmup, args.duration)
            raw[path].append(res)
            print(f"  (A) round {r + 1} {path:8s} {res['rps']:7.1f} req/s  p50 {res['p50_ms']:6.2f}  "
                  f"p99 {res['p99_ms']:6.2f} ms  errors {res['errors']}", flush=True)
    med = {p: median_of(v) for p, v in raw.items()}
    for p in med:
        if p != "direct":
            med[p]["added_p50_ms"] = med[p]["p50_ms"] - med["direct"]["p50_ms"]
            med[p]["added_p99_ms"] = med[p]["p99_ms"] - med["direct"]["p99_ms"]
    out: dict[str, Any] = {"rounds": raw, "median": med}
    if "sidecar" in med:
        s = med["sidecar"]
        out["pass"] = {"added_p50": s["added_p50_ms"] <= args.target_p50_ms,
                       "added_p99": s["added_p99_ms"] <= args.target_p99_ms,
                       "rate": s["rps"] >= 0.95 * args.rate and s["errors"] == 0}
    return out


def scenario_saturation(args: argparse.Namespace, procs: Procs, errors: dict[str, str]) -> dict[str, Any]:
    ports = start_paths(args, procs, "sat", 0.0, errors)
    wrk = shutil.which("wrk")
    script = procs.tmp / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(REQ_BODY.decode())}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    if not wrk:
        print("  (B) wrk not found: using the Python closed-loop generator instead", flush=True)
    raw: dict[str, list[dict[str, Any]]] = {p: [] for p in ports}
    for r in range(args.rounds):
        for path, port in ports.items():
            res = (run_wrk(wrk, port, args, script) if wrk
                   else run_load(port, args.sat_conns, None, 1.0, args.sat_duration))
            raw[path].append(res)
            print(f"  (B) round {r + 1} {path:8s} {res['rps']:9.1f} req/s  errors {res['errors']}", flush=True)
    med = {p: median_of(v) for p, v in raw.items()}
    for p in med:
        med[p]["ratio"] = med[p]["rps"] / med["direct"]["rps"] if med["direct"]["rps"] else float("nan")
    out: dict[str, Any] = {"tool": "wrk" if wrk else "python-closed-loop", "rounds": raw, "median": med}
    if "sidecar" in med:
        out["pass"] = {"ratio": med["sidecar"]["ratio"] >= args.target_ratio}
    return out


def report(args: argparse.Namespace, res: dict[str, Any]) -> None:
    print(f"\n== proxy overhead: medians of {args.rounds} interleaved round(s); client+upstream on cpu "
          f"{args.client_cpu}, proxy on cpu {args.proxy_cpu} ==")
    if "fixed" in res:
        print(f"(A) fixed rate {args.rate:g} req/s, {args.conns} conns, upstream {args.delay_ms:g} ms, "
              f"{args.duration:g} s (+{args.warmup:g} s warm-up); latency from scheduled send [from actual send]")
        print(f"{'scenario':9s} {'path':8s} {'p50_ms':>7s} {'p90_ms':>7s} {'p99_ms':>7s} {'max_ms':>7s} "
              f"{'rps':>7s} {'err':>4s} {'added_p50':>10s} {'added_p99':>10s}  [send p50/p99]")
        for path, m in res["fixed"]["median"].items():
            add = (f"{m['added_p50_ms']:+10.2f} {m['added_p99_ms']:+10.2f}" if path != "direct"
                   else f"{'-':>10s} {'-':>10s}")
            print(f"{'fixed':9s} {path:8s} {m['p50_ms']:7.2f} {m['p90_ms']:7.2f} {m['p99_ms']:7.2f} "
                  f"{m['max_ms']:7.2f} {m['rps']:7.1f} {m['errors']:4.0f} {add}  "
                  f"[{m['send_p50_ms']:.2f}/{m['send_p99_ms']:.2f}]")
        pa = res["fixed"].get("pass")
        if pa:
            s = res["fixed"]["median"]["sidecar"]
            print(f"target (A): added p50 {s['added_p50_ms']:+.2f} ms <= {args.target_p50_ms:g} {verdict(pa['added_p50'])}"
                  f" | added p99 {s['added_p99_ms']:+.2f} ms <= {args.target_p99_ms:g} {verdict(pa['added_p99'])}"
                  f" | rate held, no errors {verdict(pa['rate'])}")
        else:
            print("target (A): sidecar not measured")
    if "saturation" in res:
        sat = res["saturation"]
        med = sat["median"]
        cells = [f"direct {med['direct']['rps']:.0f} rps"] + [
            f"{p} {m['rps']:.0f} rps ({100 * m['ratio']:.0f}%)" for p, m in med.items() if p != "direct"]
        print(f"(B) saturation, upstream 0 ms, {args.sat_conns} conns, {args.sat_duration:g} s, tool {sat['tool']}")
        print("saturation " + " | ".join(cells))
        if sat.get("pass"):
            print(f"target (B): sidecar/direct {100 * med['sidecar']['ratio']:.0f}% >= "
                  f"{100 * args.target_ratio:.0f}% {verdict(sat['pass']['ratio'])}")
        else:
            print("target (B): sidecar not measured")
    for scen in ("fixed", "saturation"):  # these machines are noisy: say when rounds disagree
        key = "p99_ms" if scen == "fixed" else "rps"
        for path, rounds in res.get(scen, {}).get("rounds", {}).items():
            vals = [r[key] for r in rounds if r[key] == r[key] and r[key] > 0]
            if len(vals) > 1 and max(vals) > 1.5 * min(vals):
                print(f"note: noisy: {scen} {path} {key} ranges {min(vals):.1f}..{max(vals):.1f} across rounds; "
                      "rerun with more --rounds (medians of 2 rounds are means)")
    for path, err in res.get("errors", {}).items():
        print(f"note: {path} unavailable: {err.splitlines()[0]}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    extra: list[str] = []
    if "--" in argv:  # everything after -- goes to the sidecar command line
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, action="append", default=[], help=argparse.SUPPRESS)
    ap.add_argument("--delay-ms", type=float, default=5.0, help="upstream service time for (A) (default 5)")
    ap.add_argument("--scenarios", default="fixed,saturation", help="comma list of fixed,saturation")
    ap.add_argument("--paths", default="direct,sidecar,nginx", help="comma list; direct is always measured")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds; medians are reported")
    ap.add_argument("--rate", type=float, default=1000.0, help="(A) total req/s")
    ap.add_argument("--conns", type=int, default=20, help="(A) keep-alive connections")
    ap.add_argument("--duration", type=float, default=10.0, help="(A) measured seconds per run")
    ap.add_argument("--warmup", type=float, default=2.0, help="(A) warm-up seconds per run")
    ap.add_argument("--sat-conns", type=int, default=50, help="(B) connections")
    ap.add_argument("--sat-duration", type=float, default=10.0, help="(B) seconds per run")
    ap.add_argument("--client-cpu", type=int, default=0, help="cpu for load generator, wrk and upstream")
    ap.add_argument("--proxy-cpu", type=int, default=1, help="cpu for the sidecar and nginx")
    ap.add_argument("--sidecar-cmd", help="override; placeholders {python} {bench} {repo} {upstream} {listen} "
                    "{metrics_listen} {up_port} {px_port} {mx_port} {delay_ms}")
    ap.add_argument("--start-timeout", type=float, default=30.0, help="seconds to wait for the sidecar")
    ap.add_argument("--target-p50-ms", type=float, default=1.0)
    ap.add_argument("--target-p99-ms", type=float, default=3.0)
    ap.add_argument("--target-ratio", type=float, default=0.25)
    ap.add_argument("--json", type=Path, help="write all figures to this file")
    args = ap.parse_args(argv)
    args.sidecar_args = extra
    args.paths = ["direct"] + [p for p in args.paths.split(",") if p in ("sidecar", "nginx")]
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve_upstream:
        serve_upstream(args.port, args.delay_ms)
        return 0
    cpus = os.sched_getaffinity(0)
    if not {args.client_cpu, args.proxy_cpu} <= cpus or args.client_cpu == args.proxy_cpu:
        print(f"!! cpus {args.client_cpu}/{args.proxy_cpu} not both available in {sorted(cpus)}: not pinning",
              file=sys.stderr)
        args.client_cpu = args.proxy_cpu = None
    else:
        os.sched_setaffinity(0, {args.client_cpu})  # this process runs the (A) load generator
    res: dict[str, Any] = {"config": {k: v for k, v in vars(args).items() if k != "json"}}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as tmp:
        procs = Procs(Path(tmp))
        try:
            if "fixed" in args.scenarios:
                res["fixed"] = scenario_fixed(args, procs, errors)
            procs.stop_all()
            procs.procs.clear()
            if "saturation" in args.scenarios:
                res["saturation"] = scenario_saturation(args, procs, errors)
        finally:
            procs.stop_all()
    res["errors"] = errors
    report(args, res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    return 2 if "sidecar" in args.paths and "sidecar" in errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
