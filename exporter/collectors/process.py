"""The model server's process: CPU seconds, resident memory, its cgroup memory limit, open fds."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
from prometheus_client.core import Metric

from exporter.metrics.definitions import family


def find_listener(port: int) -> int | None:
    """PID of the process listening on a TCP port, if this process may see it."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    return None


def find_by_cmdline(pattern: str) -> int | None:
    """PID of the oldest process whose command line matches the regex."""
    regex = re.compile(pattern)
    matches = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if cmdline and regex.search(cmdline):
            matches.append((proc.info["create_time"], proc.info["pid"]))
    return min(matches)[1] if matches else None


def parse_cgroup_memory_limit(cgroup_file: str, root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """Memory limit in bytes from /proc/PID/cgroup contents (cgroup v2 or v1); None if unlimited."""
    for line in cgroup_file.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        rel = path.lstrip("/")
        if controllers == "":
            candidate = root / rel / "memory.max"
            if not candidate.exists():
                candidate = root / "unified" / rel / "memory.max"
        elif "memory" in controllers.split(","):
            candidate = root / "memory" / rel / "memory.limit_in_bytes"
        else:
            continue
        try:
            text = candidate.read_text().strip()
        except OSError:
            continue
        if text == "max":
            return None
        value = float(text)
        return None if value >= 2**62 else value  # v1 reports "unlimited" as a huge number
    return None


log = logging.getLogger(__name__)

LOCATE_SECONDS = 10.0  # a model server process not found is looked for again this often


class ProcessCollector:
    """Resources of one process found by `locate` (re-located when it restarts)."""

    name = "process"

    def __init__(
        self,
        locate: Callable[[], int | None],
        model: str,
        version: str,
        proc_root: Path = Path("/proc"),
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        clock: Callable[[], float] = time.monotonic,
        background: bool = False,
    ) -> None:
        self.locate = locate
        self.labels = [model, version]
        self.proc_root = proc_root
        self.cgroup_root = cgroup_root
        self.clock = clock
        # locating scans every socket or process of the host (tens of milliseconds on a busy node):
        # `background` runs it in a thread, so a scrape on the proxy's loop never waits for it
        self.background = background
        self._proc: psutil.Process | None = None
        self._retry_at = 0.0
        self._looking: threading.Thread | None = None
        self._found: int | None = None  # set by the looking thread

    def _process(self) -> psutil.Process:
        if self._proc is not None and self._proc.is_running():
            return self._proc
        if self._found is not None:
            found, self._found = self._found, None
            self._proc = psutil.Process(found)
            return self._proc
        if self._looking is not None and self._looking.is_alive():
            raise LookupError("looking for the model server process")
        if self.clock() < self._retry_at:  # not found lately: not looked for on every scrape either
            raise LookupError(f"model server process not found (looked {LOCATE_SECONDS:.0f}s ago or less)")
        if self.background:
            self._looking = threading.Thread(target=self._look, name="locate-model-server", daemon=True)
            self._looking.start()
            raise LookupError("looking for the model server process")
        pid = self.locate()
        if pid is None:
            self._retry_at = self.clock() + LOCATE_SECONDS
            raise LookupError("model server process not found")
        self._proc = psutil.Process(pid)
        return self._proc

    def _look(self) -> None:
        pid = None
        try:
            pid = self.locate()
        except Exception:  # psutil races with exiting processes: tried again after LOCATE_SECONDS
            log.debug("locating the model server process failed", exc_info=True)
        if pid is None:
            self._retry_at = self.clock() + LOCATE_SECONDS
        self._found = pid

    def collect(self) -> Iterator[Metric]:
        proc = self._process()
        with proc.oneshot():
            cpu = proc.cpu_times()
            rss = proc.memory_info().rss
            fds = proc.num_fds()
        yield self._metric("model_server_cpu_seconds_total", cpu.user + cpu.system)
        yield self._metric("model_server_resident_memory_bytes", rss)
        yield self._metric("model_server_open_fds", fds)
        try:
            cgroup = (self.proc_root / str(proc.pid) / "cgroup").read_text()
        except OSError:
            return
        limit = parse_cgroup_memory_limit(cgroup, self.cgroup_root)
        if limit is not None:
            yield self._metric("model_server_memory_limit_bytes", limit)

    def _metric(self, name: str, value: float) -> Metric:
        metric = family(name)
        metric.add_metric(self.labels, value)
        return metric
