"""Traffic generator: V2 infer requests at a steady rate, drawn from the training distributions."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np

from exporter.demo.model_server import FEATURES, MODEL_NAME, CategoricalFeature, NumericFeature

MAX_BATCH = 8
TRACE_RATIO = 0.1
# Drift: income moves up by this many training stds, and this share of region draws
# goes to DRIFT_REGION on top of the training mix.
INCOME_DRIFT_STDS = 1.5
DRIFT_REGION = "west"
DRIFT_REGION_WEIGHT = 0.5
REQUEST_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 5.0
READY_POLL_S = 0.2

Value = float | int | str | None
Columns = dict[str, list[Value]]


# Ground truth: each row's outcome is drawn from the model's (calibrated) probability, so the
# realised accuracy matches the baseline's; in the drift phase this share of outcomes goes the
# other way (concept drift), so accuracy drops and ModelPerformanceDrop can fire.
CONCEPT_DRIFT_SHARE = 0.35
LABEL_DELAY_S = 10.0  # labels are posted this long after their prediction...
LABEL_COVERAGE = 0.8  # ...for this share of the rows
LABEL_FLUSH_S = 1.0


@dataclass(frozen=True)
class LabelPlan:
    """Where and how the generator sends delayed ground-truth labels (POST /feedback)."""

    url: str
    delay: float = LABEL_DELAY_S
    coverage: float = LABEL_COVERAGE


def outcomes(rng: np.random.Generator, probabilities: Sequence[float], drifted: bool) -> list[int]:
    """The rows' true outcomes: Bernoulli(probability); in the drift phase a share flipped."""
    p = np.asarray(probabilities, dtype=np.float64)
    out = (rng.random(p.size) < p).astype(np.int64)
    if drifted:
        flip = rng.random(p.size) < CONCEPT_DRIFT_SHARE
        out[flip] = 1 - out[flip]
    return [int(v) for v in out]


def label_records(rng: np.random.Generator, response: Any, drifted: bool, coverage: float) -> list[dict[str, Any]]:
    """Feedback records for a V2 infer response's rows: ids as the sidecar derives them (id, id:i)."""
    if not isinstance(response, dict) or not isinstance(response.get("id"), str):
        return []
    outputs = {o.get("name"): o.get("data") for o in response.get("outputs", []) if isinstance(o, dict)}
    probabilities = outputs.get("probability")
    if not isinstance(probabilities, list) or not probabilities:
        return []
    base = response["id"]
    ids = [base] if len(probabilities) == 1 else [f"{base}:{i}" for i in range(len(probabilities))]
    truth = outcomes(rng, probabilities, drifted)
    keep = rng.random(len(ids)) < coverage
    # a business outcome: what a repaid loan earned (nothing when it was not)
    values = [round(float(v), 2) if y else 0.0 for v, y in zip(rng.uniform(50, 150, len(ids)), truth)]
    return [{"id": rid, "label": y, "value": v} for rid, y, v, k in zip(ids, truth, values, keep) if k]


# Data-quality faults injected with the drift: nulls, out-of-range values, an unseen category.
NULL_FEATURE, NULL_SHARE = "debt_ratio", 0.05
OUT_OF_RANGE_FEATURE, OUT_OF_RANGE_SHARE = "age", 0.04
UNSEEN_REGION, UNSEEN_SHARE = "central", 0.05


def sample_rows(rng: np.random.Generator, n: int, drifted: bool) -> Columns:
    """Draw n rows, as JSON-ready columns keyed by feature name, from the (drifted) training distributions.

    Drifted rows also carry data-quality faults: some nulls, ages past the training range and
    an unseen region.
    """
    columns = _draw(rng, n, drifted)
    if drifted:
        _inject_faults(rng, columns, n)
    return columns


def _inject_faults(rng: np.random.Generator, columns: Columns, n: int) -> None:
    for i in np.flatnonzero(rng.random(n) < NULL_SHARE):
        columns[NULL_FEATURE][i] = None
    for i in np.flatnonzero(rng.random(n) < OUT_OF_RANGE_SHARE):
        columns[OUT_OF_RANGE_FEATURE][i] = float(rng.uniform(130, 160))  # ages no training row had
    for i in np.flatnonzero(rng.random(n) < UNSEEN_SHARE):
        columns["region"][i] = UNSEEN_REGION


def _draw(rng: np.random.Generator, n: int, drifted: bool) -> Columns:
    columns: Columns = {}
    for feature in FEATURES:
        if isinstance(feature, NumericFeature):
            mean = feature.mean
            if drifted and feature.name == "income":
                mean += INCOME_DRIFT_STDS * feature.std
            values = np.clip(rng.normal(mean, feature.std, n), feature.low, feature.high)
            if feature.datatype.startswith(("INT", "UINT")):
                columns[feature.name] = [int(v) for v in np.rint(values)]
            else:
                columns[feature.name] = [float(v) for v in values]
        else:
            probabilities = np.asarray(_category_probabilities(feature, drifted))
            picks = rng.choice(len(feature.categories), size=n, p=probabilities)
            columns[feature.name] = [feature.categories[i] for i in picks]
    return columns


def _category_probabilities(feature: CategoricalFeature, drifted: bool) -> tuple[float, ...]:
    """Return the feature's category probabilities, skewed toward DRIFT_REGION when drifted."""
    if not drifted or feature.name != "region":
        return feature.probabilities
    return tuple(
        (1.0 - DRIFT_REGION_WEIGHT) * p + (DRIFT_REGION_WEIGHT if category == DRIFT_REGION else 0.0)
        for category, p in zip(feature.categories, feature.probabilities, strict=True)
    )


def build_infer_request(columns: Columns, request_id: str) -> dict[str, Any]:
    """Build a V2 infer request body with one [N] tensor per feature."""
    rows = len(columns[FEATURES[0].name])
    return {
        "id": request_id,
        "inputs": [
            {"name": f.name, "shape": [rows], "datatype": f.datatype, "data": columns[f.name]} for f in FEATURES
        ],
    }


def traceparent(rng: np.random.Generator) -> str:
    """Return a sampled W3C traceparent header value with random trace and span ids."""
    trace_id, span_id = rng.bytes(16).hex(), rng.bytes(8).hex()
    # All-zero ids are invalid per the W3C spec; vanishingly rare, but cheap to rule out.
    if int(trace_id, 16) == 0:
        trace_id = trace_id[:-1] + "1"
    if int(span_id, 16) == 0:
        span_id = span_id[:-1] + "1"
    return f"00-{trace_id}-{span_id}-01"


def infer_url(target: str, model: str = MODEL_NAME) -> str:
    """Return the V2 infer URL of model under the target base URL (http or https only)."""
    url = urlsplit(target)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"target must be an http(s) URL such as http://127.0.0.1:8080, got {target!r}")
    return target.rstrip("/") + f"/v2/models/{model}/infer"


@dataclass
class TrafficSummary:
    """What the generator sent and what came back."""

    requests: int = 0
    rows: int = 0
    drifted_requests: int = 0
    traced_requests: int = 0
    # Requests not sent because max_in_flight were still waiting on the target.
    skipped: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    # Requests that got no HTTP status, by exception class (refused, timeout, ...).
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    labels: int = 0  # labels accepted by POST /feedback
    label_errors: Counter[str] = field(default_factory=Counter)

    def successes(self) -> int:
        """Return the number of 2xx responses."""
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    def format(self) -> str:
        """Return a short human-readable summary."""
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        errors = ", ".join(f"{name}: {count}" for name, count in sorted(self.errors.items()))
        return (
            f"traffic: {self.requests} requests ({self.rows} rows) in {self.elapsed_s:.1f} s; "
            f"{self.drifted_requests} drifted, {self.traced_requests} with traceparent, "
            f"{self.skipped} skipped\n"
            f"  status codes: {statuses or 'none'}\n"
            f"  errors: {errors or 'none'}"
            + (f"\n  labels: {self.labels} sent" if self.labels or self.label_errors else "")
            + (f" (errors: {dict(sorted(self.label_errors.items()))})" if self.label_errors else "")
        )


async def _stopped_within(stop: asyncio.Event, delay: float) -> bool:
    """Wait up to delay seconds; return whether stop was set meanwhile."""
    if delay <= 0:
        await asyncio.sleep(0)  # let in-flight requests progress even when running behind
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), delay)
    except TimeoutError:
        return False
    return True


async def _wait_ready(session: aiohttp.ClientSession, target: str, timeout: float, stop: asyncio.Event) -> bool:
    """Poll the target's /v2/health/ready until it answers 200; return whether it did."""
    url = target.rstrip("/") + "/v2/health/ready"
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=1.0)) as response:
                if response.status == 200:
                    return True
        if await _stopped_within(stop, READY_POLL_S):
            return False
    return False


class LabelQueue:
    """Labels waiting for their delay to pass, posted in batches: the way an application reports outcomes."""

    def __init__(self, plan: LabelPlan, rng: np.random.Generator) -> None:
        self.plan = plan
        self.rng = rng
        self.pending: list[tuple[float, list[dict[str, Any]]]] = []

    def add(self, response: Any, drifted: bool, now: float) -> None:
        records = label_records(self.rng, response, drifted, self.plan.coverage)
        if records:
            self.pending.append((now + self.plan.delay, records))

    async def flush(self, session: aiohttp.ClientSession, summary: TrafficSummary, now: float | None) -> None:
        """Post the labels due by `now` (None: all of them)."""
        due = [r for t, rs in self.pending if now is None or t <= now for r in rs]
        self.pending = [(t, rs) for t, rs in self.pending if now is not None and t > now]
        if not due:
            return
        try:
            async with session.post(self.plan.url, json=due) as response:
                await response.read()
                if response.status == 200:
                    summary.labels += len(due)
                else:
                    summary.label_errors[str(response.status)] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            summary.label_errors[type(exc).__name__] += 1


async def _send(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    summary: TrafficSummary,
    labels: LabelQueue | None = None,
    drifted: bool = False,
) -> None:
    """Send one request and count its outcome; queue its labels when they are sent."""
    try:
        async with session.post(url, json=body, headers=headers) as response:
            data = await response.read()
            summary.statuses[response.status] += 1
            if labels is not None and response.status == 200:
                with contextlib.suppress(ValueError):
                    labels.add(json.loads(data), drifted, asyncio.get_running_loop().time())
    except (aiohttp.ClientError, TimeoutError) as exc:
        summary.errors[type(exc).__name__] += 1
    except asyncio.CancelledError:
        summary.errors["Cancelled"] += 1
        raise


async def generate_traffic(
    target: str,
    rate: float,
    duration: float | None,
    *,
    drift_after: float | None = None,
    stop: asyncio.Event | None = None,
    seed: int = 0,
    model: str = MODEL_NAME,
    wait_ready: float = 0.0,
    trace_ratio: float = TRACE_RATIO,
    max_in_flight: int = 64,
    report: Callable[[str], None] | None = None,
    labels: LabelPlan | None = None,
) -> TrafficSummary:
    """Send V2 infer requests to target at rate req/s until duration elapses or stop is set.

    With `labels`, each response's rows get a ground-truth outcome posted to the feedback URL
    after the plan's delay, for the plan's share of rows.
    """
    url = infer_url(target, model)
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    stop = stop if stop is not None else asyncio.Event()
    rng = np.random.default_rng(seed)
    summary = TrafficSummary()
    loop = asyncio.get_running_loop()
    in_flight: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        if wait_ready > 0 and not await _wait_ready(session, target, wait_ready, stop) and report:
            report(f"target {target} was not ready after {wait_ready:.0f} s; sending anyway")
        start = loop.time()
        deadline = start + duration if duration is not None else float("inf")
        next_at = start
        sequence = 0
        drift_reported = False
        queue = LabelQueue(labels, np.random.default_rng(seed + 1)) if labels is not None else None
        next_flush = start + LABEL_FLUSH_S
        while not await _stopped_within(stop, min(next_at, deadline) - loop.time()):
            now = loop.time()
            if now >= deadline:
                break
            # After a stall, carry on at the set rate instead of bursting to catch up.
            next_at = max(next_at + 1.0 / rate, now)
            drifted = drift_after is not None and now - start >= drift_after
            if drifted and not drift_reported and report:
                drift_reported = True
                report(f"injecting drift: income +{INCOME_DRIFT_STDS} std, region skewed toward {DRIFT_REGION!r}")
            if len(in_flight) >= max_in_flight:
                summary.skipped += 1
                continue
            rows = int(rng.integers(1, MAX_BATCH + 1))
            body = build_infer_request(sample_rows(rng, rows, drifted), f"demo-{sequence}")
            headers = {"traceparent": traceparent(rng)} if rng.random() < trace_ratio else {}
            sequence += 1
            summary.requests += 1
            summary.rows += rows
            summary.drifted_requests += drifted
            summary.traced_requests += bool(headers)
            task = loop.create_task(_send(session, url, body, headers, summary, queue, drifted))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if queue is not None and now >= next_flush:
                next_flush = now + LABEL_FLUSH_S
                flush = loop.create_task(queue.flush(session, summary, now))
                in_flight.add(flush)
                flush.add_done_callback(in_flight.discard)
        if in_flight:
            _, pending = await asyncio.wait(set(in_flight), timeout=DRAIN_TIMEOUT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        summary.elapsed_s = loop.time() - start
    return summary


async def _generate_until_signal(args: argparse.Namespace) -> TrafficSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(sig, stop.set)
    return await generate_traffic(
        args.target,
        args.rate,
        args.duration,
        drift_after=args.drift_after,
        stop=stop,
        seed=args.seed,
        model=args.model,
        wait_ready=args.wait_ready,
        report=lambda message: print(message, flush=True),
        labels=LabelPlan(args.feedback, args.label_delay, args.label_coverage) if args.feedback else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the traffic generator from the command line; exit 1 when no request succeeded."""
    parser = argparse.ArgumentParser(
        prog="python -m exporter.demo.traffic",
        description="Send V2 infer requests for the demo model to one target URL, for a bounded time.",
    )
    parser.add_argument("--target", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second (default %(default)s)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to run (default %(default)s)")
    parser.add_argument(
        "--drift-after", type=float, default=None, help="seconds after which to inject drift (default: never)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    parser.add_argument("--model", default=MODEL_NAME, help="model name in the URL (default %(default)s)")
    parser.add_argument(
        "--wait-ready",
        type=float,
        default=30.0,
        help="seconds to wait for the target's /v2/health/ready first (default %(default)s)",
    )
    parser.add_argument(
        "--feedback",
        default=None,
        help="the sidecar's POST /feedback URL, e.g. http://127.0.0.1:9110/feedback: send delayed labels",
    )
    parser.add_argument(
        "--label-delay",
        type=float,
        default=LABEL_DELAY_S,
        help="seconds from prediction to label (default %(default)s)",
    )
    parser.add_argument(
        "--label-coverage",
        type=float,
        default=LABEL_COVERAGE,
        help="share of rows that get a label (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.label_coverage <= 1:
        parser.error(f"--label-coverage must be between 0 and 1, got {args.label_coverage}")
    if args.label_delay < 0:
        parser.error(f"--label-delay must be >= 0, got {args.label_delay}")
    if args.rate <= 0:
        parser.error(f"--rate must be > 0, got {args.rate}")
    if args.duration <= 0:
        parser.error(f"--duration must be > 0, got {args.duration}")
    try:
        infer_url(args.target, args.model)
    except ValueError as exc:
        parser.error(f"--target: {exc}")
    summary = asyncio.run(_generate_until_signal(args))
    print(summary.format())
    if summary.successes() == 0:
        print(f"error: no request to {args.target} succeeded", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
