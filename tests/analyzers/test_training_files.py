"""Baselines from training files as people write them, checked against live payloads through the real adapters.

Each test writes a training file the way pandas/pyarrow would, builds the baseline with the real
builder, parses live request bodies with the protocol adapters and reads the column monitor's metrics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from columns_support import Scrape, config, critical_values, ex

from exporter.adapters import Message, Rows, v1, v2
from exporter.analyzers.columns import ColumnMonitor
from exporter.baseline import Baseline, CategoricalColumn, load_baseline, save_baseline
from exporter.baseline.build import BuildOptions, build_baseline
from exporter.baseline.readers import open_source

TRUES, FALSES = 6, 4  # training share of True: 60 %; live payloads below keep it, so PSI is 0


def build(path: Path, chunk_rows: int = 10_000, **options: Any) -> Baseline:
    return build_baseline(open_source([str(path)], chunk_rows), BuildOptions(**options), files=[str(path)],
                          created="2024-05-01T12:00:00Z").baseline


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def member_csv(tmp_path: Path) -> Path:
    """What pandas' DataFrame.to_csv writes for an int and a bool column (True/False)."""
    flags = [True] * TRUES + [False] * FALSES
    return write_csv(tmp_path / "train.csv", "age,is_member\n" + "".join(f"{20 + i},{f}\n" for i, f in enumerate(flags)))


def v1_rows(instances: list[dict[str, Any]]) -> Rows:
    """A KServe V1 request body as a JSON client sends it."""
    body = json.dumps({"instances": instances}).encode()
    return v1.adapter.parse_request(Message("/v1/models/m:predict", "/v1/models/{model}:predict", {}, body))


def v2_rows(inputs: list[dict[str, Any]], binary: bytes = b"") -> Rows:
    """An Open Inference Protocol request, with the binary tensor extension when `binary` is given."""
    header = json.dumps({"inputs": inputs}).encode()
    headers = {"inference-header-content-length": str(len(header))} if binary else {}
    return v2.adapter.parse_request(Message("/v2/models/m/infer", "/v2/models/{model}/infer", headers,
                                            header + binary))


def scrape(baseline: Baseline, *payloads: Rows) -> Scrape:
    m = ColumnMonitor(baseline, config(min_rows=1), critical=critical_values())
    m.update([ex(p) for p in payloads], 0.0)
    return Scrape(m, 0.0)


def flag_bins(s: Scrape, column: str = "is_member") -> dict[str, float]:
    return {lab["bin"]: v for lab, v in s.samples("model_column_bin_total") if lab["column"] == column}


def assert_matches(s: Scrape, trues: int, falses: int, column: str = "is_member") -> None:
    """Every live value landed on its baseline category: none unseen, and the shares scored as equal."""
    lab = {"role": "feature", "column": column}
    assert s.value("model_column_unseen_total", **lab) == 0
    assert s.value("model_column_type_errors_total", **lab) == 0
    assert flag_bins(s, column) == {"true": trues, "false": falses, "__other__": 0}
    assert s.value("model_drift_score", **lab, method="psi", window="5m") == pytest.approx(0.0, abs=1e-12)


LIVE = [True] * TRUES + [False] * FALSES


# ---------------------------------------------------------------- booleans


def test_csv_true_false_matches_json_true_false(tmp_path: Path) -> None:
    b = build(member_csv(tmp_path))
    col = b.column("is_member")
    assert isinstance(col, CategoricalColumn) and col.categories == ("true", "false") and col.counts == (6, 4)
    s = scrape(b, v1_rows([{"age": 30, "is_member": f} for f in LIVE]))
    assert_matches(s, TRUES, FALSES)


def test_jsonl_booleans_build_the_same_column_as_csv(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"age": 20 + i, "is_member": f}) + "\n" for i, f in enumerate(LIVE)))
    b = build(path)
    assert b.column("is_member") == build(member_csv(tmp_path)).column("is_member")
    assert_matches(scrape(b, v1_rows([{"age": 30, "is_member": f} for f in LIVE])), TRUES, FALSES)


def test_parquet_booleans_build_the_same_column_as_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"age": np.arange(20, 30), "is_member": pa.array(LIVE, pa.bool_())}),
                   tmp_path / "train.parquet")
    b = build(tmp_path / "train.parquet")
    assert b.column("is_member") == build(member_csv(tmp_path)).column("is_member")
    assert_matches(scrape(b, v1_rows([{"age": 30, "is_member": f} for f in LIVE])), TRUES, FALSES)


@pytest.mark.parametrize("rows", [10, 3])  # numpy above 8 rows of JSON data, Python values below
def test_v2_bool_tensor_in_json_matches_csv(tmp_path: Path, rows: int) -> None:
    b = build(member_csv(tmp_path))
    flags = (LIVE * 3)[:rows]
    s = scrape(b, v2_rows([{"name": "age", "shape": [rows], "datatype": "INT64", "data": [30] * rows},
                           {"name": "is_member", "shape": [rows], "datatype": "BOOL", "data": flags}]))
    assert flag_bins(s) == {"true": sum(flags), "false": rows - sum(flags), "__other__": 0}
    assert s.value("model_column_unseen_total", role="feature", column="is_member") == 0
    assert s.value("model_schema_errors_total", kind="datatype") == 0


def test_v2_bool_tensor_in_binary_matches_csv(tmp_path: Path) -> None:
    b = build(member_csv(tmp_path))
    age = np.full(10, 30, dtype="<i8").tobytes()
    flags = bytes(int(f) for f in LIVE)  # one byte per BOOL, non-zero is true
    s = scrape(b, v2_rows([{"name": "age", "shape": [10], "datatype": "INT64", "parameters": {"binary_data_size": 80}},
                           {"name": "is_member", "shape": [10], "datatype": "BOOL",
                            "parameters": {"binary_data_size": 10}}], age + flags))
    assert_matches(s, TRUES, FALSES)


def test_a_boolean_column_takes_every_spelling_of_true_and_false(tmp_path: Path) -> None:
    b = build(member_csv(tmp_path))
    live = ["TRUE", "True", 1, 1.0, np.True_, "true", "false", 0, "FALSE", False]
    s = scrape(b, Rows({"age": [30] * 10, "is_member": live}, 10),
               Rows({"age": np.full(4, 30), "is_member": np.array([1, 1, 0, 2])}, 4))
    lab = {"role": "feature", "column": "is_member"}
    assert flag_bins(s) == {"true": 8, "false": 5, "__other__": 1}  # 2 is not a boolean
    assert s.value("model_column_unseen_total", **lab) == 1


def test_only_what_is_clearly_boolean_becomes_true_false(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "bit,answer,mixed\n" + "".join(
        f"{i % 2},{['yes', 'no'][i % 2]},{['True', 'False', 'maybe'][i % 3]}\n" for i in range(12)))
    b = build(path)
    assert b.column("bit").type == "numeric"  # 0/1 stays a number
    answer, mixed = b.column("answer"), b.column("mixed")
    assert isinstance(answer, CategoricalColumn) and set(answer.categories) == {"yes", "no"}
    assert isinstance(mixed, CategoricalColumn) and set(mixed.categories) == {"true", "false", "maybe"}
    assert not mixed.boolean  # a column with other values does not take 1/0 as true/false
    s = scrape(b, Rows({"bit": [True, False], "answer": ["yes", "no"], "mixed": [1, "TRUE"]}, 2))
    assert s.value("model_column_unseen_total", role="feature", column="mixed") == 1
    assert s.value("model_column_type_errors_total", role="feature", column="bit") == 0  # JSON true is 1 there


def test_the_build_report_says_why_a_column_is_categorical(tmp_path: Path) -> None:
    from exporter.baseline.build import format_report

    path = member_csv(tmp_path)
    result = build_baseline(open_source([str(path)]), BuildOptions(), files=[str(path)], created="2024-05-01T12:00:00Z")
    line = format_report(result.report).splitlines()[2].split()
    assert line[:3] == ["is_member", "feature", "categorical"] and line[-2:] == ["true/false", "values"]


# ---------------------------------------------------------------- large integer ids

BIG = 2**53  # float64 reads 2**53 + 1 as 2**53, and 2**53 + 3 and 2**53 + 5 both as 2**53 + 4
IDS = [BIG + 1, BIG + 2, BIG + 3, BIG + 5]
TIMES = [4, 3, 2, 1]  # how often each id occurs in training


def id_rows() -> list[int]:
    return [i for i, n in zip(IDS, TIMES) for _ in range(n)]


def assert_ids_match(b: Baseline) -> None:
    col = b.column("account")
    assert isinstance(col, CategoricalColumn)
    assert col.categories == tuple(map(str, IDS)) and col.counts == tuple(TIMES) and col.other_count == 0
    live = v1_rows([{"account": i, "amount": 1.5} for i in IDS])  # JSON keeps every digit
    s = scrape(b, live)
    assert s.value("model_column_unseen_total", role="feature", column="account") == 0
    assert {lab["bin"]: v for lab, v in s.samples("model_column_bin_total") if lab["column"] == "account"} == {
        **{str(i): 1 for i in IDS}, "__other__": 0}


def test_csv_integer_ids_as_categories_keep_every_digit(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "account,amount\n" + "".join(f"{i},1.5\n" for i in id_rows()))
    assert_ids_match(build(path, categorical=("account",)))


def test_parquet_integer_ids_as_categories_keep_every_digit(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ids = id_rows()
    pq.write_table(pa.table({"account": pa.array(ids, pa.int64()), "amount": [1.5] * len(ids)}),
                   tmp_path / "t.parquet")
    assert_ids_match(build(tmp_path / "t.parquet", categorical=("account",)))
    with_null = pa.table({"account": pa.array([*ids, None], pa.uint64()), "amount": [1.5] * (len(ids) + 1)})
    pq.write_table(with_null, tmp_path / "n.parquet")
    col = build(tmp_path / "n.parquet", categorical=("account",)).column("account")
    assert isinstance(col, CategoricalColumn) and col.categories == tuple(map(str, IDS)) and col.null_count == 1


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_integer_ids_that_turn_out_categorical_keep_every_digit(tmp_path: Path, suffix: str) -> None:
    """No --categorical: the column reads as numbers until a word shows up in a later chunk; its ids stay exact."""
    values: list[Any] = [*id_rows(), "unknown"]
    path = tmp_path / f"t.{suffix}"
    if suffix == "csv":
        path.write_text("account,amount\n" + "".join(f"{v},1.5\n" for v in values))
    else:
        path.write_text("".join(json.dumps({"account": v, "amount": 1.5}) + "\n" for v in values))
    col = build(path, chunk_rows=4, top_k=4).column("account")
    assert isinstance(col, CategoricalColumn)
    assert col.categories == tuple(map(str, IDS)) and col.counts == tuple(TIMES) and col.other_count == 1


# ---------------------------------------------------------------- constant and two-valued columns


def test_constant_and_0_1_columns_drift_when_live_values_leave_them(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "version,churned\n" + "".join(f"3,{int(i % 4 == 0)}\n" for i in range(400)))
    b = build(path)
    methods = ("psi", "kl", "js", "ks", "wasserstein")
    m = ColumnMonitor(b, config(min_rows=1, numeric_methods=methods), critical=critical_values())
    m.update([ex(v1_rows([{"version": 4, "churned": 7} if i % 2 else {"version": 3, "churned": 0}
                          for i in range(400)]))], 0.0)
    s = Scrape(m, 0.0)
    for column in ("version", "churned"):
        lab = {"role": "feature", "column": column}
        bins = {x["bin"]: v for x, v in s.samples("model_column_bin_total") if x["column"] == column}
        ratios = {x["bin"]: v for x, v in s.samples("model_column_baseline_ratio") if x["column"] == column}
        assert bins["above"] == 200 and bins["below"] == 0 and ratios["above"] == ratios["below"] == 0
        for method in methods:
            score = s.value("model_drift_score", **lab, method=method, window="5m")
            threshold = s.value("model_drift_threshold", **lab, method=method, window="5m")
            assert score is not None and threshold is not None and score > threshold, (column, method)
    labels = [x["bin"] for x, _ in s.samples("model_column_bin_total") if x["column"] == "version"]
    assert labels == ["below", "[3, 3]", "above"]


# ---------------------------------------------------------------- excluded and all-null columns


def test_excluded_and_all_null_columns_in_live_payloads_are_no_schema_errors(tmp_path: Path) -> None:
    """README: `--exclude customer_id`; and a feature that training never filled in. Both still come in every payload."""
    path = write_csv(tmp_path / "t.csv", "customer_id,age,notes\n" + "".join(f"c{i},{20 + i},\n" for i in range(20)))
    saved = tmp_path / "baseline.json"
    save_baseline(build(path, exclude=("customer_id",)), saved)
    b = load_baseline(saved)  # through the file: the ignored columns are part of the format
    assert [c.name for c in b.columns] == ["age"]
    assert [(c.name, c.reason) for c in b.ignored] == [("customer_id", "excluded"), ("notes", "all_null")]
    s = scrape(b, v1_rows([{"customer_id": f"c{i}", "age": 30, "notes": "vip"} for i in range(3)]),
               v1_rows([{"customer_id": "c9", "age": 31}]), v1_rows([{"age": 32, "notes": None}]))
    assert s.value("model_schema_errors_total", kind="unexpected_column") == 0
    assert s.value("model_column_values_total", role="feature", column="age") == 5
    assert not {"customer_id", "notes"} & s.label_values("column")
    s = scrape(b, v1_rows([{"customer_id": "c1", "age": 30, "surprise": 1}]))
    assert s.value("model_schema_errors_total", kind="unexpected_column") == 1  # a column training never had
