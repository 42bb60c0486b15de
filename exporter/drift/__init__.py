"""Drift: statistics over binned counts, the methods and thresholds built on them, and the windows feeding them."""

from exporter.drift.methods import DEFAULT_METHOD, DETECTORS, METHODS, Method, Reference, Score, effective_rows, score
from exporter.drift.thresholds import DEFAULT_ALPHA, CriticalValues, critical_value

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_METHOD",
    "DETECTORS",
    "METHODS",
    "CriticalValues",
    "Method",
    "Reference",
    "Score",
    "critical_value",
    "effective_rows",
    "score",
]
