"""The analysis worker process: frames in, analysis, metric families out.

Run by the sidecar as `python -m exporter.pipeline.worker FD`; FD is its end of a socketpair.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from exporter.pipeline.analysis import Analysis
from exporter.pipeline.framing import ACK, COLLECT, EVENTS, RELOAD, FrameReader, encode

log = logging.getLogger("exporter.pipeline.worker")


def serve(sock: socket.socket) -> int:
    reader = FrameReader()
    analysis: Analysis | None = None
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return 0  # the proxy closed its end: we are done
        frames = reader.feed(data)
        # answer scrapes before working through a backlog of events
        frames.sort(key=lambda frame: frame[0] != COLLECT)
        for kind, payload in frames:
            if kind == EVENTS:
                if analysis is not None:
                    analysis.process(payload)
                sock.sendall(encode(ACK, len(payload)))
            elif kind == COLLECT:
                request_id, _ = payload
                families = list(analysis.collect()) if analysis is not None else []
                sock.sendall(encode(COLLECT, (request_id, families)))
            elif kind == RELOAD:
                request_id, config = payload
                try:
                    new = Analysis(config, previous=analysis)
                except ValueError as exc:  # a bad baseline or analysis setting: keep the old one
                    sock.sendall(encode(RELOAD, (request_id, str(exc))))
                else:
                    analysis = new
                    sock.sendall(encode(RELOAD, (request_id, None)))


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # analysis is best effort: with SCHED_IDLE the worker runs only on CPU time the proxy
    # leaves unused, so at saturation it falls behind and drops (counted), the proxy does not
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
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
