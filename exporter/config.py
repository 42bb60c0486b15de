"""Typed, validated configuration: YAML + CLI flags → Config, every error names its path."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from exporter.jsonpath import JsonPath
from exporter.metrics.definitions import DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS

# The drift methods a config may name (exporter.drift.methods registers one of each; a test keeps
# the two lists equal). Which column types each applies to is checked against the baseline.
DRIFT_METHODS = ("psi", "kl", "js", "ks", "wasserstein", "chisquare", "linf")

PROTOCOLS = ("auto", "v2", "v1", "mlflow", "seldon", "openai", "tgi", "ollama", "custom")

# Readiness path probed by default for each protocol (what each server family exposes).
DEFAULT_HEALTH_PATHS = {
    "auto": "/v2/health/ready",
    "v2": "/v2/health/ready",
    "v1": "/",
    "mlflow": "/ping",
    "seldon": "/health/ping",
    "openai": "/v1/models",
    "tgi": "/health",
    "ollama": "/api/version",
    "custom": "/",
}


class ConfigError(ValueError):
    """A user mistake in the config or flags; the message names where and what."""


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class HealthConfig:
    path: str | None = None  # None: protocol default
    interval: float = 5.0
    timeout: float = 2.0


@dataclass(frozen=True)
class UpstreamConfig:
    url: str = ""
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_connections: int = 100
    health: HealthConfig = field(default_factory=HealthConfig)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class CustomPaths:
    features: str
    predictions: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    # None: not configured; the label policy (exporter/labels.py) takes the name and version
    # from the request path, capped at max_names values, else "unknown"
    name: str | None = None
    version: str | None = None
    protocol: str = "auto"
    # model names that are always kept as label values when `name` is not set (on top of the
    # first max_names distinct names seen in request paths; any further name is "other")
    known: tuple[str, ...] = ()
    max_names: int = 10
    custom: CustomPaths | None = None


@dataclass(frozen=True)
class CaptureConfig:
    enabled: bool = True
    max_body_bytes: int = 1 << 20
    queue_size: int = 10_000
    id_header: str = "x-request-id"


@dataclass(frozen=True)
class RouteConfig:
    pattern: str
    name: str


@dataclass(frozen=True)
class MetricsConfig:
    duration_buckets: tuple[float, ...] = DEFAULT_DURATION_BUCKETS
    size_buckets: tuple[float, ...] = DEFAULT_SIZE_BUCKETS
    routes: tuple[RouteConfig, ...] = ()


@dataclass(frozen=True)
class ResourcesConfig:
    pid: int | None = None  # the model server's PID
    match: str | None = None  # or a regex on its command line
    gpu: str = "auto"  # auto: GPUs if an NVIDIA driver is present; on; off
    interval: float = 1.0  # readings of /proc, cgroups and NVML serve the scrapes of this many seconds; 0: every scrape


@dataclass(frozen=True)
class ColumnDrift:
    methods: tuple[str, ...] | None = None  # None: the default for the column's type
    thresholds: tuple[tuple[str, float], ...] = ()  # method → practical threshold


@dataclass(frozen=True)
class DriftConfig:
    windows: tuple[tuple[str, float], ...] = (("5m", 300.0), ("1h", 3600.0))
    min_rows: int = 200
    false_alarm_rate: float = 0.0002  # per column per window: 20 columns alarm together on ≤ 0.4 % of windows
    numeric_methods: tuple[str, ...] = ("psi",)
    categorical_methods: tuple[str, ...] = ("psi",)
    columns: tuple[tuple[str, ColumnDrift], ...] = ()

    def column(self, name: str) -> ColumnDrift:
        return dict(self.columns).get(name, ColumnDrift())


@dataclass(frozen=True)
class QualityConfig:
    range_tolerance: float = 0.0  # fraction of the baseline's range allowed beyond min/max
    bounds: tuple[tuple[str, tuple[float | None, float | None]], ...] = ()  # explicit per-column bounds


@dataclass(frozen=True)
class LabelsConfig:
    # POST /feedback: ground-truth labels joined to recent predictions by id (worker/labels_join.py).
    # The cache holds the last `cache_size` predictions for at most `ttl`: size it to your prediction
    # rate × the longest label delay you want joined (README, "Ground truth").
    cache_size: int = 100_000
    ttl: float = 3600.0
    queue_size: int = 10_000  # labels in flight to the worker; beyond, dropped and counted


PERFORMANCE_TASKS = ("auto", "classification", "regression")


@dataclass(frozen=True)
class PerformanceConfig:
    # classification or regression; auto: the baseline's label column type (categorical →
    # classification, numeric → regression), else classification
    task: str = "auto"
    prediction: str | None = None  # the prediction column; None: the only one, else the baseline's
    score: str | None = None  # binary: the positive-class score column (ROC AUC, log-loss)
    threshold: float = 0.5  # a score at or above it predicts the positive class
    positive: str = "1"  # the positive class (compared as text: 1, 1.0, "1" and true/"true" agree)
    max_classes: int = 20  # classes with their own series; further ones are "__other__"
    min_labels: int = 100  # a window's scores are exported once it holds this many labels
    tolerance: float = 0.01  # practical drop (absolute) that is never an alarm, whatever the label count
    false_alarm_rate: float = 0.001  # noise margin of model_performance_threshold
    # model_performance_estimated (from scores, before labels) only while the scores are calibrated:
    # the baseline's calibration_error, else the one measured on the labels joined so far
    max_calibration_error: float = 0.05
    # fairness: feature columns whose values segment the labels (the baseline's categories, else
    # the first max_segment_values seen; then __other__)
    segments: tuple[str, ...] = ()
    max_segment_values: int = 10


@dataclass(frozen=True)
class PushConfig:
    # CloudEvents from the KServe / Seldon request loggers on the metrics port (sidecar/push.py).
    # A request or response half waits for its other half at most `ttl`; the cache holds at most
    # cache_size halves and cache_bytes of their data (README, "Push").
    enabled: bool = True
    path: str = "/cloudevents"
    max_body_bytes: int = 2 << 20  # one event's HTTP body (structured mode's base64 included)
    cache_size: int = 10_000
    cache_bytes: int = 64 << 20
    ttl: float = 30.0


TAIL_SHAPES = ("predlog", "sagemaker", "nginx", "envoy", "labels")
# What each field of an access log line is called (tail sources of shape nginx or envoy; `fields` overrides)
ACCESS_LOG_FIELDS = ("time", "status", "duration", "path", "method", "request_bytes", "response_bytes", "id", "model")


@dataclass(frozen=True)
class TailSource:
    path: str  # a file or a glob
    # TAIL_SHAPES: docs/prediction-log.md, SageMaker data capture, JSON access logs, or ground-truth
    # labels (one POST /feedback record per line, joined to predictions like the posted ones)
    shape: str = "predlog"
    csv_columns: tuple[str, ...] = ()  # sagemaker: names of the CSV input columns (else x0, x1, ...)
    fields: tuple[tuple[str, str], ...] = ()  # nginx/envoy: ACCESS_LOG_FIELDS name -> key in the line
    duration_unit: str | None = None  # nginx/envoy: s, ms or us (default: nginx s, envoy ms)


@dataclass(frozen=True)
class TailConfig:
    # `run --tail` (exporter/sources/tail.py): follow log files and feed the same pipeline
    sources: tuple[TailSource, ...] = ()
    from_start: bool = False  # first run: read what the files hold already (else start at their end)
    offsets_file: str | None = None  # where each file was read up to (default: state_dir/tail-offsets.json)
    max_line_bytes: int = 4 << 20  # a longer line is skipped (counted)
    max_files: int = 64  # files open at once (rotated ones included)
    poll_interval: float = 0.25
    rotate_wait: float = 5.0  # a rotated file is read until idle this long, then closed


@dataclass(frozen=True)
class PredictionLogConfig:
    # the prediction store (exporter/worker/store.py): proxied exchanges written as a prediction log
    path: str | None = None  # None: off
    sample: float = 1.0  # fraction of exchanges written
    max_rate: float | None = None  # and at most this many per second
    max_bytes: int = 100 << 20  # rotate the file at this size
    max_files: int = 5  # rotated files kept: path.1 .. path.N
    redact: tuple[str, ...] = ()  # JSON paths into the bodies whose values are written as "[REDACTED]"
    queue_size: int = 1000  # records waiting for the disk; beyond, dropped (counted)


@dataclass(frozen=True)
class LLMConfig:
    # Prices per 1M tokens by model label value → model_llm_cost_total{kind, currency}; a model
    # not listed costs nothing (its tokens are still counted).
    currency: str = "USD"
    prices: tuple[tuple[str, float, float], ...] = ()  # (model, prompt, completion) per 1M tokens


@dataclass(frozen=True)
class ShutdownConfig:
    # On SIGTERM, /-/ready turns 503 at once while the proxy keeps serving for `delay` (so the
    # endpoint leaves the load balancer); then new connections are refused and requests in
    # flight get `grace_period` to finish. Keep delay + grace_period below the pod's
    # terminationGracePeriodSeconds.
    delay: float = 5.0
    grace_period: float = 20.0


@dataclass(frozen=True)
class ClientConfig:
    # The proxy port's side of each client connection (nginx's defaults). A client that holds a
    # connection without finishing its request head, sending its body, or reading its response
    # for this long is closed, as is one idle between requests; beyond max_connections a new
    # connection gets 503 and is closed. Counted in model_exporter_client_connections_closed_total.
    header_timeout: float = 60.0  # to receive a whole request head (from the connection, or the first byte)
    body_timeout: float = 60.0  # with no request body bytes
    keepalive_timeout: float = 75.0  # idle between requests
    send_timeout: float = 60.0  # the client reads none of a response
    max_connections: int = 4096


@dataclass(frozen=True)
class Config:
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    listen: HostPort = HostPort("0.0.0.0", 8000)
    metrics_listen: HostPort = HostPort("0.0.0.0", 9110)
    model: ModelConfig = field(default_factory=ModelConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    baseline: str | None = None  # path to the baseline file
    drift: DriftConfig = field(default_factory=DriftConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    push: PushConfig = field(default_factory=PushConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    tail: TailConfig = field(default_factory=TailConfig)
    prediction_log: PredictionLogConfig = field(default_factory=PredictionLogConfig)
    # TLS and basic auth of the metrics port: an exporter-toolkit web config file (sidecar/web_config.py)
    web_config: str | None = None
    # where the analysis worker keeps snapshots of its windows and counters (worker/state.py)
    state_dir: str | None = None

    @property
    def health_path(self) -> str:
        return self.upstream.health.path or DEFAULT_HEALTH_PATHS[self.model.protocol]


# ---------------------------------------------------------------- value parsers


def _fail(path: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{path}: {expected}, got {value!r}")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(path: str, value: Any, allow_zero: bool = False) -> float:
    """Seconds from a number or a string like '250ms', '5s', '1m'; must be > 0 (>= 0 with allow_zero)."""
    if isinstance(value, bool):
        raise _fail(path, value, "expected a duration like 5s, 250ms or a number of seconds")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value.strip())):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise _fail(path, value, "expected a duration like 5s, 250ms or a number of seconds")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise _fail(path, value, "expected a non-negative duration" if allow_zero else "expected a positive duration")
    return seconds


def _non_negative_duration(path: str, value: Any) -> float:
    """Like parse_duration, but 0 is allowed (e.g. no delay)."""
    return parse_duration(path, value, allow_zero=True)


def parse_host_port(path: str, value: Any) -> HostPort:
    """HOST:PORT or :PORT (all interfaces); IPv6 hosts in brackets."""
    if not isinstance(value, str):
        raise _fail(path, value, "expected HOST:PORT, e.g. 0.0.0.0:8000")
    m = re.match(r"^(\[[0-9a-fA-F:.]+\]|[^:\[\]]*):(\d+)$", value.strip())
    if not m:
        raise _fail(path, value, "expected HOST:PORT, e.g. 0.0.0.0:8000")
    port = int(m.group(2))
    if not 0 < port < 65536:
        raise _fail(path, value, "expected a port between 1 and 65535")
    host = m.group(1).strip("[]") or "0.0.0.0"
    return HostPort(host, port)


def parse_url(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, value, "expected an http:// URL, e.g. http://127.0.0.1:8080")
    parts = urlsplit(value)
    if parts.scheme != "http":
        raise _fail(path, value, "expected an http:// URL (the proxy speaks plain HTTP/1.1 to the model server)")
    try:
        port = parts.port
    except ValueError:
        raise _fail(path, value, "expected a port between 1 and 65535") from None
    if not parts.hostname:
        raise _fail(path, value, "expected a host in the URL, e.g. http://127.0.0.1:8080")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _fail(path, value, "expected a URL without path or query (paths are forwarded as the client sent them)")
    return f"http://{parts.hostname if ':' not in parts.hostname else '[' + parts.hostname + ']'}:{port or 80}"


def _positive_int(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(path, value, "expected a positive integer")
    return value


def _string(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, value, "expected a non-empty string")
    return value.strip()


def _choice(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def parse(path: str, value: Any) -> str:
        if value not in choices:
            raise _fail(path, value, f"expected one of {', '.join(choices)}")
        return str(value)

    return parse


def _bool(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, value, "expected true or false")
    return value


def _header_name(path: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", value):
        raise _fail(path, value, "expected an HTTP header name, e.g. X-Request-Id")
    return value.lower()


def _string_list(path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(path, value, "expected a list of strings")
    return tuple(_string(f"{path}[{i}]", item) for i, item in enumerate(value))


def _json_path(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(path, value, "expected a JSON path like $.instances[*]")
    try:
        JsonPath.compile(value)
    except ValueError as exc:
        raise _fail(path, value, f"expected a JSON path like $.instances[*] ({exc})") from None
    return value


def _custom(path: str, value: Any) -> CustomPaths:
    fields = _mapping(path, value, {"features", "predictions", "id"})
    if "features" not in fields:
        raise ConfigError(f"{path}.features: required (a JSON path to the feature rows, e.g. $.rows[*])")
    return CustomPaths(**{k: _json_path(f"{path}.{k}", v) for k, v in fields.items()})


def _regex(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(path, value, "expected a regular expression")
    try:
        re.compile(value)
    except re.error as exc:
        raise _fail(path, value, f"expected a regular expression ({exc})") from None
    return value


_WINDOW_NAME = re.compile(r"^[0-9]+[smhd]$|^[a-z][a-z0-9_]*$")


def _windows(path: str, value: Any) -> tuple[tuple[str, float], ...]:
    if isinstance(value, list):  # [5m, 1h]: names are the durations
        value = {item: item for item in value}
    if not isinstance(value, Mapping) or not value:
        raise _fail(path, value, "expected a mapping of window name to duration, e.g. {5m: 5m, 1h: 1h}")
    out = []
    for name, width in value.items():
        if not isinstance(name, str) or not _WINDOW_NAME.match(name):
            raise _fail(f"{path}.{name}", name, "expected a window name like 5m or short")
        out.append((name, parse_duration(f"{path}.{name}", width)))
    return tuple(out)


def _probability(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise _fail(path, value, "expected a number between 0 and 1 (exclusive)")
    return float(value)


def _fraction(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
        raise _fail(path, value, "expected a number from 0 to 10 (a fraction of the baseline range)")
    return float(value)


def _tolerance(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise _fail(path, value, "expected a number from 0 to 1 (an absolute drop in the metric)")
    return float(value)


def _methods(path: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _fail(path, value, f"expected a method or a list of methods ({', '.join(DRIFT_METHODS)})")
    for i, item in enumerate(items):
        if item not in DRIFT_METHODS:
            raise _fail(
                f"{path}[{i}]" if isinstance(value, list) else path, item, f"expected one of {', '.join(DRIFT_METHODS)}"
            )
    return tuple(items)


def _column_drift(path: str, value: Any) -> ColumnDrift:
    fields = _mapping(path, value, {"method", "threshold"})
    methods = _methods(f"{path}.method", fields["method"]) if "method" in fields else None
    thresholds: list[tuple[str, float]] = []
    raw = fields.get("threshold")
    if raw is not None:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            if methods is None or len(methods) != 1:
                raise _fail(
                    f"{path}.threshold",
                    raw,
                    "expected a mapping of method to threshold when the column has not exactly one method",
                )
            raw = {methods[0]: raw}
        if not isinstance(raw, Mapping):
            raise _fail(f"{path}.threshold", raw, "expected a number or a mapping of method to threshold")
        for method, t in raw.items():
            _methods(f"{path}.threshold.{method}", method)
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
                raise _fail(f"{path}.threshold.{method}", t, "expected a positive number")
            thresholds.append((method, float(t)))
    return ColumnDrift(methods, tuple(thresholds))


def _drift_columns(path: str, value: Any) -> tuple[tuple[str, ColumnDrift], ...]:
    if not isinstance(value, Mapping):
        raise _fail(path, value, "expected a mapping of column name to {method, threshold}")
    return tuple((str(name), _column_drift(f"{path}.{name}", spec)) for name, spec in value.items())


def _bounds(path: str, value: Any) -> tuple[tuple[str, tuple[float | None, float | None]], ...]:
    if not isinstance(value, Mapping):
        raise _fail(path, value, "expected a mapping of column name to {min, max}")
    out = []
    for name, spec in value.items():
        fields = _mapping(f"{path}.{name}", spec, {"min", "max"})
        lo, hi = fields.get("min"), fields.get("max")
        for key, v in (("min", lo), ("max", hi)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise _fail(f"{path}.{name}.{key}", v, "expected a number")
        if lo is not None and hi is not None and lo > hi:
            raise _fail(f"{path}.{name}.max", hi, f"expected max >= min ({lo})")
        out.append((str(name), (lo, hi)))
    return tuple(out)


def _file_path(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, value, "expected a file path")
    return value


def _url_path(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _fail(path, value, "expected a URL path starting with /")
    return value


ADMIN_PATHS = ("/metrics", "/feedback", "/-/healthy", "/-/ready", "/-/reload")


def _push_path(path: str, value: Any) -> str:
    url_path = _url_path(path, value)
    if url_path in ADMIN_PATHS:
        raise _fail(
            path, value, f"expected a path of its own on the metrics port (not one of {', '.join(ADMIN_PATHS)})"
        )
    return url_path


def _sample(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise _fail(path, value, "expected a fraction greater than 0 and at most 1")
    return float(value)


def _rate(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise _fail(path, value, "expected a positive number of records per second")
    return float(value)


def _json_paths(path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(path, value, "expected a list of JSON paths like $.inputs[*].data")
    return tuple(_json_path(f"{path}[{i}]", item) for i, item in enumerate(value))


def _access_fields(path: str, value: Any) -> tuple[tuple[str, str], ...]:
    fields = _mapping(path, value, set(ACCESS_LOG_FIELDS))
    return tuple((name, _string(f"{path}.{name}", key)) for name, key in fields.items())


def _tail_source(path: str, value: Any) -> TailSource:
    if isinstance(value, str):
        value = {"path": value}
    raw = _mapping(path, value, {"path", "shape", "csv_columns", "fields", "duration_unit"})
    if "path" not in raw:
        raise ConfigError(f"{path}.path: required (a file or a glob)")
    source = TailSource(
        **_fields(
            raw,
            path,
            {
                "path": _file_path,
                "shape": _choice(TAIL_SHAPES),
                "csv_columns": _string_list,
                "fields": _access_fields,
                "duration_unit": _choice(("s", "ms", "us")),
            },
        )
    )
    access = source.shape in ("nginx", "envoy")
    if (source.fields or source.duration_unit) and not access:
        raise ConfigError(f"{path}: fields and duration_unit apply to access logs (shape nginx or envoy)")
    if source.csv_columns and source.shape != "sagemaker":
        raise ConfigError(f"{path}.csv_columns: applies to shape sagemaker only")
    return source


def _tail_sources(path: str, value: Any) -> tuple[TailSource, ...]:
    if not isinstance(value, list):
        raise _fail(path, value, "expected a list of sources (a path, or {path, shape, ...})")
    return tuple(_tail_source(f"{path}[{i}]", item) for i, item in enumerate(value))


def _buckets(path: str, value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(path, value, "expected a non-empty list of increasing positive numbers")
    out: list[float] = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item) or item <= 0:
            raise _fail(f"{path}[{i}]", item, "expected a positive number")
        if out and item <= out[-1]:
            raise _fail(f"{path}[{i}]", item, f"expected buckets in increasing order (after {out[-1]})")
        out.append(float(item))
    return tuple(out)


_ROUTE_PATTERN = re.compile(r"^/[A-Za-z0-9_\-./:{}]*$")


def _routes(path: str, value: Any) -> tuple[RouteConfig, ...]:
    if not isinstance(value, list):
        raise _fail(path, value, "expected a list of route patterns like {pattern: /predict/{model}}")
    routes = []
    for i, item in enumerate(value):
        item_path = f"{path}[{i}]"
        if isinstance(item, str):
            item = {"pattern": item}
        fields = _mapping(item_path, item, {"pattern", "name"})
        pattern = fields.get("pattern")
        if not isinstance(pattern, str) or not _ROUTE_PATTERN.match(pattern):
            raise _fail(
                f"{item_path}.pattern", pattern, "expected a path template starting with /, e.g. /predict/{model}"
            )
        name = _string(f"{item_path}.name", fields["name"]) if "name" in fields else pattern
        routes.append(RouteConfig(pattern=pattern, name=name))
    return tuple(routes)


_CURRENCY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,15}$")


def _currency(path: str, value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise _fail(path, value, "expected a currency code such as USD or EUR")
    return value


def _prices(path: str, value: Any) -> tuple[tuple[str, float, float], ...]:
    if not isinstance(value, Mapping):
        raise _fail(path, value, "expected a mapping of model name to {prompt, completion} prices per 1M tokens")
    out = []
    for name, spec in value.items():
        fields = _mapping(f"{path}.{name}", spec, {"prompt", "completion"})
        prices = []
        for key in ("prompt", "completion"):
            v = fields.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise _fail(f"{path}.{name}.{key}", v, "expected a price per 1M tokens, a number >= 0")
            prices.append(float(v))
        out.append((str(name), prices[0], prices[1]))
    return tuple(out)


def _mapping(path: str, value: Any, allowed: set[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path or "config", value, "expected a mapping")
    for key in value:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(f"{where}: unknown key (allowed: {', '.join(sorted(allowed))})")
    return dict(value)


# ---------------------------------------------------------------- loading


def _section(raw: dict[str, Any], key: str, path: str, parsers: dict[str, Callable[[str, Any], Any]]) -> dict[str, Any]:
    """Parse the mapping `raw[key]` (at YAML path `path`) field by field; unknown keys are errors."""
    return _fields(_mapping(path, raw.get(key), set(parsers)), path, parsers)


def _fields(fields: dict[str, Any], path: str, parsers: dict[str, Callable[[str, Any], Any]]) -> dict[str, Any]:
    return {name: parsers[name](f"{path}.{name}", val) for name, val in fields.items()}


def from_dict(raw: Any) -> Config:
    """Validate a parsed YAML document into a Config; raises ConfigError naming the path."""
    top = _mapping(
        "",
        raw,
        {
            "upstream",
            "listen",
            "metrics_listen",
            "model",
            "metrics",
            "capture",
            "resources",
            "baseline",
            "drift",
            "quality",
            "labels",
            "performance",
            "push",
            "shutdown",
            "llm",
            "client",
            "tail",
            "prediction_log",
            "web_config",
            "state_dir",
        },
    )
    upstream_raw = _mapping(
        "upstream", top.get("upstream"), {"url", "connect_timeout", "read_timeout", "max_connections", "health"}
    )
    health = HealthConfig(
        **_section(
            upstream_raw,
            "health",
            "upstream.health",
            {
                "path": _url_path,
                "interval": parse_duration,
                "timeout": parse_duration,
            },
        )
    )
    upstream_fields = {k: v for k, v in upstream_raw.items() if k != "health"}
    upstream = UpstreamConfig(
        health=health,
        **_fields(
            upstream_fields,
            "upstream",
            {
                "url": parse_url,
                "connect_timeout": parse_duration,
                "read_timeout": parse_duration,
                "max_connections": _positive_int,
            },
        ),
    )
    model = ModelConfig(
        **_section(
            top,
            "model",
            "model",
            {
                "name": _string,
                "version": lambda p, v: _string(
                    p, str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                ),
                "protocol": _choice(PROTOCOLS),
                "known": _string_list,
                "max_names": _positive_int,
                "custom": _custom,
            },
        )
    )
    if model.protocol == "custom" and model.custom is None:
        raise ConfigError(
            "model.custom: required when model.protocol is custom (JSON paths: features, predictions, id)"
        )
    capture = CaptureConfig(
        **_section(
            top,
            "capture",
            "capture",
            {
                "enabled": _bool,
                "max_body_bytes": _positive_int,
                "queue_size": _positive_int,
                "id_header": _header_name,
            },
        )
    )
    metrics = MetricsConfig(
        **_section(
            top,
            "metrics",
            "metrics",
            {
                "duration_buckets": _buckets,
                "size_buckets": _buckets,
                "routes": _routes,
            },
        )
    )
    resources = ResourcesConfig(
        **_section(
            top,
            "resources",
            "resources",
            {
                "pid": _positive_int,
                "match": _regex,
                "gpu": _choice(("auto", "on", "off")),
                "interval": _non_negative_duration,
            },
        )
    )
    drift_fields = _section(
        top,
        "drift",
        "drift",
        {
            "windows": _windows,
            "min_rows": _positive_int,
            "false_alarm_rate": _probability,
            "numeric_methods": _methods,
            "categorical_methods": _methods,
            "columns": _drift_columns,
        },
    )
    drift = DriftConfig(**drift_fields)
    quality = QualityConfig(**_section(top, "quality", "quality", {"range_tolerance": _fraction, "bounds": _bounds}))
    labels = LabelsConfig(
        **_section(
            top,
            "labels",
            "labels",
            {
                "cache_size": _positive_int,
                "ttl": parse_duration,
                "queue_size": _positive_int,
            },
        )
    )
    performance = PerformanceConfig(
        **_section(
            top,
            "performance",
            "performance",
            {
                "task": _choice(PERFORMANCE_TASKS),
                "prediction": _string,
                "score": _string,
                "threshold": _probability,
                "positive": lambda p, v: _string(p, str(v).lower() if isinstance(v, (bool, int)) else v),
                "max_classes": _positive_int,
                "min_labels": _positive_int,
                "tolerance": _tolerance,
                "false_alarm_rate": _probability,
                "max_calibration_error": _probability,
                "segments": _string_list,
                "max_segment_values": _positive_int,
            },
        )
    )
    push = PushConfig(
        **_section(
            top,
            "push",
            "push",
            {
                "enabled": _bool,
                "path": _push_path,
                "max_body_bytes": _positive_int,
                "cache_size": _positive_int,
                "cache_bytes": _positive_int,
                "ttl": parse_duration,
            },
        )
    )
    shutdown = ShutdownConfig(
        **_section(
            top,
            "shutdown",
            "shutdown",
            {
                "delay": _non_negative_duration,
                "grace_period": parse_duration,
            },
        )
    )
    llm = LLMConfig(**_section(top, "llm", "llm", {"currency": _currency, "prices": _prices}))
    client = ClientConfig(
        **_section(
            top,
            "client",
            "client",
            {
                "header_timeout": parse_duration,
                "body_timeout": parse_duration,
                "keepalive_timeout": parse_duration,
                "send_timeout": parse_duration,
                "max_connections": _positive_int,
            },
        )
    )
    tail = TailConfig(
        **_section(
            top,
            "tail",
            "tail",
            {
                "sources": _tail_sources,
                "from_start": _bool,
                "offsets_file": _file_path,
                "max_line_bytes": _positive_int,
                "max_files": _positive_int,
                "poll_interval": parse_duration,
                "rotate_wait": parse_duration,
            },
        )
    )
    prediction_log = PredictionLogConfig(
        **_section(
            top,
            "prediction_log",
            "prediction_log",
            {
                "path": _file_path,
                "sample": _sample,
                "max_rate": _rate,
                "max_bytes": _positive_int,
                "max_files": _positive_int,
                "redact": _json_paths,
                "queue_size": _positive_int,
            },
        )
    )
    baseline = _file_path("baseline", top["baseline"]) if "baseline" in top else None
    web_config = _file_path("web_config", top["web_config"]) if "web_config" in top else None
    state_dir = _file_path("state_dir", top["state_dir"]) if "state_dir" in top else None
    config = Config(
        upstream=upstream,
        model=model,
        metrics=metrics,
        capture=capture,
        resources=resources,
        baseline=baseline,
        drift=drift,
        quality=quality,
        labels=labels,
        performance=performance,
        push=push,
        shutdown=shutdown,
        llm=llm,
        client=client,
        tail=tail,
        prediction_log=prediction_log,
        web_config=web_config,
        state_dir=state_dir,
    )
    if "listen" in top:
        config = dataclasses.replace(config, listen=parse_host_port("listen", top["listen"]))
    if "metrics_listen" in top:
        config = dataclasses.replace(config, metrics_listen=parse_host_port("metrics_listen", top["metrics_listen"]))
    return config


def load_file(path: str | Path) -> Config:
    """Read and validate a YAML config file; errors carry the file name."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    try:
        config = from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if config.baseline is not None and not Path(config.baseline).is_absolute():
        # a relative baseline path is relative to the config file, wherever it is run from
        config = dataclasses.replace(config, baseline=str(Path(path).parent / config.baseline))
    if config.state_dir is not None and not Path(config.state_dir).is_absolute():
        config = dataclasses.replace(config, state_dir=str(Path(path).parent / config.state_dir))
    if config.web_config is not None and not Path(config.web_config).is_absolute():
        config = dataclasses.replace(config, web_config=str(Path(path).parent / config.web_config))
    return config


def apply_flags(
    config: Config,
    *,
    upstream: str | None = None,
    listen: str | None = None,
    metrics_listen: str | None = None,
    model: str | None = None,
    model_version: str | None = None,
    baseline: str | None = None,
    web_config: str | None = None,
    state_dir: str | None = None,
    tail: Sequence[str] = (),
    from_start: bool = False,
) -> Config:
    """Flags override the file; errors name the flag."""
    if tail:  # --tail PATH (repeatable): prediction logs, on top of the configured sources
        added = tuple(TailSource(_file_path("--tail", p)) for p in tail)
        config = dataclasses.replace(config, tail=dataclasses.replace(config.tail, sources=config.tail.sources + added))
    if from_start:
        config = dataclasses.replace(config, tail=dataclasses.replace(config.tail, from_start=True))
    if state_dir is not None:
        config = dataclasses.replace(config, state_dir=_file_path("--state-dir", state_dir))
    if web_config is not None:
        config = dataclasses.replace(config, web_config=_file_path("--web-config", web_config))
    if baseline is not None:
        config = dataclasses.replace(config, baseline=_file_path("--baseline", baseline))
    if upstream is not None:
        config = dataclasses.replace(
            config, upstream=dataclasses.replace(config.upstream, url=parse_url("--upstream", upstream))
        )
    if listen is not None:
        config = dataclasses.replace(config, listen=parse_host_port("--listen", listen))
    if metrics_listen is not None:
        config = dataclasses.replace(config, metrics_listen=parse_host_port("--metrics-listen", metrics_listen))
    if model is not None:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, name=_string("--model", model)))
    if model_version is not None:
        config = dataclasses.replace(
            config, model=dataclasses.replace(config.model, version=_string("--model-version", model_version))
        )
    return config


def validate_complete(config: Config) -> Config:
    """Cross-field checks once file and flags are merged.

    The checks that need the baseline file (exporter.worker.checks) run where the baseline is
    loaded: in the analysis worker at start and on reload, and in `check-config`.
    """
    if not config.upstream.url and not config.tail.sources:
        raise ConfigError(
            "upstream.url: required (set it in the config or pass --upstream http://HOST:PORT), "
            "unless the sidecar only tails logs (tail.sources or --tail PATH)"
        )
    if config.listen == config.metrics_listen:
        raise ConfigError(
            f"metrics_listen: must differ from listen (both {config.listen}); admin endpoints never share the proxy port"
        )
    return config
