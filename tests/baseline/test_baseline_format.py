"""The baseline file: round trip, sha256, the invalid-baseline table with exact messages, PSI groups."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.baseline import BaselineError, NumericColumn, dumps, load_baseline, parse_baseline
from exporter.baseline.format import IgnoredColumn, content_sha256, derive_psi_groups, to_dict
from exporter.baseline.schema import SCHEMA, first_error

ABOVE_70 = 70.00000000000001  # the next double above the max: the above bin's edge


def valid_doc() -> dict[str, Any]:
    """A small, hand-written, valid baseline (sealed)."""
    doc: dict[str, Any] = {
        "format_version": 3,
        "created": "2024-05-01T12:00:00Z",
        "source": {"files": ["train.csv"], "rows": 10},
        "performance": {"accuracy": 0.9},
        "columns": [
            {"name": "age", "role": "feature", "type": "numeric", "count": 10, "null_count": 1,
             "min": 18.0, "max": 70.0, "mean": 40.0, "std": 15.0,
             "edges": [18.0, 30.0, 45.0, 70.0, ABOVE_70], "counts": [0, 3, 3, 2, 1, 0],
             "psi_groups": [0, 1, 3, 5], "means": [None, 24.0, 38.0, 60.0, 70.0, None]},
            {"name": "color", "role": "feature", "type": "categorical", "count": 10, "null_count": 0,
             "categories": ["red", "blue"], "counts": [6, 3], "other_count": 1},
            {"name": "label", "role": "label", "type": "categorical", "count": 10, "null_count": 0,
             "categories": ["0", "1"], "counts": [5, 5], "other_count": 0},
        ],
        "ignored_columns": [{"name": "customer_id", "reason": "excluded"}, {"name": "notes", "reason": "all_null"}],
    }
    doc["sha256"] = content_sha256(doc)
    return doc


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "baseline.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_valid_document_loads(tmp_path: Path) -> None:
    b = load_baseline(write(tmp_path, valid_doc()))
    assert [c.name for c in b.columns] == ["age", "color", "label"]
    age = b.column("age")
    assert isinstance(age, NumericColumn) and age.edges == (18.0, 30.0, 45.0, 70.0, ABOVE_70)
    assert age.psi_groups == (0, 1, 3, 5)
    assert b.column("color").counts_array.tolist() == [6, 3, 1]
    assert b.performance == {"accuracy": 0.9}
    assert [c.name for c in b.by_role("label")] == ["label"]
    assert b.ignored == (IgnoredColumn("customer_id", "excluded"), IgnoredColumn("notes", "all_null"))


def test_round_trip_is_identical(tmp_path: Path) -> None:
    doc = valid_doc()
    b = load_baseline(write(tmp_path, doc))
    assert to_dict(b) == doc
    again = load_baseline(write(tmp_path, dumps(b)))
    assert again == b and again.sha256 == doc["sha256"]


def test_a_version_2_file_without_means_round_trips_as_version_2(tmp_path: Path) -> None:
    doc = valid_doc()
    doc["format_version"] = 2
    del doc["columns"][0]["means"]
    doc["sha256"] = content_sha256(doc)
    b = load_baseline(write(tmp_path, doc))
    age = b.column("age")
    assert isinstance(age, NumericColumn) and age.means == ()
    assert to_dict(b) == doc  # same version, same content, same sha256


def test_schema_validator_knows_every_keyword_used() -> None:
    assert first_error(valid_doc(), SCHEMA) is None
    with pytest.raises(ValueError, match="not supported"):
        first_error({}, {"oneOf": []})


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    return edit


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]
    return edit


# Each edit is applied to the valid document, which is then resealed (so the sha256 is not what fails).
INVALID = [
    (_set("format_version", 4), "format_version: unsupported version 4 (this model-exporter reads versions 1, 2 and 3)"),
    (_set("format_version", True),
     "format_version: unsupported version true (this model-exporter reads versions 1, 2 and 3)"),
    (_set("columns.0.means", [None, 24.0, 38.0]), "columns[0].means: expected 6 values (one per fine bin), got 3"),
    (_set("columns.0.means", [0.0, 24.0, 38.0, 60.0, 70.0, None]),
     "columns[0].means[0]: expected a finite number for a bin with values and null for an empty one, got 0.0"),
    (_set("columns.0.means", [None, "24", 38.0, 60.0, 70.0, None]),
     'columns[0].means[1]: expected a number or null, got "24"'),
    (_drop("created"), "created: required field is missing"),
    (_set("created", "yesterday"),
     'created: expected an ISO-8601 UTC time like 2024-05-01T12:00:00Z, got "yesterday"'),
    (_set("created", "2024-13-01T00:00:00Z"),
     'created: expected an ISO-8601 UTC time like 2024-05-01T12:00:00Z, got "2024-13-01T00:00:00Z"'),
    (_set("extra", 1), "extra: unknown field (expected one of: format_version, created, source, sha256, "
                       "performance, columns, ignored_columns)"),
    (_set("ignored_columns.0.reason", "dropped"),
     'ignored_columns[0].reason: expected one of "excluded", "all_null", got "dropped"'),
    (_drop("ignored_columns.1.reason"), "ignored_columns[1].reason: required field is missing"),
    (_set("ignored_columns.1.name", "customer_id"),
     'ignored_columns[1].name: duplicate name "customer_id" (also ignored_columns[0])'),
    (_set("ignored_columns.1.name", "color"), 'ignored_columns[1].name: "color" is a column of the baseline (columns[1])'),
    (_set("ignored_columns.0.why", "id"), "ignored_columns[0].why: unknown field (expected one of: name, reason, position)"),
    (_set("source.rows", -1), "source.rows: expected a value >= 0, got -1"),
    (_set("performance.accuracy", "high"), 'performance.accuracy: expected a number, got "high"'),
    (_set("columns.1.role", "target"),
     'columns[1].role: expected one of "feature", "prediction", "label", got "target"'),
    (_set("columns.0.type", "float"), 'columns[0].type: expected one of "numeric", "categorical", got "float"'),
    (_set("columns.0.count", "10"), 'columns[0].count: expected an integer, got "10"'),
    (_set("columns.0.count", 10.0), "columns[0].count: expected an integer, got 10.0"),
    (_set("columns.0.counts.2", -1), "columns[0].counts[2]: expected a value >= 0, got -1"),
    (_set("columns.0.edges", [18.0, 45.0, 30.0, 70.0, ABOVE_70]),
     "columns[0].edges[2]: expected values in increasing order, got 30.0 after 45.0"),
    (_set("columns.0.edges", [18.0, 30.0, 30.0, 70.0, ABOVE_70]),
     "columns[0].edges[2]: expected values in increasing order, got 30.0 after 30.0"),
    (_set("columns.0.counts", [0, 3, 3, 3, 0]), "columns[0].counts: expected 6 values (len(edges) + 1), got 5"),
    (_set("columns.0.counts", [0, 3, 3, 2, 2, 0]), "columns[0].counts: values add up to 10, expected count - "
                                                   "null_count = 9"),
    (_drop("columns.0.edges"), "columns[0].edges: required field is missing"),
    (_set("columns.0.edges", [70.0]), "columns[0].edges: expected at least 2 items, got 1"),
    (_set("columns.0.std", -1.0), "columns[0].std: expected a value >= 0, got -1.0"),
    (_set("columns.0.max", 10.0), "columns[0].max: expected at least min = 18.0, got 10.0"),
    (_set("columns.0.psi_groups", [1, 2]),
     "columns[0].psi_groups[0]: expected 0 (the first coarse bin starts at fine bin 0), got 1"),
    (_set("columns.0.psi_groups", [0, 1, 3, 2, 5]),
     "columns[0].psi_groups[3]: expected increasing fine-bin indexes below 6, got 2 after 3"),
    (_set("columns.0.psi_groups", [0, 1, 6]),
     "columns[0].psi_groups[2]: expected increasing fine-bin indexes below 6, got 6 after 1"),
    (_set("columns.0.psi_groups", [0, 2, 5]),
     "columns[0].psi_groups: expected the below and above bins (fine bins 0 and 5) to be coarse bins of their "
     "own: a list starting 0, 1 and ending 5, got [0, 2, 5]"),
    (_set("columns.0.psi_groups", [0, 1, 3]),
     "columns[0].psi_groups: expected the below and above bins (fine bins 0 and 5) to be coarse bins of their "
     "own: a list starting 0, 1 and ending 5, got [0, 1, 3]"),
    (_set("columns.0.null_count", 11), "columns[0].null_count: expected at most count = 10, got 11"),
    (_set("columns.2.count", 9), "columns[2].count: expected source.rows = 10, got 9"),
    (_set("columns.1.edges", [1.0]), "columns[1].edges: unknown field (expected one of: name, role, type, count, "
                                     "null_count, categories, counts, other_count)"),
    (_set("columns.1.name", ""), "columns[1].name: expected a non-empty string"),
    (_set("columns.1.counts", [6, 3, 0]), "columns[1].counts: expected 2 values (one per category), got 3"),
    (_set("columns.1.categories", ["red", "red"]),
     'columns[1].categories[1]: duplicate category "red" (also categories[0])'),
    (_set("columns.1.other_count", 2),
     "columns[1].counts: counts plus other_count add up to 11, expected count - null_count = 10"),
    (_set("columns.2.name", "age"), 'columns[2].name: duplicate column name "age" (also columns[0])'),
    (_set("columns", {}), "columns: expected an array, got an object"),
    (_set("sha256", "abc"), 'sha256: expected a string matching ^[0-9a-f]{64}$, got "abc"'),
]


@pytest.mark.parametrize(("edit", "message"), INVALID, ids=[m.split(":")[0] + "-" + str(i)
                                                           for i, (_, m) in enumerate(INVALID)])
def test_invalid_baselines(tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str) -> None:
    doc = valid_doc()
    edit(doc)
    if doc.get("sha256") != "abc":
        doc["sha256"] = content_sha256(doc)
    path = write(tmp_path, doc)
    with pytest.raises(BaselineError) as err:
        load_baseline(path)
    assert str(err.value) == f"{path}: {message}"


def test_edited_file_fails_its_sha256(tmp_path: Path) -> None:
    doc = valid_doc()
    doc["columns"][0]["counts"] = [0, 4, 2, 2, 1]
    path = write(tmp_path, doc)
    with pytest.raises(BaselineError) as err:
        load_baseline(path)
    assert str(err.value).startswith(f"{path}: sha256: does not match the content (file says {doc['sha256'][:12]}…")
    assert "the file was edited or damaged" in str(err.value)


def test_missing_sha256_is_an_error_unless_partitions_are_allowed(tmp_path: Path) -> None:
    doc = valid_doc()
    del doc["sha256"]
    path = write(tmp_path, doc)
    with pytest.raises(BaselineError, match=r"sha256: required field is missing \(seal a file"):
        load_baseline(path)
    assert load_baseline(path, require_sha=False).sha256 == ""


def test_missing_psi_groups_are_derived(tmp_path: Path) -> None:
    doc = valid_doc()
    del doc["columns"][0]["psi_groups"]
    del doc["sha256"]
    age = parse_baseline(doc, "x", require_sha=False).column("age")
    assert isinstance(age, NumericColumn) and age.psi_groups == derive_psi_groups([0, 3, 3, 2, 1, 0])


# ---------------------------------------------------------------- format_version 1


def v1_doc() -> dict[str, Any]:
    """valid_doc() as format_version 1 wrote it: the last fine bin [70, +inf) held the max and whatever lay above."""
    doc = valid_doc()
    doc["format_version"] = 1
    del doc["ignored_columns"]
    age = doc["columns"][0]
    del age["means"]
    age["edges"], age["counts"], age["psi_groups"] = [18.0, 30.0, 45.0, 70.0], [0, 3, 3, 2, 1], [0, 2, 3]
    doc["sha256"] = content_sha256({k: v for k, v in doc.items() if k != "sha256"})
    return doc


def test_version_1_files_are_read_with_an_above_bin(tmp_path: Path) -> None:
    doc = v1_doc()
    b = load_baseline(write(tmp_path, doc))
    age = b.column("age")
    assert isinstance(age, NumericColumn)
    assert age.edges == (18.0, 30.0, 45.0, 70.0, ABOVE_70) and age.counts == (0, 3, 3, 2, 1, 0)
    assert age.psi_groups == (0, 1, 2, 3, 5)  # version 1's groups, with below and above split off
    assert b.sha256 == doc["sha256"]  # the file's own hash: what model_baseline_info reports
    assert b.format_version == 2 and b.columns[1:] == load_baseline(write(tmp_path, valid_doc())).columns[1:]
    assert b.ignored == ()
    resealed = load_baseline(write(tmp_path, dumps(b)))  # written again, it is a version 2 file
    assert resealed.columns == b.columns and json.loads(dumps(b))["format_version"] == 2


def test_version_1_files_without_psi_groups_get_the_version_2_rule(tmp_path: Path) -> None:
    doc = v1_doc()
    del doc["columns"][0]["psi_groups"]
    del doc["sha256"]
    age = parse_baseline(doc, "x", require_sha=False).column("age")
    assert isinstance(age, NumericColumn) and age.psi_groups == derive_psi_groups([0, 3, 3, 2, 1, 0])


@pytest.mark.parametrize(("edit", "message"), [
    (_set("columns.0.counts", [0, 3, 3, 3, 0, 0]), "columns[0].counts: expected 5 values (len(edges) + 1), got 6"),
    (_set("ignored_columns", []), "ignored_columns: unknown field (expected one of: format_version, created, "
                                  "source, sha256, performance, columns)"),
    (_set("columns.0.edges", [18.0]), "columns[0].counts: expected 2 values (len(edges) + 1), got 5"),
])
def test_version_1_files_are_checked_as_version_1(tmp_path: Path, edit: Callable[[dict[str, Any]], None],
                                                  message: str) -> None:
    doc = v1_doc()
    edit(doc)
    doc["sha256"] = content_sha256(doc)
    path = write(tmp_path, doc)
    with pytest.raises(BaselineError) as err:
        load_baseline(path)
    assert str(err.value) == f"{path}: {message}"


@pytest.mark.parametrize(("text", "message"), [
    ("[1, 2]", "expected a JSON object at the top level, got an array"),
    ('{"a": 1,}', "line 1 column 9: invalid JSON (Expecting property name enclosed in double quotes)"),
    ('{"a": NaN}', "invalid JSON (NaN is not valid JSON; the format has no NaN or Infinity)"),
])
def test_unparseable_files(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(BaselineError) as err:
        load_baseline(path)
    assert str(err.value) == f"{path}: {message}"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(BaselineError) as err:
        load_baseline(tmp_path / "nope.json")
    assert str(err.value) == f"{tmp_path / 'nope.json'}: cannot read (No such file or directory)"


@pytest.mark.parametrize(("counts", "bins", "groups"), [
    ([0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 1, 0], 10, (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12)),
    ([0, 50, 50, 1, 0], 2, (0, 1, 2, 4)),        # two halves; the max bin joins the last; below, above alone
    ([0, 90, 5, 5, 0], 10, (0, 1, 2, 4)),        # a heavy fine bin spans several targets
    ([0, 5, 5, 90, 0, 0], 10, (0, 1, 3, 5)),     # no group without rows (the empty max bin joins)
    ([0, 100, 0], 10, (0, 1, 2)),                # a constant column: below | the value | above
    ([3, 100, 4], 10, (0, 1, 2)),                # below and above stay alone even when not empty
    ([0, 0, 0], 10, (0, 1, 2)),
    ([0, 7], 10, (0, 1)),                        # fewer than 3 fine bins: each its own
    ([7], 10, (0,)),
])
def test_psi_groups_rule(counts: list[int], bins: int, groups: tuple[int, ...]) -> None:
    assert derive_psi_groups(counts, bins) == groups


def test_psi_groups_are_about_equal_on_continuous_data() -> None:
    counts = [0] + [20] * 50 + [1, 0]
    groups = derive_psi_groups(counts, 10)
    sizes = [sum(counts[a:b]) for a, b in zip(groups, [*groups[1:], len(counts)])]
    assert sizes == [0] + [100] * 9 + [101, 0]
