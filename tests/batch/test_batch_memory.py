"""Flat memory: reading a Parquet file in chunks holds a row group or two in Arrow memory, never the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from exporter.baseline.readers import read_chunks

ROW_GROUPS, GROUP_ROWS = 20, 5000


def test_parquet_chunks_do_not_accumulate_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    rng = np.random.default_rng(0)
    table = pa.table({f"x{i}": rng.normal(size=ROW_GROUPS * GROUP_ROWS) for i in range(8)})
    pq.write_table(table, path, row_group_size=GROUP_ROWS, compression="none")
    group_bytes = table.nbytes / ROW_GROUPS
    start = pa.total_allocated_bytes()
    peak, rows = 0, 0
    for chunk in read_chunks(str(path), 1000):
        rows += chunk.rows
        peak = max(peak, pa.total_allocated_bytes() - start)
    assert rows == ROW_GROUPS * GROUP_ROWS
    # pre-buffered reading grows to the whole file (20 row groups) before the iterator ends
    assert peak < 4 * group_bytes, f"Arrow held {peak / group_bytes:.1f} row groups at once"
