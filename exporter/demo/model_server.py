"""Demo model server: a fixed credit-approval model behind the Open Inference Protocol (KServe V2),
and beside it a stand-in LLM on the OpenAI, TGI and Ollama routes (exporter/demo/llm_server.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import signal
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from exporter.demo.llm_server import add_llm_routes

MODEL_NAME = "demo-model"
MODEL_VERSION = "1"
REGIONS = ("north", "south", "east", "west")


@dataclass(frozen=True)
class NumericFeature:
    """A numeric input with its V2 datatype, training mean/std and valid range."""

    name: str
    datatype: str
    mean: float
    std: float
    low: float
    high: float


@dataclass(frozen=True)
class CategoricalFeature:
    """A BYTES input with its categories and their training probabilities."""

    name: str
    datatype: str
    categories: tuple[str, ...]
    probabilities: tuple[float, ...]


Feature = NumericFeature | CategoricalFeature

# The training distributions: the traffic generator samples from them and a baseline
# built from those samples is what the sidecar compares live traffic against.
FEATURES: tuple[Feature, ...] = (
    NumericFeature("age", "FP32", mean=41.0, std=12.0, low=18.0, high=100.0),
    NumericFeature("income", "FP32", mean=58_000.0, std=21_000.0, low=0.0, high=1_000_000.0),
    NumericFeature("credit_score", "INT32", mean=680.0, std=60.0, low=300.0, high=850.0),
    NumericFeature("debt_ratio", "FP32", mean=0.32, std=0.12, low=0.0, high=2.0),
    NumericFeature("tenure_months", "INT32", mean=60.0, std=30.0, low=0.0, high=600.0),
    CategoricalFeature("region", "BYTES", REGIONS, (0.30, 0.25, 0.30, 0.15)),
)
FEATURES_BY_NAME: Mapping[str, Feature] = {feature.name: feature for feature in FEATURES}

# Logistic regression on standardised numeric inputs: each coefficient is the change in
# log-odds for one training std, which keeps the weights readable.
INTERCEPT = 0.4
COEFFICIENTS: Mapping[str, float] = {
    "age": 0.35,
    "income": 0.9,
    "credit_score": 1.2,
    "debt_ratio": -1.1,
    "tenure_months": 0.4,
}
REGION_LOGITS: Mapping[str, float] = {"north": 0.0, "south": -0.2, "east": 0.15, "west": -0.45}
THRESHOLD = 0.5

OUTPUTS = (("probability", "FP32"), ("label", "INT64"))
_INTEGER_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


class InferError(ValueError):
    """A request the model cannot serve; the message is returned to the client with a 400."""


@dataclass(frozen=True)
class InferRequest:
    """A validated V2 infer request: its id, batch size, columns and requested outputs."""

    id: str | None
    rows: int
    columns: Mapping[str, np.ndarray]
    outputs: tuple[str, ...]


def predict(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Return the positive-class probability (float64) for each row of the columns."""
    logit = np.full(len(columns["region"]), INTERCEPT)
    for feature in FEATURES:
        if isinstance(feature, NumericFeature):
            logit += COEFFICIENTS[feature.name] * (columns[feature.name] - feature.mean) / feature.std
    # An unseen region adds nothing, like a one-hot encoder that ignores unknown values:
    # the request still succeeds and the sidecar is the one to notice.
    logit += np.array([REGION_LOGITS.get(value, 0.0) for value in columns["region"]])
    result: np.ndarray = 1.0 / (1.0 + np.exp(-logit))
    return result


def _flat_values(name: str, data: Any) -> list[Any]:
    """Return an input's values in row-major order; V2 clients send [x, ...] or [[x], ...]."""
    if not isinstance(data, list):
        raise InferError(f"input '{name}' data must be a list")
    return [item[0] if isinstance(item, list) and len(item) == 1 else item for item in data]


def _rows_from_shape(name: str, shape: Any) -> int:
    """Return N for a shape of [N] or [N, 1]."""
    valid = (
        isinstance(shape, list)
        and all(isinstance(dim, int) and not isinstance(dim, bool) for dim in shape)
        and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1))
        and shape[0] >= 1
    )
    if not valid:
        raise InferError(f"input '{name}' has shape {shape!r}; expected [N] or [N, 1] with N >= 1")
    rows: int = shape[0]
    return rows


def _valid_number(value: Any, datatype: str) -> bool:
    """Whether a JSON value fits a numeric V2 datatype (integers in range, floats finite)."""
    if isinstance(value, bool):
        return False
    if datatype in _INTEGER_TYPES:
        bounds = np.iinfo(datatype.lower())
        return isinstance(value, int) and bounds.min <= value <= bounds.max
    if not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # a JSON integer too large for a double
        return False


def _column(feature: Feature, values: list[Any]) -> np.ndarray:
    """Convert one input's flat values to a column, checking each value against the datatype."""
    if isinstance(feature, CategoricalFeature):
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise InferError(f"input '{feature.name}' data[{index}] is {value!r}; expected a string")
        return np.array(values, dtype=object)
    for index, value in enumerate(values):
        if not _valid_number(value, feature.datatype):
            raise InferError(f"input '{feature.name}' data[{index}] is {value!r}; not a valid {feature.datatype} value")
    return np.asarray(values, dtype=np.float64)


def parse_infer_request(body: Any) -> InferRequest:
    """Validate a decoded V2 infer request body against FEATURES."""
    if not isinstance(body, dict):
        raise InferError("request body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InferError("'inputs' must be a non-empty list")
    columns: dict[str, np.ndarray] = {}
    rows: int | None = None
    for position, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise InferError(f"inputs[{position}] must be an object")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise InferError(f"inputs[{position}].name must be a string")
        feature = FEATURES_BY_NAME.get(name)
        if feature is None:
            raise InferError(f"unknown input '{name}'; expected {', '.join(FEATURES_BY_NAME)}")
        if name in columns:
            raise InferError(f"input '{name}' is given more than once")
        if tensor.get("datatype") != feature.datatype:
            raise InferError(f"input '{name}' has datatype {tensor.get('datatype')!r}; expected {feature.datatype}")
        n = _rows_from_shape(name, tensor.get("shape"))
        if "data" not in tensor:
            raise InferError(f"input '{name}' has no 'data'")
        values = _flat_values(name, tensor["data"])
        if len(values) != n:
            raise InferError(f"input '{name}' has {len(values)} values; its shape says {n}")
        if rows is not None and n != rows:
            raise InferError(f"input '{name}' has {n} rows; earlier inputs have {rows}")
        rows = n
        columns[name] = _column(feature, values)
    missing = [name for name in FEATURES_BY_NAME if name not in columns]
    if missing:
        raise InferError(f"missing inputs: {', '.join(missing)}")
    assert rows is not None  # inputs is non-empty and every input set it
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InferError("'id' must be a string")
    return InferRequest(request_id, rows, columns, _requested_outputs(body.get("outputs")))


def _requested_outputs(requested: Any) -> tuple[str, ...]:
    """Return the output names the client asked for (all of them when it did not ask)."""
    known = [name for name, _ in OUTPUTS]
    if requested is None:
        return tuple(known)
    if not isinstance(requested, list):
        raise InferError("'outputs' must be a list of objects")
    names: list[str] = []
    for item in requested:
        if not isinstance(item, dict) or item.get("name") not in known:
            raise InferError(f"unknown output {item!r}; expected one of {', '.join(known)}")
        names.append(item["name"])
    return tuple(names)


def infer_response(request: InferRequest, probability: np.ndarray) -> dict[str, Any]:
    """Build the V2 infer response body for the probabilities of a request."""
    data = {
        "probability": [float(p) for p in probability.astype(np.float32)],
        "label": [int(p >= THRESHOLD) for p in probability],
    }
    datatypes = dict(OUTPUTS)
    return {
        "model_name": MODEL_NAME,
        "model_version": MODEL_VERSION,
        # Echo the client's id so the sidecar can join labels to predictions.
        "id": request.id if request.id is not None else str(uuid.uuid4()),
        "outputs": [
            {"name": name, "shape": [request.rows], "datatype": datatypes[name], "data": data[name]}
            for name in request.outputs
        ],
    }


def model_metadata() -> dict[str, Any]:
    """Return the V2 model metadata for the demo model."""
    return {
        "name": MODEL_NAME,
        "versions": [MODEL_VERSION],
        "platform": "numpy",
        "inputs": [{"name": f.name, "datatype": f.datatype, "shape": [-1]} for f in FEATURES],
        "outputs": [{"name": name, "datatype": dtype, "shape": [-1]} for name, dtype in OUTPUTS],
    }


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class _DemoModelServer:
    """Request handlers sharing the simulated load clock and latency."""

    def __init__(self, load_seconds: float, latency_ms: float, seed: int) -> None:
        self._load_seconds = load_seconds
        self._latency_ms = latency_ms
        self._rng = random.Random(seed)
        self._ready_at = math.inf

    async def on_startup(self, app: web.Application) -> None:
        self._ready_at = time.monotonic() + self._load_seconds

    def ready(self) -> bool:
        return time.monotonic() >= self._ready_at

    def _unknown_model(self, request: web.Request) -> web.Response | None:
        name = request.match_info["model"]
        version = request.match_info.get("version", MODEL_VERSION)
        if name != MODEL_NAME:
            return _error(404, f"unknown model '{name}'; this server serves '{MODEL_NAME}'")
        if version != MODEL_VERSION:
            return _error(404, f"unknown version '{version}' of model '{name}'; it has '{MODEL_VERSION}'")
        return None

    async def server_metadata(self, request: web.Request) -> web.Response:
        return web.json_response({"name": "demo-model-server", "version": "1", "extensions": []})

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def server_ready(self, request: web.Request) -> web.Response:
        ready = self.ready()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def metadata(self, request: web.Request) -> web.Response:
        return self._unknown_model(request) or web.json_response(model_metadata())

    async def model_ready(self, request: web.Request) -> web.Response:
        if unknown := self._unknown_model(request):
            return unknown
        ready = self.ready()
        return web.json_response({"name": MODEL_NAME, "ready": ready}, status=200 if ready else 503)

    async def infer(self, request: web.Request) -> web.Response:
        if unknown := self._unknown_model(request):
            return unknown
        if not self.ready():
            return _error(503, f"model '{MODEL_NAME}' is still loading")
        if "Inference-Header-Content-Length" in request.headers:
            return _error(400, "the binary tensor extension is not supported by the demo model")
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError):
            return _error(400, "request body is not valid JSON")
        try:
            parsed = parse_infer_request(body)
        except InferError as exc:
            return _error(400, str(exc))
        probability = predict(parsed.columns)
        if self._latency_ms > 0:
            # A little jitter so latency histograms show a spread, not a single bucket.
            await asyncio.sleep(self._latency_ms * self._rng.uniform(0.8, 1.2) / 1000.0)
        return web.json_response(infer_response(parsed, probability))


def make_app(load_seconds: float = 2.0, latency_ms: float = 0.0, seed: int = 0) -> web.Application:
    """Build the demo model server app; it reports ready load_seconds after startup."""
    server = _DemoModelServer(load_seconds, latency_ms, seed)
    app = web.Application()
    app.on_startup.append(server.on_startup)
    model = "/v2/models/{model}"
    versioned = model + "/versions/{version}"
    app.router.add_get("/v2", server.server_metadata)
    app.router.add_get("/v2/health/live", server.live)
    app.router.add_get("/v2/health/ready", server.server_ready)
    for base in (model, versioned):
        app.router.add_get(base, server.metadata)
        app.router.add_get(base + "/ready", server.model_ready)
        app.router.add_post(base + "/infer", server.infer)
    # an LLM beside the classifier, so the Streaming & LLM dashboard has something to show
    add_llm_routes(app, first_token_delay=0.05, token_gap=0.01, tokens=8)
    return app


async def serve(
    host: str,
    port: int,
    *,
    load_seconds: float = 2.0,
    latency_ms: float = 0.0,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the demo model on host:port until stop is set (forever when it is None)."""
    runner = web.AppRunner(make_app(load_seconds, latency_ms), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        print(f"demo model server listening on http://{bound_host}:{bound_port}", flush=True)
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()


async def _serve_until_signal(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(sig, stop.set)
    await serve(args.host, args.port, load_seconds=args.load_seconds, latency_ms=args.latency_ms, stop=stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo model server from the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m exporter.demo.model_server",
        description=f"Serve '{MODEL_NAME}' over the Open Inference Protocol (KServe V2).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default %(default)s)")
    parser.add_argument(
        "--load-seconds", type=float, default=2.0, help="simulated model load time (default %(default)s)"
    )
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="mean simulated service time (default %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.load_seconds < 0:
        parser.error(f"--load-seconds must be >= 0, got {args.load_seconds}")
    if args.latency_ms < 0:
        parser.error(f"--latency-ms must be >= 0, got {args.latency_ms}")
    try:
        asyncio.run(_serve_until_signal(args))
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port} (--host/--port): {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
