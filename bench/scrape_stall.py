"""Do scrapes stall proxied traffic? Proxied latency with and without concurrent scrapers, side by side.

Builds a baseline of --columns numeric features (1,000 by default: tens of thousands of series),
starts the stand-in upstream (proxy_overhead.py) and `python -m exporter run --baseline …`, then
runs interleaved rounds of the fixed-rate load (--rate req/s over --conns connections) with no
scraper and with --scrapers processes fetching /metrics back to back, asking as Prometheus asks
(OpenMetrics preferred, gzip; --plain: neither). Reports the proxied p50/p99 of each and the
difference, and the CPU each scrape cost the proxy and the worker. Target: p99 rises by at most
1 ms with 4 scrapers. 127.0.0.1 only.

The control: the same scrapers fetching a static copy of the exposition (same bytes, same
headers) from a bare server on the sidecar's CPU, beside the idle sidecar. What that adds is
what moving a scrape's bytes costs on this machine, whoever serves them; the sidecar's own
work is its rise over the control's.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from memory import start_with_baseline, wait_ready
from proxy_overhead import HOST, Procs, ServerProtocol, free_port, new_loop, run_load

TARGET_P99_MS = 1.0
SCRAPES_ALONE = 20


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


# what Prometheus 3 sends on every scrape (scrape_protocols default, enable_compression true)
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,"
              "text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


class StaticExposition(ServerProtocol):
    """Answers every request with one fixed response: a scrape's bytes with no work behind them."""

    def __init__(self, response: bytes) -> None:
        super().__init__()
        self.response = response

    def on_message_complete(self) -> None:
        if self.transport is not None:
            self.transport.write(self.response)


def serve_static(port: int, body_file: str, content_type: str, encoding: str) -> None:
    body = Path(body_file).read_bytes()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    if encoding:
        head += f"Content-Encoding: {encoding}\r\n"
    response = (head + "Vary: Accept-Encoding\r\n\r\n").encode() + body
    loop = new_loop()
    server = loop.run_until_complete(loop.create_server(lambda: StaticExposition(response), HOST, port))
    try:
        loop.run_forever()
    finally:
        server.close()


def scrape_loop(port: int, stop: Any, counts: Any, size: Any, headers: dict[str, str], every: float = 0.0) -> None:
    """One scraper, in a process of its own: in the load generator's process its reads of
    megabytes would hold the GIL and show up as proxy latency that is the bench's own. It
    does not decompress: Prometheus does that on its own machine. `every`: at most one scrape
    per that many seconds (0: back to back)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    due = time.monotonic()
    while not stop.is_set():
        if every:
            due += every
            time.sleep(max(0.0, due - time.monotonic()))
        conn.request("GET", "/metrics", headers=headers)
        body = conn.getresponse().read()
        with counts.get_lock():
            counts.value += 1
        size.value = len(body)
    conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--columns", type=int, default=1000)
    parser.add_argument("--scrapers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--conns", type=int, default=10)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="scrape without gzip, as text 0.0.4")
    parser.add_argument("--client-cpu", type=int, default=0, help="CPU of the load, the scrapers and the upstream")
    parser.add_argument("--sidecar-cpu", type=int, default=1, help="CPU of the sidecar (proxy and worker)")
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place everything")
    parser.add_argument("--no-control", action="store_true", help="skip the rounds scraping a static copy")
    parser.add_argument("--serve-static", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_static:
        port, body_file, content_type, encoding = args.serve_static
        serve_static(int(port), body_file, content_type, encoding)
        return 0
    pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    client_cpu, sidecar_cpu = (args.client_cpu, args.sidecar_cpu) if pin else (None, None)
    if client_cpu is not None:
        # the load generator and the scrapers (which inherit it) stand for clients and Prometheus on other
        # machines: on a 2-core box unpinned, their CPU would be charged to the proxy's latency
        os.sched_setaffinity(0, {client_cpu})
    headers = {} if args.plain else PROMETHEUS_HEADERS

    tmp = Path(tempfile.mkdtemp(prefix="bench-scrape-"))
    procs = Procs(tmp)
    loaded_name, control_name = f"{args.scrapers} scrapers", f"{args.scrapers} static"
    results: dict[str, list[dict[str, float]]] = {"no scrapers": [], loaded_name: []}
    if not args.no_control:
        results[control_name] = []
    scrapes: list[float] = []
    size = 0
    try:
        sidecar, px, mx = start_with_baseline(procs, args.columns, 2000, delay_ms=5, settle=5.0,
                                              client_cpu=client_cpu, sidecar_cpu=sidecar_cpu)
        proxy_proc = psutil.Process(sidecar.pid)
        worker_proc = proxy_proc.children()[0]
        conn = http.client.HTTPConnection(HOST, mx, timeout=30)
        before = cpu(proxy_proc), cpu(worker_proc)
        for _ in range(SCRAPES_ALONE):  # the cost of a scrape, with nothing else running
            conn.request("GET", "/metrics", headers=headers)
            response = conn.getresponse()
            alone = response.read()
        conn.close()
        static_port = mx
        if not args.no_control:
            copy = procs.tmp / "exposition.bin"
            copy.write_bytes(alone)
            static_port = free_port()
            static = procs.start("static", [sys.executable, __file__, "--serve-static", str(static_port), str(copy),
                                            response.getheader("Content-Type", ""),
                                            response.getheader("Content-Encoding", "")], sidecar_cpu)
            wait_ready(procs, static, [(static_port, "/metrics", "GET")], 15)
        proxy_ms = (cpu(proxy_proc) - before[0]) / SCRAPES_ALONE * 1e3
        worker_ms = (cpu(worker_proc) - before[1]) / SCRAPES_ALONE * 1e3
        for r in range(args.rounds):
            for name in results:
                stop = multiprocessing.Event()
                counts = multiprocessing.Value("i", 0)
                last_size = multiprocessing.Value("i", 0)
                # the control scrapes at the rate the sidecar was scraped at (a static copy could go far faster)
                target, every = mx, 0.0
                if name == control_name:
                    target, every = static_port, args.scrapers / max(statistics.median(scrapes), 0.1)
                scrapers = [multiprocessing.Process(target=scrape_loop,
                                                    args=(target, stop, counts, last_size, headers, every),
                                                    daemon=True)
                            for _ in range(args.scrapers if name != "no scrapers" else 0)]
                for proc in scrapers:
                    proc.start()
                res = run_load(px, args.conns, args.rate, 2.0, args.duration)
                stop.set()
                for proc in scrapers:
                    proc.join(60)
                if scrapers and name == loaded_name:
                    scrapes.append(counts.value / (args.duration + 2.0))
                    size = max(size, last_size.value)
                results[name].append(res)
                print(f"  round {r + 1} {name:11s} p50 {res['p50_ms']:6.2f} p99 {res['p99_ms']:7.2f} ms "
                      f"errors {res['errors']}" + (f"  {counts.value} scrapes" if scrapers else ""), flush=True)
    finally:
        procs.stop_all()

    placement = f"sidecar on CPU {sidecar_cpu}, load, scrapers and upstream on CPU {client_cpu}" if pin else "unpinned"
    print(f"\n== scrapes vs proxied latency ({placement}): {args.columns}-column baseline, scraped "
          f"{'as text, uncompressed' if args.plain else 'as Prometheus does (OpenMetrics, gzip)'}: "
          f"{size / 1e6:.2f} MB a scrape; {args.rate:g} req/s, upstream 5 ms; medians of {args.rounds} "
          f"interleaved rounds ==")
    print(f"one scrape alone costs the proxy {proxy_ms:.1f} ms CPU and the worker {worker_ms:.0f} ms CPU "
          f"(mean of {SCRAPES_ALONE}; {len(alone) / 1e6:.2f} MB)")
    med = {name: {k: statistics.median(r[k] for r in rounds) for k in ("p50_ms", "p99_ms")}
           for name, rounds in results.items()}
    for name, m in med.items():
        print(f"{name:12s} p50 {m['p50_ms']:6.2f} ms   p99 {m['p99_ms']:7.2f} ms")
    base, loaded = med["no scrapers"], med[loaded_name]
    delta = loaded["p99_ms"] - base["p99_ms"]
    print(f"scrapes/s while loaded: {statistics.median(scrapes) if scrapes else 0:.1f}")
    if control_name in med:
        control = med[control_name]["p99_ms"] - base["p99_ms"]
        print(f"control, the same scrapers on a static copy: p99 rises {control:+.2f} ms; the sidecar's own work: "
              f"{delta - control:+.2f} ms over the control")
    print(f"target: p99 rises {delta:+.2f} ms <= {TARGET_P99_MS:g} ms {'PASS' if delta <= TARGET_P99_MS else 'FAIL'}"
          f" (p50 {loaded['p50_ms'] - base['p50_ms']:+.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
