"""The model's reference performance on the training data: accuracy, or MAE and RMSE."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from exporter.baseline.binning import Values, as_floats, category_key


class PerformanceAccumulator:
    """Row-aligned prediction/label pairs, chunk by chunk; rows missing either side are skipped.

    A categorical label gives accuracy (canonical keys compared, so 1, 1.0 and "1" agree);
    a numeric label gives MAE and RMSE.
    """

    def __init__(self, categorical: bool) -> None:
        self.categorical = categorical
        self.rows = 0
        self.hits = 0
        self.abs_sum = 0.0
        self.sq_sum = 0.0

    def add(self, predictions: Values, labels: Values) -> None:
        if self.categorical:
            for p, y in zip(_keys(predictions), _keys(labels)):
                if p is not None and y is not None:
                    self.rows += 1
                    self.hits += p == y
            return
        p_arr, y_arr = _aligned_floats(predictions), _aligned_floats(labels)
        ok = np.isfinite(p_arr) & np.isfinite(y_arr)
        err = p_arr[ok] - y_arr[ok]
        self.rows += int(ok.sum())
        self.abs_sum += float(np.abs(err).sum())
        self.sq_sum += float((err * err).sum())

    def result(self) -> dict[str, float]:
        if self.rows == 0:
            return {}
        if self.categorical:
            return {"accuracy": self.hits / self.rows}
        return {"mae": self.abs_sum / self.rows, "rmse": math.sqrt(self.sq_sum / self.rows)}


def _keys(values: Values) -> list[str | None]:
    out: list[str | None] = []
    for v in values.tolist() if isinstance(values, np.ndarray) else values:
        try:
            out.append(category_key(v))
        except TypeError:
            out.append(None)
    return out


def _aligned_floats(values: Values) -> np.ndarray:
    """One float per row, NaN where the value is missing or not a number."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False).reshape(-1)
    arr = as_floats(values)
    if arr is not None:
        return arr
    items: Sequence[Any] = values.tolist() if isinstance(values, np.ndarray) else values
    out = np.full(len(items), np.nan)
    for i, v in enumerate(items):
        if isinstance(v, (str, int, float, np.number)) and v != "":
            try:
                out[i] = float(v)
            except (ValueError, OverflowError):
                pass
    return out
