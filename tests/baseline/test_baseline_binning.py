"""Live values → bins: classification of every kind of value, fast path = slow path, edges and tolerance."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.baseline import CategoricalColumn, NumericColumn, bin_categorical, bin_numeric, category_key
from exporter.baseline.binning import parse_floats

NUM = NumericColumn(name="x", role="feature", count=10, null_count=0, min=0.0, max=10.0, mean=5.0, std=3.0,
                    edges=(0.0, 2.5, 5.0, 10.0), counts=(0, 3, 3, 3, 1), psi_groups=(0, 2))
CAT = CategoricalColumn(name="c", role="feature", count=10, null_count=0, categories=("red", "1", "true", "2.5"),
                        counts=(4, 3, 2, 1), other_count=0)


def test_numeric_bins_follow_the_edges() -> None:
    r = bin_numeric(NUM, [-1.0, 0.0, 2.4999, 2.5, 7.0, 10.0, 11.0])
    assert r.bins.tolist() == [0, 1, 1, 2, 3, 4, 4]
    assert r.counts().tolist() == [1, 2, 1, 1, 2] and r.n_bins == 5
    assert (r.missing, r.type_errors, r.below, r.above) == (0, 0, 1, 1)


def test_numeric_classifies_every_kind_of_value() -> None:
    values: list[Any] = [1.0, 3, "2.5", " 4 ", True, None, math.nan, "", "nan", "abc", [1], {"a": 1}, math.inf,
                         "-inf", b"1", 2**2000]
    r = bin_numeric(NUM, values)
    assert r.bins.tolist() == [1, 2, 2, 2, 1]  # 1.0, 3, 2.5, 4, True (1.0)
    assert r.missing == 4                       # None, NaN, "", "nan"
    assert r.type_errors == 7                   # "abc", [1], {...}, inf, "-inf", b"1", an int too big for a float
    assert r.valid == 5


def test_numeric_arrays_skip_the_conversion() -> None:
    for arr in (np.array([1.0, np.nan, np.inf, 12.0], dtype=np.float32), np.array([1, 12]),
                np.array([True, False])):
        r = bin_numeric(NUM, arr)
        assert r.valid == len(arr) - int(np.isnan(arr.astype(float)).sum()) - int(np.isinf(arr.astype(float)).sum())
    assert bin_numeric(NUM, np.array([[1.0, 12.0]])).bins.tolist() == [1, 4]


def test_tolerance_is_a_share_of_the_range() -> None:
    r = bin_numeric(NUM, [-0.5, -1.5, 10.9, 11.5], tolerance=0.1)
    assert (r.below, r.above) == (1, 1)


def test_categorical_canonical_keys_and_counts() -> None:
    values: list[Any] = ["red", 1, 1.0, "1.0", "01", True, 2.5, "2.50", np.int64(1), np.str_("red"), "blue", 7,
                         None, "", math.nan, [1], {"a": 1}, math.inf]
    r = bin_categorical(CAT, values)
    assert r.bins.tolist() == [0, 1, 1, 1, 1, 2, 3, 3, 1, 0, 4, 4]
    assert (r.missing, r.type_errors, r.unseen) == (3, 3, 2)
    assert r.counts().tolist() == [2, 5, 1, 2, 2]


def test_a_boolean_column_takes_1_and_0_as_true_and_false() -> None:
    flags = CategoricalColumn(name="b", role="feature", count=10, null_count=0, categories=("true", "false"),
                              counts=(6, 4), other_count=0)
    r = bin_categorical(flags, [True, "False", 1, 0.0, "1", np.int64(0), 2, "yes", np.True_])
    assert r.bins.tolist() == [0, 1, 0, 1, 0, 1, 2, 2, 0] and r.unseen == 2
    assert bin_categorical(CAT, [1, True]).bins.tolist() == [1, 2]  # not a boolean column: 1 is "1"
    assert not CategoricalColumn("b", "feature", 10, 0, ("true", "false"), (5, 4), 1).boolean


@pytest.mark.parametrize(("value", "key"), [
    ("abc", "abc"), ("", None), (None, None), (math.nan, None), (True, "true"), (False, "false"), (3, "3"),
    (3.0, "3"), (-0.0, "0"), ("3.0", "3"), ("+3", "3"), ("1e3", "1000"), (0.1, "0.1"), (1e20, "1e+20"),
    ("inf", "inf"), ("-", "-"), (" 3", " 3"), (np.float32(0.5), "0.5"), (2**60, str(2**60)),
    ("True", "true"), ("FALSE", "false"), ("tRuE", "true"), ("t", "t"), ("truth", "truth"), ("yes", "yes"),
    (np.True_, "true"), ("9007199254740993", "9007199254740993"), ("+9007199254740993", "9007199254740993"),
    ("-0009007199254740993", "-9007199254740993"), ("9007199254740993.0", "9007199254740992.0"),
    ("١٢", "١٢"), ("1" * 5000, "1" * 5000),
])
def test_category_key(value: Any, key: str | None) -> None:
    assert category_key(value) == key


@pytest.mark.parametrize("value", [[1], {"a": 1}, math.inf, -math.inf, b"x"])
def test_category_key_type_errors(value: Any) -> None:
    with pytest.raises(TypeError):
        category_key(value)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.sampled_from(["", "nan", "inf", "x", "1.5", "-2", "1e400"]), st.lists(st.integers(), max_size=2))


@settings(max_examples=150, deadline=None)
@given(st.lists(scalars, max_size=30))
def test_one_conversion_equals_value_by_value(values: list[Any]) -> None:
    whole = parse_floats(values)
    parts = [parse_floats([v]) for v in values]
    assert whole.values.tolist() == [x for p in parts for x in p.values.tolist()]
    assert (whole.missing, whole.nonfinite, whole.invalid) == (
        sum(p.missing for p in parts), sum(p.nonfinite for p in parts), sum(p.invalid for p in parts))
    r = bin_numeric(NUM, values)
    assert r.valid + r.missing + r.type_errors == len(values)
