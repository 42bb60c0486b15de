"""Build a baseline from training data in two passes over chunks; memory does not grow with rows.

Pass 1 infers each column's type and keeps bounded summaries: moments and a fixed-size sample
(numeric, for the quantile edges), candidate top categories (categorical). Pass 2 counts every
value exactly on the chosen edges and categories, with the same binning live traffic gets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from exporter.baseline.binning import (
    Values,
    bin_categorical,
    bin_numeric,
    boolean_counts,
    category_keys,
    number_key,
    parse_floats,
)
from exporter.baseline.defaults import DEFAULT_PSI_BINS
from exporter.baseline.format import (
    Baseline,
    BaselineError,
    CategoricalColumn,
    Column,
    IgnoredColumn,
    NumericColumn,
    Source,
    above_edge,
    derive_psi_groups,
    seal,
)
from exporter.baseline.performance import PerformanceAccumulator
from exporter.baseline.readers import ChunkSource
from exporter.baseline.schema import show
from exporter.baseline.sketches import Moments, PrioritySample, TopCounts

SMALL_DISTINCT = 1000  # distinct numbers kept per numeric column in case a later value is not a number
EXACT_FLOATS = 2.0**53  # from here on float64 skips integers: 2**53 + 1 reads as 2**53


@dataclass(frozen=True)
class BuildOptions:
    predictions: tuple[str, ...] = ()
    label: str | None = None
    categorical: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    top_k: int = 50
    bins: int = 50
    psi_bins: int = DEFAULT_PSI_BINS
    sample_size: int = 100_000
    seed: int = 0
    like: Baseline | None = None  # partition mode: roles, types, edges and categories from here
    positive: str = "1"  # the positive class of a binary label (precision, recall, F1, ROC AUC): performance.positive


@dataclass(frozen=True)
class ColumnReport:
    name: str
    role: str
    type: str
    why: str
    rows: int
    nulls: int
    bins: int


@dataclass(frozen=True)
class BuildResult:
    baseline: Baseline
    report: tuple[ColumnReport, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)


class _Scan:
    """Pass 1 for one column: type inference, null count and bounded summaries."""

    def __init__(self, name: str, kind: str | None, options: BuildOptions) -> None:
        self.name = name
        self.forced = kind
        self.numeric = kind != "categorical"
        self.why = {"categorical": "--categorical", "numeric": "--edges-from"}.get(kind or "", "all values are numbers")
        self.present = self.missing = 0
        self.moments = Moments()
        self.sample = PrioritySample(0 if options.like else options.sample_size, options.seed)
        self.small: dict[float, int] | None = {} if kind is None else None
        self.top = TopCounts(max(10_000, 20 * options.top_k))
        self.rescan = False
        # [trues, falses] while every value so far is a boolean (True/False, "true"/"TRUE"/…); None after
        # the first value that is not. A boolean column is categorical "true"/"false" whatever the file format.
        self.booleans: list[int] | None = [0, 0] if kind is None else None

    @property
    def boolean(self) -> bool:
        return self.booleans is not None and sum(self.booleans) > 0

    def add(self, values: Values) -> None:
        self.present += len(values)
        if self.booleans is not None:
            counts = boolean_counts(values)
            if counts is None:
                self.booleans = None
            else:
                self.booleans[0] += counts[0]
                self.booleans[1] += counts[1]
        if self.numeric:
            parsed = parse_floats(values, stop_at_invalid=True)
            if parsed.invalid == 0:
                self._numbers(parsed.values, parsed.missing + parsed.nonfinite)
                return
            self._become_categorical(values)
        keys, skipped = category_keys(values)
        self.missing += skipped  # null, or a non-finite number: null in training data
        self.top.update(Counter(keys))

    def _numbers(self, x: np.ndarray, missing: int) -> None:
        self.missing += missing
        self.moments.add(x)
        self.sample.add(x)
        if self.small is not None and len(x) and max(-float(x.min()), float(x.max())) >= EXACT_FLOATS:
            self.small = None  # a float no longer tells these integers apart: count the values again if need be
        if self.small is not None:
            distinct, counts = np.unique(x, return_counts=True)
            for value, n in zip(distinct.tolist(), counts.tolist()):
                self.small[value] = self.small.get(value, 0) + n
            if len(self.small) > SMALL_DISTINCT:
                self.small = None

    def _become_categorical(self, values: Values) -> None:
        example = next(v for v in values if parse_floats([v]).invalid)
        if self.forced == "numeric":
            raise BaselineError(
                f"column {self.name!r}: the --edges-from baseline says numeric, but the data has {show(example)}"
            )
        self.numeric = False
        self.why = f"non-numeric value {show(example)}"
        if self.small is None:
            self.rescan = True  # many distinct numbers before the first non-number: count them again
        else:
            self.top.update({number_key(value): n for value, n in self.small.items()})
        self.sample = PrioritySample(0)


def build_baseline(source: ChunkSource, options: BuildOptions, *, files: Sequence[str], created: str) -> BuildResult:
    """The sealed baseline of all rows `source` yields, with the type inference report."""
    _check_options(options)
    like = {c.name: c for c in options.like.columns} if options.like else None
    kinds = dict.fromkeys(options.categorical, "categorical")
    if like:
        kinds = {name: col.type for name, col in like.items()}
    scans: dict[str, _Scan] = {}
    names: dict[str, None] = {}
    rows = _scan(source, scans, kinds, options, None, names)
    if rows == 0:
        raise BaselineError(f"{', '.join(files)}: no rows")
    _check_flags(options, list(names))
    rescan = {name for name, s in scans.items() if s.rescan}
    if rescan:
        fresh = {name: _Scan(name, "categorical", options) for name in rescan}
        _scan(source, fresh, dict.fromkeys(rescan, "categorical"), options, rescan, {})
        for name, s in fresh.items():
            s.why = scans[name].why
            scans[name] = s
    warnings: list[str] = []
    plan: dict[str, Column] = {}
    # --edges-from: the reference's ignored columns, positions included (its layout is the baseline's)
    ignored: list[IgnoredColumn] = list(options.like.ignored) if options.like else []
    # where a positional payload (features only, in file order) carries each column
    position = {
        name: i for i, name in enumerate(n for n in names if n != options.label and n not in options.predictions)
    }
    for name in like or names:
        if like is None and name in options.exclude:
            ignored.append(IgnoredColumn(name, "excluded", position[name]))
            continue
        col = _plan(name, scans.get(name), rows, options, like, warnings)
        if col is not None:
            plan[name] = col
        elif like is None:
            ignored.append(IgnoredColumn(name, "all_null", position[name]))
    if like is not None:
        warnings += [f"column {n!r} is not in the --edges-from baseline; ignored" for n in scans if n not in like]
    counts = {name: np.zeros(len(col.counts_array), dtype=np.int64) for name, col in plan.items()}
    sums = {name: np.zeros(len(col.counts_array)) for name, col in plan.items() if isinstance(col, NumericColumn)}
    perf = _performance_plan(plan, options, warnings)
    for chunk in source():
        for name, values in chunk.columns.items():
            col = plan.get(name)
            if col is not None:
                if isinstance(col, NumericColumn):
                    result = bin_numeric(col, values, sums=True)
                    assert result.sums is not None
                    sums[name] += result.sums
                else:
                    result = bin_categorical(col, values)
                counts[name] += result.counts()
        if perf is not None and perf.prediction in chunk.columns and perf.label in chunk.columns:
            scores = chunk.columns.get(perf.score) if perf.score is not None else None
            perf.accumulator.add(chunk.columns[perf.prediction], chunk.columns[perf.label], scores)
    columns = [_finish(plan[name], counts[name], options, like is not None, sums.get(name)) for name in plan]
    baseline = seal(
        Baseline(
            created=created,
            source=Source(tuple(files), rows),
            columns=tuple(columns),
            performance=perf.accumulator.result() if perf else {},
            ignored=tuple(ignored),
        )
    )
    report = tuple(
        ColumnReport(
            c.name,
            c.role,
            c.type,
            scans[c.name].why if c.name in scans else "absent",
            c.count,
            c.null_count,
            len(c.counts_array),
        )
        for c in columns
    )
    return BuildResult(baseline, report, tuple(warnings))


def _scan(
    source: ChunkSource,
    scans: dict[str, _Scan],
    kinds: dict[str, str],
    options: BuildOptions,
    only: set[str] | None,
    names: dict[str, None],
) -> int:
    """One pass: feed every chunk to the scans (created on first sight); returns the row count."""
    rows = 0
    for chunk in source():
        rows += chunk.rows
        for name, values in chunk.columns.items():
            names.setdefault(name)
            if name in options.exclude or (only is not None and name not in only):
                continue
            scan = scans.get(name)
            if scan is None:
                scan = scans[name] = _Scan(name, kinds.get(name), options)
            scan.add(values)
    return rows


def _check_options(options: BuildOptions) -> None:
    """Flag combinations that are wrong whatever the data."""
    if options.like is not None:
        for flag, given in (
            ("--prediction", options.predictions),
            ("--label", options.label),
            ("--categorical", options.categorical),
        ):
            if given:
                raise BaselineError(f"{flag}: roles and types come from the --edges-from baseline; drop {flag}")
    if options.label is not None and options.label in options.predictions:
        raise BaselineError(f"--label: column {options.label!r} is also given to --prediction")


def _check_flags(options: BuildOptions, names: list[str]) -> None:
    """Every column a flag names must exist in the data, and play one part only."""
    listing = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
    for flag, cols in (
        ("--prediction", options.predictions),
        ("--label", (options.label,) if options.label else ()),
        ("--categorical", options.categorical),
        ("--exclude", options.exclude),
    ):
        for name in cols:
            if name not in names:
                raise BaselineError(f"{flag}: column {name!r} not found in the data (columns: {listing})")
            if flag != "--exclude" and name in options.exclude:
                raise BaselineError(f"{flag}: column {name!r} is also given to --exclude")


def _plan(
    name: str, scan: _Scan | None, rows: int, options: BuildOptions, like: dict[str, Column] | None, warnings: list[str]
) -> Column | None:
    """The column with its final edges or categories and zero counts, or None when it is left out."""
    if like is not None:
        ref = like[name]
        valid = scan.present - scan.missing if scan else 0
        m = scan.moments if scan else Moments()
        if isinstance(ref, NumericColumn):
            return NumericColumn(
                name,
                ref.role,
                rows,
                rows - valid,
                m.min if m.n else 0.0,
                m.max if m.n else 0.0,
                m.mean,
                m.std,
                ref.edges,
                (0,) * len(ref.counts),
                ref.psi_groups,
            )
        return CategoricalColumn(name, ref.role, rows, rows - valid, ref.categories, (0,) * len(ref.counts), 0)
    assert scan is not None
    role = "prediction" if name in options.predictions else "label" if name == options.label else "feature"
    valid = scan.present - scan.missing
    if valid == 0:
        if role != "feature":
            raise BaselineError(f"--{role}: column {name!r} has no values (all {rows} rows are null)")
        warnings.append(f"column {name!r}: all {rows} rows are null; left out of the baseline")
        return None
    if scan.boolean:
        assert scan.booleans is not None
        scan.why = "true/false values"
        keys = [
            key for key, n in sorted(zip(("true", "false"), scan.booleans, strict=True), key=lambda kv: -kv[1]) if n
        ]
        categories = tuple(keys[: options.top_k])
        return CategoricalColumn(name, role, rows, rows - valid, categories, (0,) * len(categories), 0)
    if scan.numeric:
        m = scan.moments
        try:
            edges = _edges(scan.sample.result(), m.min, m.max, options.bins)
        except BaselineError as exc:
            raise BaselineError(f"column {name!r}: {exc}") from None
        return NumericColumn(
            name, role, rows, rows - valid, m.min, m.max, m.mean, m.std, edges, (0,) * (len(edges) + 1), (0,)
        )
    if len(scan.top.counts) > max(1000, valid // 2):
        warnings.append(
            f"column {name!r}: {len(scan.top.counts)}+ distinct values in {valid} rows; "
            "an identifier? (leave it out with --exclude)"
        )
    categories = tuple(scan.top.top(options.top_k))
    return CategoricalColumn(name, role, rows, rows - valid, categories, (0,) * len(categories), 0)


def _edges(sample: np.ndarray, lo: float, hi: float, bins: int) -> tuple[float, ...]:
    """Quantile edges of the sample at 1/bins steps between the exact min and max, duplicates merged, and above_edge(max).

    The max is an edge of its own, so its bin [max, above) holds the training max only (a 0/1
    column keeps 0 and 1 apart), and the last bin [above, +inf) holds what lies above the range.
    """
    inner = np.quantile(sample, np.arange(1, bins) / bins, method="inverted_cdf") if len(sample) else []
    edges = np.unique(np.concatenate([[lo], inner, [hi]]))
    return (*(float(e) for e in edges[(edges >= lo) & (edges <= hi)]), above_edge(hi))


def _finish(
    col: Column, counts: np.ndarray, options: BuildOptions, keep_order: bool, sums: np.ndarray | None = None
) -> Column:
    """The planned column with its exact counts (categories re-ordered by exact frequency)."""
    total = int(counts.sum())
    if total != col.valid:
        raise BaselineError(
            f"column {col.name!r}: {col.valid} values in the first pass, {total} in the second; "
            "did the data change while the baseline was built?"
        )
    if isinstance(col, NumericColumn):
        return NumericColumn(
            col.name,
            col.role,
            col.count,
            col.null_count,
            col.min,
            col.max,
            col.mean,
            col.std,
            col.edges,
            tuple(counts.tolist()),
            derive_psi_groups(counts, options.psi_bins),
            bin_means(counts, sums) if sums is not None else (),
        )
    pairs = list(zip(col.categories, counts[:-1].tolist()))
    if not keep_order:
        pairs.sort(key=lambda kv: (-kv[1], kv[0]))
    return CategoricalColumn(
        col.name,
        col.role,
        col.count,
        col.null_count,
        tuple(k for k, _ in pairs),
        tuple(n for _, n in pairs),
        int(counts[-1]),
    )


def bin_means(counts: np.ndarray, sums: np.ndarray) -> tuple[float | None, ...]:
    """Mean of each fine bin's values (None for an empty bin), to 12 significant digits.

    Float sums depend on the order of the values (chunks, partitions); 12 digits keep the file
    short and a rebuild in other chunks nearly always byte-identical; Wasserstein needs far fewer.
    """
    return tuple(float(f"{s / k:.12g}") if k else None for s, k in zip(sums.tolist(), counts.tolist()))


class _PerformancePlan(NamedTuple):
    accumulator: PerformanceAccumulator
    prediction: str
    label: str
    score: str | None  # binary: the positive-class score column (ROC AUC, log-loss, calibration)


def _performance_plan(plan: dict[str, Column], options: BuildOptions, warnings: list[str]) -> _PerformancePlan | None:
    """What the reference performance compares, chosen as the performance analyzer chooses at run time.

    A categorical label: the first categorical prediction column (else the first prediction) gives
    the classes, and a numeric prediction within [0, 1] other than it the score. A numeric label:
    the first numeric prediction.
    """
    labels = [c for c in plan.values() if c.role == "label"]
    preds = [c for c in plan.values() if c.role == "prediction"]
    if not labels or not preds:
        return None
    label = labels[0]
    if label.type == "categorical":
        preds.sort(key=lambda c: c.type != "categorical")
        pred = preds[0]
        score = next(
            (c.name for c in preds[1:] if isinstance(c, NumericColumn) and 0 <= c.min and c.max <= 1),
            None,
        )
        return _PerformancePlan(PerformanceAccumulator(True, options.positive), pred.name, label.name, score)
    same = [p for p in preds if p.type == "numeric"]
    if not same:
        warnings.append(
            f"no numeric --prediction column to compare with the numeric label {label.name!r}; no reference performance"
        )
        return None
    return _PerformancePlan(PerformanceAccumulator(False), same[0].name, label.name, None)


def format_report(report: Sequence[ColumnReport]) -> str:
    """The type inference as an aligned text table."""
    head = ("column", "role", "type", "rows", "nulls", "bins", "why")
    body = [(r.name, r.role, r.type, str(r.rows), str(r.nulls), str(r.bins), r.why) for r in report]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [head, *body])
