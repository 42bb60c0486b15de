"""The checks of a config that need its baseline file: pure functions, run wherever the baseline is loaded.

The analysis worker runs them at start and on every reload (so `run` and a reload refuse what
`check-config` refuses), and `check-config` runs them in the CLI. Each error names the YAML path.
"""

from __future__ import annotations

import os
import stat

from exporter.baseline.format import Baseline, BaselineError
from exporter.baseline.load import load_baseline
from exporter.config import Config, ConfigError
from exporter.drift.methods import check_method

MONITORED_ROLES = ("feature", "prediction")  # label columns are joined by the performance work


def check_against_baseline(config: Config, baseline: Baseline) -> None:
    """Every drift and quality setting fits the baseline's columns; ConfigError names the setting."""
    columns = {col.name: col for col in baseline.columns if col.role in MONITORED_ROLES}
    names = ", ".join(sorted(columns)) or "none"
    drift = config.drift
    for name, _ in drift.columns:
        if name not in columns:
            raise ConfigError(
                f"drift.columns.{name}: the baseline has no feature or prediction column {name!r} "
                f"(its columns: {names})"
            )
    for name, _ in config.quality.bounds:
        col = columns.get(name)
        if col is None:
            raise ConfigError(
                f"quality.bounds.{name}: the baseline has no feature or prediction column {name!r} "
                f"(its columns: {names})"
            )
        if col.type != "numeric":
            raise ConfigError(f"quality.bounds.{name}: bounds apply to numeric columns; {name!r} is {col.type}")
    for col in columns.values():
        spec = drift.column(col.name)
        if spec.methods is not None:
            path, methods = f"drift.columns.{col.name}.method", spec.methods
        elif col.type == "numeric":
            path, methods = "drift.numeric_methods", drift.numeric_methods
        else:
            path, methods = "drift.categorical_methods", drift.categorical_methods
        checks = [(path, m) for m in methods] + [
            (f"drift.columns.{col.name}.threshold.{m}", m) for m, _ in spec.thresholds
        ]
        for where, method in checks:
            try:
                check_method(method, col.type)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc} (column {col.name!r})") from None


def load_checked_baseline(config: Config) -> Baseline | None:
    """The config's baseline, loaded and checked against the config; None without one."""
    if config.baseline is None:
        return None
    try:
        mode = os.stat(config.baseline).st_mode
    except OSError as exc:
        raise ConfigError(f"{config.baseline}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):  # a FIFO or a device would block the read, maybe forever
        raise ConfigError(f"{config.baseline}: cannot read (not a regular file)")
    try:
        baseline = load_baseline(config.baseline)
    except BaselineError as exc:
        raise ConfigError(str(exc)) from None
    check_against_baseline(config, baseline)
    return baseline
