"""Pieces every page uses: the global filter inputs, number formatting, KPI cards, table styling.

All user-controlled text (VM names, labels) is passed to components as plain strings, which React renders
as text; nothing here builds HTML or Markdown from data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dash import Dash, Input, Output, dcc, html, no_update
from dash.dash_table.DataTable import DataTable

from analytics.findings.risk import RISK_LEGEND
from dashboard import ids
from dashboard.views import LOOKBACKS_DAYS

if TYPE_CHECKING:
    from dashboard.data import DashboardData

FILTER_INPUTS = [
    Input(ids.FILTER_RANGE, "value"),
    Input(ids.FILTER_LABELS, "value"),
    Input(ids.FILTER_HOSTS, "value"),
]

TABLE_STYLE: dict[str, Any] = {
    "style_table": {"overflowX": "auto"},
    "style_cell": {"fontFamily": "system-ui, sans-serif", "fontSize": "13px", "padding": "4px 6px",
                   "textAlign": "left", "maxWidth": "240px", "overflow": "hidden", "textOverflow": "ellipsis",
                   "whiteSpace": "nowrap"},
    # Headers wrap (units on a second line) so that a column is as wide as its values, not its title.
    "style_header": {"fontWeight": "600", "backgroundColor": "#eef2f5", "borderBottom": "1px solid #c5d0d8",
                     "whiteSpace": "normal", "height": "auto", "verticalAlign": "bottom", "fontSize": "12px",
                     "minWidth": "48px"},
    "style_data_conditional": [
        {"if": {"row_index": "odd"}, "backgroundColor": "#fafcfd"},
        {"if": {"filter_query": '{finding} = "over-provisioned"', "column_id": "finding"}, "color": "#8a4a0a",
         "fontWeight": "600"},
        {"if": {"filter_query": '{finding} = "under-provisioned"', "column_id": "finding"}, "color": "#8a1c1c",
         "fontWeight": "600"},
        {"if": {"filter_query": '{finding} = "idle"', "column_id": "finding"}, "color": "#394b59",
         "fontWeight": "600"},
        {"if": {"filter_query": '{status} = "overdue" || {status} = "never"', "column_id": "status"},
         "color": "#c23030", "fontWeight": "600"},
    ],
    "css": [{"selector": ".dash-spreadsheet tr:hover td", "rule": "background-color: #eaf2fb !important;"}],
}


def money(value: float | None, currency: str, digits: int = 2) -> str:
    """Format an amount with thousands separators and the currency code ("-" when unknown)."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.{digits}f} {currency}"


def kpi(label: str, value: str, note: str = "", *, kpi_id: str | None = None) -> html.Div:
    """One KPI card: small label, big value, optional note."""
    children = [html.Div(label, className="rs-kpi-label"), html.Div(value, className="rs-kpi-value")]
    if note:
        children.append(html.Div(note, className="rs-kpi-note"))
    if kpi_id is not None:
        return html.Div(children, className="rs-kpi", id=kpi_id)
    return html.Div(children, className="rs-kpi")


def badge(finding: str) -> html.Span:
    """A coloured finding label."""
    return html.Span(finding, className=f"rs-badge rs-badge-{finding}")


def chips(labels: dict[str, str] | Any) -> list[html.Span]:
    """Labels as ``key=value`` chips (text, never markup)."""
    return [html.Span(f"{k}={v}", className="rs-chip") for k, v in sorted(dict(labels or {}).items())]


def empty(message: str) -> html.Div:
    """A placeholder for a page without data."""
    return html.Div(message, className="rs-empty")


#: Lines a wrapped cell shows before it ends in an ellipsis (its tooltip holds the whole text).
WRAP_LINES = 3


def tooltips(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """DataTable ``tooltip_data`` showing the whole text of ``columns`` (as text, never markup) per row."""
    return [{c: {"value": str(r.get(c) or ""), "type": "text"} for c in columns if r.get(c)} for r in rows]


def data_table(*, widths_px: dict[str, int] | None = None, wrap_px: dict[str, int] | None = None,
               hidden: Sequence[str] = (), **props: Any) -> DataTable:
    """A DataTable with the shared styling; cells render their values as text.

    So that the tables fit a 1,360 px content area: ``widths_px`` caps the named short-text columns (longer
    text ends in an ellipsis), ``wrap_px`` gives long-text columns (labels, reasons, options) a width in
    which their text wraps onto up to ``WRAP_LINES`` lines (pass ``tooltip_data=tooltips(rows, wrap_px)``
    so that hovering shows it whole; the VM page and the CSV export show it too), and the ``hidden`` columns
    start hidden behind the table's "Toggle Columns" button, which shows them.
    """
    caps = [{"if": {"column_id": column}, "maxWidth": f"{px}px", "width": f"{px}px", "minWidth": f"{px}px"}
            for column, px in (widths_px or {}).items()]
    wraps = [{"if": {"column_id": column}, "maxWidth": f"{px}px", "width": f"{px}px", "minWidth": f"{px}px",
              "whiteSpace": "normal", "height": "auto", "overflowWrap": "anywhere"}
             for column, px in (wrap_px or {}).items()]
    clamp = [{"selector": f"td[data-dash-column='{column}'] .dash-cell-value",
              "rule": f"display: -webkit-box; -webkit-line-clamp: {WRAP_LINES}; -webkit-box-orient: vertical; "
                      "overflow: hidden;"} for column in (wrap_px or {})]
    if hidden:
        props["columns"] = [{**c, "hideable": True} if c["id"] in hidden else c for c in props["columns"]]
        props["hidden_columns"] = list(hidden)
    return DataTable(**{**TABLE_STYLE, "style_cell_conditional": caps + wraps, "css": TABLE_STYLE["css"] + clamp,
                        "tooltip_delay": 300, "tooltip_duration": None, **props})


def risk_legend(legend_id: str) -> html.Div:
    """What each risk word means: shown wherever a risk is shown."""
    return html.Div([
        html.Span("Risk legend: ", className="rs-legend-title"),
        *[html.Span([html.B(level.value), f" {text}. "], className="rs-legend-item") for level, text in RISK_LEGEND],
        html.Span("Savings % is the monthly saving over the VM's compute price now (a stopped VM: its disks).",
                  className="rs-legend-item"),
    ], id=legend_id, className="rs-note rs-legend")


def lookback_control(control_id: str, default_days: int, available: Mapping[int, bool] | None = None) -> html.Div:
    """The 7/14/30/93-day lookback choice of the Recommendations and VM pages; a choice the stored history
    does not allow (``available``) is shown disabled. Says how it differs from the range at the top."""
    value = default_days if default_days in LOOKBACKS_DAYS else LOOKBACKS_DAYS[1]
    allowed = available or {}
    options = [{"label": f"{d} days" if allowed.get(d, True) else f"{d} days (needs more history)", "value": d,
                "disabled": not allowed.get(d, True) and d != value} for d in LOOKBACKS_DAYS]
    return html.Div([
        html.Span("Lookback for recommendations: ", className="rs-note"),
        dcc.RadioItems(id=control_id, options=options, value=value, inline=True, className="rs-filter-range"),
        html.Span("The lookback is the history each VM is judged on (its need, risk and saving); the range at "
                  "the top is the window of spend and charts.", className="rs-note"),
    ], className="rs-actions")


def drilldown(active_cell: dict[str, Any] | None) -> str | Any:
    """Callback body: the VM page path for a clicked row (a row's id is its VM's UUID, with a ``#kind`` suffix on
    schedule and storage rows), or no change."""
    row_id = active_cell.get("row_id") if isinstance(active_cell, dict) else None
    if not isinstance(row_id, str) or not row_id:
        return no_update
    return f"/vm/{row_id.split('#', 1)[0]}"


def register_drilldown(app: Dash, table_id: str) -> None:
    """A click on any row of ``table_id`` opens that VM's page (the address keeps its query: filters carry over)."""

    @app.callback(Output(ids.URL, "pathname", allow_duplicate=True), Input(table_id, "active_cell"),
                  prevent_initial_call=True)
    def _open(active_cell: dict[str, Any] | None) -> Any:
        return drilldown(active_cell)


def write_credential(data: DashboardData, input_id: str) -> tuple[dcc.Input, str]:
    """The action-token field of a write control and what the control's note says about who may write.

    A signed-in user writes as themselves (an operator or admin; the audit row names them), so the field is
    kept for the callback but hidden; on an open dashboard it asks for the ``[actions] token``.
    """
    principal = data.principal()
    hidden = {"display": "none"} if principal is not None else None
    field = dcc.Input(id=input_id, type="password", placeholder="Action token", className="rs-input",
                      autoComplete="off", style=hidden)
    if principal is None:
        return field, "Audited; needs the action token."
    if principal.may_write:
        return field, f"Audited as {principal.name}."
    return field, f"Only an operator or admin may change anything; {principal.name} is a {principal.role}."
