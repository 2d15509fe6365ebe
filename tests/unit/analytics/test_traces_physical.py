"""Numbers no VM can have are refused at import with the file and line named (issue 24 L5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.traces import read_bitbrains_file
from collector.errors import InputError
from rightsizer.cli import main
from tests.conftest import steady_rows, write_trace


def _with_row(tmp_path: Path, row_index: int, **fields: float) -> Path:
    rows = [list(r) for r in steady_rows(50)]
    names = {"cores": 1, "capacity": 2, "usage": 3, "memory": 5}
    for name, value in fields.items():
        rows[row_index][names[name]] = value
    return write_trace(tmp_path / "trace", {"1.csv": [tuple(r) for r in rows]}) / "1.csv"


@pytest.mark.parametrize(("fields", "message"), [
    ({"capacity": 1e-300, "cores": 4096}, r"1\.csv:9: CPU capacity 1e-300 MHz over 4096 cores is 2.44e-304 MHz per "
                                          r"core, outside 100\.\.10000, which no VM has; fix or remove that line"),
    ({"capacity": 5e7, "cores": 1}, r"1\.csv:9: CPU capacity 5e\+07 MHz over 1 cores is 5e\+07 MHz per core"),
    ({"usage": 1e7}, r"1\.csv:9: CPU usage 1e\+07 MHz is over 4 times the capacity 5200 MHz"),
    ({"memory": 1e-300}, r"1\.csv:9: provisioned memory 1e-300 KB is under 1024 KB"),
])
def test_physically_impossible_rows_are_refused_naming_the_line(tmp_path: Path, fields: dict[str, float],
                                                                message: str) -> None:
    path = _with_row(tmp_path, 7, **fields)
    with pytest.raises(InputError, match=message):
        read_bitbrains_file(path)


def test_cli_import_refuses_it_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _with_row(tmp_path, 3, capacity=1e-300, cores=4096)
    assert main(["import", str(path.parent), "--db", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1.csv:5: CPU capacity 1e-300 MHz" in err


def test_a_stopped_row_and_a_plain_trace_still_import(tmp_path: Path) -> None:
    path = _with_row(tmp_path, 3, capacity=0.0, cores=0)
    vm = read_bitbrains_file(path)
    assert vm.frame["cpu_vcpus"].max() == pytest.approx(0.5)


def test_a_catalogue_type_with_almost_no_memory_is_refused_naming_the_row(tmp_path: Path) -> None:
    from analytics.catalogue import load_catalogue

    header = "name,vcpus,memory_gib,price_per_hour,currency,family,region,category,source,as_of"
    (tmp_path / "cat.csv").write_text(f"{header}\nx1.tiny,4096,1e-300,0.01,EUR,x,eu01,standard,test,2026-01-01\n")
    with pytest.raises(InputError, match=r"cat\.csv:2: field 'memory_gib' value '1e-300'"):
        load_catalogue(str(tmp_path / "cat.csv"))
