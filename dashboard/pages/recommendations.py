"""Recommendations: savings, risk and options per VM, CSV export, and (only when enabled) an apply control."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html, no_update

from analytics.frontier import MEMORY_RISK_SHARE, PEAKS_RISK_STRATEGY, RISK_STRATEGY, SweepPoint
from analytics.reports.frontier_chart import curve_name, frontier_figure
from dashboard import figures, ids
from dashboard.data import ApplyHook, DashboardData, Filters
from dashboard.pages.common import (
    FILTER_INPUTS,
    TABLE_STYLE,
    data_table,
    kpi,
    lookback_control,
    money,
    register_drilldown,
    risk_legend,
    tooltips,
    write_credential,
)
from dashboard.viewmodel.history import available_lookbacks
from dashboard.viewmodel.recommendations import (
    apply_choice,
    apply_choices,
    need_statistic,
    recommendation_rows,
    recommendations_csv,
    savings_risk,
)

PATH = "/recommendations"
TITLE = "Recommendations"
#: Columns behind the table's "Toggle Columns" button at first (the finding implies the action; exclusion
#: is rare and the VM page says it; a dismissal greys its row and opens its Reason).
HIDDEN_AT_FIRST = ("action", "excluded", "dismissed")
#: Columns whose text wraps onto up to three lines (px wide); the long ones show whole in a tooltip.
WRAPPED = {"name": 116, "host": 86, "finding": 96, "current_type": 96, "recommended_type": 110, "risk_reasons": 116,
           "options": 134, "reason": 134, "dismissed": 120}
TOOLTIPS = ("risk_reasons", "options", "reason", "dismissed")
#: Dismissed and postponed rows: grey and italic (their reason in the "Dismissed" column); the rest as usual.
DISMISSED_STYLE: list[dict[str, Any]] = [
    *TABLE_STYLE["style_data_conditional"],
    {"if": {"filter_query": '{dismissed} != ""'}, "color": "#8a9ba8", "fontStyle": "italic"},
]


def columns(currency: str, need_statistic: str = "") -> list[dict[str, Any]]:
    """Table columns; headers carry units, the currency and the statistic behind "need"."""
    fixed2 = {"specifier": ",.2f"}
    need = f"CPU need (vCPU; {need_statistic} + headroom)" if need_statistic else "CPU need (vCPU)"
    return [
        {"id": "name", "name": "VM"},
        {"id": "host", "name": "Host"},
        {"id": "finding", "name": "Finding"},
        {"id": "action", "name": "Action"},
        {"id": "current_type", "name": "Current type"},
        {"id": "recommended_type", "name": "Recom\u00admended type"},  # a soft hyphen: may break as Recom-/mended
        {"id": "target_vcpus", "name": need, "type": "numeric", "format": fixed2},
        {"id": "target_memory_gib", "name": "Memory need (GiB; max used + headroom)", "type": "numeric",
         "format": fixed2},
        {"id": "monthly_savings", "name": f"Savings ({currency} / month)", "type": "numeric", "format": fixed2},
        {"id": "savings_pct", "name": "Savings (%)", "type": "numeric", "format": {"specifier": ",.1f"}},
        {"id": "risk", "name": "Risk"},
        {"id": "risk_reasons", "name": "Risk set by"},
        {"id": "options", "name": "Options"},
        {"id": "reason", "name": "Reason"},
        {"id": "excluded", "name": "Excluded"},
        {"id": "dismissed", "name": "Dismissed (left out of the savings)"},
    ]


def _apply_panel(data: DashboardData, hook: ApplyHook | None, choices: list[dict[str, str]]) -> html.Div:
    token, who = write_credential(data, ids.RECS_APPLY_TOKEN)
    note = ("Applies through the same path as 'rightsizer apply' (plan, pre-checks, apply, verify) and "
            f"records it in the audit log. {who}")
    if hook is None:
        note += " No apply hook is wired into this dashboard, so applying will be refused."
    return html.Div([
        html.H2("Apply a resize"),
        html.P(note, className="rs-note"),
        html.Div([
            dcc.Dropdown(id=ids.RECS_APPLY_VM, options=choices, placeholder="VM", className="rs-filter"),
            dcc.Dropdown(id=ids.RECS_APPLY_TYPE, options=[], placeholder="Machine type", className="rs-filter"),
            token,
            html.Button("Apply", id=ids.RECS_APPLY_BUTTON, n_clicks=0, className="rs-button rs-button-danger"),
        ], className="rs-actions"),
        html.Div(id=ids.RECS_APPLY_RESULT, className="rs-result"),
    ], className="rs-apply")


def layout(data: DashboardData, filters: Filters, *, hook: ApplyHook | None = None, lookback: int | None = None,
           table_filter: str = "") -> html.Div:
    """The recommendations page, filled for ``filters`` and ``lookback`` (days; None: the configured one), its
    table searched by ``table_filter``; the apply panel only when actions are enabled."""
    days = data.lookback_days(lookback)
    rows, cards, fig, choices = update(data, filters.range_key, filters.labels, filters.hosts, days)
    children: list[Any] = [
        html.H1("Recommendations"),
        lookback_control(ids.RECS_LOOKBACK, days, available_lookbacks(data)),
        html.Div(cards, id=ids.RECS_SUMMARY, className="rs-kpis"),
        html.Div([
            html.Button("Export CSV", id=ids.RECS_EXPORT, n_clicks=0, className="rs-button"),
            dcc.Download(id=ids.RECS_DOWNLOAD),
            html.Span("Exports the rows below (label and host filters apply).", className="rs-note"),
        ], className="rs-actions"),
        html.Div(dcc.Graph(id=ids.RECS_SAVINGS, figure=fig, config={"displaylogo": False}), className="rs-card"),
        html.Div(frontier_section(data, days), id=ids.RECS_FRONTIER_SECTION),
        html.H2("Every VM that is not optimized"),
        risk_legend(ids.RECS_LEGEND),
        data_table(
            id=ids.RECS_TABLE,
            columns=columns(data.currency, need_statistic(data)),
            widths_px={"risk": 76},
            wrap_px=WRAPPED,
            hidden=HIDDEN_AT_FIRST,
            data=rows,
            tooltip_data=tooltips(rows, TOOLTIPS),
            style_data_conditional=DISMISSED_STYLE,
            sort_action="native",
            filter_action="native",
            filter_query=table_filter,
            page_action="native",
            page_size=25,
        ),
    ]
    if data.settings.actions.enabled:
        children.append(_apply_panel(data, hook, choices))
    return html.Div(children)


def frontier_section(data: DashboardData, lookback: int | None) -> list[Any]:
    """"Savings vs risk": the page's lookback backtested (train on its first half, score on the second)."""
    own = savings_risk(data, lookback)
    if not own.points or own.vms_evaluated == 0:
        return [html.H2("Savings vs risk"),
                html.P("Not enough history yet: each half of the lookback needs 30 h over 3 days per VM.",
                       className="rs-note")]
    chosen = own.chosen
    where = ("" if chosen is None else f" The profile in use ({chosen.value}) would have saved "
             f"{chosen.savings_pct:.1f} % with {chosen.cpu_overrun_pct:.3f} % of VM-hours over their vCPUs "
             f"and {chosen.mem_overrun_pct:.3f} % over their memory.")
    return [
        html.H2("Savings vs risk"),
        html.P(f"Each strategy trained on the first {own.train_days:.1f} days of the "
               f"{data.lookback_days(lookback)}-day lookback and scored on the "
               f"last {own.eval_days:.1f} ({own.vms_evaluated} VMs); risk = share of evaluated VM-hours whose "
               f"peak demand exceeded the recommended size; savings = % of those VMs' compute price over the "
               f"scored days (a replay, not the money of the findings above).{where}", className="rs-note"),
        html.P(risk_curve_note(own.points), className="rs-note", id=ids.RECS_FRONTIER_RISK_NOTE),
        html.Div(dcc.Graph(id=ids.RECS_FRONTIER, figure=go.Figure(frontier_figure(own.points, chosen)),
                           config={"displaylogo": False}), className="rs-card"),
    ]


def risk_curve_note(points: Sequence[SweepPoint]) -> str:
    """What the per-VM headroom curves are, with their accepted risks in the order they are drawn ("" without
    them)."""
    cpu = sorted(float(p.value) for p in points if p.strategy == RISK_STRATEGY)
    memory = sorted(float(p.value) for p in points if p.strategy == PEAKS_RISK_STRATEGY)
    parts = []
    if cpu:
        parts.append(f"\u201c{curve_name(RISK_STRATEGY, 'risk_pct')}\u201d sizes each VM from its own spread (a "
                     f"spiky VM gets more headroom than a steady one) with one fleet margin per accepted risk: "
                     f"{_listed(cpu)} % of hours above the CPU need (memory at {MEMORY_RISK_SHARE * 100:g} % of "
                     "that).")
    if memory:
        parts.append(f"\u201c{curve_name(PEAKS_RISK_STRATEGY, 'memory_peak_risk_pct')}\u201d keeps KRR's CPU rule "
                     f"(P95) and gives memory headroom over its maximum by the spread of the VM's daily peaks: "
                     f"{_listed(memory)} % of days above the memory need.")
    if parts:
        parts.append("Margins are fitted on the training half alone.")
    return " ".join(parts)


def _listed(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def update(data: DashboardData, range_key: str | None, labels: Sequence[str] | None,
           hosts: Sequence[str] | None, lookback: int | None = None,
           ) -> tuple[list[dict[str, Any]], list[html.Div], go.Figure, list[dict[str, str]]]:
    """Callback body: table rows, summary cards, savings figure and the apply VM choices."""
    filters = Filters.of(range_key, labels, hosts)
    days = data.lookback_days(lookback)
    return data.cached(("recs-page", filters.labels, filters.hosts, days), lambda: _build(data, filters, days))


def _build(data: DashboardData, filters: Filters, lookback: int,
           ) -> tuple[list[dict[str, Any]], list[html.Div], go.Figure, list[dict[str, str]]]:
    every = recommendation_rows(data, filters, lookback)
    cur = data.currency
    dismissed = [r for r in every if r.get("dismissed")]
    rows = [r for r in every if not r.get("dismissed")]  # the cards leave dismissed findings out
    schedules = [r for r in rows if r["finding"] == "schedule"]
    scheduled = sum(r["monthly_savings"] or 0.0 for r in schedules)
    storage = [r for r in rows if r["finding"] == "storage"]
    resizes = [r for r in rows if r["finding"] not in ("schedule", "storage")]
    down = sum(r["monthly_savings"] or 0.0 for r in resizes if (r["monthly_savings"] or 0.0) > 0)
    up = -sum(r["monthly_savings"] or 0.0 for r in resizes if (r["monthly_savings"] or 0.0) < 0)
    by_finding: dict[str, int] = {}
    for r in rows:
        by_finding[r["finding"]] = by_finding.get(r["finding"], 0) + 1
    cards = [
        kpi("Potential savings per month", money(down, cur),
            f"{sum(1 for r in resizes if (r['monthly_savings'] or 0) > 0)} VMs"),
        kpi("Schedules per month", money(scheduled, cur),
            f"{len(schedules)} on/off windows (after resizes, no double counting)"),
        kpi("Storage per month", money(sum(r["monthly_savings"] or 0.0 for r in storage), cur),
            f"{len(storage)} VMs' volumes: performance class by P99 load, capacity by use"),
        kpi("Upsizes per month", money(up, cur), f"{by_finding.get('under-provisioned', 0)} under-provisioned"),
        kpi("Idle VMs", str(by_finding.get("idle", 0)), "stopping saves their whole compute price"),
        kpi("Stopped VMs", str(by_finding.get("stopped", 0)),
            money(sum(r["monthly_savings"] or 0.0 for r in rows if r["finding"] == "stopped"), cur)
            + "/month for their disks; deleting is a person's act"),
        kpi("Below threshold", str(by_finding.get("below-threshold", 0)), "a smaller type saves too little"),
        kpi("Insufficient data", str(by_finding.get("insufficient-data", 0)),
            f"need ≥ 30 h over ≥ 3 days in the last {lookback} days"),
        kpi("Dismissed", str(len(dismissed)),
            money(sum(max(r["monthly_savings"] or 0.0, 0.0) for r in dismissed), cur)
            + "/month left out (greyed below)"),
    ]
    frame = pd.DataFrame(resizes, columns=["name", "monthly_savings", "finding"]) if resizes else pd.DataFrame(
        {"name": [], "monthly_savings": [], "finding": []})
    frame["monthly_savings"] = pd.to_numeric(frame["monthly_savings"]).fillna(0.0)
    choices = [{"label": name, "value": uuid} for uuid, name, _ in apply_choices(data, filters)]
    return every, cards, figures.savings_figure(frame, currency=cur), choices


def export(data: DashboardData, n_clicks: int | None, range_key: str | None, labels: list[str] | None,
           hosts: list[str] | None, lookback: int | None = None) -> dict[str, Any] | Any:
    """Callback body: the CSV download for the current filters."""
    if not n_clicks:
        return no_update
    filters = Filters.of(range_key, labels, hosts)
    stamp = data.as_of().astimezone(UTC).strftime("%Y%m%dT%H%MZ")
    return {"content": recommendations_csv(data, filters, lookback),
            "filename": f"rightsizer-recommendations-{stamp}.csv",
            "type": "text/csv", "base64": False}


def type_choices(data: DashboardData, vm_uuid: str | None, range_key: str | None, labels: list[str] | None,
                 hosts: list[str] | None) -> list[dict[str, str]]:
    """Callback body: machine types the chosen VM may be resized to (its options)."""
    for uuid, _name, names in apply_choices(data, Filters.of(range_key, labels, hosts)):
        if uuid == vm_uuid:
            return [{"label": n, "value": n} for n in names]
    return []


def register(app: Dash, data: DashboardData, *, hook: ApplyHook | None = None, **_: Any) -> None:
    """Register table, export and (when enabled) apply callbacks; a row opens its VM's page."""
    register_drilldown(app, ids.RECS_TABLE)
    outputs = [Output(ids.RECS_TABLE, "data"), Output(ids.RECS_TABLE, "tooltip_data"),
               Output(ids.RECS_SUMMARY, "children"), Output(ids.RECS_SAVINGS, "figure")]
    enabled = data.settings.actions.enabled
    if enabled:
        outputs.append(Output(ids.RECS_APPLY_VM, "options"))

    @app.callback(*outputs, *FILTER_INPUTS, Input(ids.RECS_LOOKBACK, "value"), prevent_initial_call=True)
    def _table(range_key: str, labels: list[str], hosts: list[str], lookback: int) -> tuple[Any, ...]:
        rows, *rest = update(data, range_key, labels, hosts, lookback)
        result = (rows, tooltips(rows, TOOLTIPS), *rest)
        return result if enabled else result[:4]

    @app.callback(Output(ids.RECS_FRONTIER_SECTION, "children"), Input(ids.RECS_LOOKBACK, "value"),
                  prevent_initial_call=True)
    def _frontier(lookback: int) -> list[Any]:
        return frontier_section(data, lookback)

    @app.callback(
        Output(ids.RECS_DOWNLOAD, "data"),
        Input(ids.RECS_EXPORT, "n_clicks"),
        State(ids.FILTER_RANGE, "value"), State(ids.FILTER_LABELS, "value"), State(ids.FILTER_HOSTS, "value"),
        State(ids.RECS_LOOKBACK, "value"),
        prevent_initial_call=True,
    )
    def _export(n_clicks: int, range_key: str, labels: list[str], hosts: list[str], lookback: int) -> Any:
        return export(data, n_clicks, range_key, labels, hosts, lookback)

    if not enabled:
        return

    @app.callback(
        Output(ids.RECS_APPLY_TYPE, "options"),
        Input(ids.RECS_APPLY_VM, "value"),
        State(ids.FILTER_RANGE, "value"), State(ids.FILTER_LABELS, "value"), State(ids.FILTER_HOSTS, "value"),
    )
    def _types(vm_uuid: str, range_key: str, labels: list[str], hosts: list[str]) -> Any:
        return type_choices(data, vm_uuid, range_key, labels, hosts)

    @app.callback(
        Output(ids.RECS_APPLY_RESULT, "children"),
        Input(ids.RECS_APPLY_BUTTON, "n_clicks"),
        State(ids.RECS_APPLY_VM, "value"), State(ids.RECS_APPLY_TYPE, "value"), State(ids.RECS_APPLY_TOKEN, "value"),
        prevent_initial_call=True,
    )
    def _apply(n_clicks: int, vm_uuid: str, machine_type: str, token: str) -> Any:
        if not n_clicks:
            return no_update
        stamp = datetime.now(UTC).strftime("%H:%M:%S UTC")
        return f"{stamp} {apply_choice(data, hook, vm_uuid, machine_type, token)}"
