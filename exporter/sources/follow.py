"""Follow growing log files by glob, as `tail -F` does, and remember where each one was read up to.

What real logs do, and what this does about it:
- rename rotation: a file whose (dev, inode) no longer sits at a matched path stays open and is
  read to its end first (each poll reads rotated files before the others), then closed once idle
  for `close_after` seconds (a writer may still append to it until it reopens);
- copytruncate: a file smaller than the position read up to starts over at 0 (counted);
- files that appear later are read from their start;
- a partial last line is held until its newline arrives; a line longer than `max_line` is
  skipped up to its newline (counted), never buffered whole;
- restarts: the offsets file keeps, per file identity, the offset after the last whole line and a
  checksum of the file's first bytes (an inode reused by a new file is not taken for the old one);
  written atomically (temporary file, then rename).

Synchronous and small: the tail source calls `poll` with a byte budget from its event loop.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import stat
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

CHUNK = 256 << 10
HEAD_BYTES = 64  # checksummed to tell a file from a new one on a reused inode
OFFSETS_VERSION = 1


class Line(NamedTuple):
    source: int  # index of the pattern that matched the file
    where: str  # path:line for messages (path@byte offset where the line number is not known)
    data: bytes  # without its newline


@dataclass
class Tracked:
    """An open file being followed."""

    path: str
    source: int
    ident: tuple[int, int]  # (st_dev, st_ino)
    fd: int
    pos: int  # read up to here
    committed: int  # offset just after the last whole line
    line: int | None  # whole lines before `committed`; None: started mid-file
    size: int = 0  # at the last scan
    buf: bytearray = field(default_factory=bytearray)
    skipping: bool = False  # inside an over-long line
    rotated_at: float | None = None  # when its identity left the matched paths
    last_data: float = 0.0
    seq: int = 0  # order in which files were found: an older file is read before a newer one


@dataclass
class Parked:
    """A file read to its end and idle: closed (its descriptor freed), reopened when it grows."""

    path: str
    source: int
    offset: int
    line: int | None
    head_len: int = 0
    head: int = 0


@dataclass
class FollowStats:
    """Counters of one pattern's files."""

    lines: int = 0  # whole lines handed out
    overlong: int = 0  # lines skipped: longer than max_line
    truncations: int = 0  # files found smaller than the offset read up to (copytruncate)
    rotations: int = 0  # files that left the pattern (renamed away or deleted)


ERROR_REASONS = ("open", "read", "max_files", "offsets")


def _head(fd: int, length: int) -> int:
    return zlib.crc32(os.pread(fd, length, 0)) if length else 0


class Follower:
    """Lines appended to the files that `patterns` match (glob syntax), in order per file, none twice."""

    def __init__(
        self,
        patterns: Sequence[str],
        *,
        from_start: bool = False,
        max_line: int = 1 << 20,
        offsets_path: str | None = None,
        close_after: float = 5.0,
        max_files: int = 64,
        idle_after: float = 60.0,
        scan_every: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.patterns = list(patterns)
        self.from_start = from_start
        self.max_line = max_line
        self.offsets_path = offsets_path
        self.close_after = close_after
        self.max_files = max_files
        self.idle_after = idle_after
        self.scan_every = scan_every  # a poll matches the patterns again at most this often (a ** walk costs)
        self._scanned = -math.inf
        self.clock = clock
        self.files: dict[tuple[int, int], Tracked] = {}
        # files read to their end and idle for idle_after: closed, so a directory of many finished
        # files (SageMaker's hourly captures) does not hold max_files descriptors forever
        self.parked: dict[tuple[int, int], Parked] = {}
        self.stats = [FollowStats() for _ in self.patterns]
        self.errors: dict[str, int] = dict.fromkeys(ERROR_REASONS, 0)
        self._saved: dict[tuple[int, int], dict[str, Any]] = {}
        self._started = False
        self._first_scan = True
        self._dirty = False
        self._reported: set[str] = set()
        self._had_offsets = False
        self._offsets_failing = False
        self._seq = 0

    # ------------------------------------------------------------ scanning

    def start(self) -> None:
        """Read the offsets file (if any), find rotated files of the last run, and open what matches."""
        self._started = True
        if self.offsets_path is not None:
            self._saved = self._load_offsets(self.offsets_path)
        if self._had_offsets:
            self._first_scan = False  # a previous run followed these paths: whatever is new since is new
        self.scan()
        # files of the last run rotated away to a name the patterns do not match: drain them too
        for ident, entry in list(self._saved.items()):
            if ident not in self.files and ident not in self.parked:
                self._find_rotated(ident, entry)
        self._saved.clear()

    def _load_offsets(self, path: str) -> dict[tuple[int, int], dict[str, Any]]:
        try:
            with open(path, "rb") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("tail: cannot read the offsets file %s (%s): starting as on a first run", path, exc)
            return {}
        if not isinstance(doc, dict) or doc.get("version") != OFFSETS_VERSION or not isinstance(doc.get("files"), list):
            log.error(
                "tail: %s is not an offsets file of version %d: starting as on a first run", path, OFFSETS_VERSION
            )
            return {}
        self._had_offsets = True
        return {(int(e["dev"]), int(e["ino"])): e for e in doc["files"] if isinstance(e, dict)}

    def _find_rotated(self, ident: tuple[int, int], entry: dict[str, Any]) -> None:
        directory = os.path.dirname(str(entry.get("path", ""))) or "."
        try:
            with os.scandir(directory) as it:
                for item in it:
                    st = item.stat(follow_symlinks=False)
                    if (st.st_dev, st.st_ino) == ident and stat.S_ISREG(st.st_mode):
                        tracked = self._open(item.path, int(entry.get("source", 0)), st)
                        if tracked is not None:
                            tracked.rotated_at = self.clock()
                            self.stats[tracked.source].rotations += 1
                        return
        except OSError:
            pass

    def scan(self) -> None:
        """Match the patterns again: open new files, mark rotated ones, detect truncation."""
        self._scanned = self.clock()
        seen = self._match()
        if any(ident not in seen for ident in self.files):
            # a rename between the directory listing and the stat (app.log -> app.log.1 while the glob
            # ran) hides a file that is still matched: look once more before calling it rotated
            again = self._match()
            again.update((ident, found) for ident, found in seen.items() if ident not in again)
            seen = again
        now = self.clock()
        for ident, tracked in self.files.items():
            if ident not in seen:
                if tracked.rotated_at is None:
                    tracked.rotated_at = now
                    self.stats[tracked.source].rotations += 1
                self._check_truncated(tracked)
        for ident in [i for i in self.parked if i not in seen]:
            del self.parked[ident]  # deleted or renamed away after it was read to its end
            self._dirty = True
        for ident, (path, source, st) in seen.items():
            known = self.files.get(ident)
            parked = self.parked.get(ident)
            if parked is not None:
                parked.path = path
                if st.st_size != parked.offset:  # grew (or was truncated): follow it again
                    self._saved[ident] = {
                        "offset": parked.offset,
                        "line": parked.line,
                        "head_len": parked.head_len,
                        "head": parked.head,
                    }
                    if self._open(path, source, st) is not None:
                        del self.parked[ident]
                    self._saved.pop(ident, None)
            elif known is None:
                saved = self._saved.get(ident)
                if saved is not None and int(saved.get("offset", -1)) == st.st_size:
                    # read to its end in the last run: parked until it grows (its head is checked then)
                    self.parked[ident] = Parked(
                        path,
                        source,
                        st.st_size,
                        saved.get("line") if isinstance(saved.get("line"), int) else None,
                        int(saved.get("head_len", 0)),
                        int(saved.get("head", 0)),
                    )
                else:
                    self._open(path, source, st)
            else:
                known.path = path
                known.rotated_at = None  # back at a matched name (renamed to one the glob matches)
                self._check_truncated(known, st)
        self._first_scan = False

    def _match(self) -> dict[tuple[int, int], tuple[str, int, os.stat_result]]:
        """The regular files the patterns match now, by identity: (path, source, stat)."""
        seen: dict[tuple[int, int], tuple[str, int, os.stat_result]] = {}
        for source, pattern in enumerate(self.patterns):
            for path in sorted(glob.glob(pattern, recursive=True)):  # ** for nested directories
                try:
                    st = os.stat(path)
                except OSError:
                    continue  # gone between glob and stat
                if stat.S_ISREG(st.st_mode):
                    seen.setdefault((st.st_dev, st.st_ino), (path, source, st))
        return seen

    def _check_truncated(self, tracked: Tracked, st: os.stat_result | None = None) -> None:
        if st is None:
            try:
                st = os.fstat(tracked.fd)
            except OSError:
                return
        tracked.size = st.st_size
        if st.st_size < tracked.pos:
            log.warning("tail: %s was truncated (%d bytes, read up to %d): reading it from the start", tracked.path,
                        st.st_size, tracked.pos)  # fmt: skip
            self.stats[tracked.source].truncations += 1
            tracked.pos = tracked.committed = 0
            tracked.line = 0
            tracked.buf.clear()
            tracked.skipping = False
            self._dirty = True

    def _open(self, path: str, source: int, st: os.stat_result) -> Tracked | None:
        if len(self.files) >= self.max_files:
            if path not in self._reported:
                self._reported.add(path)
                log.error("tail: %s not followed: %d files open already (tail.max_files)", path, self.max_files)
            self.errors["max_files"] += 1
            return None
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            if path not in self._reported:
                self._reported.add(path)
                log.error("tail: cannot open %s: %s", path, exc.strerror)
            self.errors["open"] += 1
            return None
        ident = (st.st_dev, st.st_ino)
        size = os.fstat(fd).st_size
        start = 0
        line_known: int | None = 0
        saved = self._saved.get(ident)
        if saved is not None:
            offset, head_len = int(saved.get("offset", 0)), int(saved.get("head_len", 0))
            if offset <= size and head_len <= size and _head(fd, head_len) == saved.get("head"):
                start = offset
                line_known = saved["line"] if isinstance(saved.get("line"), int) else None
            elif offset > size:
                self.stats[source].truncations += 1  # truncated while we were down
        elif self._first_scan and not self.from_start:
            start = self._last_line_end(fd, size)
            line_known = 0 if start == 0 else None  # how many lines lie before the end is not counted
        self._seq += 1
        tracked = Tracked(
            path, source, ident, fd, start, start, line_known, size, last_data=self.clock(), seq=self._seq
        )
        self.files[ident] = tracked
        self._dirty = True
        return tracked

    @staticmethod
    def _last_line_end(fd: int, size: int) -> int:
        """Where to start "at the end": after the last newline, so a line being written is read whole."""
        pos = size
        while pos > 0:
            n = min(CHUNK, pos)
            block = os.pread(fd, n, pos - n)
            i = block.rfind(b"\n")
            if i >= 0:
                return pos - n + i + 1
            pos -= n
        return 0

    # ------------------------------------------------------------ reading

    def poll(self, budget: int = 1 << 20) -> list[Line]:
        """Whole lines appended since the last poll, reading at most about `budget` bytes; rotated files first."""
        if not self._started:
            self.start()
        elif self.clock() - self._scanned >= self.scan_every:
            self.scan()
        out: list[Line] = []
        # rotated files first, then in the order they were found: a file renamed to a name the
        # pattern still matches (app.log → app.log.1) is drained before the new app.log
        order = sorted(self.files.values(), key=lambda t: (t.rotated_at is None, t.seq))
        now = self.clock()
        for tracked in order:
            if budget <= 0:
                break
            budget -= self._read(tracked, budget, out)
            # a rotated file is drained before the others are read (the budget runs out on it first)
            if tracked.rotated_at is not None and tracked.pos >= tracked.size:
                if now - tracked.last_data >= self.close_after and now - tracked.rotated_at >= self.close_after:
                    self._close(tracked, out)
            elif tracked.pos >= tracked.size and now - tracked.last_data >= self.idle_after:
                self._park(tracked)
        return out

    def _park(self, tracked: Tracked) -> None:
        head_len = min(HEAD_BYTES, tracked.committed)
        self.parked[tracked.ident] = Parked(
            tracked.path, tracked.source, tracked.committed, tracked.line, head_len, _head(tracked.fd, head_len)
        )
        os.close(tracked.fd)
        tracked.fd = -1
        del self.files[tracked.ident]  # a partial line it held is read again from `committed`
        self._dirty = True

    def _read(self, tracked: Tracked, budget: int, out: list[Line]) -> int:
        used = 0
        while used < budget:
            try:
                data = os.pread(tracked.fd, min(CHUNK, budget - used), tracked.pos)
            except OSError as exc:
                log.error("tail: cannot read %s: %s", tracked.path, exc.strerror)
                self.errors["read"] += 1
                break
            if not data:
                break
            tracked.pos += len(data)
            tracked.size = max(tracked.size, tracked.pos)
            tracked.last_data = self.clock()
            used += len(data)
            self._split(tracked, data, out)
        return used

    def _split(self, tracked: Tracked, data: bytes, out: list[Line]) -> None:
        start = 0
        buf = tracked.buf
        source = tracked.source
        base = tracked.pos - len(data)  # file offset of data[0]
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            end = base + nl + 1
            if tracked.skipping:
                tracked.skipping = False
                self._overlong(tracked, end)
            elif buf:
                buf += data[start:nl]
                if len(buf) > self.max_line:
                    self._overlong(tracked, end)
                else:
                    out.append(Line(source, self._where(tracked), bytes(buf)))
                    self._advance(tracked, end)
                buf.clear()
            elif nl - start > self.max_line:
                self._overlong(tracked, end)
            else:
                out.append(Line(source, self._where(tracked), data[start:nl]))
                self._advance(tracked, end)
            start = nl + 1
        if start < len(data) and not tracked.skipping:
            buf += data[start:]
            if len(buf) > self.max_line:  # no newline yet: stop holding it, skip to the next one
                buf.clear()
                tracked.skipping = True

    def _where(self, tracked: Tracked) -> str:
        if tracked.line is None:
            return f"{tracked.path}@{tracked.committed}"
        return f"{tracked.path}:{tracked.line + 1}"

    def _advance(self, tracked: Tracked, end: int, read: bool = True) -> None:
        tracked.committed = end
        if tracked.line is not None:
            tracked.line += 1
        if read:
            self.stats[tracked.source].lines += 1
        self._dirty = True

    def _overlong(self, tracked: Tracked, end: int) -> None:
        log.warning("tail: %s: line longer than %d bytes skipped (tail.max_line_bytes)", self._where(tracked),
                    self.max_line)  # fmt: skip
        self.stats[tracked.source].overlong += 1
        self._advance(tracked, end, read=False)

    def _close(self, tracked: Tracked, out: list[Line]) -> None:
        if tracked.buf and not tracked.skipping:  # the writer is gone: its last line is whole
            out.append(Line(tracked.source, self._where(tracked), bytes(tracked.buf)))
            self._advance(tracked, tracked.pos)
        os.close(tracked.fd)
        tracked.fd = -1
        del self.files[tracked.ident]
        self._dirty = True

    # ------------------------------------------------------------ progress

    @property
    def lag_bytes(self) -> int:
        """Bytes written to the followed files and not yet read as whole lines (as of the last scan)."""
        return sum(max(t.size - t.committed, 0) for t in self.files.values())

    def checkpoint(self, force: bool = False) -> None:
        """Write the offsets file atomically if anything moved (or `force`)."""
        if self.offsets_path is None or not (self._dirty or force):
            return
        entries = []
        for t in self.files.values():
            head_len = min(HEAD_BYTES, t.committed)
            entries.append(
                {
                    "path": t.path,
                    "source": t.source,
                    "dev": t.ident[0],
                    "ino": t.ident[1],
                    "offset": t.committed,
                    "line": t.line,
                    "head_len": head_len,
                    "head": _head(t.fd, head_len),
                }
            )
        for ident, p in self.parked.items():
            entries.append(
                {
                    "path": p.path,
                    "source": p.source,
                    "dev": ident[0],
                    "ino": ident[1],
                    "offset": p.offset,
                    "line": p.line,
                    "head_len": p.head_len,
                    "head": p.head,
                }
            )
        tmp = f"{self.offsets_path}.tmp"
        try:
            os.makedirs(os.path.dirname(self.offsets_path) or ".", exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"version": OFFSETS_VERSION, "files": entries}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.offsets_path)
        except OSError as exc:
            if not self._offsets_failing:  # once until it works again, not every second
                log.error("tail: cannot write the offsets file %s: %s", self.offsets_path, exc.strerror)
            self._offsets_failing = True
            self.errors["offsets"] += 1
            return
        self._offsets_failing = False
        self._dirty = False

    def close(self) -> None:
        self.checkpoint()
        for tracked in list(self.files.values()):
            os.close(tracked.fd)
        self.files.clear()
