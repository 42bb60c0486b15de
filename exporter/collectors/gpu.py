"""GPUs through NVML: utilisation, memory, temperature, power; the NVML module is injected."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from prometheus_client.core import Metric

from exporter.metrics.definitions import family

log = logging.getLogger(__name__)

GPU_METRICS = (
    "model_gpu_utilization_ratio",
    "model_gpu_memory_used_bytes",
    "model_gpu_memory_total_bytes",
    "model_gpu_temperature_celsius",
    "model_gpu_power_watts",
)


def load_nvml() -> ModuleType:
    import pynvml  # nvidia-ml-py; loads libnvidia-ml.so lazily at nvmlInit

    module: ModuleType = pynvml
    return module


RETRY_SECONDS = 60.0  # a driver that was absent is looked for again this often (mode auto)


class GPUCollector:
    """Per-GPU gauges. mode "auto": no driver means no GPUs (not a failure); "on": it is a failure."""

    name = "gpu"

    def __init__(
        self, nvml: Any, model: str, version: str, mode: str = "auto", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.nvml = nvml
        self.model_version = [model, version]
        self.mode = mode
        self.clock = clock
        self._initialised = False
        self._absent = False
        self._retry_at = 0.0

    def _init(self) -> bool:
        if self._initialised:
            return True
        if self.mode == "auto" and self._absent and self.clock() < self._retry_at:
            return False  # loading the library is milliseconds on the proxy's loop: not on every scrape
        try:
            self.nvml.nvmlInit()
        except self.nvml.NVMLError as exc:
            if self.mode == "auto":
                if not self._absent:
                    log.info("no NVIDIA driver (%s): GPU metrics off; trying again every %.0fs", exc, RETRY_SECONDS)
                self._absent = True
                self._retry_at = self.clock() + RETRY_SECONDS
                return False
            raise
        self._initialised = True
        return True

    def collect(self) -> Iterator[Metric]:
        if not self._init():
            return
        nvml = self.nvml
        families = {name: family(name) for name in GPU_METRICS}
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            gpu = [str(index), *self.model_version]
            util = nvml.nvmlDeviceGetUtilizationRates(handle)
            families["model_gpu_utilization_ratio"].add_metric(gpu, util.gpu / 100.0)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            families["model_gpu_memory_used_bytes"].add_metric(gpu, float(mem.used))
            families["model_gpu_memory_total_bytes"].add_metric(gpu, float(mem.total))
            families["model_gpu_temperature_celsius"].add_metric(
                gpu, float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            )
            try:  # not every board reports power
                families["model_gpu_power_watts"].add_metric(gpu, nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0)
            except nvml.NVMLError:
                pass
        yield from families.values()

    def close(self) -> None:
        if self._initialised:
            self.nvml.nvmlShutdown()
            self._initialised = False
