"""Protocol adapters: captured request/response bytes → columnar rows of features and predictions.

ADAPTERS is the one list of auto-detected protocols, most specific body shape first;
`custom.CustomAdapter` is built from config and never auto-detected.
"""

from __future__ import annotations

from typing import Protocol

from exporter.adapters import mlflow, ollama, openai, seldon, tgi, v1, v2
from exporter.adapters.base import (
    ID_HEADER,
    PAYLOAD_ERROR_REASONS,
    Adapter,
    Generation,
    LLMAdapter,
    Message,
    PayloadError,
    Rows,
)
from exporter.adapters.custom import CustomAdapter
from exporter.adapters.encoding import DEFAULT_LIMIT, decode_body
from exporter.jsonpath import JsonPath


class BuiltinAdapter(Adapter, Protocol):
    """A built-in adapter: detection split into route and body-shape checks."""

    def match_route(self, request: Message) -> bool:
        """True if the request path is one of this protocol's routes."""

    def match_body(self, request: Message) -> bool:
        """True if the request body has this protocol's shape (may parse the body)."""


# Order matters for body-shape detection (v1's `instances`/`inputs` is the most generic, TGI's
# string `inputs` more specific) and for routes (Ollama's /api/embeddings before OpenAI's /embeddings).
ADAPTERS: tuple[BuiltinAdapter, ...] = (
    v2.adapter,
    seldon.adapter,
    mlflow.adapter,
    ollama.adapter,
    tgi.adapter,
    openai.adapter,
    v1.adapter,
)
BY_NAME: dict[str, BuiltinAdapter] = {a.name: a for a in ADAPTERS}


def detect(request: Message) -> BuiltinAdapter | None:
    """The adapter for a request: by route first, then by body shape; None if none fits."""
    for adapter in ADAPTERS:
        if adapter.match_route(request):
            return adapter
    for adapter in ADAPTERS:
        if adapter.match_body(request):
            return adapter
    return None


__all__ = [
    "ADAPTERS",
    "BY_NAME",
    "DEFAULT_LIMIT",
    "ID_HEADER",
    "PAYLOAD_ERROR_REASONS",
    "Adapter",
    "BuiltinAdapter",
    "CustomAdapter",
    "Generation",
    "LLMAdapter",
    "JsonPath",
    "Message",
    "PayloadError",
    "Rows",
    "decode_body",
    "detect",
]
