"""Data quality and schema signals of the column monitor, on hand-made rows with exact counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from columns_support import (
    Scrape,
    baseline,
    categorical,
    config,
    critical_values,
    ex,
    features,
    numeric,
    rows,
    small_baseline,
)

from exporter.analyzers.columns import ColumnMonitor

NAN = math.nan
INF = math.inf


def monitor(**kw: object) -> ColumnMonitor:
    return ColumnMonitor(small_baseline(), config(**kw), critical=critical_values())  # type: ignore[arg-type]


def quality(s: Scrape, column: str, role: str = "feature") -> dict[str, float | None]:
    """Every quality counter of one column."""
    lab = {"role": role, "column": column}
    return {
        "values": s.value("model_column_values_total", **lab),
        "missing": s.value("model_column_missing_total", **lab),
        "low": s.value("model_column_out_of_range_total", **lab, side="low"),
        "high": s.value("model_column_out_of_range_total", **lab, side="high"),
        "type_errors": s.value("model_column_type_errors_total", **lab),
        "unseen": s.value("model_column_unseen_total", **lab),
    }


def schema(s: Scrape) -> dict[str, float | None]:
    return {kind: s.value("model_schema_errors_total", kind=kind)
            for kind in ("missing_column", "unexpected_column", "column_count", "datatype")}


NO_SCHEMA_ERRORS = {"missing_column": 0, "unexpected_column": 0, "column_count": 0, "datatype": 0}


# ---------------------------------------------------------------- missing values


@pytest.mark.parametrize("as_array", [False, True])
def test_missing_none_nan_and_empty_string(as_array: bool) -> None:
    m = monitor()
    x = np.array([1.0, NAN, NAN, 3.0]) if as_array else [1.0, None, NAN, 3.0]
    c = np.array(["a", "", "b", "a"]) if as_array else ["a", "", None, "b"]
    m.update([ex(features(4, x=x, c=c))], 0.0)
    s = Scrape(m, 0.0)
    assert quality(s, "x") == {"values": 4, "missing": 2, "low": 0, "high": 0, "type_errors": 0, "unseen": None}
    assert quality(s, "c")["missing"] == (1 if as_array else 2)
    assert quality(s, "z")["missing"] == 0
    assert schema(s) == NO_SCHEMA_ERRORS


def test_empty_string_in_numeric_column_is_missing() -> None:
    m = monitor()
    m.update([ex(features(3, x=["", 2.0, ""]))], 0.0)
    assert quality(Scrape(m, 0.0), "x")["missing"] == 2


def test_absent_column_is_missing_for_every_row_and_one_schema_error_per_payload() -> None:
    m = monitor()
    m.update([ex(features(3, z=None)), ex(features(2, z=None)), ex(features(4))], 0.0)
    s = Scrape(m, 0.0)
    assert quality(s, "z") == {"values": 9, "missing": 5, "low": 0, "high": 0, "type_errors": 0, "unseen": None}
    assert quality(s, "x")["missing"] == 0
    assert schema(s) == {**NO_SCHEMA_ERRORS, "missing_column": 2}
    # two columns absent from one payload: still one payload with a missing column
    m.update([ex(features(1, z=None, c=None))], 1.0)
    assert schema(Scrape(m, 1.0))["missing_column"] == 3


# ---------------------------------------------------------------- range


@pytest.mark.parametrize("as_array", [False, True])
def test_out_of_range_against_the_baseline_min_and_max(as_array: bool) -> None:
    values = [-0.5, 0.0, 5.0, 10.0, 10.5, 11.0, -3.0]  # baseline range is [0, 10]: the ends are inside
    m = monitor()
    m.update([ex(features(7, x=np.array(values) if as_array else values))], 0.0)
    q = quality(Scrape(m, 0.0), "x")
    assert (q["low"], q["high"], q["missing"], q["type_errors"]) == (2, 2, 0, 0)


def test_range_tolerance_widens_the_range_by_a_fraction_of_it() -> None:
    m = monitor(tolerance=0.1)  # range 10 → 1 each side: [-1, 11]
    m.update([ex(features(6, x=[-0.5, -1.0, -1.5, 10.5, 11.0, 11.5]))], 0.0)
    q = quality(Scrape(m, 0.0), "x")
    assert (q["low"], q["high"]) == (1, 1)


def test_explicit_bounds_replace_the_baseline_range() -> None:
    m = monitor(bounds={"x": (2.0, 8.0)}, tolerance=0.5)  # tolerance applies to the baseline range only
    m.update([ex(features(7, x=[1.0, 2.0, 5.0, 8.0, 9.0, -1.0, 20.0], z=[-1.0] * 7))], 0.0)
    s = Scrape(m, 0.0)
    q = quality(s, "x")
    assert (q["low"], q["high"]) == (2, 2)
    assert quality(s, "z")["low"] == 0  # -1 within z's baseline range widened by 50 %


def test_a_one_sided_bound_keeps_the_baseline_range_on_the_other_side() -> None:
    m = monitor(bounds={"x": (None, 5.0)})  # baseline range of x is [0, 10]
    m.update([ex(features(4, x=[-3.0, 1.0, 6.0, 12.0]))], 0.0)
    q = quality(Scrape(m, 0.0), "x")
    assert (q["low"], q["high"]) == (1, 2)


def test_out_of_range_values_are_still_binned() -> None:
    m = monitor()
    m.update([ex(features(3, x=[-5.0, 50.0, 3.0]))], 0.0)
    assert Scrape(m, 0.0).sum("model_column_bin_total", column="x") == 3


# ---------------------------------------------------------------- categories


def test_unseen_categories_are_counted_and_never_a_label() -> None:
    m = monitor()
    c = ["a", "b", "zebra-secret", "zebra-secret", 7, None, "b"]
    m.update([ex(features(7, c=c)), ex(features(2, c=np.array(["a", "quokka-secret"])))], 0.0)
    s = Scrape(m, 0.0)
    q = quality(s, "c")
    assert (q["values"], q["unseen"], q["missing"], q["type_errors"]) == (9, 4, 1, 0)
    assert s.value("model_column_bin_total", role="feature", column="c", bin="__other__") == 4
    assert s.value("model_column_bin_total", role="feature", column="c", bin="a") == 2
    assert s.value("model_column_bin_total", role="feature", column="c", bin="b") == 2
    assert not any("secret" in v or v == "7" for v in s.all_label_values())


def test_numbers_match_categories_by_canonical_spelling() -> None:
    b = baseline(numeric("x"), numeric("z"), categorical("c", categories=("1", "2.5", "true"), counts=(40, 30, 20)))
    m = ColumnMonitor(b, config(), critical=critical_values())
    m.update([ex(features(7, c=[1, 1.0, "1.0", 2.5, True, "TRUE", "yes"]))], 0.0)
    q = quality(Scrape(m, 0.0), "c")
    assert (q["unseen"], q["type_errors"]) == (1, 0)  # only "yes" is not a known category ("TRUE" is true)


# ---------------------------------------------------------------- types


def test_type_errors_word_nested_and_non_finite() -> None:
    m = monitor()
    x = ["word", [1.0, 2.0], {"k": 1}, INF, -INF, 3.0, "4.5", True]
    c = ["a", ["a"], {"k": "a"}, INF, "b", 2, False, "a"]
    m.update([ex(features(8, x=x, c=c))], 0.0)
    s = Scrape(m, 0.0)
    assert quality(s, "x") == {"values": 8, "missing": 0, "low": 0, "high": 0, "type_errors": 5, "unseen": None}
    qc = quality(s, "c")
    assert (qc["type_errors"], qc["unseen"], qc["missing"]) == (3, 2, 0)
    assert s.sum("model_column_bin_total", column="x") == 3  # 3.0, "4.5", True (as 1)


def test_type_errors_in_numpy_arrays() -> None:
    m = monitor()
    m.update([ex(features(4, x=np.array([1.0, np.inf, np.nan, -np.inf], dtype=np.float32)))], 0.0)
    q = quality(Scrape(m, 0.0), "x")
    assert (q["type_errors"], q["missing"]) == (2, 1)


# ---------------------------------------------------------------- schema


def test_unexpected_extra_column_is_counted_without_a_label() -> None:
    m = monitor()
    m.update([ex(features(2, extra_secret_col=[1, 2])), ex(features(1, another=["?"], more=[0])), ex(features(3))], 0.0)
    s = Scrape(m, 0.0)
    assert schema(s) == {**NO_SCHEMA_ERRORS, "unexpected_column": 2}
    assert s.label_values("column") == {"x", "z", "c", "y"}
    assert not any("secret" in v or v in ("another", "more") for v in s.all_label_values())
    assert quality(s, "x")["values"] == 6


def test_positional_payload_maps_columns_by_order() -> None:
    m = monitor()
    cols = {"x0": [-1.0, 2.0], "x1": [20.0, 6.0], "x2": ["b", "zz"]}  # baseline order: x, z, c
    m.update([ex(rows(cols, positional=True))], 0.0)
    s = Scrape(m, 0.0)
    assert schema(s) == NO_SCHEMA_ERRORS
    assert quality(s, "x")["low"] == 1
    assert quality(s, "z")["high"] == 1
    assert quality(s, "c")["unseen"] == 1
    assert s.label_values("column") == {"x", "z", "c", "y"}


def test_positional_column_count_mismatch() -> None:
    m = monitor()
    short = rows({"x0": [1.0, 2.0, 3.0], "x1": [5.0, 5.0, 5.0]}, positional=True)
    long = rows({f"x{i}": [1.0] for i in range(4)}, positional=True)
    m.update([ex(short), ex(long)], 0.0)
    s = Scrape(m, 0.0)
    assert schema(s) == {**NO_SCHEMA_ERRORS, "column_count": 2}
    assert quality(s, "c")["missing"] == 3  # short payload lacked the third column
    assert quality(s, "c")["type_errors"] == 0  # the long payload's 3rd column is 1.0 → category "1", unseen
    assert quality(s, "c")["unseen"] == 1
    assert quality(s, "x")["values"] == 4


def test_v2_bytes_datatype_for_a_numeric_column() -> None:
    m = monitor()
    bad = rows({"x": ["1.5", "2"], "z": [b"x", b"y"], "c": ["a", "b"]}, datatypes={"x": "BYTES", "z": "BYTES", "c": "BYTES"})
    good = rows({"x": np.array([1.5], np.float32), "z": np.array([2], np.int64), "c": ["a"]},
                datatypes={"x": "FP32", "z": "INT64", "c": "BYTES"})
    m.update([ex(bad), ex(good)], 0.0)
    s = Scrape(m, 0.0)
    assert schema(s) == {**NO_SCHEMA_ERRORS, "datatype": 1}  # once per payload, two columns mismatched
    assert quality(s, "x")["type_errors"] == 0  # the strings still parse as numbers
    assert quality(s, "z")["type_errors"] == 2  # bytes are not numbers


# ---------------------------------------------------------------- predictions


def test_single_prediction_maps_by_position_whatever_its_name() -> None:
    m = monitor()
    m.update([ex(features(3), rows({"output-0": [0.2, 0.7, 1.5]}))], 0.0)
    s = Scrape(m, 0.0)
    assert quality(s, "y", "prediction") == {"values": 3, "missing": 0, "low": 0, "high": 1, "type_errors": 0,
                                              "unseen": None}
    assert s.value("model_column_bin_total", role="prediction", column="y", bin="[0, 0.5)") == 1
    assert s.value("model_column_bin_total", role="prediction", column="y", bin="[0.5, 1]") == 1
    assert s.value("model_column_bin_total", role="prediction", column="y", bin="above") == 1
    assert schema(s) == NO_SCHEMA_ERRORS


def test_predictions_without_the_baseline_column_are_missing_not_schema_errors() -> None:
    m = monitor()
    m.update([ex(features(2), rows({"label": ["a", "b"], "score": [0.1, 0.2]}))], 0.0)
    s = Scrape(m, 0.0)
    assert quality(s, "y", "prediction")["missing"] == 2
    assert schema(s) == NO_SCHEMA_ERRORS
    assert s.value("model_window_rows", window="5m") == 2  # rows are counted on the feature side


# ---------------------------------------------------------------- bins


def test_bin_totals_sum_to_the_valid_values() -> None:
    m = monitor()
    x = [1.0, None, "w", 3.0, 7.0, 9.0, 12.0, -1.0]
    c = ["a", "b", "zz", None, [1], "a", "", "b"]
    m.update([ex(features(8, x=x, c=c)), ex(features(5, x=np.arange(5.0), c=np.array(list("ababa"))))], 0.0)
    s = Scrape(m, 0.0)
    for column in ("x", "c"):
        q = quality(s, column)
        valid = q["values"] - q["missing"] - q["type_errors"]  # type: ignore[operator]
        assert s.sum("model_column_bin_total", column=column) == valid
    assert s.sum("model_column_bin_total", column="x") == 6 + 5


def test_baseline_ratio_sums_to_one_per_column_and_matches_the_baseline() -> None:
    s = Scrape(monitor(), 0.0)
    for column in ("x", "z", "c", "y"):
        assert s.sum("model_column_baseline_ratio", column=column) == pytest.approx(1.0)
    assert s.value("model_column_baseline_ratio", role="feature", column="c", bin="a") == pytest.approx(0.6)
    assert s.value("model_column_baseline_ratio", role="feature", column="c", bin="__other__") == pytest.approx(0.1)
    assert s.value("model_column_baseline_ratio", role="feature", column="x", bin="[2.5, 5)") == pytest.approx(0.25)


def test_every_series_exists_before_any_traffic() -> None:
    s = Scrape(monitor(), 0.0)
    assert s.value("model_window_rows", window="5m") == 0
    assert s.value("model_window_rows", window="1h") == 0
    assert schema(s) == NO_SCHEMA_ERRORS
    assert quality(s, "c") == {"values": 0, "missing": 0, "low": 0, "high": 0, "type_errors": 0, "unseen": 0}
    assert s.samples("model_drift_score") == []
    assert s.value("model_baseline_info", sha256="f" * 64, created="2024-05-01T12:00:00Z") == 1


def test_arrays_of_different_kinds_in_one_batch_keep_their_values() -> None:
    b = baseline(numeric("x"), numeric("z"), categorical("c", categories=("true", "1.5"), counts=(50, 40)))
    together = ColumnMonitor(b, config(), critical=critical_values())
    apart = ColumnMonitor(b, config(), critical=critical_values())
    payloads = [features(2, c=np.array([True, True])), features(2, c=np.array([1.5, 2.0])),
                features(1, c=np.array(["true"]))]
    together.update([ex(p) for p in payloads], 0.0)
    for p in payloads:
        apart.update([ex(p)], 0.0)
    for m in (together, apart):
        s = Scrape(m, 0.0)
        bins = {lab["bin"]: v for lab, v in s.samples("model_column_bin_total") if lab["column"] == "c"}
        assert bins == {"true": 3, "1.5": 1, "__other__": 1}  # True is "true", not 1.0 nor "True"
