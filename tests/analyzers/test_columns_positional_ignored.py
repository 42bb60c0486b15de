"""Positional payloads that still carry a column the baseline ignores (--exclude): matched by the training file's order."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from columns_support import Scrape, config, critical_values, ex, rows

from exporter.adapters.base import Message
from exporter.adapters.v2 import adapter as v2
from exporter.analyzers.columns import ColumnMonitor
from exporter.baseline import BaselineError, load_baseline, merge_all, save_baseline
from exporter.baseline.binning import bin_numeric
from exporter.baseline.build import BuildOptions, build_baseline
from exporter.baseline.format import Baseline, IgnoredColumn, NumericColumn, content_sha256, to_dict
from exporter.baseline.load import parse_baseline
from exporter.baseline.readers import open_source
from exporter.baseline.schema import SCHEMAS, first_error

NO_SCHEMA_ERRORS = {"missing_column": 0, "unexpected_column": 0, "column_count": 0, "datatype": 0}
N = 20
A, SKIP, B = 5.0, 1500.0, 150.0  # a in [0, 10), skip in [1000, 2000), b in [100, 200): a swap leaves b's range


def write_training(path: Path, header: tuple[str, ...] = ("a", "skip", "b", "label")) -> Path:
    values = {"a": lambda i: i % 10, "skip": lambda i: 1000 + 10 * i, "b": lambda i: 100 + i, "label": lambda i: i % 2}
    lines = [",".join(header)] + [",".join(str(values[c](i)) for c in header) for i in range(100)]
    path.write_text("\n".join(lines) + "\n")
    return path


def build(path: Path, **options: object) -> Baseline:
    files = [str(path)]
    opts = BuildOptions(**{"label": "label", "exclude": ("skip",), **options})  # type: ignore[arg-type]
    return build_baseline(open_source(files, 10_000), opts, files=files, created="2024-05-01T12:00:00Z").baseline


@pytest.fixture
def baseline(tmp_path: Path) -> Baseline:
    """a, skip, b, label built with --exclude skip --label label, written and read back."""
    out = tmp_path / "baseline.json"
    save_baseline(build(write_training(tmp_path / "train.csv")), out)
    return load_baseline(out)


def monitor(b: Baseline) -> ColumnMonitor:
    return ColumnMonitor(b, config(), critical=critical_values())


def positional(*columns: float) -> object:
    return ex(rows({f"x{i}": [v] * N for i, v in enumerate(columns)}, positional=True))


def schema(s: Scrape) -> dict[str, float | None]:
    return {kind: s.value("model_schema_errors_total", kind=kind) for kind in NO_SCHEMA_ERRORS}


def window_fine(m: ColumnMonitor, name: str) -> list[int]:
    """The fine bin counts of one feature in the first window."""
    t = m.find("feature", name)
    assert t is not None
    total = next(iter(m.windows.values())).read(0.0)
    return list(total[t.offset : t.offset + t.n_bins].tolist())


def fine_of(b: Baseline, name: str, value: float) -> list[int]:
    col = b.column(name)
    assert isinstance(col, NumericColumn)
    return list(bin_numeric(col, [value] * N).counts().tolist())


def assert_in_place(m: ColumnMonitor, b: Baseline) -> None:
    s = Scrape(m, 0.0)
    assert schema(s) == NO_SCHEMA_ERRORS
    assert window_fine(m, "a") == fine_of(b, "a", A)
    assert window_fine(m, "b") == fine_of(b, "b", B)  # b's values, not skip's
    for name in ("a", "b"):
        lab = {"role": "feature", "column": name}
        assert s.value("model_column_values_total", **lab) == N
        assert s.value("model_column_out_of_range_total", **lab, side="high") == 0
    assert "skip" not in s.label_values("column")


# ---------------------------------------------------------------- the baseline records the positions


def test_build_records_where_each_ignored_column_sat(tmp_path: Path, baseline: Baseline) -> None:
    assert [c.name for c in baseline.columns] == ["a", "b", "label"]
    assert baseline.ignored == (IgnoredColumn("skip", "excluded", 1),)
    doc = json.loads((tmp_path / "baseline.json").read_text())
    assert doc["ignored_columns"] == [{"name": "skip", "reason": "excluded", "position": 1}]


def test_positions_leave_out_the_label_and_prediction_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    lines = ["label,a,pred,skip,empty,b"] + [f"{i % 2},{i % 10},{i % 2},{1000 + i},,{100 + i}" for i in range(50)]
    path.write_text("\n".join(lines) + "\n")
    b = build(path, predictions=("pred",))
    assert b.ignored == (IgnoredColumn("skip", "excluded", 1), IgnoredColumn("empty", "all_null", 2))


def test_position_round_trips_and_the_schema_takes_files_with_and_without_it(
    tmp_path: Path, baseline: Baseline
) -> None:
    doc = json.loads((tmp_path / "baseline.json").read_text())
    assert first_error(doc, SCHEMAS[3]) is None
    v2 = {**doc, "format_version": 2, "columns": [{k: v for k, v in c.items() if k != "means"} for c in doc["columns"]]}
    assert first_error(v2, SCHEMAS[2]) is None
    old = json.loads(json.dumps(doc))
    del old["ignored_columns"][0]["position"]
    old["sha256"] = content_sha256(old)
    assert first_error(old, SCHEMAS[3]) is None
    assert parse_baseline(old).ignored == (IgnoredColumn("skip", "excluded", None),)
    again = tmp_path / "again.json"
    save_baseline(parse_baseline(old), again)
    # absent stays absent: same content, same sha256
    assert json.loads(again.read_text())["ignored_columns"] == [{"name": "skip", "reason": "excluded"}]
    assert load_baseline(again).sha256 == old["sha256"]
    negative = json.loads(json.dumps(doc))
    negative["ignored_columns"][0]["position"] = -1
    assert first_error(negative, SCHEMAS[3]) == (("ignored_columns", 0, "position"), "expected a value >= 0, got -1")


@pytest.mark.parametrize(
    ("ignored", "message"),
    [
        (
            [{"name": "s", "reason": "excluded", "position": 1}, {"name": "t", "reason": "excluded", "position": 1}],
            "ignored_columns[1].position: duplicate position 1 (also ignored_columns[0])",
        ),
        (
            [{"name": "s", "reason": "excluded", "position": 3}],
            "ignored_columns[0].position: expected a value below 3 (the 2 features and the 1 ignored columns with a "
            "position), got 3",
        ),
    ],
)
def test_load_refuses_positions_that_cannot_be(baseline: Baseline, ignored: list[object], message: str) -> None:
    doc = json.loads(json.dumps({**to_dict(replace(baseline, sha256="")), "ignored_columns": ignored}))
    doc["sha256"] = content_sha256(doc)
    with pytest.raises(BaselineError) as err:
        parse_baseline(doc, "b.json")
    assert str(err.value) == f"b.json: {message}"


def test_edges_from_keeps_the_positions_and_merge_keeps_only_what_it_knows(tmp_path: Path, baseline: Baseline) -> None:
    part = build(write_training(tmp_path / "p.csv"), label=None, exclude=(), like=baseline)
    assert part.ignored == baseline.ignored  # the reference's layout
    assert merge_all([baseline, part]).ignored == baseline.ignored
    moved = replace(part, ignored=(IgnoredColumn("skip", "excluded", 0),))
    assert merge_all([baseline, moved]).ignored == (IgnoredColumn("skip", "excluded", None),)
    unknown = replace(part, ignored=(IgnoredColumn("skip", "excluded", None),))
    assert merge_all([unknown, baseline]).ignored == (IgnoredColumn("skip", "excluded", None),)
    more = replace(part, ignored=(IgnoredColumn("skip", "excluded", 1), IgnoredColumn("ts", "excluded", 3)))
    assert merge_all([baseline, more]).ignored == (
        IgnoredColumn("skip", "excluded", None),
        IgnoredColumn("ts", "excluded", None),
    )


# ---------------------------------------------------------------- the monitor


def test_positional_rows_with_the_excluded_column_skip_it(baseline: Baseline) -> None:
    m = monitor(baseline)
    m.update([positional(A, SKIP, B)], 0.0)
    assert_in_place(m, baseline)


def test_v2_tensor_with_the_excluded_column(baseline: Baseline) -> None:
    body = json.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [N, 3], "data": [A, SKIP, B] * N}]}
    ).encode()
    parsed = v2.parse_request(
        Message("/v2/models/m/infer", "/v2/models/{model}/infer", {"content-type": "application/json"}, body)
    )
    assert parsed.positional and len(parsed.columns) == 3
    m = monitor(baseline)
    m.update([ex(parsed)], 0.0)
    assert_in_place(m, baseline)


def test_positional_rows_of_the_features_alone_still_zip(baseline: Baseline) -> None:
    m = monitor(baseline)
    m.update([positional(A, B)], 0.0)
    assert_in_place(m, baseline)


@pytest.mark.parametrize("width", [1, 4])
def test_positional_rows_of_another_width_count_column_count(baseline: Baseline, width: int) -> None:
    m = monitor(baseline)
    m.update([positional(*[A, B, B, B][:width])], 0.0)
    s = Scrape(m, 0.0)
    assert schema(s) == {**NO_SCHEMA_ERRORS, "column_count": 1}
    assert s.value("model_column_missing_total", role="feature", column="b") == (N if width == 1 else 0)


def test_a_baseline_without_positions_behaves_as_before(baseline: Baseline) -> None:
    old = replace(baseline, ignored=tuple(replace(c, position=None) for c in baseline.ignored))
    m = monitor(old)
    m.update([positional(A, SKIP, B)], 0.0)
    s = Scrape(m, 0.0)
    assert schema(s) == {**NO_SCHEMA_ERRORS, "column_count": 1}
    assert window_fine(m, "b") == fine_of(baseline, "b", SKIP)  # zipped by position, as before
    m = monitor(old)
    m.update([positional(A, B)], 0.0)
    assert_in_place(m, baseline)


def test_named_payloads_are_untouched(baseline: Baseline) -> None:
    m = monitor(baseline)
    m.update([ex(rows({"a": [A] * N, "skip": [SKIP] * N, "b": [B] * N}))], 0.0)
    assert_in_place(m, baseline)
    assert np.asarray(window_fine(m, "b")).sum() == N
