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
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from prometheus_client.core import Metric

from exporter.adapters.base import FINISH_REASONS, LLM_ERROR_TYPES, LLM_OPERATIONS, Generation
from exporter.adapters.encoding import decoded_marks
from exporter.config import LLMConfig
from exporter.events import MAX_MARKS, Event, Extraction, unpack_marks
from exporter.labels import MAX_VALUE_CHARS
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
STREAMED = ("true", "false")
# The buckets of each histogram of a _Series, by attribute: a snapshot's histograms are restored
# only where they were written with these bounds.
BOUNDS: dict[str, tuple[float, ...]] = {
    "ttft": LLM_TTFT_BUCKETS,
    "itl": LLM_TOKEN_LATENCY_BUCKETS,
    "tpot": LLM_TOKEN_LATENCY_BUCKETS,
    "prefill": LLM_SHARE_BUCKETS,
    "rate": LLM_TOKEN_RATE_BUCKETS,
    "durations": LLM_DURATION_BUCKETS,
    "request_tokens": LLM_TOKEN_BUCKETS,
}
_MAX_COUNT = 2**53  # a restored count still renders exactly as a float
_FIXED = ("ttft", "itl", "tpot", "prefill", "rate")  # the histograms every _Series has


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

    def to_doc(self) -> list[Any]:
        return [self.counts, self.sum]

    @classmethod
    def from_doc(cls, doc: Any, bounds: tuple[float, ...]) -> _Histogram:
        """The histogram [counts, sum] of a snapshot (ValueError if it is not one with `bounds`)."""
        counts, total = doc
        if type(counts) is not list or len(counts) != len(bounds) + 1:
            raise ValueError(f"{len(bounds) + 1} bucket counts expected")
        h = cls(bounds)
        h.counts = [_count(n) for n in counts]
        h.sum = _amount(total)
        return h


class _Series:
    """Everything of one (route, model, version)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}  # (operation, streamed)
        self.ttft = _Histogram(BOUNDS["ttft"])
        self.itl = _Histogram(BOUNDS["itl"])
        self.tpot = _Histogram(BOUNDS["tpot"])
        self.prefill = _Histogram(BOUNDS["prefill"])
        self.durations: dict[str, _Histogram] = {}  # by streamed
        self.rate = _Histogram(BOUNDS["rate"])
        self.request_tokens: dict[tuple[str, str], _Histogram] = {}  # (kind, source)
        self.tokens: dict[tuple[str, str], int] = {}
        self.finish = dict.fromkeys(FINISH_REASONS, 0)
        self.errors = dict.fromkeys(LLM_ERROR_TYPES, 0)
        self.incomplete = 0
        self.capped = 0

    def to_doc(self) -> dict[str, Any]:
        """Plain JSON; zero counts and empty fixed histograms are left out (a fresh _Series has them)."""
        doc: dict[str, Any] = {
            "requests": [[op, streamed, n] for (op, streamed), n in sorted(self.requests.items())],
            "tokens": [[kind, source, n] for (kind, source), n in sorted(self.tokens.items())],
            "finish": {k: n for k, n in self.finish.items() if n},
            "errors": {k: n for k, n in self.errors.items() if n},
            "incomplete": self.incomplete,
            "capped": self.capped,
            "durations": [[streamed, *h.to_doc()] for streamed, h in sorted(self.durations.items())],
            "request_tokens": [[k, src, *h.to_doc()] for (k, src), h in sorted(self.request_tokens.items())],
        }
        for name in _FIXED:
            h: _Histogram = getattr(self, name)
            if any(h.counts) or h.sum:
                doc[name] = h.to_doc()
        return doc

    @classmethod
    def from_doc(cls, doc: Any, same: Collection[str]) -> _Series:
        """The series of a snapshot (ValueError, TypeError, ... if malformed); of its histograms, only
        those named in `same` (written with this release's buckets)."""
        s = cls()
        s.requests = {(_word(op, LLM_OPERATIONS), _word(st, STREAMED)): _count(n) for op, st, n in doc["requests"]}
        s.tokens = {(_word(k, TOKEN_KINDS), _word(src, SOURCES)): _count(n) for k, src, n in doc["tokens"]}
        s.finish.update({_word(k, FINISH_REASONS): _count(n) for k, n in doc["finish"].items()})
        s.errors.update({_word(k, LLM_ERROR_TYPES): _count(n) for k, n in doc["errors"].items()})
        s.incomplete = _count(doc["incomplete"])
        s.capped = _count(doc["capped"])
        for name in _FIXED:
            if name in doc and name in same:
                setattr(s, name, _Histogram.from_doc(doc[name], BOUNDS[name]))
        if "durations" in same:
            s.durations = {
                _word(st, STREAMED): _Histogram.from_doc(h, BOUNDS["durations"]) for st, *h in doc["durations"]
            }
        if "request_tokens" in same:
            s.request_tokens = {
                (_word(k, TOKEN_KINDS), _word(src, SOURCES)): _Histogram.from_doc(h, BOUNDS["request_tokens"])
                for k, src, *h in doc["request_tokens"]
            }
        return s


def _count(value: Any) -> int:
    """A count read from a snapshot: a non-negative integer (one a float can hold), else ValueError."""
    if type(value) is not int or not 0 <= value <= _MAX_COUNT:
        raise ValueError(f"{value!r} is not a count")
    return value


def _amount(value: Any) -> float:
    """A sum read from a snapshot: a finite number, else ValueError."""
    if type(value) not in (int, float) or not math.isfinite(float(value)):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


def _word(value: Any, vocabulary: Collection[str]) -> str:
    """A label value read from a snapshot that must be one of `vocabulary`, else ValueError."""
    if not isinstance(value, str) or value not in vocabulary:
        raise ValueError(f"{str(value)[:40]!r} is not a value this label can take")
    return value


def _label(value: Any, max_chars: int) -> str:
    """A route, model or version label value read from a snapshot: a string of 1..max_chars, else ValueError."""
    if not isinstance(value, str) or not 0 < len(value) <= max_chars:
        raise ValueError(f"{str(value)[:40]!r} is no label value")
    return value


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


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

    def to_doc(self) -> dict[str, Any]:
        """The counters and histograms as plain JSON (for worker/state.py's snapshots)."""
        return {
            "bounds": {name: list(bounds) for name, bounds in BOUNDS.items()},
            "series": [[*key, s.to_doc()] for key, s in sorted(self.series.items())],
            "cost": [[*key, value] for key, value in sorted(self.cost.items())],
        }

    def restore(self, doc: Any, max_routes: int, max_pairs: int, max_chars: int = MAX_VALUE_CHARS) -> list[str]:
        """Replace the counters with a `to_doc` document's; what is left out, and why, is returned.

        Bounded as the live state is: at most `max_routes` routes and `max_pairs` (model, version)
        pairs, route, model and version values of at most `max_chars` characters, the other labels
        from their fixed vocabularies. A malformed entry is left out whole; a histogram written
        with other bounds than this release's is left out (it starts empty), the rest of its
        series is kept.
        """
        if not isinstance(doc, dict):
            return ["the LLM part is not an object"]
        saved = doc.get("bounds")
        saved = saved if isinstance(saved, dict) else {}
        same = {name for name, bounds in BOUNDS.items() if saved.get(name) == list(bounds)}
        notes: list[str] = []
        if len(same) < len(BOUNDS):
            notes.append(
                f"histograms {', '.join(sorted(set(BOUNDS) - same))}: their buckets differ from this release's"
            )
        malformed: list[str] = []
        series: dict[tuple[str, str, str], _Series] = {}
        routes: set[str] = set()
        pairs: set[tuple[str, str]] = set()
        for item in _list(doc.get("series")):
            try:
                route, model, version, body = item
                key = (_label(route, max_chars), _label(model, max_chars), _label(version, max_chars))
                if key in series:
                    raise ValueError("a duplicate")
                if (len(routes) >= max_routes and key[0] not in routes) or (
                    len(pairs) >= max_pairs and key[1:] not in pairs
                ):
                    raise ValueError("more routes or (model, version) pairs than there can be")
                series[key] = _Series.from_doc(body, same)
                routes.add(key[0])
                pairs.add(key[1:])
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
                malformed.append(f"series {str(item)[:80]}: {exc}")
        cost: dict[tuple[str, str, str], float] = {}
        for item in _list(doc.get("cost")):
            try:
                model, version, kind, value = item
                ckey = (_label(model, max_chars), _label(version, max_chars), _word(kind, TOKEN_KINDS))
                if len(cost) >= len(TOKEN_KINDS) * max_pairs:
                    raise ValueError("more entries than there can be")
                cost[ckey] = _amount(value)
            except (ValueError, TypeError, OverflowError) as exc:
                malformed.append(f"cost {str(item)[:80]}: {exc}")
        self.series = series
        self.cost = cost
        if len(malformed) > 3:  # a hand-edited file: a few examples say enough
            malformed[3:] = [f"{len(malformed) - 3} more entries"]
        return notes + malformed

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
        if not marks:
            return  # no arrival times: nothing to time by
        if len(marks) >= MAX_MARKS:
            s.capped += 1
        coding = event.response_headers.get(b"content-encoding", b"identity").strip().lower()
        if coding != b"identity":  # the marks count coded bytes, the events were found in decoded ones
            marks = decoded_marks(event.response_body, coding.decode("latin-1"), marks)
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
