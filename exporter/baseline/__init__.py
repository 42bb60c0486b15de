"""The training baseline: its file format, how it is built from data, and live values → its bins.

Names are imported on first use (PEP 562), so that `model-exporter --help` and the proxy
process, which only register the `baseline` command, do not load numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "BinResult": "binning",
    "bin_categorical": "binning",
    "bin_numeric": "binning",
    "category_key": "binning",
    "Baseline": "format",
    "BaselineError": "format",
    "CategoricalColumn": "format",
    "Column": "format",
    "NumericColumn": "format",
    "Source": "format",
    "derive_psi_groups": "format",
    "dumps": "format",
    "save_baseline": "format",
    "seal": "format",
    "load_baseline": "load",
    "parse_baseline": "load",
    "merge": "merge",
    "merge_all": "merge",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
