"""Normalise request paths into a fixed set of route templates (bounded label values)."""

from __future__ import annotations

import re
from typing import Iterable

from exporter.config import RouteConfig

OTHER = "other"

# Templates of the serving protocols the exporter knows; `{name}` matches one path segment
# (a V1 segment stops at ':' so `/v1/models/{model}:predict` keeps its verb).
BUILTIN_ROUTES: tuple[str, ...] = (
    "/v2/models/{model}/versions/{version}/infer",
    "/v2/models/{model}/infer",
    "/v2/models/{model}/versions/{version}/ready",
    "/v2/models/{model}/ready",
    "/v2/models/{model}/versions/{version}",
    "/v2/models/{model}",
    "/v2/health/ready",
    "/v2/health/live",
    "/v2",
    "/v1/models/{model}/versions/{version}:predict",
    "/v1/models/{model}:predict",
    "/v1/models/{model}:classify",
    "/v1/models/{model}:regress",
    "/v1/models/{model}/metadata",
    "/v1/models/{model}",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
    "/invocations",
    "/ping",
    "/health",
    "/version",
    "/api/v1.0/predictions",
    "/api/v1.0/feedback",
    "/api/v0.1/predictions",
    "/predict",
)

# Routes whose payloads carry features and predictions: the ones captured for analysis.
INFERENCE_ROUTES: frozenset[str] = frozenset({
    "/v2/models/{model}/versions/{version}/infer",
    "/v2/models/{model}/infer",
    "/v1/models/{model}/versions/{version}:predict",
    "/v1/models/{model}:predict",
    "/v1/models/{model}:classify",
    "/v1/models/{model}:regress",
    "/v1/chat/completions",
    "/v1/completions",
    "/invocations",
    "/api/v1.0/predictions",
    "/api/v0.1/predictions",
    "/predict",
})

_PARAM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_CACHE_MAX = 4096


def _template_regex(template: str) -> str:
    out, pos = [], 0
    for m in _PARAM.finditer(template):
        out.append(re.escape(template[pos:m.start()]))
        out.append(r"[^/:]+")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return "".join(out)


class RouteTable:
    """Maps a raw request target to its template; configured patterns win over built-ins."""

    def __init__(self, extra: Iterable[RouteConfig] = ()) -> None:
        entries = [(r.pattern, r.name) for r in extra] + [(t, t) for t in BUILTIN_ROUTES]
        self.names: tuple[str, ...] = tuple(dict.fromkeys([name for _, name in entries] + [OTHER]))
        groups = [f"(?P<r{i}>{_template_regex(p)})" for i, (p, _) in enumerate(entries)]
        self._regex = re.compile(r"(?:" + "|".join(groups) + r")/?\Z")
        self._by_group = {f"r{i}": name for i, (_, name) in enumerate(entries)}
        self._cache: dict[bytes, str] = {}
        # configured routes are there to be analysed; built-ins only where they carry payloads
        self.inference: frozenset[str] = INFERENCE_ROUTES | {r.name for r in extra}

    def match(self, target: bytes) -> str:
        """Route template for a request target such as b'/v2/models/m/infer?x=1'."""
        route = self._cache.get(target)
        if route is not None:
            return route
        path = target.split(b"?", 1)[0]
        if path.startswith(b"http://") or path.startswith(b"https://"):  # absolute-form target
            path = b"/" + path.split(b"/", 3)[-1] if path.count(b"/") >= 3 else b"/"
        m = self._regex.match(path.decode("latin-1"))
        route = self._by_group[m.lastgroup] if m and m.lastgroup else OTHER
        if len(self._cache) >= _CACHE_MAX:  # bounded: clients choose paths
            self._cache.clear()
        self._cache[target] = route
        return route
