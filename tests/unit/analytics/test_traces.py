"""Bitbrains trace reading: units, quirks counted, malformed input refused with file/line/field/value."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from analytics.traces import bitbrains_files, read_bitbrains_dir, read_bitbrains_file
from collector.errors import InputError
from collector.model import VmState
from tests.helpers.bitbrains import T0, trace_row, write_trace


def test_units_and_quirks(tmp_path: Path) -> None:
    rows = [
        trace_row(T0),
        trace_row(T0 + 300, use=2600.0),                 # 2600 MHz / (5200 MHz / 2 cores) = 1.0 vCPU
        trace_row(T0 + 300, use=9999.0),                 # duplicate timestamp: dropped, first kept
        trace_row(T0 + 600, cores=0, cap=0.0, use=0.0),  # not running
        trace_row(T0 + 200, use=100.0),                  # goes back in time: dropped
        trace_row(T0 + 2400),                            # gap of 1800 s > 2 steps
        trace_row(T0 + 2700, use=6000.0, used_kib=5000000.0),  # CPU above capacity, memory above provisioned
    ]
    vm = read_bitbrains_file(write_trace(tmp_path / "7.csv", rows))
    q = vm.quality
    assert (q.rows, q.kept, q.duplicate_timestamps, q.out_of_order) == (7, 5, 1, 1)
    assert (q.not_running, q.gaps, q.cpu_above_capacity, q.memory_above_provisioned) == (1, 1, 1, 1)
    f = vm.frame
    assert f["ts_s"].tolist() == [T0, T0 + 300, T0 + 600, T0 + 2400, T0 + 2700]
    assert f["cpu_vcpus"].iloc[0] == pytest.approx(0.5)
    assert f["cpu_vcpus"].iloc[1] == pytest.approx(1.0)
    assert np.isnan(f["cpu_vcpus"].iloc[2]) and not f["running"].iloc[2]
    assert f["memory_used_bytes"].iloc[0] == 1048576 * 1024
    assert f["memory_bytes"].iloc[0] == 4194304 * 1024
    assert f["disk_read_bps"].iloc[0] == 1024.0 and f["net_tx_bps"].iloc[0] == 4096.0
    assert f["gap"].tolist() == [False, False, False, True, False]
    assert vm.cores == 2 and vm.step_s == 300.0
    history = vm.history()
    assert history.vcpus == 2 and history.memory_bytes == 4 * 1024**3
    assert history.coverage_hours == pytest.approx(4 * 300 / 3600)


def test_usage_points_and_record(tmp_path: Path) -> None:
    rows = [trace_row(T0), trace_row(T0 + 300, cores=0, cap=0.0, use=0.0)]
    vm = read_bitbrains_file(write_trace(tmp_path / "3.csv", rows))
    points = list(vm.usage_points(shift_s=100.0))
    assert [p.state for p in points] == [VmState.RUNNING, VmState.SHUTOFF]
    assert points[0].cpu_vcpus == pytest.approx(0.5) and points[1].cpu_vcpus is None
    assert points[0].ts.timestamp() == T0 + 100
    assert points[0].memory_used_bytes == 1024**3 and points[0].vcpus == 2
    record = vm.record(dataset="2013-8")
    assert record.name == "bitbrains-2013-8-3" and record.source == "import"
    assert record.uuid == vm.uuid == points[0].vm_uuid
    assert record.labels["trace"] == "bitbrains"


def test_directory_is_read_in_numeric_order(tmp_path: Path) -> None:
    for name in ("10.csv", "2.csv", "1.csv"):
        write_trace(tmp_path / name, [trace_row(T0)])
    (tmp_path / "README.txt").write_text("not a trace")
    assert [p.name for p in bitbrains_files(tmp_path)] == ["1.csv", "2.csv", "10.csv"]
    assert [vm.name for vm in read_bitbrains_dir(tmp_path)] == ["1", "2", "10"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([trace_row(T0), trace_row(T0 + 300).replace("1300.0", "abc", 1)],
         r"2\.csv:3: field 'CPU usage \[MHZ\]' value 'abc'"),
        ([trace_row(T0), trace_row(T0 + 300).replace("4194304.0", "-1.0", 1)],
         r"2\.csv:3: field 'Memory capacity provisioned \[KB\]' value -1\.0"),
        ([";\t".join(trace_row(T0).split(";\t")[:5])],
         r"2\.csv:2: field 'Memory capacity provisioned \[KB\]' value ''"),
    ],
)
def test_malformed_rows_name_file_line_field_value(tmp_path: Path, rows: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_bitbrains_file(write_trace(tmp_path / "2.csv", rows))


def test_bad_header_empty_file_and_missing_directory(tmp_path: Path) -> None:
    bad = tmp_path / "h.csv"
    bad.write_text("time;cpu\n1;2\n")
    with pytest.raises(InputError, match=r"h\.csv:1: header field 1 is 'time', expected 'Timestamp \[ms\]'"):
        read_bitbrains_file(bad)
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_bitbrains_file(empty)
    with pytest.raises(InputError, match="not found"):
        read_bitbrains_dir(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match=r"holds no \*\.csv file"):
        read_bitbrains_dir(tmp_path / "d")
    with pytest.raises(InputError, match="never ran"):
        read_bitbrains_file(write_trace(tmp_path / "z.csv", [trace_row(T0, cores=0, cap=0.0, use=0.0)]))


def test_import_command_writes_history_and_reports_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from collector.store.sqlite import SqliteStore
    from rightsizer.cli import main

    d = tmp_path / "2013-8"
    d.mkdir()
    write_trace(d / "1.csv", [trace_row(T0), trace_row(T0 + 300), trace_row(T0 + 300)])
    db = tmp_path / "rs.db"
    assert main(["import", "--format", "bitbrains", str(d), "--db", str(db), "--output", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["imported_vms"] == 1 and out["rows_written"] == 2
    assert out["files"][0]["duplicate_timestamps"] == 1
    store = SqliteStore(db)
    try:
        [vm] = store.vms()
        assert vm.name == "bitbrains-2013-8-1" and vm.vcpus == 2
        raw = store.frame(datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0 + 600, UTC), resolution="raw")
        assert raw["cpu_vcpus"].tolist() == pytest.approx([0.5, 0.5])
        assert store.get_meta("data_mode") == "import"  # serve shows it as imported traces
    finally:
        store.close()


def test_import_into_the_demo_store_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from collector.store.sqlite import SqliteStore
    from rightsizer.cli import main

    d = tmp_path / "2013-8"
    d.mkdir()
    write_trace(d / "1.csv", [trace_row(T0), trace_row(T0 + 300)])
    db = tmp_path / "demo.db"
    demo = SqliteStore(db)
    demo.set_meta("data_mode", "demo")
    demo.close()
    assert main(["import", "--format", "bitbrains", str(d), "--db", str(db)]) == 2
    assert "demo fleet" in capsys.readouterr().err
    store = SqliteStore(db)
    assert store.vms() == []
    store.close()


def test_import_of_a_malformed_file_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rightsizer.cli import main

    d = tmp_path / "trace"
    d.mkdir()
    write_trace(d / "1.csv", [trace_row(T0)])
    write_trace(d / "2.csv", [trace_row(T0), trace_row(T0 + 300).replace("1300.0", "x", 1)])
    db = tmp_path / "rs.db"
    assert main(["import", "--format", "bitbrains", str(d), "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2.csv:3: field 'CPU usage [MHZ]' value 'x'" in err[0]
    assert not db.exists()
