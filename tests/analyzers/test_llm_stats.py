"""analyzers/llm.py: events timed by the proxy's arrival marks; tokens, finish reasons, errors, cost."""

from __future__ import annotations

import math
import zlib
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from exporter.adapters.base import Generation
from exporter.adapters.encoding import decoded_marks
from exporter.analyzers.llm import LLMStats, arrivals
from exporter.config import LLMConfig
from exporter.events import MARK, MAX_MARKS, Event, Extraction

ROUTE = "/v1/chat/completions"


def event(status: int = 200, duration: float = 1.0, marks: list[tuple[int, float]] | None = None,
          headers: dict[bytes, bytes] | None = None) -> Event:
    packed = b"".join(MARK.pack(size, at) for size, at in marks or ())
    return Event(0.0, ROUTE, ROUTE.encode(), status, duration, {}, b"", headers or {}, b"", "m", "1", packed)


def extraction(g: Generation) -> Extraction:
    return Extraction("m", "1", llm=g)


class _Registry(Collector):
    def __init__(self, stats: LLMStats) -> None:
        self.stats = stats

    def collect(self) -> Any:
        return self.stats.collect()


def sample(stats: LLMStats, name: str, **labels: str) -> float | None:
    registry = CollectorRegistry()
    registry.register(_Registry(stats))
    return registry.get_sample_value(name, {"route": ROUTE, "model": "m", "version": "1", **labels})


def test_arrivals_are_the_first_mark_covering_each_event() -> None:
    marks = [(10, 0.1), (25, 0.2), (40, 0.5)]
    assert arrivals([5, 10, 11, 25, 40], marks) == [0.1, 0.1, 0.2, 0.2, 0.5]
    assert arrivals([41], marks) == []  # past the last read the proxy saw: untimed
    assert arrivals([1], []) == []


def test_capped_marks_time_only_what_the_kept_marks_cover() -> None:
    marks = [(i + 1, i * 0.01) for i in range(MAX_MARKS)]  # the last one stands for the end of the body
    assert arrivals([MAX_MARKS - 1, MAX_MARKS], marks) == [pytest.approx((MAX_MARKS - 2) * 0.01)]


def test_a_stream_is_timed_by_its_marks() -> None:
    stats = LLMStats(LLMConfig())
    # the role chunk (offset 10) is not a content event; tokens end at 20, 30, 40 (the last two in one read)
    g = Generation("chat", streamed=True, content_ends=[20, 30, 40], completion_tokens=3, prompt_tokens=5,
                   usage=True, finish_reason="stop")
    stats.update(event(duration=0.9, marks=[(10, 0.01), (20, 0.3), (40, 0.5), (50, 0.6)]), extraction(g))
    assert sample(stats, "model_llm_time_to_first_token_seconds_count") == 1
    assert sample(stats, "model_llm_time_to_first_token_seconds_sum") == pytest.approx(0.3)
    assert sample(stats, "model_llm_time_to_first_token_seconds_bucket", le="0.25") == 0
    assert sample(stats, "model_llm_time_to_first_token_seconds_bucket", le="0.5") == 1
    assert sample(stats, "model_llm_inter_token_latency_seconds_count") == 2
    assert sample(stats, "model_llm_inter_token_latency_seconds_sum") == pytest.approx(0.2)
    assert sample(stats, "model_llm_inter_token_latency_seconds_bucket", le="0.001") == 1  # two in one read
    # (last byte 0.6 − first token 0.3) / (3 − 1)
    assert sample(stats, "model_llm_time_per_output_token_seconds_sum") == pytest.approx(0.15)
    assert sample(stats, "model_llm_request_duration_seconds_sum", streamed="true") == pytest.approx(0.9)
    assert sample(stats, "model_llm_prefill_ratio_sum") == pytest.approx(0.3 / 0.9)
    assert sample(stats, "model_llm_prefill_ratio_bucket", le="0.3") == 0
    assert sample(stats, "model_llm_prefill_ratio_bucket", le="0.4") == 1
    assert sample(stats, "model_llm_output_tokens_per_second_sum") == pytest.approx(3 / 0.9)
    assert sample(stats, "model_llm_tokens_total", kind="prompt", source="usage") == 5
    assert sample(stats, "model_llm_tokens_total", kind="completion", source="usage") == 3
    assert sample(stats, "model_llm_request_tokens_count", kind="completion", source="usage") == 1
    assert sample(stats, "model_llm_finish_reasons_total", reason="stop") == 1
    assert sample(stats, "model_llm_finish_reasons_total", reason="length") == 0
    assert sample(stats, "model_llm_requests_total", operation="chat", streamed="true") == 1
    assert sample(stats, "model_llm_incomplete_streams_total") == 0


def _coded(events: list[bytes], coding: str) -> tuple[bytes, list[int]]:
    """The events coded as a server that streams compresses them: flushed one by one; the coded size after each."""
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "raw": -zlib.MAX_WBITS}[coding]
    coder = zlib.compressobj(6, zlib.DEFLATED, wbits)
    body, sizes = b"", []
    for e in events:
        body += coder.compress(e) + coder.flush(zlib.Z_SYNC_FLUSH)
        sizes.append(len(body))
    body += coder.flush()
    sizes[-1] = len(body)  # the last read brings the end of the stream too
    return body, sizes


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw"])
def test_a_compressed_stream_is_timed_on_its_decoded_events(coding: str) -> None:
    events = [b"r" * 10, b"a" * 10, b"b" * 10, b"c" * 10, b"d" * 10]  # the role chunk, then tokens ending at 20..50
    body, sizes = _coded(events, coding)
    times = [0.01, 0.3, 0.4, 0.45, 0.6]
    header = b"deflate" if coding != "gzip" else b"gzip"
    stats = LLMStats(LLMConfig())
    g = Generation("chat", streamed=True, content_ends=[20, 30, 40, 50], completion_tokens=4)
    coded = event(duration=0.9, marks=list(zip(sizes, times)), headers={b"content-encoding": header})
    stats.update(coded._replace(response_body=body), extraction(g))
    assert sample(stats, "model_llm_time_to_first_token_seconds_sum") == pytest.approx(0.3)
    assert sample(stats, "model_llm_inter_token_latency_seconds_count") == 3
    assert sample(stats, "model_llm_inter_token_latency_seconds_sum") == pytest.approx(0.3)


def test_marks_of_a_body_that_does_not_decode_time_nothing() -> None:
    assert decoded_marks(b"not gzip at all", "gzip", [(5.0, 0.1), (15.0, 0.2)]) == []
    assert decoded_marks(b"abc", "br", [(3.0, 0.1)]) == []  # not a coding the worker decodes
    body, sizes = _coded([b"x" * 100], "gzip")
    assert decoded_marks(body, "gzip", [(float(sizes[0]), 0.1)], limit=50) == []  # decodes past the cap
    stats = LLMStats(LLMConfig())
    g = Generation("chat", streamed=True, content_ends=[20], completion_tokens=1)
    stats.update(event(marks=[(20, 0.3)], headers={b"content-encoding": b"gzip"}), extraction(g))
    assert sample(stats, "model_llm_time_to_first_token_seconds_count") == 0  # untimed, but counted
    assert sample(stats, "model_llm_tokens_total", kind="completion", source="estimated") == 1


def test_marks_follow_a_stream_of_several_gzip_members() -> None:
    first, _ = _coded([b"a" * 10], "gzip")
    second, _ = _coded([b"b" * 10], "gzip")
    body = first + second + b"\0\0"
    marks = [(float(len(first)), 0.1), (float(len(body)), 0.2)]
    assert decoded_marks(body, "gzip", marks) == [(10.0, 0.1), (20.0, 0.2)]


def test_capped_and_incomplete_streams_are_counted() -> None:
    stats = LLMStats(LLMConfig())
    marks = [(i + 1, i * 0.001) for i in range(MAX_MARKS)]
    g = Generation("chat", streamed=True, content_ends=list(range(1, MAX_MARKS + 1)), complete=False)
    stats.update(event(marks=marks), extraction(g))
    assert sample(stats, "model_llm_stream_marks_capped_total") == 1
    assert sample(stats, "model_llm_incomplete_streams_total") == 1
    assert sample(stats, "model_llm_inter_token_latency_seconds_count") == MAX_MARKS - 2


def test_errors_by_type_and_a_non_2xx_answer_counts_nothing_else() -> None:
    stats = LLMStats(LLMConfig())
    stats.update(event(status=429), extraction(Generation("chat", error_type="rate_limit_error")))
    stats.update(event(status=200), extraction(Generation("chat", streamed=True, error_type="server_error")))
    assert sample(stats, "model_llm_errors_total", type="rate_limit_error") == 1
    assert sample(stats, "model_llm_errors_total", type="server_error") == 1
    assert sample(stats, "model_llm_errors_total", type="other") == 0
    assert sample(stats, "model_llm_requests_total", operation="chat", streamed="true") == 1
    assert sample(stats, "model_llm_requests_total", operation="chat", streamed="false") is None


def test_cost_at_the_configured_prices_per_million_tokens() -> None:
    stats = LLMStats(LLMConfig(currency="EUR", prices=(("m", 0.25, 2.0),)))
    g = Generation("chat", prompt_tokens=1000, completion_tokens=500, usage=True)
    stats.update(event(), extraction(g))
    stats.update(event(), extraction(g))
    registry = CollectorRegistry()
    registry.register(_Registry(stats))
    get = registry.get_sample_value
    assert get("model_llm_cost_total", {"kind": "prompt", "currency": "EUR", "model": "m", "version": "1"}) == \
        pytest.approx(2 * 1000 * 0.25 / 1e6)
    assert get("model_llm_cost_total", {"kind": "completion", "currency": "EUR", "model": "m", "version": "1"}) == \
        pytest.approx(2 * 500 * 2.0 / 1e6)


def test_unpriced_models_and_embeddings_cost_and_complete_nothing() -> None:
    stats = LLMStats(LLMConfig(prices=(("other-model", 1.0, 1.0),)))
    stats.update(event(), extraction(Generation("embeddings", prompt_tokens=8, completion_tokens=0, usage=True)))
    assert sample(stats, "model_llm_tokens_total", kind="prompt", source="usage") == 8
    assert sample(stats, "model_llm_tokens_total", kind="completion", source="usage") is None
    assert not any(f.name == "model_llm_cost" for f in stats.collect())
    assert sample(stats, "model_llm_output_tokens_per_second_count") == 0


def test_buckets_are_cumulative_and_end_in_inf() -> None:
    stats = LLMStats(LLMConfig())
    stats.update(event(marks=[(5, 100.0)]), extraction(Generation("chat", streamed=True, content_ends=[5])))
    assert sample(stats, "model_llm_time_to_first_token_seconds_bucket", le="10.0") == 0
    assert sample(stats, "model_llm_time_to_first_token_seconds_bucket", le="+Inf") == 1
    assert math.isclose(sample(stats, "model_llm_time_to_first_token_seconds_sum") or 0, 100.0)


def test_every_operation_an_adapter_names_is_one_a_snapshot_can_restore() -> None:
    from exporter.adapters.base import LLM_OPERATIONS
    from exporter.adapters.ollama import _operation as ollama_operation
    from exporter.adapters.openai import operation as openai_operation

    named = {openai_operation(p) for p in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")}
    named |= {ollama_operation(p) for p in ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings")}
    assert named | {"generate"} == set(LLM_OPERATIONS)  # TGI's is "generate"
