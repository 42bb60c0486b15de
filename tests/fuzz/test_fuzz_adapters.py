"""Fuzz properties of the payload side: every adapter and the worker's extraction, on anything.

The contract (exporter/adapters/base.py): a parse method returns Rows whose columns all have
`n` values, or raises PayloadError with one of the fixed reasons; `internal` is an adapter
bug (counted in production, a failure here). Detection never raises. The worker's
`Extractor.extract` never raises at all: whatever the exchange, it returns an Extraction.

Every call runs under a watchdog: a case still running after HANG_S (orders of magnitude
above what a parse of these few KB takes) is reported as a hang with its input, instead of
stalling the run. It is a hang detector, not a speed check.
"""

from __future__ import annotations

import dataclasses
import random
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from adapters_support import assert_valid
from fuzz_budget import count, fuzz_settings, run_property
from fuzz_payloads import (
    CONTENT_TYPES,
    GOLDEN_BODIES,
    GOLDEN_DOCS,
    PATHS,
    Text,
    dumps,
    encoded_body,
    mutate_bytes,
    mutate_doc,
    random_json,
    seeded,
    v2_binary_body,
)
from hypothesis import given
from hypothesis import strategies as st

from exporter.adapters import ADAPTERS, PAYLOAD_ERROR_REASONS, Adapter, CustomAdapter, Message, PayloadError, detect
from exporter.adapters.v2 import HEADER_LENGTH
from exporter.config import CaptureConfig, Config, CustomPaths, ModelConfig
from exporter.events import Event, Extraction
from exporter.proxy.routes import RouteTable
from exporter.worker.extract import Extractor

HANG_S = 30.0
ALL_ADAPTERS: list[Adapter] = [*ADAPTERS,
                CustomAdapter("$.inputs[*]", "$.outputs", "$.id"),
                CustomAdapter("$.data", "$.predictions[*].label"),
                CustomAdapter("$.instances[*].features", "$.outputs[0]", "$.meta.ids[*]"),
                CustomAdapter("$['messages'][-1]")]
ROUTES = RouteTable()
PROTOCOLS = ("auto", "auto", "v2", "v1", "mlflow", "seldon", "openai", "custom")
MAX_BODY_BYTES = 64 * 1024  # capture.max_body_bytes of the fuzzed Extractor: decoded bodies stop at 16x this



class Hang(BaseException):
    """A call that did not return within HANG_S (BaseException: no `except Exception` swallows it)."""


@contextmanager
def watchdog(what: Callable[[], str]) -> Iterator[None]:
    """Raise Hang in the main thread if the block runs longer than HANG_S."""
    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {HANG_S:g}s: {what()}")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def message(path: str, headers: dict[str, str], body: bytes) -> Message:
    return Message(path=path, route=ROUTES.match(path.encode())[0], headers=headers, body=body)


def check_outcome(call: Callable[..., Any], *args: Any) -> None:
    """Rows that keep the contract, or a PayloadError with a known reason other than `internal`."""
    try:
        result = call(*args)
    except PayloadError as exc:
        assert exc.reason in PAYLOAD_ERROR_REASONS, exc.reason
        assert exc.reason != "internal", f"adapter bug: {exc}"
        return
    # anything else propagates and fails the case: only PayloadError may leave an adapter
    assert_valid(result)


def every_adapter(path: str, headers: dict[str, str], request_body: bytes, response_body: bytes) -> None:
    """Detection and both parse methods of every adapter on one exchange."""
    request = message(path, headers, request_body)
    response = message(path, headers, response_body)
    with watchdog(lambda: f"{path} {headers} {request_body[:200]!r} {response_body[:200]!r}"):
        for builtin in ADAPTERS:
            builtin.match_route(request)
            builtin.match_body(request)
        detect(request)
        for adapter in ALL_ADAPTERS:
            check_outcome(adapter.parse_request, request)
            check_outcome(adapter.parse_response, request, response)


def random_headers(rng: random.Random) -> dict[str, str]:
    """The headers adapters read (lower-cased names, as Message carries them), each maybe absent."""
    out = {}
    if rng.random() < 0.6:
        out["content-type"] = rng.choice(CONTENT_TYPES)
    if rng.random() < 0.15:
        out[HEADER_LENGTH] = rng.choice([str(rng.randint(-2, 400)), rng.choice(["", " 7", "x", "1e3", "٣"])])
    if rng.random() < 0.4:
        out["x-request-id"] = "".join(chr(rng.randint(0x20, 0xFF)) for _ in range(rng.randint(0, 6)))
    return out


# ------------------------------------------------------------------ adapters


def test_adapters_random_bytes() -> None:
    @fuzz_settings("adapters_random_bytes")
    @given(path=st.sampled_from(PATHS), rng=seeded())
    def prop(path: str, rng: random.Random) -> None:
        every_adapter(path, random_headers(rng), rng.randbytes(rng.randint(0, 512)), rng.randbytes(rng.randint(0, 512)))
        count("adapters_random_bytes")

    run_property("adapters_random_bytes", prop)


def test_adapters_random_json() -> None:
    @fuzz_settings("adapters_random_json")
    @given(path=st.sampled_from(PATHS), rng=seeded())
    def prop(path: str, rng: random.Random) -> None:
        every_adapter(path, random_headers(rng), dumps(random_json(rng)), dumps(random_json(rng)))
        count("adapters_random_json")

    run_property("adapters_random_json", prop)


def test_adapters_mutated_golden() -> None:
    """Golden payloads of every protocol with one to three structural mutations, on either side."""
    @fuzz_settings("adapters_mutated_golden")
    @given(case=st.sampled_from(GOLDEN_DOCS), sides=st.sampled_from(["request", "response", "both"]),
           path=st.none() | st.sampled_from(PATHS), rng=seeded())
    def prop(case: tuple[str, str, Any, Any], sides: str, path: str | None, rng: random.Random) -> None:
        _, own_path, request_doc, response_doc = case
        if sides in ("request", "both") and not isinstance(request_doc, Text):
            request_doc = mutate_doc(rng, request_doc)
        if sides in ("response", "both") and not isinstance(response_doc, Text):
            response_doc = mutate_doc(rng, response_doc)
        every_adapter(path or own_path, random_headers(rng), dumps(request_doc), dumps(response_doc))
        count("adapters_mutated_golden")

    run_property("adapters_mutated_golden", prop)


def test_adapters_byte_mutated_golden() -> None:
    @fuzz_settings("adapters_byte_mutated_golden")
    @given(case=st.sampled_from(GOLDEN_DOCS), rng=seeded())
    def prop(case: tuple[str, str, Any, Any], rng: random.Random) -> None:
        _, path, request_doc, response_doc = case
        every_adapter(path, random_headers(rng), mutate_bytes(rng, dumps(request_doc)), mutate_bytes(rng, dumps(response_doc)))
        count("adapters_byte_mutated_golden")

    run_property("adapters_byte_mutated_golden", prop)


def test_adapters_v2_binary() -> None:
    """The V2 binary tensor extension: header length, binary_data_size, shapes and BYTES prefixes."""
    @fuzz_settings("adapters_v2_binary")
    @given(path=st.sampled_from(PATHS[:2] + PATHS[-3:]), rng=seeded())
    def prop(path: str, rng: random.Random) -> None:
        (request_body, length), (response_body, _) = v2_binary_body(rng), v2_binary_body(rng)
        every_adapter(path, {HEADER_LENGTH: length, "content-type": "application/octet-stream"}, request_body,
                      response_body)
        count("adapters_v2_binary")

    run_property("adapters_v2_binary", prop)


# ------------------------------------------------------------------ the worker's extraction


def configs() -> st.SearchStrategy[Config]:
    """The default config with each protocol choice (custom with a JSON-path triple)."""
    def config(protocol: str) -> Config:
        custom = CustomPaths("$.inputs[*]", "$.outputs[*].data", "$.id") if protocol == "custom" else None
        return dataclasses.replace(Config(), model=ModelConfig(protocol=protocol, custom=custom),
                                   capture=CaptureConfig(max_body_bytes=MAX_BODY_BYTES))

    return st.sampled_from(PROTOCOLS).map(config)


EXTRACTORS: dict[str, Extractor] = {}


def extractor_for(config: Config) -> Extractor:
    """One Extractor per protocol, as the worker keeps one for its life (its log-once state too)."""
    return EXTRACTORS.setdefault(config.model.protocol, Extractor(config))


def plain_body(rng: random.Random) -> bytes:
    """A body before content coding: golden, golden mutated, random JSON or random bytes."""
    pick = rng.random()
    if pick < 0.3:
        return rng.choice(GOLDEN_BODIES)
    if pick < 0.6:
        return mutate_bytes(rng, rng.choice(GOLDEN_BODIES))
    if pick < 0.8:
        return dumps(random_json(rng))
    return rng.randbytes(rng.randint(0, 256))


def random_event(rng: random.Random) -> Event:
    """An exchange as the proxy hands it over: any route, target, status, headers and bodies."""
    target = rng.choice(PATHS).encode() + rng.choice([b"", b"?", b"?a=1&b=%ff", b"?\xff\x00"])
    request_body, request_coding = encoded_body(rng, plain_body(rng))
    response_body, response_coding = encoded_body(rng, plain_body(rng))
    return Event(
        time=time.time(), route=rng.choice([ROUTES.match(target)[0], "other"]), target=target,
        status=rng.choice([200, 200, 201, 204, 299, 400, 404, 499, 500, 502, 504]), duration=rng.uniform(0, 100),
        request_headers=raw_headers(rng, request_coding), request_body=request_body,
        response_headers=raw_headers(rng, response_coding), response_body=response_body,
        model=rng.choice(["m", "unknown", "other"]), version=rng.choice(["1", "unknown"]),
    )


def raw_headers(rng: random.Random, coding: str | None) -> dict[bytes, bytes]:
    """Captured headers as the proxy keeps them: lower-cased names, raw latin-1 values."""
    out = {b"content-encoding": coding.encode()} if coding is not None else {}
    if rng.random() < 0.7:
        out[b"content-type"] = rng.choice([c.encode() for c in CONTENT_TYPES] + [rng.randbytes(rng.randint(0, 8))])
    if rng.random() < 0.2:
        out[HEADER_LENGTH.encode()] = rng.choice([str(rng.randint(-1, 300)).encode(), rng.randbytes(rng.randint(0, 4))])
    if rng.random() < 0.5:
        out[b"x-request-id"] = rng.randbytes(rng.randint(0, 8))
    return out


def test_extractor_events() -> None:
    """Extractor.extract on random Events never raises and reports only known reasons."""
    @fuzz_settings("extractor_events")
    @given(config=configs(), rng=seeded())
    def prop(config: Config, rng: random.Random) -> None:
        event = random_event(rng)
        with watchdog(lambda: repr(event)[:600]):
            out = extractor_for(config).extract(event)
        assert isinstance(out, Extraction)
        assert (out.model, out.version) == (event.model, event.version)
        for side, reason in out.errors:
            assert side in ("request", "response") and reason in PAYLOAD_ERROR_REASONS, (side, reason)
            assert reason != "internal", f"adapter bug on the {side} of {event!r:.600}"
        for rows in (out.features, out.predictions):
            if rows is not None:
                assert_valid(rows)
        count("extractor_events")

    run_property("extractor_events", prop)


@pytest.fixture(autouse=True)
def _no_stray_alarm() -> Iterator[None]:
    """A watchdog never outlives its case (a stray SIGALRM would kill pytest itself)."""
    yield
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
