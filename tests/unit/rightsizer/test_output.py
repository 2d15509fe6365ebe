from __future__ import annotations

import csv
import io
import json
import math

from rightsizer.output import Output, csv_safe


def test_csv_neutralises_formulas():
    buf = io.StringIO()
    Output("csv", buf).emit([{"name": "=cmd|' /C calc'!A0", "cost": 1.5}, {"name": "@SUM(A1)", "cost": -2.0}])
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[0] == ["name", "cost"]
    assert rows[1][0] == "'=cmd|' /C calc'!A0"
    assert rows[2][0] == "'@SUM(A1)"
    assert csv_safe("plain") == "plain" and csv_safe(3) == 3


def test_json_is_valid_and_nan_becomes_null():
    buf = io.StringIO()
    Output("json", buf).emit([{"a": math.nan, "b": 1}])
    assert json.loads(buf.getvalue()) == [{"a": None, "b": 1}]


def test_table_aligns_columns():
    buf = io.StringIO()
    Output("table", buf).emit([{"name": "a", "vcpus": 2}, {"name": "longer", "vcpus": 16}])
    lines = buf.getvalue().splitlines()
    assert lines[0].split() == ["name", "vcpus"]
    assert lines[2].startswith("longer") and len(lines[1]) == len(lines[2])  # numbers right-aligned


def test_csv_numbers_are_plain_and_unknown_is_empty():
    buf = io.StringIO()
    Output("csv", buf).emit([{"cost": 7377.75, "n": 3, "missing": None, "nan": math.nan}])
    assert buf.getvalue().splitlines()[1] == "7377.75,3,,"


def test_table_fixed_decimals_per_column():
    from rightsizer.output import render_table

    rows = [{"vm": "a", "price": 0.0165, "cost": 1234.5, "vcpus": 2.0}, {"vm": "b", "price": 0.25, "cost": 7.0,
                                                                        "vcpus": 16.0}]
    lines = render_table(["vm", "price", "cost", "vcpus"], rows).splitlines()
    assert lines[1].split() == ["a", "0.0165", "1,234.50", "2"]
    assert lines[2].split() == ["b", "0.2500", "7.00", "16"]
    assert len({len(line) for line in lines[1:]}) == 1  # every cell of a column has the same width


def test_natural_sort_of_names():
    from rightsizer.output import natural_key

    names = ["vm-10", "vm-2", "vm-1", "VM-3", "bitbrains-2013-8-11", "bitbrains-2013-8-9"]
    assert sorted(names, key=natural_key) == ["bitbrains-2013-8-9", "bitbrains-2013-8-11", "vm-1", "vm-2", "VM-3",
                                              "vm-10"]


def test_wide_tables_wrap_text_to_120_columns():
    from rightsizer.output import render_table

    reason = "memory need 1.2 GiB (max used 1.0 GiB + 15 % headroom) below the allocation; " * 3
    rows = [{"name": f"vm-{i}", "reason": reason, "savings": 12.5 * i} for i in range(3)]
    text = render_table(["name", "reason", "savings"], rows)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert len(lines) > 4  # the reason wrapped onto several lines
    assert text.count("headroom") == 9  # nothing of the text is lost
    assert lines[1].rstrip().endswith(" 0.00") and "25.00" in text


def test_too_many_columns_for_120_become_one_block_per_row():
    from rightsizer.output import render_table

    cols = [f"column_{i}" for i in range(19)]
    rows = [{c: f"value-{i}-{c}" for c in cols} for i in range(2)]
    text = render_table(cols, rows)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert lines[0].startswith("-[ 1 ]") and lines[1].split() == ["column_0", "value-0-column_0"]
    assert sum(line.startswith("-[ ") for line in lines) == 2 and len(lines) == 2 * (19 + 1)
