"""metrics/render.py writes exactly the bytes prometheus_client's encoders write, and gzip parts join into one member.

Byte for byte, for the families the exporter really produces (a worker's Analysis with a
baseline and traffic, the proxy's registry) and for generated families of every type, with
label values that need escaping and values Go writes differently from Python.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import math
import time
import zlib
from collections.abc import Iterable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from exporter.baseline.build import BuildOptions, build_baseline
from exporter.baseline.format import save_baseline
from exporter.baseline.readers import Chunk
from exporter.config import Config
from exporter.events import Event
from exporter.metrics.exposition import (
    OPENMETRICS,
    TEXT,
    accepts_gzip,
    build_registry,
    deflate_open,
    encode,
    encode_in_turns,
    gzip_close,
    join,
    strip_eof,
)
from exporter.metrics.render import go_float, render
from exporter.worker.analysis import Analysis


class _Fixed:
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> list[Metric]:
        return self.metrics


def _same(metrics: Iterable[Metric]) -> None:
    collector = _Fixed(metrics)
    assert render(collector.metrics, openmetrics=False) == generate_latest(collector)  # type: ignore[arg-type]
    assert render(collector.metrics, openmetrics=True) == openmetrics_latest(collector)  # type: ignore[no-untyped-call]


def _analysis(tmp_path: Path) -> Analysis:
    colours = ["red", 'say "hi"', "back\\slash", "new\nline", "ünïcödé", "tab\tand ,comma="]
    data = {
        "x": [i / 10 for i in range(120)],
        "colour": [colours[i % len(colours)] for i in range(120)],
        "y": [i / 120 for i in range(120)],
    }
    built = build_baseline(
        lambda: iter([Chunk(data, 120)]),
        BuildOptions(predictions=("y",), categorical=("colour",)),
        files=("memory",),
        created="2024-05-01T12:00:00Z",
    )
    path = tmp_path / "baseline.json"
    save_baseline(built.baseline, path)
    analysis = Analysis(dataclasses.replace(Config(), baseline=str(path)))
    events = []
    for i in range(40):
        request = {"instances": [{"x": i * 1e7 if i % 7 == 0 else i / 3, "colour": colours[i % 6] + ("?" * (i % 2))}]}
        response = {"predictions": [{"y": -i / 9 if i % 5 else float(i)}]}
        events.append(
            Event(time.time(), "/v1/models/{model}:predict", b"/v1/models/m:predict", 200, 0.001 * i,
                  {b"content-type": b"application/json"}, json.dumps(request).encode(),
                  {b"content-type": b"application/json"}, json.dumps(response).encode(), 'm"1', "v\\2")
        )
    analysis.process(events)
    return analysis


def test_the_workers_real_families_render_identically(tmp_path: Path) -> None:
    analysis = _analysis(tmp_path)
    metrics = list(analysis.collect())
    assert sum(len(m.samples) for m in metrics) > 100  # rows, errors, drift, quality, histograms: a real exposition
    _same(metrics)
    assert b'model="m\\"1",' in render(metrics, openmetrics=False)  # label values that need escaping
    assert encode(analysis, TEXT) == generate_latest(_Fixed(analysis.collect()))  # type: ignore[arg-type]


def test_the_proxy_registry_renders_identically() -> None:
    registry: CollectorRegistry = build_registry([])
    metrics = list(registry.collect())
    assert any(m.name == "process_cpu_seconds" for m in metrics)
    _same(metrics)


def test_the_proxy_registry_rendered_in_turns_is_the_same_bytes() -> None:
    class Labels:
        def collect(self) -> list[Metric]:
            gauge = GaugeMetricFamily("model_exporter_x", "h", labels=["a"])
            gauge.add_metric(['q"\\n'], 2.5)
            return [gauge]

    registry = build_registry([Labels()], max_age=60.0)  # the process readings kept: both renderings see the same
    for fmt in (TEXT, OPENMETRICS):
        assert asyncio.run(encode_in_turns(registry, fmt)) == encode(registry, fmt)


def test_rendering_in_turns_lets_the_loop_run_between_collectors() -> None:
    ran: list[str] = []

    class First:
        def collect(self) -> list[Metric]:
            asyncio.get_running_loop().call_soon(ran.append, "a request that came in meanwhile")
            return []

    class Second:
        def collect(self) -> list[Metric]:
            ran.append("the next collector")
            return []

    asyncio.run(encode_in_turns(build_registry([First(), Second()]), TEXT))
    assert ran == ["a request that came in meanwhile", "the next collector"]
    ran.clear()

    async def in_one_piece() -> None:  # for contrast: nothing runs in between
        encode(build_registry([First(), Second()]), TEXT)

    asyncio.run(in_one_piece())
    assert ran[0] == "the next collector"


def test_families_outside_the_fast_subset_are_rendered_by_the_library() -> None:
    counter = CounterMetricFamily("c", "with created", labels=["a"])
    counter.add_metric(["x"], 3, created=1700000000.5)  # text moves _created to a gauge family of its own
    timestamped = GaugeMetricFamily("g", "with a timestamp", labels=["a"])
    timestamped.add_metric(["x"], 1.5, timestamp=1700000000.25)
    exemplars = HistogramMetricFamily("h", "with an exemplar", labels=["a"])
    exemplars.add_metric(["x"], [("1.0", 1, Exemplar({"trace": "t"}, 0.5)), ("+Inf", 2)], 3.5)  # type: ignore[list-item]
    gauge_histogram = GaugeHistogramMetricFamily("gh", "gsum and gcount", labels=["a"])
    gauge_histogram.add_metric(["x"], [("1.0", 1), ("+Inf", 2)], gsum_value=3.0)
    odd_name = UnknownMetricFamily("colon:name", "a colon in the name")
    odd_name.add_metric([], 1)
    with_unit = GaugeMetricFamily("temperature_celsius", "a unit", unit="celsius")
    with_unit.add_metric([], 21.5)
    _same([counter, timestamped, gauge_histogram, odd_name, with_unit])
    # an exemplar: OpenMetrics only (the text format drops it)
    assert render([exemplars], openmetrics=True) == openmetrics_latest(_Fixed([exemplars]))  # type: ignore[no-untyped-call]


_label_value = st.text(alphabet=st.sampled_from(['a', 'Z', '0', ' ', '"', "\\", "\n", "é", "{", "}", ",", "=", "\t"]),
                       max_size=8)
_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0.0, -0.0, 1e6, 1234567.0, 12345678.0, 1e22, 5e-324, 0.1, 123456.7]),
)


@st.composite
def _families(draw: st.DrawFn) -> list[Metric]:
    out: list[Metric] = []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["counter", "gauge", "histogram", "summary", "info", "stateset", "unknown"]))
        doc = draw(_label_value)
        names = ["a", "b_2"][: draw(st.integers(0, 2))]
        family: Metric
        rows = draw(st.lists(st.tuples(_label_value, _label_value), min_size=0, max_size=3))
        if kind == "counter":
            family = CounterMetricFamily(f"m{i}", doc, labels=names)
        elif kind == "gauge":
            family = GaugeMetricFamily(f"m{i}", doc, labels=names)
        elif kind == "histogram":
            family = HistogramMetricFamily(f"m{i}", doc, labels=names)
        elif kind == "summary":
            family = SummaryMetricFamily(f"m{i}", doc, labels=names)
        elif kind == "info":
            family = InfoMetricFamily(f"m{i}", doc, labels=names)
        elif kind == "stateset":
            family = StateSetMetricFamily(f"m{i}", doc, labels=names)
        else:
            family = UnknownMetricFamily(f"m{i}", doc, labels=names)
        for row in rows:
            values = list(row[: len(names)])
            if kind == "histogram":
                bound = draw(_value)
                family.add_metric(values, [(floatToGoString(bound), 1), ("+Inf", 2)], draw(_value))  # type: ignore[attr-defined]
            elif kind == "summary":
                family.add_metric(values, draw(st.integers(0, 9)), draw(_value))  # type: ignore[attr-defined]
            elif kind == "info":
                family.add_metric(values, {"extra": draw(_label_value)})  # type: ignore[attr-defined]
            elif kind == "stateset":
                family.add_metric(values, {"on": True, "off": False})  # type: ignore[attr-defined]
            else:
                family.add_metric(values, draw(_value))  # type: ignore[attr-defined]
        out.append(family)
    return out


@settings(max_examples=300, deadline=None)
@given(_families())
def test_generated_families_render_identically(metrics: list[Metric]) -> None:
    _same(metrics)


@settings(max_examples=2000, deadline=None)
@given(_value)
def test_values_are_written_as_go_writes_them(value: float) -> None:
    assert go_float(value) == floatToGoString(value)


def test_go_float_special_values() -> None:
    assert [go_float(v) for v in (math.inf, -math.inf, math.nan, 12345678.0, 1e6, 0.5)] == [
        "+Inf", "-Inf", "NaN", "1.2345678e+07", "1e+06", "0.5"
    ]


# ---------------------------------------------------------------- gzip: the worker opens, the proxy closes
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000), st.binary(max_size=500))
def test_a_part_deflated_elsewhere_and_the_rest_make_one_gzip_member(head: bytes, tail: bytes) -> None:
    body = gzip_close(deflate_open(head), tail)
    assert gzip.decompress(body) == head + tail
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # one member, nothing after it (what curl reads)
    assert inflater.decompress(body) == head + tail
    assert inflater.eof and inflater.unused_data == b""


def test_a_large_exposition_compresses_and_joins_as_the_plain_one(tmp_path: Path) -> None:
    analysis = _analysis(tmp_path)
    for fmt in (TEXT, OPENMETRICS):
        worker = strip_eof(encode(analysis, fmt))
        own = encode(build_registry([]), fmt)
        plain = join(fmt, worker, own)
        zipped = gzip_close(deflate_open(worker), own)
        assert gzip.decompress(zipped) == plain
        assert len(zipped) * 4 < len(plain)
        assert plain.count(b"# EOF") == (1 if fmt == OPENMETRICS else 0)


def test_accept_encoding() -> None:
    assert accepts_gzip("gzip")
    assert accepts_gzip("deflate, gzip;q=1.0, *;q=0.5")
    assert accepts_gzip("GZIP")
    assert accepts_gzip("x-gzip")
    assert accepts_gzip("br, *")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("gzip; q=0.0, *")  # an explicit refusal wins over the wildcard
    assert not accepts_gzip("identity")
    assert not accepts_gzip("*;q=0")
    assert not accepts_gzip("")
    assert not accepts_gzip(None)
    assert not accepts_gzip("gzip;q=bogus")


def test_zero_and_negative_zero_in_one_family_are_written_apart() -> None:
    family = GaugeMetricFamily("g", "zeros", labels=["a"])
    family.add_metric(["x"], 0.0)
    family.add_metric(["y"], -0.0)
    family.add_metric(["z"], 0)
    _same([family])
    assert b'g{a="y"} -0.0\n' in render([family], openmetrics=False)


# ---------------------------------------------------------------- samples rendered without Metric objects
def test_the_analysis_exposition_is_what_its_families_render(tmp_path: Path) -> None:
    analysis = _analysis(tmp_path)
    for openmetrics in (False, True):
        assert analysis.exposition(openmetrics) == render(analysis.collect(), openmetrics)
        assert analysis.exposition(openmetrics) == render(analysis.collect(), openmetrics)  # from the cache


_SAMPLED = ("model_column_bin_total", "model_drift_score", "model_window_rows", "model_schema_errors_total",
            "model_baseline_info", "model_column_values_total")


@st.composite
def _samples(draw: st.DrawFn) -> list[tuple[str, list[str], float]]:
    from exporter.metrics.definitions import BY_NAME, label_names

    out = []
    for _ in range(draw(st.integers(0, 12))):
        name = draw(st.sampled_from(_SAMPLED))
        labels = [draw(_label_value) for _ in label_names(BY_NAME[name])]
        out.append((name, labels, draw(_value)))
    return out


@settings(max_examples=300, deadline=None)
@given(_samples())
def test_generated_samples_render_as_their_families(samples: list[tuple[str, list[str], float]]) -> None:
    from exporter.metrics.families import families
    from exporter.metrics.render import render_samples

    for openmetrics in (False, True):
        assert render_samples(samples, openmetrics) == render(families(samples), openmetrics)
