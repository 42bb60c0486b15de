"""Normalise request paths into a fixed set of route templates (bounded label values).

A match also returns the path's `{model}` and `{version}` segments, raw, for the label policy
(exporter/labels.py) to decide the exchange's `model` and `version` labels from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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
    "/v1/responses",
    "/v1/models",
    "/generate",
    "/generate_stream",
    "/api/generate",
    "/api/chat",
    "/api/embed",
    "/api/embeddings",
    "/invocations",
    "/ping",
    "/health",
    "/version",
    "/api/v1.0/predictions",
    "/api/v1.0/feedback",
    "/api/v0.1/predictions",
    "/predict",
)

# The LLM serving routes (OpenAI-compatible, TGI, Ollama): their captured responses carry arrival
# marks (events.Event.marks) and their request body's top-level "model" names the exchange's model
# (exporter/proxy/body_model.py).
LLM_ROUTES: frozenset[str] = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/generate",
        "/generate_stream",
        "/api/generate",
        "/api/chat",
        "/api/embed",
        "/api/embeddings",
    }
)

# Routes whose payloads carry features and predictions: the ones captured for analysis.
INFERENCE_ROUTES: frozenset[str] = LLM_ROUTES | {
    "/v2/models/{model}/versions/{version}/infer",
    "/v2/models/{model}/infer",
    "/v1/models/{model}/versions/{version}:predict",
    "/v1/models/{model}:predict",
    "/v1/models/{model}:classify",
    "/v1/models/{model}:regress",
    "/invocations",
    "/api/v1.0/predictions",
    "/api/v0.1/predictions",
    "/predict",
}

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CACHE_MAX = 4096
_CAPTURED = {"model": "m", "version": "v"}  # parameters whose segment a match returns

# (route template, {model} segment or None, {version} segment or None)
Match = tuple[str, str | None, str | None]
NO_MATCH: Match = (OTHER, None, None)


def _template_regex(template: str, i: int) -> str:
    """Regex of one template; its first {model} and {version} are the groups m<i> and v<i>."""
    out, pos, seen = [], 0, set()
    for m in _PARAM.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        prefix = _CAPTURED.get(m.group(1))
        if prefix is not None and prefix not in seen:
            seen.add(prefix)
            out.append(f"(?P<{prefix}{i}>[^/:]+)")
        else:
            out.append(r"[^/:]+")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return "".join(out)


class RouteTable:
    """Maps a raw request target to its template; configured patterns win over built-ins."""

    def __init__(self, extra: Iterable[RouteConfig] = ()) -> None:
        entries = [(r.pattern, r.name) for r in extra] + [(t, t) for t in BUILTIN_ROUTES]
        self.names: tuple[str, ...] = tuple(dict.fromkeys([name for _, name in entries] + [OTHER]))
        groups = [f"(?P<r{i}>{_template_regex(p, i)})" for i, (p, _) in enumerate(entries)]
        self._regex = re.compile(r"(?:" + "|".join(groups) + r")/?\Z")
        index = self._regex.groupindex
        # route group → (name, index of its {model} group or 0, of its {version} group or 0)
        self._by_group = {
            f"r{i}": (name, index.get(f"m{i}", 0), index.get(f"v{i}", 0)) for i, (_, name) in enumerate(entries)
        }
        self._cache: dict[bytes, Match] = {}
        # configured routes are there to be analysed; built-ins only where they carry payloads
        self.inference: frozenset[str] = INFERENCE_ROUTES | {r.name for r in extra}

    def match(self, target: bytes) -> Match:
        """(route template, model segment, version segment) for a target such as b'/v2/models/m/infer?x=1'.

        The segments are None where the template has no {model} / {version}; they are raw client
        text, for the label policy to cap, never label values as they are.
        """
        found = self._cache.get(target)
        if found is not None:
            return found
        path = target.split(b"?", 1)[0]
        if path.startswith(b"http://") or path.startswith(b"https://"):  # absolute-form target
            path = b"/" + path.split(b"/", 3)[-1] if path.count(b"/") >= 3 else b"/"
        m = self._regex.match(path.decode("latin-1"))
        if m and m.lastgroup:
            route, model, version = self._by_group[m.lastgroup]
            found = (route, m.group(model) if model else None, m.group(version) if version else None)
        else:
            found = NO_MATCH
        if len(self._cache) >= _CACHE_MAX:  # bounded: clients choose paths
            self._cache.clear()
        self._cache[target] = found
        return found

    def route(self, target: bytes) -> str:
        """The route template alone."""
        return self.match(target)[0]
