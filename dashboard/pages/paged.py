"""Tables drawn one page of rows at a time, with Previous / Next / Show all controls.

A first visit costs what the page renders: an HTML table of every host of a large fleet is thousands of
components for React to build (bench/dashboard_profile.py). A paged table renders ``PAGE_ROWS`` rows whatever the
fleet's size; its controls reach every row (Next, or Show all), and the row order puts what matters first.
The rows are built once per data refresh by the page (``rows``); a control only slices them on the server.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc, html

#: Rows a paged table shows at first and per page.
PAGE_ROWS = 10
#: The page value that means "every row".
ALL = -1


@dataclass(frozen=True, slots=True)
class Window:
    """The rows shown: ``start`` (0-based) up to ``end`` (exclusive) of ``total``; ``page`` is ``ALL`` or the
    page index, clamped to the pages there are."""

    page: int
    start: int
    end: int
    total: int

    @property
    def first(self) -> bool:
        return self.start == 0

    @property
    def last(self) -> bool:
        return self.end >= self.total


def window(total: int, page: int, size: int = PAGE_ROWS) -> Window:
    """The rows of ``page`` (``ALL``: every row) in a table of ``total`` rows, ``size`` per page."""
    if page == ALL:
        return Window(ALL, 0, total, total)
    pages = max(1, -(-total // size))
    page = min(max(page, 0), pages - 1)
    return Window(page, page * size, min(total, (page + 1) * size), total)


def turn(page: int, pressed: str, total: int, size: int = PAGE_ROWS) -> Window:
    """The window after pressing ``pressed`` on ``page``: "prev", "next", or "all", which toggles between every
    row and the first page; from every row, "prev" and "next" go back to the first page."""
    if pressed == "all":
        return window(total, 0 if page == ALL else ALL, size)
    step = {"next": 1, "prev": -1}.get(pressed, 0)
    return window(total, 0 if page == ALL else max(0, page + step), size)


def status(shown: Window, noun: str) -> str:
    """What the table shows, e.g. "hosts 11-20 of 200"."""
    if shown.total == 0:
        return f"no {noun}"
    return f"{noun} {shown.start + 1}-{shown.end} of {shown.total}"


@dataclass(frozen=True, slots=True)
class PagedIds:
    """The component ids of one paged table, all derived from its ``prefix``."""

    prefix: str

    @property
    def table(self) -> str:
        return self.prefix + "-table"

    @property
    def body(self) -> str:
        return self.prefix + "-rows"

    @property
    def page(self) -> str:
        return self.prefix + "-page"

    @property
    def status(self) -> str:
        return self.prefix + "-status"

    def button(self, action: str) -> str:
        return f"{self.prefix}-{action}"


def table(names: PagedIds, heads: Sequence[str], rows: Sequence[html.Tr], noun: str) -> html.Div:
    """The table's first page (header, ``PAGE_ROWS`` rows) and its controls; ``register`` makes them turn."""
    shown = window(len(rows), 0)
    parts: list[Any] = [html.Table([html.Thead(html.Tr([html.Th(h) for h in heads])),
                                    html.Tbody(list(rows[shown.start:shown.end]), id=names.body)],
                                   className="rs-table", id=names.table)]
    if len(rows) > PAGE_ROWS:
        parts.append(html.Div(_controls(names, shown, noun), className="rs-pager"))
    return html.Div(parts)


def _controls(names: PagedIds, shown: Window, noun: str) -> list[Any]:
    return [
        dcc.Store(id=names.page, data=shown.page),
        html.Button("Previous", id=names.button("prev"), className="rs-button", disabled=shown.first),
        html.Span(status(shown, noun), id=names.status, className="rs-note"),
        html.Button("Next", id=names.button("next"), className="rs-button", disabled=shown.last),
        html.Button(_all_text(shown, noun), id=names.button("all"), className="rs-button"),
    ]


def _all_text(shown: Window, noun: str) -> str:
    return f"Show {PAGE_ROWS} per page" if shown.page == ALL else f"Show all {shown.total} {noun}"


def register(app: Dash, names: PagedIds, rows: Callable[[], Sequence[html.Tr]], noun: str) -> None:
    """Turn the pages of the table ``names``; ``rows()`` gives every row in order (cheap: built once)."""

    @app.callback(
        Output(names.body, "children"), Output(names.status, "children"), Output(names.page, "data"),
        Output(names.button("prev"), "disabled"), Output(names.button("next"), "disabled"),
        Output(names.button("all"), "children"),
        Input(names.button("prev"), "n_clicks"), Input(names.button("next"), "n_clicks"),
        Input(names.button("all"), "n_clicks"), State(names.page, "data"), prevent_initial_call=True)
    def _turn(_prev: int | None, _next: int | None, _all: int | None, page: int | None) -> tuple[Any, ...]:
        every = rows()
        pressed = str(ctx.triggered_id or "").removeprefix(names.prefix + "-")
        shown = turn(page if isinstance(page, int) else 0, pressed, len(every))
        return (list(every[shown.start:shown.end]), status(shown, noun), shown.page, shown.first, shown.last,
                _all_text(shown, noun))
