"""`baseline build` and `baseline merge` from the command line: files written, report, errors and exit codes."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.baseline import load_baseline
from exporter.baseline.cli import add_baseline_parser, run_baseline

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def run(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="model-exporter")
    add_baseline_parser(parser.add_subparsers(dest="command"))
    err = io.StringIO()
    code = run_baseline(parser.parse_args(list(argv)), stderr=err, now=NOW)
    return code, err.getvalue()


def data(tmp_path: Path, name: str = "train.csv", rows: range = range(100)) -> Path:
    path = tmp_path / name
    path.write_text("x,color,pred,y\n" + "".join(f"{i % 17},{'ab'[i % 2]},{i % 3},{i % 3 if i % 5 else 0}\n"
                                                   for i in rows))
    return path


def test_build_writes_a_sealed_baseline_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "baseline.json"
    code, err = run("baseline", "build", str(data(tmp_path)), "-o", str(out), "--prediction", "pred", "--label", "y",
                    "--categorical", "pred,y", "--bins", "8", "--psi-bins", "4")
    assert code == 0, err
    b = load_baseline(out)
    assert b.created == "2024-05-01T12:00:00Z" and b.source.rows == 100
    assert [(c.name, c.role, c.type) for c in b.columns] == [
        ("x", "feature", "numeric"), ("color", "feature", "categorical"), ("pred", "prediction", "categorical"),
        ("y", "label", "categorical")]
    assert len(b.column("x").counts_array) == 8 + 3  # 8 bins from min to max, one for max, below and above
    lines = err.splitlines()
    assert lines[0].split() == ["column", "role", "type", "rows", "nulls", "bins", "why"]
    assert lines[-1].startswith(f"{out}: 4 columns, 100 rows; reference performance: accuracy 0.")


def test_build_names_the_columns_it_leaves_out(tmp_path: Path) -> None:
    out = tmp_path / "baseline.json"
    code, err = run("baseline", "build", str(data(tmp_path)), "-o", str(out), "--exclude", "color")
    assert code == 0, err
    assert err.splitlines()[-1] == f"{out}: 3 columns, 100 rows; ignored: color (excluded)"
    doc = json.loads(out.read_text())
    assert doc["format_version"] == 3 and doc["ignored_columns"] == [{"name": "color", "reason": "excluded", "position": 1}]


def test_merge_adds_partitions_and_seals(tmp_path: Path) -> None:
    ref = tmp_path / "ref.json"
    assert run("baseline", "build", str(data(tmp_path)), "-o", str(ref))[0] == 0
    parts = []
    for i, rows in enumerate((range(0, 40), range(40, 100))):
        part = tmp_path / f"part{i}.json"
        code, err = run("baseline", "build", str(data(tmp_path, f"p{i}.csv", rows)), "-o", str(part),
                        "--edges-from", str(ref))
        assert code == 0, err
        doc = json.loads(part.read_text())
        del doc["sha256"]  # as if another tool (Spark, DuckDB) had written it
        part.write_text(json.dumps(doc))
        parts.append(str(part))
    out = tmp_path / "merged.json"
    code, err = run("baseline", "merge", *parts, "-o", str(out))
    assert code == 0 and err == f"{out}: 4 columns, 100 rows from 2 partition(s)\n"
    merged, whole = load_baseline(out), load_baseline(ref)
    assert [c.counts_array.tolist() for c in merged.columns] == [c.counts_array.tolist() for c in whole.columns]


@pytest.mark.parametrize(("args", "message"), [
    (["--label", "nope"], "--label: column 'nope' not found in the data (columns: x, color, pred, y)"),
    (["--bins", "5", "--psi-bins", "6"], "--psi-bins: expected at most --bins = 5, got 6"),
    (["--edges-from", "missing.json"], "missing.json: cannot read (No such file or directory)"),
])
def test_build_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    code, err = run("baseline", "build", str(data(tmp_path)), "-o", str(tmp_path / "b.json"), *args)
    assert code == 2 and err == f"model-exporter: error: {message}\n"
    assert not (tmp_path / "b.json").exists()


def test_flag_values_are_checked_by_the_parser(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run("baseline", "build", "x.csv", "-o", "b.json", "--top-k", "0")
    assert exit_.value.code == 2
    assert "argument --top-k: expected an integer >= 1, got 0" in capsys.readouterr().err
