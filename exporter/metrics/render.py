"""Fast rendering of metric families: the same bytes as prometheus_client's encoders, several times faster.

A 1,000-column baseline exports about 33,000 samples. prometheus_client renders them in about a
second of CPU (OpenMetrics: more), validating and escaping every label name of every sample:
the worker spent most of each scrape there, on a 2-core pod beside the model server. This
renders the families our collectors produce (valid legacy names, no timestamps, exemplars or
native histograms) with label names checked once per name and label values escaped only when
they hold a character that needs it. Any family outside that subset is handed to
prometheus_client whole, so the output is always what it would have written;
tests/metrics/test_render_equivalence.py compares the two byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from exporter.metrics.definitions import BY_NAME, label_names
from exporter.metrics.families import Sample

_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")  # a metric or label name nothing escapes
_TEXT_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
_TEXT_SUFFIXES = ("_created", "_gsum", "_gcount")  # samples the text format moves to a gauge family of their own
_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}
_OM_EOF = b"# EOF\n"


def go_float(value: Any) -> str:
    """A sample value as Go (and prometheus_client's floatToGoString) writes it."""
    d = float(value)
    s = repr(d)
    special = _SPECIAL.get(s)
    if special is not None:
        return special
    if d > 0:
        dot = s.find(".")
        if dot > 6:  # Go switches to an exponent sooner than Python does
            mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
            return f"{mantissa}e+{dot - 1:02d}"
    return s


def _number(value: float, cache: dict[float, str]) -> str:
    """go_float(value), cached by value for one render: equal values render alike, except 0.0 and
    -0.0 (equal keys, written apart), which are not cached."""
    if not value:
        return go_float(value)
    cached = cache.get(value)
    return cached if cached is not None else cache.setdefault(value, go_float(value))


def _escape_value(v: str) -> str:
    if "\\" in v or "\n" in v or '"' in v:
        return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return v


class _Names:
    """Which names render as they are: checked once per distinct name, not once per sample."""

    def __init__(self) -> None:
        self.valid: dict[str, bool] = {}

    def ok(self, name: str) -> bool:
        known = self.valid.get(name)
        if known is None:
            if len(self.valid) > 100_000:  # names come from our definitions; bound it all the same
                self.valid.clear()
            known = self.valid[name] = _LEGACY_NAME.match(name) is not None
        return known


_names = _Names()


def _fast_samples(metric: Metric, text: bool, out: list[str]) -> bool:
    """Append `metric`'s sample lines to `out`; False (and nothing appended) if it needs the library."""
    lines: list[str] = []
    ok = _names.ok
    prefix = metric.name
    values: dict[str, str] = {}  # escaped label values, per family (they repeat: columns, bins, models)
    numbers: dict[float, str] = {}
    keys: tuple[str, ...] = ()
    ordered: list[str] = []
    for s in metric.samples:
        if s.timestamp is not None or s.exemplar is not None or s.native_histogram is not None:
            return False
        name = s.name
        if not ok(name) or (text and name.startswith(prefix) and name[len(prefix) :] in _TEXT_SUFFIXES):
            return False
        value: float | None = s.value  # None in an OpenMetrics info or stateset sample built by hand
        if value is None:
            if text:
                return False
            rendered = ""
        else:
            rendered = _number(value, numbers)
        labels = s.labels
        if labels:
            if tuple(labels) != keys:  # the label names change rarely within a family: check them once
                keys = tuple(labels)
                ordered = sorted(keys)
                if not all(map(ok, ordered)):
                    return False
            parts = []
            for k in ordered:
                v = labels[k]
                e = values.get(v)
                if e is None:
                    e = values[v] = _escape_value(v)
                parts.append(f'{k}="{e}"')
            lines.append(f"{name}{{{','.join(parts)}}} {rendered}\n")
        else:
            lines.append(f"{name} {rendered}\n")
    out.extend(lines)
    return True


def _fallback(metric: Metric, text: bool) -> str:
    class _One:
        @staticmethod
        def collect() -> Iterable[Metric]:
            return [metric]

    rendered: bytes = (
        generate_latest(_One()) if text else openmetrics_latest(_One())[: -len(_OM_EOF)]  # type: ignore[no-untyped-call]
    )
    return rendered.decode("utf-8")


def render(metrics: Iterable[Metric], openmetrics: bool, eof: bool = True) -> bytes:
    """The exposition of `metrics`: text 0.0.4, or OpenMetrics 1.0 ending with `# EOF` (unless not `eof`)."""
    out: list[str] = []
    text = not openmetrics
    for metric in metrics:
        mark = len(out)
        name = metric.name
        if not _names.ok(name):
            out.append(_fallback(metric, text))
            continue
        if text:
            mtype = metric.type
            hname = name + "_total" if mtype == "counter" else name + "_info" if mtype == "info" else name
            doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
            out.append(f"# HELP {hname} {doc}\n# TYPE {hname} {_TEXT_TYPES.get(mtype, mtype)}\n")
        else:
            doc = _escape_value(metric.documentation)
            out.append(f"# HELP {name} {doc}\n# TYPE {name} {metric.type}\n")
            if metric.unit:
                out.append(f"# UNIT {name} {metric.unit}\n")
        if not _fast_samples(metric, text, out):
            del out[mark:]
            out.append(_fallback(metric, text))
    if openmetrics and eof:
        out.append("# EOF\n")
    return "".join(out).encode("utf-8")


# ---------------------------------------------------------------- samples straight to text
class _Layout(NamedTuple):
    """How one defined counter or gauge renders: what families.family() would build, precomputed."""

    head_text: str  # HELP and TYPE lines, text format
    head_openmetrics: str
    sample: str  # the samples' name
    order: tuple[tuple[str, int], ...]  # (label name, index in the sample's values), sorted by name
    rank: int  # families come out in definition order


_layouts: dict[str, _Layout] = {}


def _layout(name: str) -> _Layout:
    layout = _layouts.get(name)
    if layout is None:
        m = BY_NAME[name]
        if m.type not in ("counter", "gauge", "info") or not all(map(_names.ok, [name, *label_names(m)])):
            raise ValueError(f"{name}: not a counter or gauge of plain names")
        family = m.name[: -len("_total")] if m.type == "counter" and m.name.endswith("_total") else m.name
        sample = family + "_total" if m.type == "counter" else family
        text_doc = m.help.replace("\\", r"\\").replace("\n", r"\n")
        text_type = "counter" if m.type == "counter" else "gauge"
        layout = _layouts[name] = _Layout(
            f"# HELP {sample if m.type == 'counter' else family} {text_doc}\n"
            f"# TYPE {sample if m.type == 'counter' else family} {text_type}\n",
            f"# HELP {family} {_escape_value(m.help)}\n# TYPE {family} {text_type}\n",
            sample,
            tuple(sorted((label, i) for i, label in enumerate(label_names(m)))),
            list(BY_NAME).index(name),
        )
    return layout


# A series' line up to its value, by (metric, label values): the series of a drift monitor are the
# same from one scrape to the next, so a scrape mostly formats values. Bounded: cleared when full.
_prefixes: dict[tuple[str, tuple[str, ...]], str] = {}
MAX_PREFIXES = 500_000


def _prefix(name: str, labels: tuple[str, ...]) -> str:
    layout = _layout(name)
    parts = [f'{label}="{_escape_value(labels[i])}"' for label, i in layout.order]
    prefix = f"{layout.sample}{{{','.join(parts)}}} " if parts else f"{layout.sample} "
    if len(_prefixes) >= MAX_PREFIXES:
        _prefixes.clear()
    _prefixes[(name, labels)] = prefix
    return prefix


def render_samples(samples: Iterable[Sample], openmetrics: bool, eof: bool = True) -> bytes:
    """`render(families(samples))`, byte for byte, without building a Metric and a Sample per series.

    For the bulk of a large exposition (a drift monitor's tens of thousands of series): the
    layout of each metric is worked out once, each series' line up to its value is cached
    across scrapes, and a scrape formats the values.
    """
    lines: dict[str, list[str]] = {}
    numbers: dict[float, str] = {}
    prefixes = _prefixes
    for name, labels, value in samples:
        out = lines.get(name)
        if out is None:
            out = lines[name] = []
        key = (name, tuple(labels))
        prefix = prefixes.get(key)
        if prefix is None:
            prefix = _prefix(*key)
        rendered = _number(value, numbers)
        out.append(f"{prefix}{rendered}\n")
    body: list[str] = []
    for name in sorted(lines, key=lambda n: _layout(n).rank):
        layout = _layout(name)
        body.append(layout.head_openmetrics if openmetrics else layout.head_text)
        body.extend(lines[name])
    if openmetrics and eof:
        body.append("# EOF\n")
    return "".join(body).encode("utf-8")
