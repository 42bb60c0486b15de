"""Memory of the sidecar's two processes: the proxy and the analysis worker, idle and under load.

Starts the stand-in upstream (from proxy_overhead.py), builds a baseline of --columns numeric
features, runs `python -m exporter run --baseline …` and reads RSS and USS (psutil) of the proxy
process and of its analysis worker: once idle after start-up, then the peak while a V2 client
sends --rate req/s for --duration seconds with one value per column in every request. It also
says whether the proxy process has numpy or scipy mapped (it must not).

Targets: proxy ≤ 40 MB RSS idle and under load; proxy + worker ≤ 120 MB. All traffic on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from proxy_overhead import HOST, ClientConn, Procs, free_port, new_loop, wait_ready

MB = 1 << 20
TARGET_PROXY_MB = 40.0
TARGET_TOTAL_MB = 120.0


def write_training(path: Path, columns: int, rows: int) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    data = rng.normal(size=(rows, columns))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"f{i}" for i in range(columns)])
        writer.writerows(data.round(4).tolist())


def infer_request(port: int, columns: int, i: int) -> bytes:
    body = json.dumps({"id": f"m-{i}", "inputs": [
        {"name": f"f{c}", "shape": [1], "datatype": "FP64", "data": [((i * 7 + c) % 100) / 25.0 - 2.0]}
        for c in range(columns)]}, separators=(",", ":")).encode()
    head = (f"POST /v2/models/bench/infer HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head + body


def memory(pid: int) -> tuple[float, float]:
    info = psutil.Process(pid).memory_full_info()
    return info.rss / MB, info.uss / MB


def maps_numpy(pid: int) -> bool:
    text = Path(f"/proc/{pid}/maps").read_text()
    return "numpy" in text or "scipy" in text


async def load(port: int, columns: int, rate: float, duration: float, conns: int) -> tuple[int, int]:
    loop = asyncio.get_running_loop()
    requests = [infer_request(port, columns, i) for i in range(64)]
    clients = []
    for _ in range(conns):
        _, proto = await loop.create_connection(ClientConn, HOST, port)
        clients.append(proto)
    sent = errors = 0
    start = time.perf_counter()
    end = start + duration
    interval = conns / rate

    async def worker(k: int, client: ClientConn) -> None:
        nonlocal sent, errors
        n = 0
        while True:
            due = start + (k / conns + n) * interval
            if due >= end:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                status = await client.request(requests[(k + n) % len(requests)])
                errors += status != 200
            except (TimeoutError, ConnectionError):
                errors += 1
                return
            sent += 1
            n += 1

    await asyncio.gather(*(worker(k, c) for k, c in enumerate(clients)))
    for c in clients:
        if c.transport:
            c.transport.close()
    return sent, errors


def start_with_baseline(procs: Procs, columns: int, rows: int, delay_ms: float,
                        settle: float, client_cpu: int | None = None,
                        sidecar_cpu: int | None = None) -> tuple[subprocess.Popen[bytes], int, int]:
    """Build a baseline of `columns` numeric features, start the stand-in upstream and a sidecar
    on it with that baseline; returns (sidecar process, proxy port, metrics port) once healthy.
    `client_cpu` / `sidecar_cpu`: pin the upstream and the sidecar (its worker too) to these CPUs."""
    training = procs.tmp / "training.csv"
    write_training(training, columns, rows)
    baseline = procs.tmp / "baseline.json"
    build = procs.start("baseline", [sys.executable, "-m", "exporter", "baseline", "build", str(training),
                                     "-o", str(baseline)], None)
    if build.wait(600) != 0:
        raise RuntimeError(procs.log_tail("baseline"))
    up, px, mx = free_port(), free_port(), free_port()
    me = [sys.executable, str(Path(__file__).resolve().parent / "proxy_overhead.py")]
    upstream = procs.start("upstream", me + ["--serve-upstream", "--port", str(up), "--delay-ms", str(delay_ms)],
                           client_cpu)
    wait_ready(procs, upstream, [(up, "/", "GET")], 15)
    sidecar = procs.start("sidecar", [sys.executable, "-m", "exporter", "run", "--upstream", f"http://{HOST}:{up}",
                                      "--listen", f"{HOST}:{px}", "--metrics-listen", f"{HOST}:{mx}",
                                      "--baseline", str(baseline)], sidecar_cpu)
    wait_ready(procs, sidecar, [(mx, "/-/healthy", "GET")], 120)
    time.sleep(settle)  # the worker loads the baseline
    return sidecar, px, mx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--conns", type=int, default=20)
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    procs = Procs(tmp)
    try:
        sidecar, px, _ = start_with_baseline(procs, args.columns, 5000, delay_ms=1, settle=3.0)
        children = psutil.Process(sidecar.pid).children()
        if not children:
            raise RuntimeError("no analysis worker process under the sidecar")
        worker_pid = children[0].pid
        idle = {"proxy": memory(sidecar.pid), "worker": memory(worker_pid)}
        numpy_in_proxy = maps_numpy(sidecar.pid)

        peak = {"proxy": idle["proxy"], "worker": idle["worker"]}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.25):
                for name, pid in (("proxy", sidecar.pid), ("worker", worker_pid)):
                    rss, uss = memory(pid)
                    peak[name] = (max(peak[name][0], rss), max(peak[name][1], uss))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        loop = new_loop()
        try:
            sent, errors = loop.run_until_complete(load(px, args.columns, args.rate, args.duration, args.conns))
        finally:
            loop.close()
            done.set()
            sampler.join()
    finally:
        procs.stop_all()

    print(f"== memory: {args.columns}-column baseline, {args.rate:g} req/s for {args.duration:g} s "
          f"({sent} requests, {errors} errors) ==")
    print(f"{'process':8s} {'idle RSS':>9s} {'idle USS':>9s} {'load RSS':>9s} {'load USS':>9s}   (MB; load = peak)")
    for name in ("proxy", "worker"):
        print(f"{name:8s} {idle[name][0]:9.1f} {idle[name][1]:9.1f} {peak[name][0]:9.1f} {peak[name][1]:9.1f}")
    total = peak["proxy"][0] + peak["worker"][0]
    print(f"{'total':8s} {idle['proxy'][0] + idle['worker'][0]:9.1f} {'':9s} {total:9.1f}")
    proxy_ok = max(idle["proxy"][0], peak["proxy"][0]) <= TARGET_PROXY_MB
    print(f"target: proxy RSS <= {TARGET_PROXY_MB:g} MB {'PASS' if proxy_ok else 'FAIL'}"
          f" | proxy + worker <= {TARGET_TOTAL_MB:g} MB {'PASS' if total <= TARGET_TOTAL_MB else 'FAIL'}"
          f" | numpy/scipy mapped in the proxy: {'yes (FAIL)' if numpy_in_proxy else 'no (PASS)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
