"""A slow client pauses the upstream connection; the pooled connection must serve the next requests.

The race this guards (the last write of a response pausing the connection just before it
goes back to the pool) depends on kernel buffer sizes and is not forced here; the
slow-reader path and the reuse of the same single pooled connection are.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest
from harness import SidecarFactory, fetch
from stand_in import StandIn, binary_body, sha256

pytestmark = pytest.mark.integration

SIZE = 8 * 1024 * 1024


def _slow_download(proxy_url: str, path: str) -> bytes:
    """Read a large response through a tiny receive buffer, in sips, so the proxy must pause."""
    parts = urlsplit(proxy_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = bytearray()
    deadline = time.monotonic() + 60
    time.sleep(0.5)  # let the proxy's write buffer fill and pause the upstream
    while time.monotonic() < deadline:
        chunk = sock.recv(1 << 14)
        if not chunk:
            break
        data += chunk
        time.sleep(0.001)  # a slow reader all the way, so the last writes also find a full buffer
    sock.close()
    return bytes(data.split(b"\r\n\r\n", 1)[1])


def test_a_slow_client_does_not_leave_the_pooled_connection_paused(sidecar_factory: SidecarFactory,
                                                                  stand_in: StandIn) -> None:
    # one pooled upstream connection: the next request must reuse the one the slow client paused
    sidecar = sidecar_factory(config={"upstream": {"max_connections": 1, "read_timeout": "3s"}})
    body = _slow_download(sidecar.proxy_url, f"/binary?size={SIZE}")
    assert sha256(body) == sha256(binary_body(SIZE))
    for _ in range(3):
        resp = fetch(sidecar.proxy_url + "/binary?size=1000", timeout=10)
        assert resp.status == 200, (resp.status, resp.body[:200])
        assert resp.body == binary_body(1000)
    assert sidecar.sample("model_upstream_errors_total", reason="timeout") == 0
