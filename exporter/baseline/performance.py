"""The model's reference performance on the training data, by the same definitions the windows use.

Classification (a categorical label): accuracy; precision, recall and F1 of the positive class
when the data has at most two classes and one of them is the positive class, else their macro
averages over the classes present; and, with a score column (a numeric prediction within
[0, 1]), ROC AUC from scores binned to 0.001, the log-loss, and the expected calibration error
(ECE, 10 bins) that decides whether performance may be estimated before labels arrive. Regression (a numeric label): MAE, RMSE
and MAPE (over labels that are not 0). `analyzers/performance.py` scores its windows with the
same functions, so a window on the training data equals the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from exporter.baseline.binning import Values, as_floats, category_key

SCORE_BINS = 1000  # ROC AUC from scores binned to 0.001: off by at most the share of tied pairs in a bin
EPS = 1e-15  # log-loss clips probabilities to [EPS, 1 − EPS]


def negative_class(positive: str) -> str:
    """The other class of a binary model whose classes come from a score."""
    return {"1": "0", "true": "false", "yes": "no"}.get(positive, "__negative__")


def calibration_error(positives: np.ndarray, negatives: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of a binary score from its histograms by label (SCORE_BINS fine bins).

    ECE = Σ_b (n_b / N) · |positive rate in b − mean score in b| over `bins` equal-width score bins
    (Naeini et al. 2015); a fine bin's scores count at its centre.
    """
    fine = positives.size
    centres = (np.arange(fine) + 0.5) / fine
    group = (np.arange(fine) * bins) // fine
    n = np.bincount(group, weights=positives + negatives, minlength=bins)
    pos = np.bincount(group, weights=positives, minlength=bins)
    score_sum = np.bincount(group, weights=(positives + negatives) * centres, minlength=bins)
    total = n.sum()
    if total == 0:
        return 0.0
    seen = n > 0
    return float((np.abs(pos[seen] - score_sum[seen])).sum() / total)


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float | None:
    """ROC AUC from score histograms by label (ties within a bin count one half); None without both labels."""
    n_pos, n_neg = positives.sum(), negatives.sum()
    if n_pos <= 0 or n_neg <= 0:
        return None
    below = np.cumsum(negatives) - negatives  # negatives in lower bins
    return float((positives * (below + 0.5 * negatives)).sum() / (n_pos * n_neg))


def classification_scores(cm: np.ndarray, positive: int | None) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of a confusion matrix (rows: labels, columns: predictions).

    Binary figures of the `positive` class when at most two classes are present and it is one of
    them; else macro averages over the classes present.
    """
    n = cm.sum()
    if n == 0:
        return {}
    out = {"accuracy": float(np.trace(cm) / n)}
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    present = np.flatnonzero((predicted + actual) > 0)
    binary = positive is not None and len(present) <= 2 and (len(present) < 2 or positive in present)
    if binary and positive is not None:
        out["precision"] = float(tp[positive] / predicted[positive]) if predicted[positive] else 0.0
        out["recall"] = float(tp[positive] / actual[positive]) if actual[positive] else 0.0
        denom = predicted[positive] + actual[positive]
        out["f1"] = float(2 * tp[positive] / denom) if denom else 0.0
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(predicted > 0, tp / predicted, 0.0)[present]
            recall = np.where(actual > 0, tp / actual, 0.0)[present]
            f1 = np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0)[present]
        out.update(precision=float(precision.mean()), recall=float(recall.mean()), f1=float(f1.mean()))
    return out


class PerformanceAccumulator:
    """Row-aligned predictions, scores and labels, chunk by chunk; rows missing a side are skipped."""

    def __init__(self, categorical: bool, positive: str = "1") -> None:
        self.categorical = categorical
        self.positive = positive
        self.classes: dict[str, int] = {}
        self.cells: dict[tuple[int, int], int] = {}
        self.pos_hist = np.zeros(SCORE_BINS)
        self.neg_hist = np.zeros(SCORE_BINS)
        self.log_loss = 0.0
        self.scored = 0
        self.rows = 0
        self.abs_sum = 0.0
        self.sq_sum = 0.0
        self.pct_sum = 0.0
        self.pct_rows = 0

    def _index(self, key: str) -> int:
        return self.classes.setdefault(key, len(self.classes))

    def add(self, predictions: Values, labels: Values, scores: Values | None = None) -> None:
        """One chunk: the class (or value) predictions, the labels, and the positive-class scores if any."""
        if not self.categorical:
            self._add_errors(predictions, labels)
            return
        score_arr = _aligned_floats(scores) if scores is not None else None
        for i, (p, y) in enumerate(zip(_keys(predictions), _keys(labels))):
            if p is None or y is None:
                continue
            self.rows += 1
            cell = (self._index(y), self._index(p))
            self.cells[cell] = self.cells.get(cell, 0) + 1
            if score_arr is not None:
                s = float(score_arr[i])
                if not math.isfinite(s):
                    continue
                s = min(max(s, 0.0), 1.0)
                is_pos = y == self.positive
                (self.pos_hist if is_pos else self.neg_hist)[min(int(s * SCORE_BINS), SCORE_BINS - 1)] += 1
                q = min(max(s, EPS), 1 - EPS)
                self.log_loss -= math.log(q if is_pos else 1 - q)
                self.scored += 1

    def _add_errors(self, predictions: Values, labels: Values) -> None:
        p_arr, y_arr = _aligned_floats(predictions), _aligned_floats(labels)
        ok = np.isfinite(p_arr) & np.isfinite(y_arr)
        err = np.abs(p_arr[ok] - y_arr[ok])
        self.rows += int(ok.sum())
        self.abs_sum += float(err.sum())
        self.sq_sum += float((err * err).sum())
        y = y_arr[ok]
        nonzero = y != 0
        self.pct_sum += float((err[nonzero] / np.abs(y[nonzero])).sum())
        self.pct_rows += int(nonzero.sum())

    def result(self) -> dict[str, float]:
        if self.rows == 0:
            return {}
        if not self.categorical:
            out = {"mae": self.abs_sum / self.rows, "rmse": math.sqrt(self.sq_sum / self.rows)}
            if self.pct_rows:
                out["mape"] = self.pct_sum / self.pct_rows
            return out
        k = len(self.classes)
        cm = np.zeros((k, k))
        for (y, p), n in self.cells.items():
            cm[y, p] = n
        out = classification_scores(cm, self.classes.get(self.positive))
        if self.scored:
            auc = roc_auc(self.pos_hist, self.neg_hist)
            if auc is not None:
                out["roc_auc"] = auc
            out["log_loss"] = self.log_loss / self.scored
            out["calibration_error"] = calibration_error(self.pos_hist, self.neg_hist)
        return out


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
