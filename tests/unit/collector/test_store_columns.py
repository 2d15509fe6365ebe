from __future__ import annotations

import math

import numpy as np

from collector.store.columns import ColumnBuffers


def test_chunks_decode_in_place_and_grow_past_the_expected_rows() -> None:
    buffers = ColumnBuffers(("vm", "ts", "state", "cpu", "gap"), {"vm", "state"}, capacity_rows=2)
    buffers.append([("a", 10, "running", 1.5, 0), ("b", 10, None, None, 1)])
    buffers.append([("a", 20, "shutoff", 2.0, 0), (None, 20, "running", 3.0, 0), ("c", 30, "running", 4.0, 1)])
    cols = buffers.columns()
    assert buffers.rows == 5
    assert list(cols["vm"]) == ["a", "b", "a", None, "c"]
    assert cols["vm"][0] is cols["vm"][2]  # one string per VM, shared by its rows
    assert list(cols["state"]) == ["running", None, "shutoff", "running", "running"]
    assert cols["ts"].dtype == np.int64 and list(cols["ts"]) == [10, 10, 20, 20, 30]
    assert cols["gap"].dtype == np.bool_ and list(cols["gap"]) == [False, True, False, False, True]
    cpu = cols["cpu"]
    assert cpu.dtype == np.float64 and math.isnan(cpu[1]) and list(np.delete(cpu, 1)) == [1.5, 2.0, 3.0, 4.0]


def test_no_rows_give_empty_columns() -> None:
    buffers = ColumnBuffers(("vm", "ts", "cpu"), {"vm"}, capacity_rows=1000)
    buffers.append([])
    cols = buffers.columns()
    assert buffers.rows == 0 and all(len(c) == 0 for c in cols.values())
