"""The metric reference and the exposition agree with the single table of definitions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prometheus_client import CollectorRegistry

from exporter.collectors.base import Isolated
from exporter.config import Config, LLMConfig, PredictionLogConfig, TailConfig, TailSource
from exporter.events import MARK, Event
from exporter.metrics.definitions import BY_NAME, DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS, METRICS
from exporter.metrics.docs import readme_section, render
from exporter.metrics.exposition import build_registry
from exporter.proxy.routes import RouteTable
from exporter.proxy.server import ProxyContext
from exporter.proxy.stats import TrafficStats
from exporter.sidecar.link import WorkerLink
from exporter.sidecar.push import PushSource
from exporter.sidecar.reload import Reloader
from exporter.sidecar.worker_metrics import PipelineCollector, PipelineHealth
from exporter.sources.tail import Tailer
from exporter.worker.analysis import Analysis
from exporter.worker.store import PredictionStore

ROOT = Path(__file__).parent.parent


def test_docs_metrics_md_is_generated_from_the_definitions() -> None:
    assert (ROOT / "docs" / "metrics.md").read_text() == render(), "run `make docs`"
    readme = (ROOT / "README.md").read_text()
    assert "<!-- metrics:begin -->\nEvery" in readme
    assert readme == readme_section(readme), "run `make docs`"


def test_names_follow_prometheus_conventions() -> None:
    for m in METRICS:
        assert m.name.startswith("model_"), m.name
        assert m.name.endswith("_total") == (m.type == "counter"), m.name
        assert m.help.endswith("."), m.name


def _registry() -> tuple[CollectorRegistry, TrafficStats]:
    stats = TrafficStats(DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS, "m", "1")
    stats.record("/invocations", b"POST", 200, 0.02, 0.01, 100, 200, "4bf92f3577b34da6a3ce929d0e0e4736")
    stats.upstream_error("refused")
    stats.load_duration = 1.5
    link = WorkerLink(Config())  # not started: its answer is set as a scrape would
    # what the worker renders, collected here so its families can be inspected
    priced = LLMConfig(prices=(("m", 0.5, 1.5),))
    worker = Analysis(dataclasses.replace(Config(), state_dir="/nonexistent", llm=priced))
    stream = (b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n'
              b'data: {"choices": [{"delta": {"content": "!"}, "finish_reason": "stop"}],'
              b' "usage": {"prompt_tokens": 3, "completion_tokens": 2}}\n\ndata: [DONE]\n\n')
    worker.process([Event(0.0, "/v1/chat/completions", b"/v1/chat/completions", 200, 0.5, {},
                          b'{"model": "m", "messages": []}', {b"content-type": b"text/event-stream"}, stream,
                          "m", "1", MARK.pack(40, 0.1) + MARK.pack(len(stream), 0.2))])
    worker.snapshot_time = 1.0
    link.last_collect_ok = True

    ctx = ProxyContext(pool=None, stats=stats, routes=None, read_timeout=1.0, upstream_host_header=b"")  # type: ignore[arg-type]
    reloader = Reloader(Config(), None, ctx, None)
    push = PushSource(link, lambda: stats.labels, lambda: Config().push, "x-request-id")
    tail = Config(tail=TailConfig(sources=(TailSource("/nonexistent/*.predlog"),)))
    tailer = Tailer(tail, stats, RouteTable(), link)
    store = PredictionStore(PredictionLogConfig(path="/dev/null"), "x-request-id")  # nothing offered: nothing written
    collectors = [stats, worker, PipelineCollector(link), Isolated([PipelineHealth(link)]), reloader, push, tailer, store]
    return build_registry(collectors), stats


def test_every_exposed_model_metric_is_defined_with_its_help_and_labels() -> None:
    registry, _ = _registry()
    seen = set()
    for family in registry.collect():
        if not family.name.startswith("model_"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        definition = BY_NAME[name]
        seen.add(name)
        assert family.documentation == definition.help
        assert family.type == ("gauge" if definition.type == "info" else definition.type)
        expected = set(definition.labels) | ({"model", "version"} if definition.model_level else set())
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == expected, (name, sample.labels)
    traffic = {m.name for m in METRICS if m.family in ("traffic", "exporter", "content")}
    assert traffic <= seen, traffic - seen
