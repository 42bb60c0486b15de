"""The JSON path subset of `model.custom`: `$` then `.key`, `['key']`, `[n]` and `[*]`.

A leaf: config validates paths with it, the custom adapter evaluates them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
                    "allowed steps are .key, ['key'], [n] and [*]"
                )
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

    def replace(self, doc: Any, new: Callable[[Any], Any]) -> int:
        """Replace every value `v` the path reaches in `doc` with `new(v)`, in place; returns how many."""
        if not self.steps:
            return 0
        nodes = [doc]
        for step in self.steps[:-1]:
            nodes = JsonPath("", (step,)).find_all(nodes)
        last, n = self.steps[-1], 0
        for node in nodes:
            if last is _ALL:
                if type(node) is list:
                    node[:] = [new(v) for v in node]
                    n += len(node)
            elif type(last) is int:
                if type(node) is list and -len(node) <= last < len(node):
                    node[last] = new(node[last])
                    n += 1
            elif type(node) is dict and last in node:
                node[last] = new(node[last])
                n += 1
        return n

    def find_all(self, docs: list[Any]) -> list[Any]:
        """`find` over several documents, results in order."""
        return [found for doc in docs for found in self.find(doc)]

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
