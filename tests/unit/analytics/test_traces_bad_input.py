"""Trace files that used to import wrongly: each is refused with file, line and value (exit 2), nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.traces import read_bitbrains_file
from collector.errors import InputError
from rightsizer.cli import main
from tests.helpers.bitbrains import T0, trace_row, write_trace


def test_twelve_field_rows_under_eleven_field_header_exit_2_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "trace"
    write_trace(d / "1.csv", [trace_row(T0 + 300 * i) for i in range(3)])
    # every row carries one extra field: pandas would take the first as an index and shift the rest
    write_trace(d / "2.csv", [trace_row(T0 + 300 * i) + ";\t7.0" for i in range(100)])
    db = tmp_path / "rs.db"
    assert main(["import", "--format", "bitbrains", str(d), "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "2.csv:2: more fields than the header's 11" in err[0]
    assert not db.exists()


def test_one_long_row_in_the_middle_names_its_line(tmp_path: Path) -> None:
    rows = [trace_row(T0 + 300 * i) for i in range(5)]
    rows[3] += ";\t9.0"
    with pytest.raises(InputError, match=r"5\.csv:5: 12 fields where the header has 11"):
        read_bitbrains_file(write_trace(tmp_path / "5.csv", rows))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (trace_row(ts=1e18), r"x\.csv:3: field 'Timestamp \[ms\]' value 1e\+18 is not a number from 0 to"),
        (trace_row(mem_kib=1e30), r"x\.csv:3: field 'Memory capacity provisioned \[KB\]' value 1e\+30"),
        (trace_row(cores=1.5), r"x\.csv:3: field 'CPU cores' value 1\.5 is not a whole number"),
        (trace_row(cores=10**12),
         r"x\.csv:3: field .CPU cores. value 1000000000000\.0 is not a whole number from 0 to 4096"),
    ],
    ids=["ts-1e18", "memory-1e30", "cores-1.5", "cores-1e12"],
)
def test_out_of_range_trace_values_are_refused(tmp_path: Path, row: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_bitbrains_file(write_trace(tmp_path / "x.csv", [trace_row(T0 - 300), row]))


def test_trace_ts_1e18_through_import_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "trace"
    write_trace(d / "1.csv", [trace_row(T0), trace_row(1e18)])
    assert main(["import", str(d), "--db", str(tmp_path / "rs.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1.csv:3" in err[0]


def test_zero_provisioned_memory_is_a_missing_reading_not_a_size(tmp_path: Path) -> None:
    rows = [trace_row(T0), trace_row(T0 + 300), trace_row(T0 + 600, mem_kib=0.0)]
    vm = read_bitbrains_file(write_trace(tmp_path / "m.csv", rows))
    assert vm.memory_bytes == 4194304 * 1024  # the last row's 0 is not the VM's size
    assert vm.record(dataset="d").memory_bytes == 4194304 * 1024
    assert [p.memory_bytes for p in vm.usage_points()] == [4194304 * 1024] * 3
    with pytest.raises(InputError, match="provisioned memory is 0 on every row where the VM runs"):
        rows = [trace_row(T0, mem_kib=0.0), trace_row(T0 + 300, mem_kib=0.0)]
        read_bitbrains_file(write_trace(tmp_path / "z.csv", rows))
