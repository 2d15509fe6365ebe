"""Paged tables (dashboard/pages/paged.py): which rows a page shows and where the controls lead."""

from __future__ import annotations

from dash import html

from dashboard.pages import paged
from dashboard.pages.paged import ALL, PAGE_ROWS, PagedIds, status, turn, window


def test_window_clamps_to_the_pages_there_are() -> None:
    assert (window(23, 0).start, window(23, 0).end) == (0, 10)
    last = window(23, 2)
    assert (last.start, last.end, last.last, last.first) == (20, 23, True, False)
    assert window(23, 7).page == 2 and window(23, -3).page == 0
    assert (window(0, 0).start, window(0, 0).end, window(0, 0).last) == (0, 0, True)
    every = window(23, ALL)
    assert (every.start, every.end, every.first, every.last) == (0, 23, True, True)


def test_turning_pages_reaches_every_row_once() -> None:
    shown, seen = window(23, 0), []
    seen.extend(range(shown.start, shown.end))
    while not shown.last:
        shown = turn(shown.page, "next", 23)
        seen.extend(range(shown.start, shown.end))
    assert seen == list(range(23))
    assert turn(shown.page, "next", 23).page == 2  # Next on the last page stays there
    assert turn(2, "prev", 23).page == 1 and turn(0, "prev", 23).page == 0
    assert turn(1, "all", 23).page == ALL and turn(ALL, "all", 23).page == 0
    assert turn(ALL, "next", 23).page == 0
    assert turn(1, "", 23).page == 1  # an unknown trigger changes nothing


def test_status_names_the_rows_shown() -> None:
    assert status(window(23, 1), "hosts") == "hosts 11-20 of 23"
    assert status(window(23, ALL), "hosts") == "hosts 1-23 of 23"
    assert status(window(0, 0), "hosts") == "no hosts"


def test_table_renders_one_page_and_controls_only_when_there_are_more_rows() -> None:
    names = PagedIds("t")
    rows = [html.Tr([html.Td(f"row {i}")]) for i in range(PAGE_ROWS + 3)]
    full = paged.table(names, ("Name",), rows, "rows")
    body = next(c for c in full.children[0].children if getattr(c, "id", None) == "t-rows")
    assert len(body.children) == PAGE_ROWS
    assert "row 0" in str(body.children[0]) and "t-next" in str(full) and "Show all 13 rows" in str(full)
    few = paged.table(names, ("Name",), rows[:PAGE_ROWS], "rows")
    assert "t-next" not in str(few) and len(few.children) == 1
