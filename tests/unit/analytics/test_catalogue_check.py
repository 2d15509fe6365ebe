"""``rightsizer catalogue check``: every problem of a price file on one line naming row and column."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from analytics.catalogue import load_catalogue
from analytics.catalogue_check import check_file
from rightsizer.cli import main

REPO = Path(__file__).resolve().parents[3]
HEADER = "name,vcpus,memory_gib,price_per_hour,currency,source,as_of\n"


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["catalogue", "check", *args])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", ["data/stackit_eu01_machine_types.csv", "data/aws_ec2_ap-southeast-2_2020.csv",
                                  "data/stackit_eu01_block_storage.csv", "docs/prices.example.csv"])
def test_shipped_and_example_price_files_pass(name):
    code, out, err = _cli(str(REPO / name))
    assert code == 0 and out.endswith(": ok\n") and "error" not in err, (out, err)


def test_the_example_price_list_is_a_usable_catalogue():
    cat = load_catalogue(REPO / "docs" / "prices.example.csv")
    assert cat.currency == "EUR" and cat.cheapest_fitting(2, 4 * 2**30).name == "std.medium"
    assert "gpu.large" not in {t.name for t in cat.eligible()}  # a gpu category is never proposed


def test_every_bad_cell_is_one_line_naming_row_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "a,2,4,0.1,EUR,x,2026-01-01\n"
                            "b,zero,4,-1,EUR,x,2026-01-01\n"
                            "a,2,4,0.1,USD,x,2026-01-01\n"
                            "c,2,,0.1,EUR,x,2026-01-01\n", encoding="utf-8")
    code, out, err = _cli(str(bad))
    assert code == 1 and out.strip().endswith("5 error(s)")
    lines = err.strip().splitlines()
    assert lines[0] == f"error: {bad}:3: column 'vcpus' value 'zero': Input should be a valid integer, unable to " \
                       "parse string as an integer"
    assert lines[1].startswith(f"error: {bad}:3: column 'price_per_hour' value '-1': ")
    assert lines[2] == f"error: {bad}:4: column 'name' value 'a': listed twice (first at 2); keep one row per type"
    assert lines[3].startswith(f"error: {bad}:5: column 'memory_gib' value (empty): Field required")
    assert "mixes EUR (first at 2), USD (first at 4)" in lines[4]


def test_missing_columns_toml_and_storage_files(tmp_path):
    short = tmp_path / "short.csv"
    short.write_text("name,vcpus\nx,1\n", encoding="utf-8")
    result = check_file(short)
    assert result.errors == (f"{short}:1: missing column(s) memory_gib, price_per_hour, source, as_of; a "
                             "machine-type catalogue needs name, vcpus, memory_gib, price_per_hour, source, as_of "
                             "(a storage price list needs class, price_per_unit_hour)",)
    toml = tmp_path / "c.toml"
    toml.write_text('[[machine_type]]\nname = "t"\nvcpus = 0\nmemory_gib = 1\nprice_per_hour = 1\nsource = "s"\n'
                    'as_of = "d"\n', encoding="utf-8")
    assert check_file(toml).errors[0].startswith(f"{toml}:machine_type[0]: column 'vcpus' value 0: ")
    storage = tmp_path / "s.csv"
    storage.write_text("class,price_per_unit_hour,currency,max_iops,max_mb_s\nstorage_premium_perf1,abc,EUR,0,5\n",
                       encoding="utf-8")
    errors = check_file(storage).errors
    assert f"{storage}:2: column 'price_per_unit_hour' value 'abc': must be a number >= 0" in errors
    assert f"{storage}:2: column 'max_iops' value '0': must be a number > 0" in errors
    assert any("exactly one row with class 'capacity'" in e for e in errors)
    code, _, err = _cli(str(tmp_path / "missing.csv"))
    assert code == 2 and "not found" in err and len(err.strip().splitlines()) == 1
