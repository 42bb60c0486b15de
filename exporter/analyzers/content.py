"""Counts of what the payloads held: rows, prediction rows, payload errors (LLM tokens: analyzers/llm.py)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from exporter.adapters import PAYLOAD_ERROR_REASONS
from exporter.events import Extraction
from exporter.metrics.definitions import family

SIDES = ("request", "response")


class ContentStats:
    """Counters keyed by (model, version): the labels the proxy's label policy decided per exchange."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()  # label pairs of the exchanges counted (capped by the policy)
        self.rows: dict[tuple[str, str], int] = {}
        self.prediction_rows: dict[tuple[str, str], int] = {}
        self.errors: dict[tuple[str, str, str, str], int] = {}

    def update(self, ex: Extraction) -> None:
        mv = (ex.model, ex.version)
        self.seen.add(mv)
        if ex.features is not None:
            self.rows[mv] = self.rows.get(mv, 0) + ex.features.n
        if ex.predictions is not None:
            self.prediction_rows[mv] = self.prediction_rows.get(mv, 0) + ex.predictions.n
        for side, reason in ex.errors:
            error_key = (*mv, side, reason)
            self.errors[error_key] = self.errors.get(error_key, 0) + 1

    def collect(self, model: str, version: str) -> Iterator[Metric]:
        """The families; every label pair counted so far gets all its series (at 0 where nothing
        happened), and (model, version), the labels without an exchange, stands in before any."""
        pairs = sorted(
            self.seen | self.rows.keys() | self.prediction_rows.keys() | {(mdl, ver) for mdl, ver, _, _ in self.errors}
        ) or [(model, version)]
        for name, table in (("model_rows_total", self.rows), ("model_prediction_rows_total", self.prediction_rows)):
            counter = family(name)
            for mv in pairs:
                counter.add_metric(list(mv), table.get(mv, 0))
            yield counter
        errors = family("model_payload_errors_total")
        for mdl, ver in pairs:
            for side in SIDES:
                for reason in PAYLOAD_ERROR_REASONS:
                    errors.add_metric([side, reason, mdl, ver], self.errors.get((mdl, ver, side, reason), 0))
        yield errors
