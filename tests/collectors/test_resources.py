"""Resource collectors: a real child process, cgroup fixture files, a fake NVML, isolation."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from exporter.collectors.base import Isolated
from exporter.collectors.gpu import RETRY_SECONDS as GPU_RETRY_SECONDS
from exporter.collectors.gpu import GPUCollector
from exporter.collectors.process import LOCATE_SECONDS, ProcessCollector, find_by_cmdline, parse_cgroup_memory_limit

MV = {"model": "m", "version": "1"}


def _registry(*collectors: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    for c in collectors:
        registry.register(c)  # type: ignore[arg-type]
    return registry


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(30 << 20); time.sleep(60)  # model-exporter-test-child"])
    yield proc
    proc.kill()
    proc.wait()


def test_process_collector_reads_a_real_process(child: subprocess.Popen[bytes]) -> None:
    registry = _registry(Isolated([ProcessCollector(lambda: child.pid, "m", "1")]))
    import time
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the child has allocated its 30 MiB
        rss = registry.get_sample_value("model_server_resident_memory_bytes", MV)
        if rss and rss > 30 << 20:
            break
        time.sleep(0.05)
    assert registry.get_sample_value("model_server_resident_memory_bytes", MV) > 30 << 20
    assert registry.get_sample_value("model_server_cpu_seconds_total", MV) >= 0
    assert registry.get_sample_value("model_server_open_fds", MV) >= 3
    assert registry.get_sample_value("model_exporter_collector_success", {"collector": "process"}) == 1


def test_find_by_cmdline(child: subprocess.Popen[bytes]) -> None:
    assert find_by_cmdline(r"model-exporter-test-child") == child.pid
    assert find_by_cmdline(r"no-such-process-\d{40}") is None


def test_missing_process_fails_only_its_collector() -> None:
    class Ok:
        name = "ok"

        def collect(self):  # type: ignore[no-untyped-def]
            from prometheus_client.core import GaugeMetricFamily
            yield GaugeMetricFamily("model_server_open_fds", "h", value=7)

    registry = _registry(Isolated([ProcessCollector(lambda: None, "m", "1"), Ok()]))
    assert registry.get_sample_value("model_exporter_collector_success", {"collector": "process"}) == 0
    assert registry.get_sample_value("model_exporter_collector_success", {"collector": "ok"}) == 1
    assert registry.get_sample_value("model_server_open_fds") == 7
    assert registry.get_sample_value("model_server_resident_memory_bytes", MV) is None


def test_cgroup_limits_v1_and_v2(tmp_path: Path) -> None:
    (tmp_path / "kubepods" / "pod1").mkdir(parents=True)
    (tmp_path / "kubepods" / "pod1" / "memory.max").write_text("536870912\n")
    assert parse_cgroup_memory_limit("0::/kubepods/pod1\n", tmp_path) == 536870912
    (tmp_path / "kubepods" / "pod1" / "memory.max").write_text("max\n")
    assert parse_cgroup_memory_limit("0::/kubepods/pod1\n", tmp_path) is None
    (tmp_path / "memory" / "docker" / "abc").mkdir(parents=True)
    (tmp_path / "memory" / "docker" / "abc" / "memory.limit_in_bytes").write_text("1073741824\n")
    v1 = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n"
    assert parse_cgroup_memory_limit(v1, tmp_path) == 1073741824
    (tmp_path / "memory" / "docker" / "abc" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert parse_cgroup_memory_limit(v1, tmp_path) is None


class FakeNVML:
    """The slice of the pynvml API the collector uses, with two GPUs."""

    class NVMLError(Exception):
        pass

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, driver: bool = True) -> None:
        self.driver = driver
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if not self.driver:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetUtilizationRates(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=[35, 90][h], memory=10)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(used=[1 << 30, 70 << 30][h], total=80 << 30, free=0)

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return [40, 71][h]

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        if h == 1:
            raise self.NVMLError("Not Supported")
        return 250_500  # milliwatts


def test_gpu_collector_on_fake_nvml() -> None:
    registry = _registry(Isolated([GPUCollector(FakeNVML(), "m", "1")]))
    g0, g1 = {"gpu": "0", **MV}, {"gpu": "1", **MV}
    assert registry.get_sample_value("model_gpu_utilization_ratio", g1) == 0.9
    assert registry.get_sample_value("model_gpu_memory_used_bytes", g1) == 70 << 30
    assert registry.get_sample_value("model_gpu_memory_total_bytes", g0) == 80 << 30
    assert registry.get_sample_value("model_gpu_temperature_celsius", g1) == 71
    assert registry.get_sample_value("model_gpu_power_watts", g0) == 250.5
    assert registry.get_sample_value("model_gpu_power_watts", g1) is None  # board without power sensor
    assert registry.get_sample_value("model_exporter_collector_success", {"collector": "gpu"}) == 1


def test_gpu_absent_driver_auto_vs_on() -> None:
    auto = _registry(Isolated([GPUCollector(FakeNVML(driver=False), "m", "1", mode="auto")]))
    assert auto.get_sample_value("model_exporter_collector_success", {"collector": "gpu"}) == 1
    assert auto.get_sample_value("model_gpu_utilization_ratio", {"gpu": "0", **MV}) is None
    on = _registry(Isolated([GPUCollector(FakeNVML(driver=False), "m", "1", mode="on")]))
    assert on.get_sample_value("model_exporter_collector_success", {"collector": "gpu"}) == 0


def test_a_missing_process_is_looked_for_again_only_after_a_while() -> None:
    now = [100.0]
    calls: list[float] = []

    def locate() -> int | None:
        calls.append(now[0])
        return None

    collector = ProcessCollector(locate, "m", "1", clock=lambda: now[0])
    for _ in range(5):  # five scrapes in a row: one scan of the host
        registry = _registry(Isolated([collector]))
        assert registry.get_sample_value("model_exporter_collector_success", {"collector": "process"}) == 0
    assert calls == [100.0]
    now[0] += LOCATE_SECONDS
    _registry(Isolated([collector])).get_sample_value("model_exporter_collector_success", {"collector": "process"})
    assert calls == [100.0, 100.0 + LOCATE_SECONDS]


def test_an_absent_driver_is_loaded_again_only_after_a_while() -> None:
    now = [0.0]
    nvml = FakeNVML(driver=False)
    inits: list[float] = []
    real_init = nvml.nvmlInit

    def counting_init() -> None:
        inits.append(now[0])
        real_init()

    nvml.nvmlInit = counting_init  # type: ignore[method-assign]
    collector = GPUCollector(nvml, "m", "1", mode="auto", clock=lambda: now[0])
    for _ in range(3):
        registry = _registry(Isolated([collector]))
        assert registry.get_sample_value("model_exporter_collector_success", {"collector": "gpu"}) == 1
    assert inits == [0.0]
    now[0] = GPU_RETRY_SECONDS
    nvml.driver = True  # the driver appeared (a device plugin finished): found at the next try
    registry = _registry(Isolated([collector]))
    assert registry.get_sample_value("model_gpu_utilization_ratio", {"gpu": "1", **MV}) == 0.9
    assert inits == [0.0, GPU_RETRY_SECONDS]


def test_a_background_locate_never_makes_a_scrape_wait(child: subprocess.Popen[bytes]) -> None:
    """find_listener / find_by_cmdline scan the host: in a thread, while scrapes answer without them."""
    import threading
    import time

    release = threading.Event()
    calls: list[int] = []

    def slow_locate() -> int | None:
        calls.append(1)
        release.wait(10)
        return child.pid

    collector = ProcessCollector(slow_locate, "m", "1", background=True)
    for _ in range(3):  # the locate is still running: the collector fails at once, one thread only
        registry = _registry(Isolated([collector]))
        assert registry.get_sample_value("model_exporter_collector_success", {"collector": "process"}) == 0
    assert calls == [1]
    release.set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        registry = _registry(Isolated([collector]))
        if registry.get_sample_value("model_exporter_collector_success", {"collector": "process"}) == 1:
            break
        time.sleep(0.02)
    assert registry.get_sample_value("model_server_open_fds", MV) >= 3
    assert calls == [1]


class Counting:
    """A source that counts its readings; fails while `failing`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reads = 0
        self.failing = False

    def collect(self) -> Iterator[object]:
        self.reads += 1
        if self.failing:
            raise OSError("no such file")
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily(f"{self.name}_reading", "h", value=self.reads)


def test_readings_serve_the_scrapes_of_max_age_then_are_taken_again() -> None:
    now = [100.0]
    kept, live = Counting("kept"), Counting("live")
    live.live = True  # type: ignore[attr-defined]  # as PipelineHealth: the answer to this scrape
    registry = _registry(Isolated([kept, live], clock=lambda: now[0], max_age=1.0))

    def value(name: str) -> float | None:
        return registry.get_sample_value(name)

    assert (value("kept_reading"), value("live_reading")) == (1, 1)
    now[0] += 0.5  # a second scraper half a second later: the same reading, the live source read again
    assert (value("kept_reading"), value("live_reading")) == (1, 2)
    assert kept.reads == 1
    now[0] += 0.5  # max_age later: read again
    assert value("kept_reading") == 2
    # a failure is a reading too: success 0 (and no series) until the next reading succeeds
    kept.failing = True
    now[0] += 1.0
    assert value("kept_reading") is None
    assert registry.get_sample_value("model_exporter_collector_success", {"collector": "kept"}) == 0
    kept.failing = False
    now[0] += 0.9
    assert registry.get_sample_value("model_exporter_collector_success", {"collector": "kept"}) == 0
    assert kept.reads == 3
    now[0] += 0.1
    assert registry.get_sample_value("model_exporter_collector_success", {"collector": "kept"}) == 1
    assert value("kept_reading") == 4


def test_max_age_zero_reads_at_every_scrape() -> None:
    source = Counting("every")
    registry = _registry(Isolated([source], clock=lambda: 5.0))
    for n in (1, 2, 3):
        assert registry.get_sample_value("every_reading") == n


def test_recent_reuses_a_collectors_families_for_max_age() -> None:
    from exporter.metrics.exposition import Recent

    now = [0.0]
    source = Counting("own")
    recent = Recent(source, 1.0, clock=lambda: now[0])
    first = recent.collect()
    now[0] = 0.99
    assert recent.collect() is first and source.reads == 1
    now[0] = 1.0
    assert recent.collect()[0].samples[0].value == 2
    assert Recent(source, 0.0).collect()[0].samples[0].value == 3  # 0: read at every scrape


class Hangs:
    """A source whose reads after the first wait until released: NVML on a GPU fallen off the bus."""

    name = "gpu"

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.reads = 0

    def collect(self) -> Iterator[object]:
        self.reads += 1
        if self.reads > 1:
            self.release.wait()
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily("model_gpu_temperature_celsius", "h", value=40 + self.reads)


def _until(condition: Callable[[], bool]) -> None:
    """Wait for a thread's work; the 60 s guard only keeps a broken build from hanging, it times nothing."""
    import time

    guard = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < guard, "the background thread never got there"
        time.sleep(0.005)


def test_a_source_read_in_the_background_never_holds_up_a_scrape() -> None:
    from exporter.collectors.base import Background

    now = [0.0]
    source = Hangs()
    background = Background(source, interval=0.01, stale=10.0, clock=lambda: now[0])
    registry = _registry(Isolated([background]))
    try:
        success = {"collector": "gpu"}
        background.start()
        _until(lambda: source.reads >= 2)  # the first reading is in; the second hangs
        assert registry.get_sample_value("model_gpu_temperature_celsius") == 41
        assert registry.get_sample_value("model_exporter_collector_success", success) == 1
        now[0] += 11.0  # ten seconds and more with the read still hanging: the scrape answers at once, without it
        assert registry.get_sample_value("model_gpu_temperature_celsius") is None
        assert registry.get_sample_value("model_exporter_collector_success", success) == 0
        source.release.set()  # the GPU answers again
        _until(lambda: registry.get_sample_value("model_exporter_collector_success", success) == 1)
        assert registry.get_sample_value("model_gpu_temperature_celsius") >= 42
    finally:
        source.release.set()
        background.close()


def test_a_background_reading_that_fails_fails_its_source(caplog: pytest.LogCaptureFixture) -> None:
    from exporter.collectors.base import Background

    source = Counting("flaky")
    source.failing = True
    background = Background(source, interval=0.01, stale=10.0)
    registry = _registry(Isolated([background]))
    try:
        assert registry.get_sample_value("model_exporter_collector_success", {"collector": "flaky"}) == 0  # none yet
        background.start()
        _until(lambda: source.reads >= 1)
        _until(lambda: "no such file" in caplog.text or registry.get_sample_value("flaky_reading") is not None)
        assert "OSError: no such file" in caplog.text  # Isolated logs the failure the thread met
        source.failing = False
        _until(lambda: registry.get_sample_value("flaky_reading") is not None)
        assert registry.get_sample_value("model_exporter_collector_success", {"collector": "flaky"}) == 1
    finally:
        background.close()
