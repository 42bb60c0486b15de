"""Merge baselines of data partitions built on the same edges and categories: counts add up."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from functools import reduce

from exporter.baseline.defaults import DEFAULT_PSI_BINS
from exporter.baseline.format import (
    Baseline,
    BaselineError,
    CategoricalColumn,
    Column,
    NumericColumn,
    Source,
    derive_psi_groups,
    seal,
)


def merge(a: Baseline, b: Baseline, *, psi_bins: int = DEFAULT_PSI_BINS) -> Baseline:
    """One baseline for the union of two partitions' rows; BaselineError if their bins differ.

    Counts, null counts and rows add; min/max combine; mean and std combine exactly (Chan et al.
    1979); coarse PSI bins are derived again from the summed counts. `created` is the later of the
    two; the ignored columns are those of either (the first reason given for a name), with their
    positions only when both partitions have the same ignored columns at the same positions.
    """
    names_a = [c.name for c in a.columns]
    names_b = [c.name for c in b.columns]
    if names_a != names_b:
        raise BaselineError(
            f"merge: the partitions have different columns ({', '.join(names_a)} vs "
            f"{', '.join(names_b)}); build every partition with --edges-from the same reference"
        )
    columns = tuple(_merge_column(x, y, psi_bins) for x, y in zip(a.columns, b.columns))
    names = {c.name for c in a.ignored}
    ignored = a.ignored + tuple(c for c in b.ignored if c.name not in names)
    if {(c.name, c.position) for c in a.ignored} != {(c.name, c.position) for c in b.ignored}:
        # partitions laid out differently: no position is known for the union
        ignored = tuple(replace(c, position=None) for c in ignored)
    merged = Baseline(
        created=max(a.created, b.created),
        source=Source(a.source.files + b.source.files, a.source.rows + b.source.rows),
        columns=columns,
        performance=_merge_performance(a, b),
        ignored=ignored,
    )
    return seal(merged)


def merge_all(parts: Sequence[Baseline], *, psi_bins: int = DEFAULT_PSI_BINS) -> Baseline:
    """Merge any number of partitions (one is returned sealed)."""
    if not parts:
        raise BaselineError("merge: no baselines given")
    return seal(reduce(lambda x, y: merge(x, y, psi_bins=psi_bins), parts))


def _merge_column(x: Column, y: Column, psi_bins: int) -> Column:
    where = f"merge: column {x.name!r}"
    if x.role != y.role or x.type != y.type:
        raise BaselineError(f"{where}: {x.role}/{x.type} in one partition, {y.role}/{y.type} in the other")
    count, null_count = x.count + y.count, x.null_count + y.null_count
    if isinstance(x, CategoricalColumn) and isinstance(y, CategoricalColumn):
        if x.categories != y.categories:
            raise BaselineError(
                f"{where}: categories differ ({len(x.categories)} vs {len(y.categories)}, or in "
                "order); build every partition with --edges-from the same reference"
            )
        return replace(
            x,
            count=count,
            null_count=null_count,
            other_count=x.other_count + y.other_count,
            counts=tuple(i + j for i, j in zip(x.counts, y.counts)),
        )
    assert isinstance(x, NumericColumn) and isinstance(y, NumericColumn)
    if x.edges != y.edges:
        raise BaselineError(
            f"{where}: edges differ ({len(x.edges)} vs {len(y.edges)} edges, or in value); "
            "build every partition with --edges-from the same reference"
        )
    counts = tuple(i + j for i, j in zip(x.counts, y.counts))
    mean, std = _combine_moments(x.valid, x.mean, x.std, y.valid, y.mean, y.std)
    lo = [c.min for c in (x, y) if c.valid]
    hi = [c.max for c in (x, y) if c.valid]
    return replace(
        x,
        count=count,
        null_count=null_count,
        counts=counts,
        mean=mean,
        std=std,
        min=min(lo, default=x.min),
        max=max(hi, default=x.max),
        psi_groups=derive_psi_groups(counts, psi_bins),
        means=_merge_means(x, y, counts),
    )


def _merge_means(x: NumericColumn, y: NumericColumn, counts: tuple[int, ...]) -> tuple[float | None, ...]:
    """Per-bin means of the union: weighted by the bins' counts; unknown (()) unless both sides know theirs."""
    if not x.means or not y.means:
        return ()
    out: list[float | None] = []
    for mx, kx, my, ky, k in zip(x.means, x.counts, y.means, y.counts, counts):
        out.append(None if not k else float(f"{((mx or 0.0) * kx + (my or 0.0) * ky) / k:.12g}"))
    return tuple(out)


def _combine_moments(na: int, ma: float, sa: float, nb: int, mb: float, sb: float) -> tuple[float, float]:
    """Mean and population std of two groups from theirs (Chan, Golub & LeVeque 1979)."""
    n = na + nb
    if n == 0:
        return ma, sa
    delta = mb - ma
    mean = ma + delta * nb / n
    m2 = sa * sa * na + sb * sb * nb + delta * delta * na * nb / n
    return mean, math.sqrt(max(m2, 0.0) / n)


# means over labelled rows, so exact when weighted by them (RMSE through its square); precision,
# recall, F1, ROC AUC and the calibration error are ratios of other counts and are not additive:
# a merged baseline leaves them out rather than approximate them (build from all the data for them)
_ADDITIVE = frozenset({"accuracy", "mae", "rmse", "mape", "log_loss"})


def _merge_performance(a: Baseline, b: Baseline) -> dict[str, float]:
    """Weighted by labelled rows: exact for accuracy and MAE, and for RMSE through its square."""
    wa = sum(c.valid for c in a.by_role("label"))
    wb = sum(c.valid for c in b.by_role("label"))
    if wa + wb == 0:
        return {}
    out = {}
    for metric in a.performance.keys() & b.performance.keys() & _ADDITIVE:
        va, vb = a.performance[metric], b.performance[metric]
        if metric == "rmse":
            out[metric] = math.sqrt((wa * va * va + wb * vb * vb) / (wa + wb))
        else:
            out[metric] = (wa * va + wb * vb) / (wa + wb)
    return out
