"""Realised performance from predictions joined to their labels, over the drift windows.

Classification: a confusion matrix over a capped class set (the baseline's label categories,
else the first `performance.max_classes` classes seen, then "__other__"), plus, for a binary
model with a score column, score histograms by label (ROC AUC) and the log-loss sum.
Regression: sums of absolute, squared, fourth-power and absolute percentage errors.
Every window holds these as a ring of slices, so memory is fixed by the config, and the
cumulative counters aggregate across replicas (prometheus/rules/performance.yml).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

from exporter.adapters import Rows
from exporter.analyzers.segments import Segments
from exporter.baseline.binning import category_key
from exporter.baseline.format import Baseline, CategoricalColumn, NumericColumn
from exporter.baseline.performance import (
    EPS,
    SCORE_BINS,
    calibration_error,
    classification_scores,
    negative_class,
    roc_auc,
)
from exporter.config import Config
from exporter.drift.methods import DETECTORS, METHODS, Reference, check_method, score
from exporter.drift.thresholds import CriticalValues
from exporter.drift.windows import SlidingCounts, parse_windows
from exporter.metrics.families import Sample

OTHER_CLASS = "__other__"
HIGHER_IS_BETTER = ("accuracy", "precision", "recall", "f1", "roc_auc")
LOWER_IS_BETTER = ("mae", "rmse", "mape", "log_loss", "calibration_error")


class Prediction(NamedTuple):
    """What the join remembers of one prediction row."""

    value: str | float | None  # class key (classification) or number (regression); None: no usable value
    score: float | None  # binary: the positive-class score, if configured
    segments: tuple[int, ...] = ()  # per performance.segments column, its segment (analyzers/segments.py)


def _float(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _key(v: Any) -> str | None:
    try:
        return category_key(v)
    except TypeError:
        return None


def _list(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def _window(width: float, slices: int, size: int) -> SlidingCounts:
    """A SlidingCounts of floats (error sums are not integers)."""
    window = SlidingCounts(width, slices, size)
    window.ring = window.ring.astype(np.float64)
    window.total = window.total.astype(np.float64)
    return window


def _categorical(method: str) -> bool:
    try:
        check_method(method, "categorical")
    except ValueError:
        return False
    return True


class Performance:
    """Scores joined (prediction, label) pairs; windows and counters carry over a reload when shapes agree."""

    def __init__(self, config: Config, baseline: Baseline | None, previous: Performance | None = None) -> None:
        perf = config.performance
        self.config = perf
        self.reference: Mapping[str, float] = dict(baseline.performance) if baseline is not None else {}
        predictions = [c for c in baseline.columns if c.role == "prediction"] if baseline else []
        label_col = next((c for c in baseline.columns if c.role == "label"), None) if baseline else None
        task = perf.task
        if task == "auto":
            numeric_label = label_col is not None and not isinstance(label_col, CategoricalColumn)
            task = "regression" if numeric_label else "classification"
        self.task = task
        # unconfigured columns come from the baseline: the prediction column of the task's type
        # first (a class for classification), and for a classifier a numeric output within
        # [0, 1] as its score (ROC AUC, log-loss)
        categorical_first = task == "classification"
        predictions.sort(key=lambda c: isinstance(c, CategoricalColumn) != categorical_first)
        self.baseline_predictions = [c.name for c in predictions]
        self.score = perf.score
        if self.score is None and perf.prediction is None and task == "classification":
            self.score = next(
                (
                    c.name
                    for c in predictions
                    if isinstance(c, NumericColumn)
                    and 0 <= c.min
                    and c.max <= 1
                    and c.name != self.baseline_predictions[0]
                ),
                None,
            )
        self.scored_mode = perf.score is not None and perf.prediction is None  # classes from score ≥ threshold
        if self.scored_mode:
            self.classes = [negative_class(perf.positive), perf.positive]
            self.fixed = True
        elif isinstance(label_col, CategoricalColumn):
            self.classes = [str(c) for c in label_col.categories][: perf.max_classes]
            self.fixed = True
        else:
            self.classes = []
            self.fixed = False
        k = perf.max_classes + 1
        self.k = k
        # classification: confusion cells, score histograms by label, log-loss sum and count, then
        # per predicted class the sum and the count of outcome values (business KPIs)
        self.value_offset = k * k + 2 * SCORE_BINS + 2
        self.size = self.value_offset + 2 * k if task == "classification" else 6
        specs = parse_windows(dict(config.drift.windows))
        self.windows = {name: _window(width, slices, self.size) for name, (width, slices) in specs.items()}
        self.cumulative = np.zeros(self.size, dtype=np.float64)
        # expected confusion cells of every scored prediction, labelled or not (CBPE): n, tp, fp, fn, tn
        self.expected = {name: _window(width, slices, 5) for name, (width, slices) in specs.items()}
        self.z = NormalDist().inv_cdf(1 - perf.false_alarm_rate)
        self.segments: Segments = Segments(config, baseline, previous.segments if previous is not None else None)
        # label drift (prior shift): the labels' class distribution in a window against the
        # baseline label column's, through the drift engine (its default methods and decision)
        self.drift = config.drift
        self.label_column: CategoricalColumn | None = None
        if isinstance(label_col, CategoricalColumn) and task == "classification" and not self.scored_mode:
            self.label_column = label_col
            self.label_ref = Reference.from_column(label_col)
            methods = tuple(m for m in config.drift.categorical_methods if _categorical(m))
            self.label_methods = (
                *methods,
                *(() if DETECTORS["categorical"] in methods else (DETECTORS["categorical"],)),
            )
            other = len(label_col.categories)  # the baseline's "other" bin
            lookup = {str(c): i for i, c in enumerate(label_col.categories)}
            # class index → baseline bin (classes past the baseline's, and __other__, in its "other")
            self.label_bins = np.array(
                [lookup.get(self.classes[i], other) if i < len(self.classes) else other for i in range(self.k)],
                dtype=np.intp,
            )
        if (
            previous is not None
            and previous.task == task
            and previous.size == self.size
            and (previous.classes == self.classes or not self.fixed)
        ):
            self.classes = previous.classes if not self.fixed else self.classes
            self.cumulative = previous.cumulative
            for name, window in self.windows.items():
                old = previous.windows.get(name)
                if old is not None and old.width == window.width:
                    self.windows[name] = old
            for name, window in self.expected.items():
                old = previous.expected.get(name)
                if old is not None and old.width == window.width:
                    self.expected[name] = old
        self._indices = {c: i for i, c in enumerate(self.classes)}

    # ------------------------------------------------------------ predictions

    def read(self, rows: Rows, features: Rows | None = None) -> list[Prediction]:
        """One Prediction per row of a response (with its segments, from the request's feature rows)."""
        perf = self.config
        name = perf.prediction
        if name is None and not self.scored_mode:
            if len(rows.columns) == 1:
                name = next(iter(rows.columns))
            else:
                name = next((c for c in self.baseline_predictions if c in rows.columns), None)
                name = name or next(iter(rows.columns), None)
        values = _list(rows.columns.get(name, ()) if name is not None else ())
        scores = _list(rows.columns.get(self.score, ()) if self.score is not None else ())
        out = []
        regression = self.task == "regression"
        for i in range(rows.n):
            score = _float(scores[i]) if i < len(scores) else None
            value: str | float | None
            if self.scored_mode:
                value = None if score is None else perf.positive if score >= perf.threshold else self.classes[0]
            elif i >= len(values):
                value = None
            else:
                value = _float(values[i]) if regression else _key(values[i])
            out.append(Prediction(value, score))
        if self.segments.columns:
            out = [p._replace(segments=k) for p, k in zip(out, self.segments.keys(features, rows.n))]
        return out

    def observe(self, predictions: Sequence[Prediction], now: float) -> None:
        """Count the expected confusion cells of scored predictions as they are made (before any label).

        With a calibrated score s, a row predicted positive is a true positive with probability s
        and a false positive with 1 − s; one predicted negative a false negative with s and a true
        negative with 1 − s (NannyML's confidence-based performance estimation, CBPE).
        """
        if self.task != "classification":
            return
        positive = self.config.positive
        tp = fp = fn = tn = 0.0
        n = 0
        for pred in predictions:
            s = pred.score
            if s is None or pred.value is None:
                continue
            s = min(max(s, 0.0), 1.0)
            if pred.value == positive:
                tp += s
                fp += 1 - s
            else:
                fn += s
                tn += 1 - s
            n += 1
        if n:
            vector = np.array([n, tp, fp, fn, tn], dtype=np.float64)
            for window in self.expected.values():
                window.add(now, vector)

    def calibrated(self) -> bool:
        """Whether the scores are calibrated enough to estimate from: the baseline file's calibration_error
        when it has one, else the one measured on every label joined so far (at least min_labels)."""
        limit = self.config.max_calibration_error
        recorded = self.reference.get("calibration_error")
        if recorded is not None:
            return recorded <= limit
        if self.task != "classification":
            return False
        base = self.k * self.k
        pos = self.cumulative[base : base + SCORE_BINS]
        neg = self.cumulative[base + SCORE_BINS : base + 2 * SCORE_BINS]
        if pos.sum() + neg.sum() < self.config.min_labels or pos.sum() == 0 or neg.sum() == 0:
            return False
        return calibration_error(pos, neg) <= limit

    # ------------------------------------------------------------ labels

    def _class(self, key: str) -> int:
        found = self._indices.get(key)
        if found is not None:
            return found
        if not self.fixed and len(self.classes) < self.config.max_classes:
            self.classes.append(key)
            self._indices[key] = len(self.classes) - 1
            return len(self.classes) - 1
        return self.k - 1

    def add(
        self, pairs: Sequence[tuple[Prediction, Any]], now: float, values: Sequence[float | None] | None = None
    ) -> int:
        """Score joined (prediction, label) pairs at `now`, with their outcome values; returns how many were scored."""
        vector = np.zeros(self.size, dtype=np.float64)
        scored = 0
        if self.task == "regression":
            for pred, label in pairs:
                y = _float(label)
                if y is None or not isinstance(pred.value, float):
                    continue
                e = abs(pred.value - y)
                vector[:4] += (1.0, e, e * e, e**4)
                if y != 0:
                    vector[4] += e / abs(y)
                    vector[5] += 1
                scored += 1
        else:
            k = self.k
            base = k * k
            positive = self.config.positive
            cells: list[int] = []  # indices into the vector: bincount once, not one numpy write per label
            log_loss, n_scores = 0.0, 0
            index = self._class
            value_sums = [0.0] * k
            by_segment: list[tuple[tuple[int, ...], bool, bool]] = []
            for i, (pred, label) in enumerate(pairs):
                key = _key(label)
                predicted = pred.value
                if key is None or not isinstance(predicted, str):
                    continue
                if self.scored_mode and key != positive:
                    key = self.classes[0]
                column = index(predicted)
                cells.append(index(key) * k + column)
                if pred.segments:
                    by_segment.append((pred.segments, key == positive, predicted == positive))
                value = values[i] if values is not None else None
                if value is not None:
                    value_sums[column] += value
                    cells.append(self.value_offset + k + column)
                if pred.score is not None:
                    s = min(max(pred.score, 0.0), 1.0)
                    is_pos = key == positive
                    cells.append(base + (0 if is_pos else SCORE_BINS) + min(int(s * SCORE_BINS), SCORE_BINS - 1))
                    p = min(max(s, EPS), 1 - EPS)
                    log_loss -= math.log(p if is_pos else 1 - p)
                    n_scores += 1
            n_values = sum(1 for c in cells if c >= self.value_offset)
            scored = len(cells) - n_scores - n_values
            vector += np.bincount(cells, minlength=self.size)[: self.size]
            vector[base + 2 * SCORE_BINS] = log_loss
            vector[base + 2 * SCORE_BINS + 1] = n_scores
            vector[self.value_offset : self.value_offset + k] = value_sums
            self.segments.add(by_segment, now)
        if scored:
            self.cumulative += vector
            for window in self.windows.values():
                window.add(now, vector)
        return scored

    # ------------------------------------------------------------ scores

    def scores(self, v: np.ndarray) -> tuple[int, dict[str, float], dict[str, float]]:
        """(labels, metric → value, metric → effective sample size for its noise margin) of a vector."""
        if self.task == "regression":
            n = int(v[0])
            if n == 0:
                return 0, {}, {}
            errors = {"mae": float(v[1] / n), "rmse": math.sqrt(v[2] / n)}
            if v[5] > 0:
                errors["mape"] = float(v[4] / v[5])
            return n, errors, {"mae": n, "rmse": n}
        k = self.k
        cm = v[: k * k].reshape(k, k)
        n = int(cm.sum())
        if n == 0:
            return 0, {}, {}
        pos = self._index(self.config.positive)
        out = classification_scores(cm, pos)  # the baseline's definitions (baseline/performance.py)
        sizes: dict[str, float] = {"accuracy": n}
        predicted = cm.sum(axis=0)
        actual = cm.sum(axis=1)
        present = np.flatnonzero((predicted + actual) > 0)
        if pos is not None and len(present) <= 2 and (len(present) < 2 or pos in present):  # binary figures
            sizes.update(precision=predicted[pos], recall=actual[pos], f1=(predicted[pos] + actual[pos]) / 2)
        base = k * k
        pos_hist = v[base : base + SCORE_BINS]
        neg_hist = v[base + SCORE_BINS : base + 2 * SCORE_BINS]
        auc = roc_auc(pos_hist, neg_hist)
        if auc is not None:
            out["roc_auc"] = auc
            sizes["roc_auc"] = min(pos_hist.sum(), neg_hist.sum())
        if v[base + 2 * SCORE_BINS + 1] > 0:
            out["log_loss"] = float(v[base + 2 * SCORE_BINS] / v[base + 2 * SCORE_BINS + 1])
            out["calibration_error"] = calibration_error(pos_hist, neg_hist)
        return n, out, sizes

    def _index(self, key: str) -> int | None:
        return self.classes.index(key) if key in self.classes else None

    def threshold(self, metric: str, n: float, v: np.ndarray) -> float | None:
        """The alarm threshold of a window's metric: the baseline, less the noise at `n` labels or the tolerance.

        Proportions (accuracy, precision, recall, F1, ROC AUC) use the binomial standard error
        sqrt(b(1 − b)/n) of the baseline value b; MAE and RMSE the window's own spread of errors
        (delta method for RMSE). The margin is z·SE at performance.false_alarm_rate, at least
        performance.tolerance (for errors: that fraction of the baseline).
        """
        b = self.reference.get(metric)
        if b is None or n <= 0:
            return None
        tol = self.config.tolerance
        if metric in HIGHER_IS_BETTER:
            b = min(max(b, 0.0), 1.0)
            return b - max(tol, self.z * math.sqrt(b * (1 - b) / n))
        if self.task == "regression" and metric in ("mae", "rmse"):
            count, abs_sum, sq_sum, q_sum = v[0], v[1], v[2], v[3]
            if metric == "mae":
                var = max(sq_sum / count - (abs_sum / count) ** 2, 0.0)
                se = math.sqrt(var / count)
            else:
                mse = sq_sum / count
                var = max(q_sum / count - mse * mse, 0.0)
                se = math.sqrt(var / count) / (2 * math.sqrt(mse)) if mse > 0 else 0.0
            return b + max(tol * b, self.z * se)
        return None

    def label_drift(
        self, v: np.ndarray, window: str, mv: list[str], critical: CriticalValues | None
    ) -> Iterator[Sample]:
        """model_drift_score / _threshold / _detected with role="label" for a window's labels."""
        col = self.label_column
        if col is None:
            return
        k = self.k
        actual = v[: k * k].reshape(k, k).sum(axis=1)
        fine = np.bincount(self.label_bins, weights=actual, minlength=len(self.label_ref.fine))
        n = int(fine.sum())
        for method in self.label_methods:
            labels = ["label", col.name, method, window, *mv]
            practical = METHODS[method].threshold
            threshold = (
                critical.threshold(method, self.label_ref, n, self.drift.false_alarm_rate, practical)
                if critical is not None and n
                else practical
            )
            yield "model_drift_threshold", labels, threshold
            if n < self.drift.min_rows:
                continue
            value = float(score(method, self.label_ref, fine).value)
            yield "model_drift_score", labels, value
            if method == DETECTORS["categorical"]:
                yield "model_drift_detected", labels, int(value > threshold)

    def samples(self, now: float, mv: list[str], critical: CriticalValues | None = None) -> Iterator[Sample]:
        for metric, value in sorted(self.reference.items()):
            yield "model_performance_baseline", [metric, *mv], float(value)
        for name, window in self.windows.items():
            v = window.read(now).copy()
            n, scores, sizes = self.scores(v)
            yield "model_window_labels", [name, *mv], float(n)
            if n < self.config.min_labels:
                continue
            for metric, value in scores.items():
                yield "model_performance_score", [metric, name, *mv], value
                threshold = self.threshold(metric, sizes.get(metric, 0), v)
                if threshold is not None:
                    yield "model_performance_threshold", [metric, name, *mv], threshold
            if self.task == "classification":
                yield from self._kpi_window(v, name, mv)
                yield from self.label_drift(v, name, mv, critical)
        if self.task == "classification" and self.calibrated():
            for name, window in self.expected.items():
                n, tp, fp, fn, tn = window.read(now).tolist()
                if n < self.config.min_labels:
                    continue
                estimates = {
                    "accuracy": (tp + tn) / n,
                    "precision": tp / (tp + fp) if tp + fp else 0.0,
                    "recall": tp / (tp + fn) if tp + fn else 0.0,
                    "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
                }
                for metric, value in estimates.items():
                    yield "model_performance_estimated", [metric, name, *mv], value
        if self.task == "classification":
            yield from self.segments.samples(now, mv)
        c = self.cumulative
        if self.task == "regression":
            yield "model_performance_labels_scored_total", mv, float(c[0])
            yield "model_performance_absolute_error_total", mv, float(c[1])
            yield "model_performance_squared_error_total", mv, float(c[2])
            return
        k = self.k
        cm = c[: k * k].reshape(k, k)
        yield "model_performance_labels_scored_total", mv, float(cm.sum())
        for index, cls in self._class_names():
            tp = cm[index, index]
            yield "model_performance_class_total", [cls, "tp", *mv], float(tp)
            yield "model_performance_class_total", [cls, "fp", *mv], float(cm[:, index].sum() - tp)
            yield "model_performance_class_total", [cls, "fn", *mv], float(cm[index, :].sum() - tp)
        pos = self._index(self.config.positive)
        for index, cls in self._class_names():
            yield "model_outcome_positive_total", [cls, *mv], float(cm[pos, index]) if pos is not None else 0.0
            yield "model_outcome_value_total", [cls, *mv], float(c[self.value_offset + index])
            yield "model_outcome_values_total", [cls, *mv], float(c[self.value_offset + k + index])

    def _class_names(self) -> list[tuple[int, str]]:
        return [*enumerate(self.classes), (self.k - 1, OTHER_CLASS)]

    def _kpi_window(self, v: np.ndarray, window: str, mv: list[str]) -> Iterator[Sample]:
        """Per predicted class: the share of positive outcomes and the mean outcome value in the window."""
        k = self.k
        cm = v[: k * k].reshape(k, k)
        predicted = cm.sum(axis=0)
        pos = self._index(self.config.positive)
        for index, cls in self._class_names():
            if predicted[index] > 0 and pos is not None:
                yield "model_outcome_rate", [cls, window, *mv], float(cm[pos, index] / predicted[index])
            count = v[self.value_offset + k + index]
            if count > 0:
                yield "model_outcome_value_mean", [cls, window, *mv], float(v[self.value_offset + index] / count)
