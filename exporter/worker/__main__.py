"""The analysis worker process: frames in, analysis, metric families out.

Run by the sidecar as `python -m exporter.worker FD`; FD is its end of a socketpair.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import sys
import time

from exporter.config import ConfigError
from exporter.events import ACK, COLLECT, EVENTS, LABELS, RELOAD, FrameReader, encode
from exporter.metrics.exposition import OPENMETRICS, Deflated, deflate_more, deflate_open, strip_eof
from exporter.metrics.render import render
from exporter.proxy.stats import TrafficStats
from exporter.worker import state
from exporter.worker.analysis import Analysis

log = logging.getLogger("exporter.worker")

FRAME_ORDER = {RELOAD: 0, COLLECT: 1}


# The worker's answer to a scrape: its own part, and the proxy's traffic counters rendered from the
# snapshot the proxy sent (None without one): plain bytes, or open deflate blocks and their continuation.
Part = bytes | Deflated


def render_part(
    analysis: Analysis | None, fmt: str, gzip: bool, traffic: TrafficStats | None = None
) -> tuple[Part, Part | None] | None:
    """The worker's part of a scrape, rendered (and compressed) here, not in the proxy: a large
    exposition would stall the proxy's loop. So are the proxy's traffic counters, from the
    snapshot its request carried (rendering a few thousand histogram buckets took the proxy
    milliseconds per scrape). They come first in the scrape, so neither has an `# EOF`; with
    `gzip` they are the open start of the gzip member the proxy completes with its own part.
    None tells the proxy there is nothing to report yet (not "nothing happened")."""
    if analysis is None:
        return None
    openmetrics = fmt == OPENMETRICS
    text = strip_eof(analysis.exposition(openmetrics))
    counters = strip_eof(render(traffic.collect(), openmetrics)) if traffic is not None else None
    if not gzip:
        return text, counters
    head = deflate_open(text)
    return head, deflate_more(head, counters) if counters is not None else None


def serve(sock: socket.socket) -> int:
    reader = FrameReader()
    analysis: Analysis | None = None
    last_snapshot = time.monotonic()
    while True:
        if analysis is not None and time.monotonic() - last_snapshot >= state.SNAPSHOT_SECONDS:
            analysis.save_state(clean=False)
            last_snapshot = time.monotonic()
        # wait with a bound, so snapshots are written even when no traffic comes; the socket
        # itself stays blocking (a send must never time out half-way through a frame)
        if not select.select([sock], [], [], state.SNAPSHOT_SECONDS)[0]:
            continue
        data = sock.recv(1 << 20)
        if not data:  # the proxy closed its end: a clean stop
            if analysis is not None:
                analysis.save_state(clean=True)
                analysis.close()
            return 0
        frames = reader.feed(data)
        # a new config first, then scrapes, then the backlog of events and labels (in their order:
        # a label right after its prediction's event finds it)
        frames.sort(key=lambda frame: FRAME_ORDER.get(frame[0], 2))
        for kind, payload in frames:
            if kind == EVENTS:
                if analysis is not None:
                    analysis.process(payload)
                sock.sendall(encode(ACK, len(payload)))
            elif kind == LABELS:
                if analysis is not None:
                    analysis.labels(payload)
                sock.sendall(encode(LABELS, len(payload.labels)))
            elif kind == COLLECT:
                request_id, (fmt, gzip, traffic) = payload
                sock.sendall(encode(COLLECT, (request_id, render_part(analysis, fmt, gzip, traffic))))
            elif kind == RELOAD:
                request_id, config = payload
                try:
                    new = Analysis(config, previous=analysis)
                except ConfigError as exc:  # a bad baseline or analysis setting: keep the old one
                    sock.sendall(encode(RELOAD, (request_id, str(exc))))
                except Exception as exc:  # a bug of ours: say so, keep the old analysis
                    log.exception("building the analysis for a new configuration failed")
                    sock.sendall(
                        encode(RELOAD, (request_id, f"analysis worker internal error: {type(exc).__name__}: {exc}"))
                    )
                else:
                    analysis = new
                    sock.sendall(encode(RELOAD, (request_id, None)))


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # analysis is best effort: at nice 19 the worker gets about 1.5 % of a CPU that the
    # proxy (nice 0) keeps busy, so at saturation it falls behind and drops (counted) while
    # the proxy keeps its CPU. (SCHED_IDLE would starve it outright whenever anything else
    # on the machine is busy, the model server included.)
    try:
        os.nice(19)
    except OSError:
        pass
    sock = socket.socket(fileno=int(argv[0]))
    sock.setblocking(True)
    try:
        return serve(sock)
    except (BrokenPipeError, ConnectionResetError):
        return 0
    finally:
        sock.close()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
