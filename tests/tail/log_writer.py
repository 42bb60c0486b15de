"""A real log writer process for the tail tests: `python log_writer.py MODE PATH N1 N2 [OFFSETS]`.

Lines are prediction-log records whose `id` is their sequence number, so a reader can check
that it saw each exactly once. Writes are split mid-line (partial lines on disk between them).
Modes:
  append        N1 lines
  rename        N1 lines, PATH renamed to PATH.1, a new PATH, N2 lines
  copytruncate  N1 lines, wait until OFFSETS says they were read, copy to PATH.1, truncate PATH, N2 lines
  late          sleep a little, then create PATH and write N1 lines
  long          N1 lines with an over-long line (1 MiB of 'x') after every 10th
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

PAUSE = 0.0005


def record(i: int) -> bytes:
    line = {"v": 1, "time": 1.0e9 + i, "id": str(i), "status": 200, "duration": 0.001, "features": {"i": i}}
    return json.dumps(line).encode() + b"\n"


def write(f, i: int) -> None:
    data = record(i)
    half = len(data) // 2
    f.write(data[:half])
    f.flush()
    if i % 7 == 0:
        time.sleep(PAUSE)  # the reader sees a partial line now and then
    f.write(data[half:])
    f.flush()


def read_up_to(offsets: str, path: str) -> int:
    try:
        with open(offsets) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return -1
    st = os.stat(path)
    for entry in doc["files"]:
        if (entry["dev"], entry["ino"]) == (st.st_dev, st.st_ino):
            return int(entry["offset"])
    return -1


def main() -> None:
    mode, path, n1, n2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if mode == "late":
        time.sleep(0.2)
    with open(path, "ab") as f:
        for i in range(n1):
            write(f, i)
            if mode == "long" and i % 10 == 9:
                f.write(b'{"id": "' + b"x" * (1 << 20) + b'"}\n')
                f.flush()
    if mode == "rename":
        os.rename(path, path + ".1")
        with open(path, "ab") as f:
            for i in range(n1, n1 + n2):
                write(f, i)
    elif mode == "copytruncate":
        # logrotate's copytruncate loses what is written between the copy and the truncation, and
        # what the reader had not read yet: wait until the reader is at the end, as the test's reader
        # checkpoints after every poll
        size = os.path.getsize(path)
        while read_up_to(sys.argv[5], path) < size:
            time.sleep(0.005)
        shutil.copyfile(path, path + ".1")
        with open(path, "r+b") as f:
            f.truncate(0)
        with open(path, "ab") as f:
            for i in range(n1, n1 + n2):
                write(f, i)
                time.sleep(PAUSE)


if __name__ == "__main__":
    main()
