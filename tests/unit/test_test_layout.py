"""The whole suite collects in one run: no two test modules share a file name (the folders are not packages, so
pytest imports each module by its base name and a second one of the same name is a collection error)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_file_name() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert len(names) > 100
    assert [n for n, k in names.items() if k > 1] == []
