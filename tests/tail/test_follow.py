"""The follower under what real logs do, each case written by a real writer process while it reads.

Every line carries its sequence number: the tests check that each was read exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporter.sources.follow import Follower, Line

WRITER = str(Path(__file__).with_name("log_writer.py"))


def ids(lines: list[Line]) -> list[int]:
    return [int(json.loads(line.data)["id"]) for line in lines]


def follow_while(follower: Follower, proc: subprocess.Popen[bytes]) -> list[Line]:
    """Poll (checkpointing after each poll) while the writer runs, then until nothing new comes."""
    out: list[Line] = []
    while proc.poll() is None:
        out += follower.poll()
        follower.checkpoint()
        time.sleep(0.002)
    assert proc.returncode == 0
    while True:  # everything is on disk now: a poll that finds nothing means all was read
        more = follower.poll()
        follower.checkpoint()
        if not more:
            return out
        out += more


def writer(mode: str, path: Path, n1: int, n2: int = 0, offsets: Path | None = None) -> subprocess.Popen[bytes]:
    args = [sys.executable, WRITER, mode, str(path), str(n1), str(n2)] + ([str(offsets)] if offsets else [])
    return subprocess.Popen(args)


def test_append_with_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    f = Follower([str(log)], offsets_path=str(tmp_path / "offsets.json"))
    lines = follow_while(f, writer("append", log, 2000))
    assert ids(lines) == list(range(2000))
    assert f.stats[0].lines == 2000
    assert lines[0].where == f"{log}:1"  # started at the end of an empty file: its line numbers are known


def test_rename_rotation_drains_the_old_file_first(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    f = Follower([str(log)], from_start=True, close_after=0.0)
    lines = follow_while(f, writer("rename", log, 1500, 500))
    assert ids(lines) == list(range(2000))  # in order: the old file's end before the new file's start
    assert f.stats[0].rotations == 1
    assert len(f.files) == 1  # the rotated file is closed once drained and idle


def test_copytruncate_starts_over(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    offsets = tmp_path / "offsets.json"
    f = Follower([str(log)], from_start=True, offsets_path=str(offsets))
    lines = follow_while(f, writer("copytruncate", log, 300, 30, offsets))
    assert ids(lines) == list(range(330))
    assert f.stats[0].truncations == 1
    assert (tmp_path / "app.log.1").exists()  # the copy does not match the pattern: not read twice


def test_file_that_appears_later_is_read_from_its_start(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.log")
    f = Follower([pattern], offsets_path=str(tmp_path / "offsets.json"))
    assert f.poll() == []
    lines = follow_while(f, writer("late", tmp_path / "b.log", 500))
    assert ids(lines) == list(range(500))
    assert lines[0].where == f"{tmp_path / 'b.log'}:1"


def test_over_long_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    f = Follower([str(log)], from_start=True, max_line=64 << 10)
    lines = follow_while(f, writer("long", log, 100))
    assert ids(lines) == list(range(100))
    assert f.stats[0].overlong == 10
    assert lines[-1].where == f"{log}:109"  # 99 records and 9 skipped lines before it: skipped lines count


def test_restart_neither_loses_nor_double_counts(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    offsets = tmp_path / "offsets.json"
    log.touch()
    first = Follower([str(log)], from_start=True, offsets_path=str(offsets))
    seen = follow_while(first, writer("append", log, 700))
    with open(log, "ab") as out:  # a line half written when the sidecar stops
        out.write(b'{"id": "700", "time": 1, "sta')
    seen += first.poll()
    first.close()
    # while the sidecar is down: the line is finished, more lines come, then the log is rotated
    with open(log, "ab") as out:
        out.write(b'tus": 200}\n')
        for i in range(701, 800):
            out.write(json.dumps({"id": str(i), "time": 1, "status": 200}).encode() + b"\n")
    log.rename(tmp_path / "app.log.1")
    with open(log, "wb") as out:
        for i in range(800, 900):
            out.write(json.dumps({"id": str(i), "time": 1, "status": 200}).encode() + b"\n")
    second = Follower([str(log)], offsets_path=str(offsets), close_after=0.0)  # not from_start: offsets rule
    seen += second.poll()
    seen += second.poll()
    assert ids(seen) == list(range(900))
    assert second.stats[0].rotations == 1
    second.close()


def test_first_start_at_the_end_waits_for_the_line_being_written(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b'{"id": "0"}\n{"id": "1"}\n{"id": "2", "hal')
    f = Follower([str(log)])
    assert f.poll() == []
    with open(log, "ab") as out:
        out.write(b'f": 1}\n{"id": "3"}\n')
    lines = f.poll()
    assert ids(lines) == [2, 3]
    assert lines[0].where == f"{log}@24"  # lines before the start are not counted: the byte offset instead


def test_from_start_reads_what_is_there(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b'{"id": "0"}\n{"id": "1"}\n')
    assert ids(Follower([str(log)], from_start=True).poll()) == [0, 1]


def test_inode_reused_by_another_file_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    offsets = tmp_path / "offsets.json"
    log.write_bytes(b'{"id": "0"}\n{"id": "1"}\n')
    first = Follower([str(log)], from_start=True, offsets_path=str(offsets))
    assert ids(first.poll()) == [0, 1]
    first.close()
    # the same inode, other content (as when a file is deleted and its inode handed to a new one)
    with open(log, "r+b") as out:
        out.write(b'{"id": "5"}\n{"id": "6"}\n{"id": "7"}\n')
    second = Follower([str(log)], offsets_path=str(offsets))
    assert ids(second.poll()) == [5, 6, 7]


def test_max_files_is_a_counted_cap(tmp_path: Path) -> None:
    for name in "abc":
        (tmp_path / f"{name}.log").write_bytes(b'{"id": "1"}\n')
    f = Follower([str(tmp_path / "*.log")], from_start=True, max_files=2)
    assert len(f.poll()) == 2
    assert f.errors["max_files"] >= 1


@pytest.mark.parametrize("content", [b"not json", b'{"version": 9, "files": []}'])
def test_unreadable_offsets_file_starts_as_a_first_run(tmp_path: Path, content: bytes) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b'{"id": "0"}\n')
    offsets = tmp_path / "offsets.json"
    offsets.write_bytes(content)
    f = Follower([str(log)], offsets_path=str(offsets))
    assert f.poll() == []  # at the end, as on a first run
    f.checkpoint()
    assert json.loads(offsets.read_text())["files"][0]["offset"] == log.stat().st_size


def test_rotated_name_that_still_matches_is_not_read_twice(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    f = Follower([str(tmp_path / "app.log*")], from_start=True, close_after=0.0)
    lines = follow_while(f, writer("rename", log, 1500, 500))
    assert ids(lines) == list(range(2000))  # app.log.1 is the same file (same inode): followed on, not re-read
    assert f.stats[0].rotations == 0
    assert sorted(t.path for t in f.files.values()) == [str(log), str(tmp_path / "app.log.1")]


def test_offsets_directory_is_created_and_a_failing_write_is_counted(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b'{"id": "0"}\n')
    f = Follower([str(log)], from_start=True, offsets_path=str(tmp_path / "state" / "offsets.json"))
    assert ids(f.poll()) == [0]
    f.checkpoint()
    assert (tmp_path / "state" / "offsets.json").exists()
    blocked = Follower([str(log)], from_start=True, offsets_path=str(log / "offsets.json"))  # under a file
    blocked.poll()
    blocked.checkpoint()
    blocked.checkpoint(force=True)
    assert blocked.errors["offsets"] == 2


def test_finished_files_are_closed_so_many_fit_in_max_files(tmp_path: Path) -> None:
    """A directory of many finished files (SageMaker's hourly captures) with 2 descriptors to spare."""
    now = [0.0]
    for n in range(6):
        (tmp_path / f"{n}.jsonl").write_bytes(b"".join(b'{"id": "%d"}\n' % (n * 10 + i) for i in range(3)))
    offsets = tmp_path / "offsets.json"
    f = Follower([str(tmp_path / "*.jsonl")], from_start=True, max_files=2, idle_after=10.0,
                 offsets_path=str(offsets), clock=lambda: now[0])  # fmt: skip
    seen: list[Line] = []
    for _ in range(10):
        seen += f.poll()
        now[0] += 11.0
    assert sorted(ids(seen)) == [n * 10 + i for n in range(6) for i in range(3)]
    assert len(f.files) <= 2 and len(f.parked) >= 4
    with open(tmp_path / "0.jsonl", "ab") as out:  # a finished file grows again: only the new line
        out.write(b'{"id": "99"}\n')
    more: list[Line] = []
    for _ in range(3):
        more += f.poll()
        now[0] += 11.0
    assert ids(more) == [99]
    f.close()
    # a restart parks what was read to its end without opening it
    again = Follower([str(tmp_path / "*.jsonl")], max_files=2, offsets_path=str(offsets), clock=lambda: now[0])
    assert again.poll() == [] and len(again.files) == 0 and len(again.parked) == 6
    with open(tmp_path / "5.jsonl", "ab") as out:
        out.write(b'{"id": "100"}\n')
    assert ids(again.poll()) == [100]


def test_double_star_reaches_nested_directories(tmp_path: Path) -> None:
    """SageMaker's capture layout: endpoint/variant/yyyy/mm/dd/hh/file.jsonl."""
    deep = tmp_path / "ep" / "AllTraffic" / "2026" / "11" / "29" / "21"
    deep.mkdir(parents=True)
    (deep / "a.jsonl").write_bytes(b'{"id": "1"}\n')
    (tmp_path / "ep" / "top.jsonl").write_bytes(b'{"id": "2"}\n')
    f = Follower([str(tmp_path / "ep" / "**" / "*.jsonl")], from_start=True)
    assert sorted(ids(f.poll())) == [1, 2]


def test_a_rename_between_listing_and_stat_is_not_taken_for_a_rotation(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The race a real writer hits now and then: the glob lists app.log, the writer renames it to
    app.log.1 (still matched) and opens a new app.log, then the scan stats app.log and finds a new
    inode. The old file is still matched: no rotation, read on, nothing twice."""
    import exporter.sources.follow as follow

    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b'{"id": "%d"}\n' % i for i in range(3)))
    f = Follower([str(tmp_path / "app.log*")], from_start=True, close_after=0.0)
    assert ids(f.poll()) == [0, 1, 2]
    real_glob = follow.glob.glob
    raced = []

    def racing_glob(pattern: str, recursive: bool = False) -> list[str]:
        listed = real_glob(pattern, recursive=recursive)
        if not raced:
            raced.append(1)
            log.rename(tmp_path / "app.log.1")
            log.write_bytes(b'{"id": "3"}\n')
        return listed

    monkeypatch.setattr(follow.glob, "glob", racing_glob)
    f.scan()
    assert raced and f.stats[0].rotations == 0
    with (tmp_path / "app.log.1").open("ab") as old:
        old.write(b'{"id": "4"}\n')  # the writer's last line to the old file
    lines = f.poll() + f.poll()
    assert sorted(ids(lines)) == [3, 4]
    assert sorted(t.path for t in f.files.values()) == [str(log), str(tmp_path / "app.log.1")]
