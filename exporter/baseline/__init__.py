"""The training baseline: its file format, how it is built from data, and live values → its bins."""

from exporter.baseline.binning import BinResult, bin_categorical, bin_numeric, category_key
from exporter.baseline.format import (
    Baseline,
    BaselineError,
    CategoricalColumn,
    Column,
    NumericColumn,
    Source,
    derive_psi_groups,
    dumps,
    save_baseline,
    seal,
)
from exporter.baseline.load import load_baseline, parse_baseline
from exporter.baseline.merge import merge, merge_all

__all__ = [
    "Baseline", "BaselineError", "BinResult", "CategoricalColumn", "Column", "NumericColumn", "Source",
    "bin_categorical", "bin_numeric", "category_key", "derive_psi_groups", "dumps", "load_baseline", "merge",
    "merge_all", "parse_baseline", "save_baseline", "seal",
]
