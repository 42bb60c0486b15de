"""Custom JSON payloads: features, predictions and the row id located by JSON paths from config.

The path language is a small subset of JSONPath: `$` followed by `.key`, `['key']`, `[n]`
(a list index, negative counts from the end) and `[*]` (every list element), e.g.
`$.data.rows`, `$.instances[*].features`, `$.outputs[0]`. A path without `[*]` that lands on
a list means one row per element; one that lands on an object means a single row. The id
path is looked up in the body being parsed (with `[*]`: one id per row), else the id header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from exporter.adapters._payload import guarded, header_id, loads, row_ids, sniff_object
from exporter.adapters._tables import from_instances
from exporter.adapters.base import Message, PayloadError, Rows

_STEP = re.compile(
    r"""\.(?P<key>[A-Za-z_$@-][\w$@-]*)        # .key
      | \[(?P<index>-?[0-9]+)\]                # [0]
      | \[(?P<star>\*)\]                        # [*]
      | \[(?P<q>['"])(?P<quoted>(?:(?!(?P=q)).)*)(?P=q)\]  # ['key with.dots']
    """,
    re.VERBOSE,
)
_ALL = object()  # the [*] step


@dataclass(frozen=True)
class JsonPath:
    """A compiled path: the steps (keys, indexes, or _ALL) after `$`."""

    text: str
    steps: tuple[Any, ...]

    @property
    def wildcard(self) -> bool:
        return any(step is _ALL for step in self.steps)

    @classmethod
    def compile(cls, text: str) -> JsonPath:
        """Parse a path; ValueError names the position and what the subset allows."""
        if not isinstance(text, str) or not text.startswith("$"):
            raise ValueError(f"JSON path {text!r} must start with '$' (e.g. '$.instances[*]')")
        steps: list[Any] = []
        pos = 1
        while pos < len(text):
            m = _STEP.match(text, pos)
            if m is None:
                raise ValueError(
                    f"JSON path {text!r}: cannot read {text[pos:]!r} at position {pos}; "
                    "allowed steps are .key, ['key'], [n] and [*]")
            if m["key"] is not None:
                steps.append(m["key"])
            elif m["index"] is not None:
                steps.append(int(m["index"]))
            elif m["star"] is not None:
                steps.append(_ALL)
            else:
                steps.append(m["quoted"])
            pos = m.end()
        return cls(text, tuple(steps))

    def find(self, doc: Any) -> list[Any]:
        """Every value the path reaches in `doc` (missing keys and indexes reach nothing)."""
        nodes = [doc]
        for step in self.steps:
            out: list[Any] = []
            for node in nodes:
                if step is _ALL:
                    if type(node) is list:
                        out.extend(node)
                elif type(step) is int:
                    if type(node) is list and -len(node) <= step < len(node):
                        out.append(node[step])
                elif type(node) is dict and step in node:
                    out.append(node[step])
            nodes = out
        return nodes


class CustomAdapter:
    """Adapter configured with JSON paths for features, predictions and the request id."""

    name = "custom"

    def __init__(self, features: str, predictions: str | None = None, id_path: str | None = None) -> None:
        self.features = JsonPath.compile(features)
        self.predictions = JsonPath.compile(predictions) if predictions is not None else None
        self.id_path = JsonPath.compile(id_path) if id_path is not None else None

    def detect(self, request: Message) -> bool:
        doc = sniff_object(request.body)
        return doc is not None and bool(self.features.find(doc))

    def _rows(self, path: JsonPath, doc: Any, what: str) -> Rows:
        found = path.find(doc)
        if not path.wildcard:
            if not found:
                raise PayloadError("unsupported_shape", f"{what} path {path.text} matches nothing")
            found = found[0] if type(found[0]) is list else found
        return from_instances(found)

    def _ids(self, doc: Any, request: Message, n: int) -> list[str] | None:
        """Ids from the id path in this body (one per row with `[*]`), else the id header."""
        if self.id_path is not None:
            found = [v for v in self.id_path.find(doc) if type(v) in (str, int)]
            if self.id_path.wildcard and len(found) == n and n > 0:
                return [str(v) for v in found]
            if found and not self.id_path.wildcard:
                return row_ids(found[0], n)
        return row_ids(header_id(request), n)

    @guarded
    def parse_request(self, request: Message) -> Rows:
        doc = loads(request.body)
        rows = self._rows(self.features, doc, "features")
        rows.ids = self._ids(doc, request, rows.n)
        return rows

    @guarded
    def parse_response(self, request: Message, response: Message) -> Rows:
        if self.predictions is None:
            return Rows(columns={}, n=0)
        doc = loads(response.body)
        rows = self._rows(self.predictions, doc, "predictions")
        rows.ids = self._ids(doc, request, rows.n)
        return rows
