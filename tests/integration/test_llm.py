"""LLM serving through a real sidecar: the stand-in LLM server streams on a set schedule (the head
at once, the first token after FIRST_TOKEN_DELAY, then one every TOKEN_GAP), and the histograms'
counts and sums match that schedule within what a loaded loopback adds (tolerances, not limits).
The OpenAI client is the real `openai` package in streaming mode."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from harness import Sidecar, promtool_check_metrics, start_sidecar
from stand_in import AppServer

from exporter.demo.llm_server import SENT, make_llm_app

pytestmark = pytest.mark.integration

FIRST_TOKEN_DELAY = 0.15
TOKEN_GAP = 0.03
TOKENS = 6
# What scheduling on a shared box may add to a stand-in's delay, per delay; one read apart in
# the proxy may also make a gap look shorter than the stand-in's sleep by as much.
SLACK = 0.06
PRICES = {"m1": {"prompt": 0.5, "completion": 2.0}}
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def llm_server() -> Any:
    server = AppServer(make_llm_app(FIRST_TOKEN_DELAY, TOKEN_GAP, TOKENS, record=True)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sidecar(llm_server: AppServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = {"upstream": {"health": {"path": "/v1/models"}}, "llm": {"currency": "EUR", "prices": PRICES}}
    sidecar = start_sidecar(tmp_path_factory.mktemp("llm-sidecar"), llm_server.url, config)
    sidecar.wait_analysis()
    yield sidecar
    sidecar.stop()


def client(sidecar: Sidecar) -> openai.OpenAI:
    return openai.OpenAI(base_url=sidecar.proxy_url + "/v1", api_key="unused", max_retries=0, timeout=30)


def post(sidecar: Sidecar, path: str, doc: dict[str, Any]) -> tuple[int, bytes]:
    """A raw POST through the proxy: the status and the body bytes as the client got them."""
    url = urlsplit(sidecar.proxy_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("POST", path, json.dumps(doc), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def llm_sample(sidecar: Sidecar, name: str, **labels: str) -> float:
    return sidecar.sample(name, **labels)


def wait_requests(sidecar: Sidecar, n: int, **labels: str) -> None:
    sidecar.wait_sample("model_llm_requests_total", lambda v: v >= n, timeout=20, **labels)


def test_openai_client_streams_match_the_schedule(sidecar: Sidecar, llm_server: AppServer) -> None:
    before = {name: llm_sample(sidecar, name, route=CHAT, model="m1") for name in (
        "model_llm_time_to_first_token_seconds_count", "model_llm_time_to_first_token_seconds_sum",
        "model_llm_inter_token_latency_seconds_count", "model_llm_inter_token_latency_seconds_sum",
        "model_llm_time_per_output_token_seconds_count", "model_llm_time_per_output_token_seconds_sum",
        "model_llm_requests_total")}
    streams = 3
    texts = []
    with client(sidecar) as c:
        for _ in range(streams):
            stream = c.chat.completions.create(
                model="m1", messages=[{"role": "user", "content": "three little words"}], stream=True,
                stream_options={"include_usage": True})
            parts, usage = [], None
            for chunk in stream:
                parts.extend(choice.delta.content or "" for choice in chunk.choices)
                usage = chunk.usage or usage
            texts.append("".join(parts))
            assert usage is not None and usage.completion_tokens == TOKENS and usage.prompt_tokens == 3
    assert texts == ["".join(f" tok{i}" for i in range(TOKENS))] * streams
    wait_requests(sidecar, before["model_llm_requests_total"] + streams, route=CHAT, model="m1", streamed="true")

    def delta(name: str) -> float:
        return llm_sample(sidecar, name, route=CHAT, model="m1") - before[name]

    # time to first token: the role chunk comes with the head, the first token FIRST_TOKEN_DELAY later
    assert delta("model_llm_time_to_first_token_seconds_count") == streams
    ttft = delta("model_llm_time_to_first_token_seconds_sum") / streams
    assert FIRST_TOKEN_DELAY <= ttft <= FIRST_TOKEN_DELAY + SLACK, ttft
    # one gap per token after the first; their sum spans first to last token
    gaps = streams * (TOKENS - 1)
    assert delta("model_llm_inter_token_latency_seconds_count") == gaps
    itl = delta("model_llm_inter_token_latency_seconds_sum") / gaps
    assert TOKEN_GAP - SLACK / (TOKENS - 1) <= itl <= TOKEN_GAP + SLACK, itl
    assert delta("model_llm_time_per_output_token_seconds_count") == streams
    tpot = delta("model_llm_time_per_output_token_seconds_sum") / streams
    assert TOKEN_GAP - SLACK / (TOKENS - 1) <= tpot <= TOKEN_GAP + SLACK, tpot


def test_tokens_finish_reasons_and_cost_from_usage(sidecar: Sidecar) -> None:
    def tokens(kind: str, source: str) -> float:
        return llm_sample(sidecar, "model_llm_tokens_total", route=CHAT, model="m1", kind=kind, source=source)

    before = (tokens("prompt", "usage"), tokens("completion", "usage"),
              llm_sample(sidecar, "model_llm_finish_reasons_total", route=CHAT, model="m1", reason="length"),
              llm_sample(sidecar, "model_llm_cost_total", model="m1", currency="EUR"),
              llm_sample(sidecar, "model_llm_requests_total", route=CHAT, model="m1", streamed="false"))
    with client(sidecar) as c:
        answer = c.chat.completions.create(model="m1", messages=[{"role": "user", "content": "a b c d"}], max_tokens=4)
    assert answer.choices[0].finish_reason == "length"
    wait_requests(sidecar, before[4] + 1, route=CHAT, model="m1", streamed="false")
    assert tokens("prompt", "usage") - before[0] == 4
    assert tokens("completion", "usage") - before[1] == 4
    assert llm_sample(sidecar, "model_llm_finish_reasons_total", route=CHAT, model="m1", reason="length") - before[2] == 1
    cost = llm_sample(sidecar, "model_llm_cost_total", model="m1", currency="EUR") - before[3]
    assert cost == pytest.approx((4 * 0.5 + 4 * 2.0) / 1e6)


def test_stream_bytes_reach_the_client_unaltered(sidecar: Sidecar, llm_server: AppServer) -> None:
    sent = llm_server.app[SENT]
    for path, doc in ((CHAT, {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": True}),
                      ("/generate_stream", {"inputs": "hi there", "parameters": {"max_new_tokens": 3}}),
                      ("/api/chat", {"model": "m1", "messages": [{"role": "user", "content": "hi"}]})):
        mark = len(sent)
        status, body = post(sidecar, path, doc)
        assert status == 200
        assert sent[mark:] == [body], path


PROTOCOLS = [
    # route, request, operation, streamed, completion tokens, their source, finish reason
    ("/v1/completions", {"model": "m1", "prompt": "once upon", "stream": True}, "completion", "true", TOKENS,
     "estimated", "stop"),
    ("/v1/responses", {"model": "m1", "input": "tell me", "stream": True, "max_output_tokens": 5}, "responses",
     "true", 5, "usage", "length"),
    ("/v1/responses", {"model": "m1", "input": "tell me"}, "responses", "false", TOKENS, "usage", "stop"),
    ("/generate_stream", {"inputs": "hello", "parameters": {"max_new_tokens": 4}}, "generate", "true", 4, "usage",
     "length"),
    ("/generate", {"inputs": "hello", "parameters": {"details": True}}, "generate", "false", TOKENS, "usage", "stop"),
    ("/api/generate", {"model": "m1", "prompt": "why is the sky blue"}, "generate", "true", TOKENS, "usage", "stop"),
    ("/api/chat", {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": 3}},
     "chat", "true", 3, "usage", "length"),
    ("/api/chat", {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": False}, "chat", "false",
     TOKENS, "usage", "stop"),
]


@pytest.mark.parametrize(("route", "doc", "operation", "streamed", "tokens", "source", "finish"), PROTOCOLS,
                         ids=[f"{p[0]} {p[2]} streamed={p[3]}" for p in PROTOCOLS])
def test_every_protocol_is_measured_the_same_way(sidecar: Sidecar, route: str, doc: dict[str, Any], operation: str,
                                                 streamed: str, tokens: int, source: str, finish: str) -> None:
    model = "m1" if "model" in doc else "unknown"  # TGI requests name no model
    labels = {"route": route, "model": model}
    names = ("model_llm_time_to_first_token_seconds_count", "model_llm_time_to_first_token_seconds_sum")
    before = {n: llm_sample(sidecar, n, **labels) for n in names}
    requests = llm_sample(sidecar, "model_llm_requests_total", operation=operation, streamed=streamed, **labels)
    completion = llm_sample(sidecar, "model_llm_tokens_total", kind="completion", source=source, **labels)
    finished = llm_sample(sidecar, "model_llm_finish_reasons_total", reason=finish, **labels)
    status, _ = post(sidecar, route, doc)
    assert status == 200
    wait_requests(sidecar, requests + 1, operation=operation, streamed=streamed, **labels)
    assert llm_sample(sidecar, "model_llm_tokens_total", kind="completion", source=source, **labels) - completion == tokens
    assert llm_sample(sidecar, "model_llm_finish_reasons_total", reason=finish, **labels) - finished == 1
    timed = llm_sample(sidecar, names[0], **labels) - before[names[0]]
    if streamed == "true":
        assert timed == 1
        ttft = llm_sample(sidecar, names[1], **labels) - before[names[1]]
        assert FIRST_TOKEN_DELAY <= ttft <= FIRST_TOKEN_DELAY + SLACK, ttft
    else:
        assert timed == 0  # nothing streamed: no first token to time


def test_embeddings_count_prompt_tokens(sidecar: Sidecar) -> None:
    labels = {"route": "/v1/embeddings", "model": "m1"}
    before = llm_sample(sidecar, "model_llm_tokens_total", kind="prompt", source="usage", **labels)
    with client(sidecar) as c:
        c.embeddings.create(model="m1", input=["one two", "three"])
    wait_requests(sidecar, 1, operation="embeddings", **labels)
    assert llm_sample(sidecar, "model_llm_tokens_total", kind="prompt", source="usage", **labels) - before == 3
    assert llm_sample(sidecar, "model_llm_tokens_total", kind="completion", **labels) == 0


def test_errors_are_counted_by_type(sidecar: Sidecar) -> None:
    def errors(route: str, kind: str) -> float:
        return llm_sample(sidecar, "model_llm_errors_total", route=route, type=kind)

    before = errors(CHAT, "invalid_request_error"), errors("/api/chat", "other")
    with client(sidecar) as c, pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="missing", messages=[{"role": "user", "content": "hi"}])
    assert post(sidecar, "/api/chat", {"model": "missing", "messages": []})[0] == 404
    sidecar.wait_sample("model_llm_errors_total", lambda v: v >= before[1] + 1, timeout=20, route="/api/chat",
                        type="other")
    sidecar.wait_sample("model_llm_errors_total", lambda v: v >= before[0] + 1, timeout=20, route=CHAT,
                        type="invalid_request_error")


def test_the_request_body_model_is_the_model_label_under_the_policy(sidecar: Sidecar) -> None:
    status, _ = post(sidecar, CHAT, {"messages": [{"role": "user", "content": "x"}], "model": "m2"})
    assert status == 200
    wait_requests(sidecar, 1, route=CHAT, model="m2")
    # the proxy's own series of that exchange carry the same label
    assert llm_sample(sidecar, "model_requests_total", route=CHAT, model="m2") >= 1


def test_streams_in_flight_while_a_stream_is_open(sidecar: Sidecar) -> None:
    with client(sidecar) as c:
        stream = c.chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}], stream=True)
        next(iter(stream))  # the head and the role chunk are in: the rest is still coming
        assert llm_sample(sidecar, "model_llm_streams_in_flight") == 1
        for _ in stream:
            pass
    sidecar.wait_sample("model_llm_streams_in_flight", lambda v: v == 0, timeout=5)
    assert any(s.name == "model_llm_streams_in_flight" for s in sidecar.metrics())


def test_metrics_pass_promtool(sidecar: Sidecar, promtool: str) -> None:
    code, out = promtool_check_metrics(promtool, sidecar.metrics_text())
    assert code == 0, out
