"""Live values → baseline bins, vectorised; drift and data quality count from the same result.

Value rules (the same when building the baseline and when binning live traffic):
- missing: None, NaN, the empty string (and a key absent from a row, which the caller counts);
- numeric columns accept ints, floats, bools (as 1/0: JSON clients send true for a 0/1 feature)
  and strings that parse as numbers; ±inf and anything else (a word, a list, an object) is a
  type error;
- categorical columns compare canonical keys: a string is itself, except that a string which
  parses as a finite number is spelled like that number (an integer literal exactly, every
  digit kept: "9007199254740993" stays itself, as a JSON integer does); integral numbers are
  written without a decimal point (1, 1.0 and "1.0" are all "1"), others by their shortest
  repr; booleans are "true"/"false", and so are the strings true/false in any case ("True",
  "FALSE": pandas writes booleans to CSV as True/False). A boolean column (categories only
  "true"/"false", nothing else seen in training) also takes the numbers 1 and 0 as true and
  false. A nested list/object or a non-finite number is a type error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from exporter.baseline.format import CategoricalColumn, NumericColumn

Values = Sequence[Any] | np.ndarray


@dataclass(frozen=True, slots=True)
class BinResult:
    """Bin index per valid value, and how many values were not valid or not inside the baseline."""

    bins: np.ndarray  # intp, one per valid value, in input order
    n_bins: int  # numeric: len(edges) + 1; categorical: len(categories) + 1 ("other" last)
    missing: int = 0
    type_errors: int = 0
    below: int = 0  # numeric: valid values below min - tolerance·(max - min) (still binned)
    above: int = 0  # numeric: valid values above max + tolerance·(max - min) (still binned)
    unseen: int = 0  # categorical: valid values not among the categories (binned as "other")
    sums: np.ndarray | None = None  # numeric, when asked for: the sum of the values in each bin

    @property
    def valid(self) -> int:
        return len(self.bins)

    def counts(self) -> np.ndarray:
        """Count per bin (length n_bins)."""
        return np.bincount(self.bins, minlength=self.n_bins)


@dataclass(frozen=True, slots=True)
class Floats:
    """A column parsed as numbers: the finite values and how many were not."""

    values: np.ndarray  # float64, finite, in input order
    missing: int
    nonfinite: int  # ±inf
    invalid: int  # not a number at all


def parse_floats(values: Values, *, stop_at_invalid: bool = False) -> Floats:
    """Finite numbers of a column; one numpy conversion, per-value only when that fails.

    `stop_at_invalid` returns as soon as one value is not a number (invalid=1, the rest unparsed).
    """
    arr: np.ndarray | None = None
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        arr = values.astype(np.float64, copy=False).reshape(-1)
    else:
        arr = as_floats(values)
        if arr is None and len(values) and any(v == "" for v in values if isinstance(v, str)):
            arr = as_floats([None if isinstance(v, str) and v == "" else v for v in values])
    if arr is None:
        return _parse_slowly(values, stop_at_invalid)
    finite = np.isfinite(arr)
    n_finite = int(np.count_nonzero(finite))
    if n_finite == len(arr):
        return Floats(arr, 0, 0, 0)
    n_nan = int(np.count_nonzero(np.isnan(arr)))
    return Floats(arr[finite], n_nan, len(arr) - n_finite - n_nan, 0)


def as_floats(values: Values) -> np.ndarray | None:
    """The column as one float64 array (NaN for None), or None when numpy cannot convert it."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return None
    return arr if arr.ndim == 1 and len(arr) == len(values) else None


def _parse_slowly(values: Values, stop_at_invalid: bool) -> Floats:
    out: list[float] = []
    missing = nonfinite = invalid = 0
    for v in values:
        if v is None or (isinstance(v, str) and v == ""):
            missing += 1
            continue
        if isinstance(v, (str, int, float, np.number, np.bool_)):
            try:
                f = float(v)
            except (ValueError, OverflowError):
                invalid += 1
                if stop_at_invalid:
                    break
                continue
            if f != f:
                missing += 1
            elif f in (np.inf, -np.inf):
                nonfinite += 1
            else:
                out.append(f)
        else:
            invalid += 1
            if stop_at_invalid:
                break
    return Floats(np.asarray(out, dtype=np.float64), missing, nonfinite, invalid)


def bin_numeric(col: NumericColumn, values: Values, tolerance: float = 0.0, *, sums: bool = False) -> BinResult:
    """Fine bin of each valid value (np.searchsorted on the edges), plus quality counts (and per-bin sums)."""
    parsed = parse_floats(values)
    x = parsed.values
    bins = np.searchsorted(col.edges_array, x, side="right")
    slack = tolerance * (col.max - col.min)
    return BinResult(
        bins=bins,
        n_bins=len(col.edges) + 1,
        missing=parsed.missing,
        type_errors=parsed.nonfinite + parsed.invalid,
        below=int(np.count_nonzero(x < col.min - slack)),
        above=int(np.count_nonzero(x > col.max + slack)),
        sums=np.bincount(bins, weights=x, minlength=len(col.edges) + 1) if sums else None,
    )


def number_key(f: float) -> str:
    """Canonical category spelling of a finite number."""
    return str(int(f)) if f.is_integer() and abs(f) < 2.0**53 else repr(f)


def category_key(value: Any) -> str | None:
    """Canonical category of a value; None when missing; TypeError for a nested or non-finite value."""
    if isinstance(value, str):
        return _string_key(value) if value else None
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if f != f:
            return None
        if f in (np.inf, -np.inf):
            raise TypeError("non-finite number")
        return number_key(f)
    raise TypeError(f"unsupported value of type {type(value).__name__}")


def category_keys(values: Values) -> tuple[list[str], int]:
    """Canonical keys of the valid values, and how many were missing or not valid (nested, non-finite)."""
    keys: list[str] = []
    append = keys.append
    skipped = 0
    for v in values.tolist() if isinstance(values, np.ndarray) else values:
        if v.__class__ is str and v:
            append(v if v[0] not in _SPECIAL_START else _string_key(v))
            continue
        try:
            key = category_key(v)
        except TypeError:
            key = None
        if key is None:
            skipped += 1
        else:
            append(key)
    return keys, skipped


_NUMERIC_START = frozenset("0123456789+-.")
_BOOLEAN_START = frozenset("tTfF")
_SPECIAL_START = _NUMERIC_START | _BOOLEAN_START  # strings whose key may differ from the string
_BOOLEAN_WORDS = {"true": True, "false": False}
_MAX_EXACT_DIGITS = 4000  # longer integer literals go through float (Python caps int(str) at 4300 digits)


def _string_key(s: str) -> str:
    first = s[0]
    if first in _NUMERIC_START:
        body = s[1:] if first in "+-" else s
        if body.isdigit() and body.isascii() and len(body) <= _MAX_EXACT_DIGITS:
            return str(int(s))  # an integer literal: exact, whatever its size
        try:
            f = float(s)
        except ValueError:
            return s
        if f - f == 0.0:  # finite
            return number_key(f)
    elif first in _BOOLEAN_START and len(s) in (4, 5):
        lower = s.lower()
        if lower in _BOOLEAN_WORDS:
            return lower
    return s


def boolean_counts(values: Values) -> tuple[int, int] | None:
    """(trues, falses) when every non-missing value is a boolean, None as soon as one is not.

    Booleans: True/False (Python, numpy) and the strings true/false in any case; missing values
    (None, NaN, the empty string) are skipped. Numbers are not booleans: a 0/1 column stays numeric.
    """
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "b":
            trues = int(np.count_nonzero(values))
            return trues, values.size - trues
        if values.dtype.kind not in "OUS":
            return None
    trues = falses = 0
    for v in values.tolist() if isinstance(values, np.ndarray) else values:
        if v is True or v is False or isinstance(v, np.bool_):
            flag = bool(v)
        elif v.__class__ is str or isinstance(v, str):
            if not v:
                continue
            found = _BOOLEAN_WORDS.get(v.lower()) if len(v) in (4, 5) else None
            if found is None:
                return None
            flag = found
        elif v is None or (isinstance(v, float) and v != v):
            continue
        else:
            return None
        if flag:
            trues += 1
        else:
            falses += 1
    return trues, falses


def bin_categorical(col: CategoricalColumn, values: Values) -> BinResult:
    """Category index of each valid value ("other", the last bin, for unseen ones), plus quality counts."""
    index = col.lookup
    other = len(col.categories)
    items = values.tolist() if isinstance(values, np.ndarray) else values
    out: list[int] = []
    append = out.append
    missing = type_errors = unseen = 0
    for v in items:
        if v.__class__ is str:
            i = index.get(v)
            if i is None:
                if not v:
                    missing += 1
                    continue
                i = index.get(_string_key(v))
        else:
            try:
                key = category_key(v)
            except TypeError:
                type_errors += 1
                continue
            if key is None:
                missing += 1
                continue
            i = index.get(key)
        if i is None:
            unseen += 1
            i = other
        append(i)
    return BinResult(
        bins=np.asarray(out, dtype=np.intp), n_bins=other + 1, missing=missing, type_errors=type_errors, unseen=unseen
    )
