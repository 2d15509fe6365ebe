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
    assert lines[2].startswith("longer") and lines[1].index("2") == lines[2].index("16")


def test_csv_numbers_are_plain_and_unknown_is_empty():
    buf = io.StringIO()
    Output("csv", buf).emit([{"cost": 7377.75, "n": 3, "missing": None, "nan": math.nan}])
    assert buf.getvalue().splitlines()[1] == "7377.75,3,,"
