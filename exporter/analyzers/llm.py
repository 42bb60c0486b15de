"""LLM serving metrics: time to first token, inter-token latency, time per output token, tokens,
finish reasons, errors and cost, the same for every backend (adapters: openai, tgi, ollama).

The proxy records, for a captured exchange on an LLM route, when each read of the response body
arrived: (body bytes so far, seconds since the request's first byte) per read (Event.marks). The
adapter gives the offset just past each event that carries generated content
(Generation.content_ends). An event's arrival is the first mark that covers its last byte, so:

- time to first token = arrival of the first content event;
- inter-token latency = gaps between the arrivals of consecutive content events (0 when two
  arrived in one read: what the client saw);
- time per output token = (arrival of the last body byte − first token) / (completion tokens − 1);
- prefill share = time to first token / request duration (queueing and prefill, as the client waits);
- output tokens per second = completion tokens / request duration.

Marks exist only where the body's bytes are the stream's (no Content-Encoding); past
events.MAX_MARKS reads, the events after the last kept mark are not timed (counted).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import Metric

from exporter.adapters.base import FINISH_REASONS, LLM_ERROR_TYPES, Generation
from exporter.config import LLMConfig
from exporter.events import MAX_MARKS, Event, Extraction, unpack_marks
from exporter.metrics.definitions import (
    LLM_DURATION_BUCKETS,
    LLM_SHARE_BUCKETS,
    LLM_TOKEN_BUCKETS,
    LLM_TOKEN_LATENCY_BUCKETS,
    LLM_TOKEN_RATE_BUCKETS,
    LLM_TTFT_BUCKETS,
    family,
    histogram_family,
)

TOKEN_KINDS = ("prompt", "completion")
SOURCES = ("usage", "estimated")


class _Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for bound, n in zip([*self.bounds, math.inf], self.counts):
            acc += n
            out.append(("+Inf" if bound == math.inf else repr(bound), float(acc)))
        return out


class _Series:
    """Everything of one (route, model, version)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}  # (operation, streamed)
        self.ttft = _Histogram(LLM_TTFT_BUCKETS)
        self.itl = _Histogram(LLM_TOKEN_LATENCY_BUCKETS)
        self.tpot = _Histogram(LLM_TOKEN_LATENCY_BUCKETS)
        self.prefill = _Histogram(LLM_SHARE_BUCKETS)
        self.durations: dict[str, _Histogram] = {}  # by streamed
        self.rate = _Histogram(LLM_TOKEN_RATE_BUCKETS)
        self.request_tokens: dict[tuple[str, str], _Histogram] = {}  # (kind, source)
        self.tokens: dict[tuple[str, str], int] = {}
        self.finish = dict.fromkeys(FINISH_REASONS, 0)
        self.errors = dict.fromkeys(LLM_ERROR_TYPES, 0)
        self.incomplete = 0
        self.capped = 0


def arrivals(ends: Sequence[int], marks: Sequence[tuple[float, float]]) -> list[float]:
    """When each event (by its end offset) arrived: the time of the first mark covering it.

    Events past the marks (a capped list, whose last mark stands for the end of the body, or
    bytes after the last read the proxy saw) get no time: the list may be shorter than `ends`.
    """
    if not marks:
        return []
    capped = len(marks) >= MAX_MARKS
    timed = marks[:-1] if capped else marks
    sizes = [size for size, _ in timed]
    out = []
    for end in ends:
        i = bisect_left(sizes, end)
        if i == len(sizes):
            break
        out.append(timed[i][1])
    return out


class LLMStats:
    """The model_llm_* families; state bounded by routes × the label policy's model values."""

    def __init__(self, config: LLMConfig) -> None:
        self.configure(config)
        self.series: dict[tuple[str, str, str], _Series] = {}
        self.cost: dict[tuple[str, str, str], float] = {}  # (model, version, kind)

    def configure(self, config: LLMConfig) -> None:
        self.currency = config.currency
        self.prices = {model: (prompt, completion) for model, prompt, completion in config.prices}

    def update(self, event: Event, ex: Extraction) -> None:
        g = ex.llm
        if g is None:
            return
        key = (event.route, ex.model, ex.version)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = _Series()
        if g.error_type is not None:
            s.errors[g.error_type] += 1
        if not 200 <= event.status < 300:
            return
        streamed = "true" if g.streamed else "false"
        rkey = (g.operation, streamed)
        s.requests[rkey] = s.requests.get(rkey, 0) + 1
        if g.finish_reason is not None:
            s.finish[g.finish_reason] += 1
        duration = s.durations.get(streamed)
        if duration is None:
            duration = s.durations[streamed] = _Histogram(LLM_DURATION_BUCKETS)
        duration.observe(event.duration)
        self._tokens(s, ex.model, ex.version, g)
        if g.completion_tokens and event.duration > 0:
            s.rate.observe(g.completion_tokens / event.duration)
        if g.streamed:
            if not g.complete:
                s.incomplete += 1
            self._timing(s, event, g)

    def _tokens(self, s: _Series, model: str, version: str, g: Generation) -> None:
        price = self.prices.get(model)
        for kind, n, source in (
            ("prompt", g.prompt_tokens, "usage"),
            ("completion", g.completion_tokens, "usage" if g.usage else "estimated"),
        ):
            if n is None or (kind == "completion" and g.operation == "embeddings"):
                continue
            tkey = (kind, source)
            s.tokens[tkey] = s.tokens.get(tkey, 0) + n
            hist = s.request_tokens.get(tkey)
            if hist is None:
                hist = s.request_tokens[tkey] = _Histogram(LLM_TOKEN_BUCKETS)
            hist.observe(n)
            if price is not None:
                ckey = (model, version, kind)
                self.cost[ckey] = self.cost.get(ckey, 0.0) + n * price[kind == "completion"] / 1e6

    def _timing(self, s: _Series, event: Event, g: Generation) -> None:
        marks = unpack_marks(event.marks)
        if not marks or event.response_headers.get(b"content-encoding", b"identity").lower() != b"identity":
            return  # no arrival times, or offsets of a compressed body: nothing to time by
        if len(marks) >= MAX_MARKS:
            s.capped += 1
        times = arrivals(g.content_ends, marks)
        if not times:
            return
        first = times[0]
        s.ttft.observe(first)
        if event.duration > 0:
            s.prefill.observe(min(first / event.duration, 1.0))
        for a, b in zip(times, times[1:]):
            s.itl.observe(b - a)
        n = g.completion_tokens
        if n is not None and n >= 2:
            s.tpot.observe(max(marks[-1][1] - first, 0.0) / (n - 1))

    def collect(self) -> Iterator[Metric]:
        items = sorted(self.series.items())
        requests = family("model_llm_requests_total")
        tokens = family("model_llm_tokens_total")
        finish = family("model_llm_finish_reasons_total")
        errors = family("model_llm_errors_total")
        incomplete = family("model_llm_incomplete_streams_total")
        capped = family("model_llm_stream_marks_capped_total")
        for (route, model, version), s in items:
            mv = [model, version]
            for (op, streamed), n in sorted(s.requests.items()):
                requests.add_metric([route, op, streamed, *mv], n)
            for (kind, source), n in sorted(s.tokens.items()):
                tokens.add_metric([route, kind, source, *mv], n)
            for reason, n in s.finish.items():
                finish.add_metric([route, reason, *mv], n)
            for kind, n in s.errors.items():
                errors.add_metric([route, kind, *mv], n)
            incomplete.add_metric([route, *mv], s.incomplete)
            capped.add_metric([route, *mv], s.capped)
        yield from (requests, tokens, finish, errors, incomplete, capped)
        for name, attr in (
            ("model_llm_time_to_first_token_seconds", "ttft"),
            ("model_llm_inter_token_latency_seconds", "itl"),
            ("model_llm_time_per_output_token_seconds", "tpot"),
            ("model_llm_prefill_ratio", "prefill"),
            ("model_llm_output_tokens_per_second", "rate"),
        ):
            hist = histogram_family(name)
            for (route, model, version), s in items:
                h: _Histogram = getattr(s, attr)
                hist.add_metric([route, model, version], h.buckets(), h.sum)
            yield hist
        durations = histogram_family("model_llm_request_duration_seconds")
        request_tokens = histogram_family("model_llm_request_tokens")
        for (route, model, version), s in items:
            for streamed, h in sorted(s.durations.items()):
                durations.add_metric([route, streamed, model, version], h.buckets(), h.sum)
            for (kind, source), h in sorted(s.request_tokens.items()):
                request_tokens.add_metric([route, kind, source, model, version], h.buckets(), h.sum)
        yield durations
        yield request_tokens
        if self.cost:
            cost = family("model_llm_cost_total")
            for (model, version, kind), value in sorted(self.cost.items()):
                cost.add_metric([kind, self.currency, model, version], value)
            yield cost
