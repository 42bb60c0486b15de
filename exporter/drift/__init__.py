"""Drift of live traffic from the baseline: statistics over bin counts, methods, and their thresholds."""

from exporter.drift.methods import DEFAULT_METHOD, METHODS, Method, Reference, Score, effective_rows, score
from exporter.drift.thresholds import DEFAULT_ALPHA, CriticalValues, critical_value

__all__ = ["DEFAULT_ALPHA", "DEFAULT_METHOD", "METHODS", "CriticalValues", "Method", "Reference", "Score",
           "critical_value", "effective_rows", "score"]
