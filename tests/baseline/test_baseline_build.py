"""Building a baseline: type inference, edges and counts, chunking, memory, performance, errors."""

from __future__ import annotations

import json
import sys
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exporter.baseline import BaselineError, NumericColumn, load_baseline, merge_all, save_baseline
from exporter.baseline.build import BuildOptions, BuildResult, build_baseline, format_report
from exporter.baseline.format import CategoricalColumn, IgnoredColumn
from exporter.baseline.readers import Chunk, open_source

CREATED = "2024-05-01T12:00:00Z"


def build(paths: list[Path], chunk_rows: int = 10_000, **options: Any) -> BuildResult:
    files = [str(p) for p in paths]
    return build_baseline(open_source(files, chunk_rows), BuildOptions(**options), files=files, created=CREATED)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    path.write_text("\n".join([",".join(header)] + [",".join("" if v is None else str(v) for v in r) for r in rows])
                    + "\n")
    return path


def test_inference_roles_and_report(tmp_path: Path) -> None:
    rows = [[i * 0.5, ["a", "b", "c"][i % 3], "" if i % 4 == 0 else i % 5, i % 2, (i + i // 7) % 2, f"id{i}", ""]
            for i in range(40)]
    path = write_csv(tmp_path / "train.csv", ["x", "color", "k", "pred", "y", "id", "empty"], rows)
    result = build([path], predictions=("pred",), label="y", categorical=("y", "pred"), exclude=("id",))
    b = result.baseline
    assert [(c.name, c.role, c.type) for c in b.columns] == [
        ("x", "feature", "numeric"), ("color", "feature", "categorical"), ("k", "feature", "numeric"),
        ("pred", "prediction", "categorical"), ("y", "label", "categorical")]
    assert b.column("k").null_count == 10 and b.column("k").count == 40
    color = b.column("color")
    assert isinstance(color, CategoricalColumn) and color.categories == ("a", "b", "c")
    assert color.counts == (14, 13, 13)
    assert result.warnings == ("column 'empty': all 40 rows are null; left out of the baseline",)
    assert b.ignored == (IgnoredColumn("id", "excluded", 3), IgnoredColumn("empty", "all_null", 4))  # data order
    report = format_report(result.report).splitlines()
    assert report[0].split() == ["column", "role", "type", "rows", "nulls", "bins", "why"]
    assert report[2].split() == ["color", "feature", "categorical", "40", "0", "4", "non-numeric", "value", '"a"']
    assert report[4].split()[-1] == "--categorical"
    hits = sum(int(i % 2 == (i + i // 7) % 2) for i in range(40))
    assert b.performance["accuracy"] == hits / 40
    assert set(b.performance) == {"accuracy", "precision", "recall", "f1"}  # binary, no score column


def test_numeric_edges_counts_and_groups(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=5000)
    path = write_csv(tmp_path / "t.csv", ["x", "d"], [[v, int(abs(v) * 2)] for v in x])
    b = build([path], bins=50).baseline
    col = b.column("x")
    assert isinstance(col, NumericColumn)
    assert col.edges[0] == col.min == float(x.min()) and col.edges[-2] == col.max == float(x.max())
    assert col.edges[-1] == np.nextafter(col.max, np.inf)  # the above bin starts right after the max
    assert len(col.edges) == 52 and np.all(np.diff(col.edges) > 0)
    assert col.counts[0] == 0 and col.counts[-2] == 1 and col.counts[-1] == 0 and sum(col.counts) == 5000
    assert all(95 <= n <= 105 for n in col.counts[1:-2])
    assert len(col.psi_groups) == 12 and col.psi_groups[:2] == (0, 1) and col.psi_groups[-1] == len(col.counts) - 1
    assert col.mean == pytest.approx(x.mean(), rel=1e-12) and col.std == pytest.approx(x.std(), rel=1e-12)
    d = b.column("d")  # discrete: the edges are its values (those the quantiles hit)
    assert isinstance(d, NumericColumn) and set(d.edges[:-1]) <= set(range(10)) and d.edges[:4] == (0.0, 1.0, 2.0, 3.0)


def test_constant_and_two_valued_columns_get_a_bin_per_value_and_empty_outside_bins(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["const", "bit"], [[5, i % 2] for i in range(10)])
    b = build([path]).baseline
    const, bit = b.column("const"), b.column("bit")
    assert isinstance(const, NumericColumn) and isinstance(bit, NumericColumn)
    assert const.edges == (5.0, np.nextafter(5.0, 6.0)) and const.counts == (0, 10, 0)
    assert const.psi_groups == (0, 1, 2)
    assert bit.edges == (0.0, 1.0, np.nextafter(1.0, 2.0)) and bit.counts == (0, 5, 5, 0)
    assert bit.psi_groups == (0, 1, 2, 3)  # below | 0 | 1 | above


def test_jsonl_missing_keys_are_nulls_and_bools_are_true_false(tmp_path: Path) -> None:
    lines = [{"a": 1.5, "b": True, "c": "x", "e": True}, {"a": 2, "c": None, "e": 0},
             {"a": None, "b": False, "d": 7, "e": 1}]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    b = build([path]).baseline
    assert [(c.name, c.type, c.count, c.null_count) for c in b.columns] == [
        ("a", "numeric", 3, 1), ("b", "categorical", 3, 1), ("c", "categorical", 3, 2),
        ("e", "numeric", 3, 0), ("d", "numeric", 3, 2)]  # e mixes booleans with numbers: numbers, true as 1
    flags = b.column("b")
    assert isinstance(flags, CategoricalColumn) and flags.boolean and flags.counts_array.tolist() == [1, 1, 0]


@pytest.mark.parametrize("spelling", [("True", "False"), ("true", "false"), ("TRUE", "FALSE")])
def test_csv_booleans_in_any_case_are_true_false(tmp_path: Path, spelling: tuple[str, str]) -> None:
    rows = [[i, spelling[i % 3 == 0]] for i in range(9)] + [[9, ""]]
    col = build([write_csv(tmp_path / "t.csv", ["i", "flag"], rows)]).baseline.column("flag")
    assert isinstance(col, CategoricalColumn)
    assert (col.categories, col.counts, col.other_count, col.null_count) == (("true", "false"), (6, 3), 0, 1)


def test_booleans_with_top_k_1_keep_the_most_frequent(tmp_path: Path) -> None:
    col = build([write_csv(tmp_path / "t.csv", ["flag"], [["False"], ["True"], ["False"]])], top_k=1).baseline
    flag = col.column("flag")
    assert isinstance(flag, CategoricalColumn) and (flag.categories, flag.other_count) == (("false",), 1)
    assert not flag.boolean  # "true" went to other: 1 is not known to be true here


def test_numbers_then_a_word_after_many_distinct_values(tmp_path: Path) -> None:
    rows = [[str(i)] for i in range(3000)] + [["n/a"]]
    b = build([write_csv(tmp_path / "t.csv", ["code"], rows)], chunk_rows=500, top_k=5).baseline
    col = b.column("code")
    assert isinstance(col, CategoricalColumn)
    assert col.categories == ("0", "1", "10", "100", "1000") and col.counts == (1, 1, 1, 1, 1)
    assert col.other_count == 2996 and col.null_count == 0


def test_canonical_category_keys_agree_across_spellings(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps({"c": v}) for v in [1, 1.0, "1", "1.0", "x", 2]) + "\n")
    col = build([path], categorical=("c",)).baseline.column("c")
    assert isinstance(col, CategoricalColumn) and col.categories == ("1", "2", "x") and col.counts == (4, 1, 1)


def test_numeric_performance(tmp_path: Path) -> None:
    rows: list[list[Any]] = [[1.0, 1.5], [2.0, 2.0], [3.0, 5.0], [None, 1.0]]
    b = build([write_csv(tmp_path / "t.csv", ["y", "p"], rows)], predictions=("p",), label="y").baseline
    assert b.performance["mae"] == pytest.approx((0.5 + 0 + 2) / 3)
    assert b.performance["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 4) / 3))


def _big_csv(path: Path, rows: int) -> Path:
    rng = np.random.default_rng(7)
    x = rng.gamma(2.0, size=rows)
    k = rng.integers(0, 12, size=rows)
    c = rng.choice(np.array(["red", "green", "blue", "cyan"]), size=rows, p=[0.4, 0.3, 0.2, 0.1])
    with path.open("w") as f:
        f.write("x,k,c\n")
        f.writelines(f"{a:.6g},{b},{d}\n" for a, b, d in zip(x.tolist(), k.tolist(), c.tolist()))
    return path


def assert_same_columns(x: tuple[Any, ...], y: tuple[Any, ...]) -> None:
    """Equal columns; mean and std up to float rounding (they are summed in a different order)."""
    assert len(x) == len(y)
    for a, b in zip(x, y):
        if isinstance(a, NumericColumn) and isinstance(b, NumericColumn):
            assert a.mean == pytest.approx(b.mean, rel=1e-12) and a.std == pytest.approx(b.std, rel=1e-12)
            a = replace(a, mean=b.mean, std=b.std)
        assert a == b


def test_small_chunks_give_the_same_baseline(tmp_path: Path) -> None:
    path = _big_csv(tmp_path / "big.csv", 120_000)  # more rows than the 100,000-value quantile sample
    small = build([path], chunk_rows=997).baseline
    one = build([path], chunk_rows=1_000_000).baseline
    assert_same_columns(small.columns, one.columns)


def _generated(rows: int, chunk: int) -> Iterator[Chunk]:
    rng = np.random.default_rng(3)
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        yield Chunk({"x": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], size=n).tolist()}, n)


def _peak(rows: int) -> int:
    tracemalloc.start()
    try:
        build_baseline(lambda: _generated(rows, 2000), BuildOptions(sample_size=2000), files=["gen"], created=CREATED)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_rows() -> None:
    small, large = _peak(20_000), _peak(200_000)
    assert large < small + 256 * 1024, (small, large)


def test_partitions_built_on_the_same_edges_merge_to_the_whole(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    rows = [[f"{v:.4f}", rng.choice(["a", "b", "c", "d"]), "" if i % 9 == 0 else i % 3] for i, v in
            enumerate(rng.normal(size=3000))]
    rows = [[*row, f"id{i}"] for i, row in enumerate(rows)]
    whole = build([write_csv(tmp_path / "all.csv", ["x", "c", "k", "id"], rows)], top_k=3, exclude=("id",)).baseline
    assert whole.ignored == (IgnoredColumn("id", "excluded", 3),)
    ref_path = tmp_path / "ref.json"
    save_baseline(whole, ref_path)
    ref = load_baseline(ref_path)
    parts = [build([write_csv(tmp_path / f"p{i}.csv", ["x", "c", "k", "id"], rows[i::3])], like=ref).baseline
             for i in range(3)]
    merged = merge_all(parts)
    assert merged.source.rows == 3000
    assert all(part.ignored == whole.ignored for part in parts) and merged.ignored == whole.ignored
    for a, b in zip(merged.columns, whole.columns):
        assert (a.name, a.count, a.null_count, a.counts_array.tolist()) == (b.name, b.count, b.null_count,
                                                                            b.counts_array.tolist())
        if isinstance(a, NumericColumn) and isinstance(b, NumericColumn):
            assert (a.min, a.max, a.edges, a.psi_groups) == (b.min, b.max, b.edges, b.psi_groups)
            assert a.mean == pytest.approx(b.mean, rel=1e-9) and a.std == pytest.approx(b.std, rel=1e-9)


def test_merge_keeps_the_ignored_columns_of_every_partition(tmp_path: Path) -> None:
    a = build([write_csv(tmp_path / "a.csv", ["x", "id", "n"], [[1, "a", ""], [2, "b", ""]])], exclude=("id",))
    b = build([write_csv(tmp_path / "b.csv", ["x", "ts"], [[3, 1], [4, 2]])], exclude=("ts",), like=a.baseline)
    assert b.baseline.ignored == a.baseline.ignored  # --edges-from: the reference's
    other = replace(b.baseline, ignored=(IgnoredColumn("ts", "excluded"), IgnoredColumn("n", "excluded")))
    assert merge_all([a.baseline, other]).ignored == (
        IgnoredColumn("id", "excluded"), IgnoredColumn("n", "all_null"), IgnoredColumn("ts", "excluded"))


def test_merge_refuses_different_edges(tmp_path: Path) -> None:
    a = build([write_csv(tmp_path / "a.csv", ["x"], [[v] for v in range(10)])]).baseline
    b = build([write_csv(tmp_path / "b.csv", ["x"], [[v] for v in range(20)])]).baseline
    with pytest.raises(BaselineError, match=r"merge: column 'x': edges differ \(11 vs 21 edges, or in value\); "
                                            "build every partition with --edges-from the same reference"):
        merge_all([a, b])


def test_parquet_matches_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(2)
    x = rng.normal(size=500).round(4)
    x[::50] = np.nan
    c = rng.choice(["a", "b"], size=500).tolist()
    c[3] = None
    pq.write_table(pa.table({"x": x, "c": c, "n": np.arange(500)}), tmp_path / "t.parquet", row_group_size=128)
    csv_path = write_csv(tmp_path / "t.csv", ["x", "c", "n"],
                         [[None if np.isnan(a) else a, b, i] for i, (a, b) in enumerate(zip(x.tolist(), c))])
    from_parquet = build([tmp_path / "t.parquet"], chunk_rows=100).baseline
    from_csv = build([csv_path]).baseline
    assert_same_columns(from_parquet.columns, from_csv.columns)


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(BaselineError) as err:
        build([path])
    assert str(err.value) == (f"{path}: reading Parquet needs pyarrow, which is not installed (pip install pyarrow, "
                              "or convert the file to CSV or JSON Lines)")


@pytest.mark.parametrize(("name", "content", "options", "message"), [
    ("t.csv", "a,b\n1,2\n", {"predictions": ("y",)}, "--prediction: column 'y' not found in the data (columns: a, b)"),
    ("t.csv", "a,b\n1,2\n", {"label": "b", "exclude": ("b",)}, "--label: column 'b' is also given to --exclude"),
    ("t.csv", "a,b\n1,2\n", {"label": "b", "predictions": ("b",)}, "--label: column 'b' is also given to --prediction"),
    ("t.csv", "a,b\n1,2\n", {"exclude": ("c",)}, "--exclude: column 'c' not found in the data (columns: a, b)"),
    ("t.csv", "a,b\n,2\n", {"label": "a"}, "--label: column 'a' has no values (all 1 rows are null)"),
    ("t.csv", "a,b\n", {}, "{path}: no rows"),
    ("t.csv", "", {}, "{path}: empty file (expected a header row with the column names)"),
    ("t.csv", "a,a\n1,2\n", {}, "{path}:1: duplicate column name 'a' in the header (column 2)"),
    ("t.csv", "a,b\n1,2\n3\n", {}, "{path}:3: expected 2 fields as in the header, got 1"),
    ("t.jsonl", '{"a": 1}\n{"a": \n', {}, "{path}:2: invalid JSON (Expecting value at column 1)"),
    ("t.jsonl", '{"a": 1}\n[1]\n', {}, "{path}:2: expected a JSON object per line, got list"),
    ("t.jsonl", '{"a": {"b": 1}}\n', {}, "{path}:1: column 'a': nested dict values are not supported (flatten it "
                                         "into scalar columns)"),
    ("t.txt", "a\n1\n", {}, "{path}: unknown data format (expected .csv, .jsonl or .ndjson, optionally .gz, "
                            "or .parquet)"),
])
def test_build_errors(tmp_path: Path, name: str, content: str, options: dict[str, Any], message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(BaselineError) as err:
        build([path], **options)
    assert str(err.value) == message.format(path=path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BaselineError) as err:
        build([tmp_path / "nope.csv"])
    assert str(err.value) == f"{tmp_path / 'nope.csv'}: cannot read (no such file)"


def test_partition_with_a_word_in_a_numeric_column(tmp_path: Path) -> None:
    ref = build([write_csv(tmp_path / "a.csv", ["x"], [[1], [2]])]).baseline
    with pytest.raises(BaselineError, match="column 'x': the --edges-from baseline says numeric, but the data has "
                                            '"oops"'):
        build([write_csv(tmp_path / "b.csv", ["x"], [[1], ["oops"]])], like=ref)
