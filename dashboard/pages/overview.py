"""Overview: spend per hour and day, month to date and forecast, savings, fleet utilisation, findings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from dash import Dash, Output, dcc, html

from analytics.findings.headline import KIND_TEXT, SAVING_KINDS, Headline
from dashboard import figures, ids
from dashboard.data import DashboardData, Filters
from dashboard.pages import paged
from dashboard.pages.common import FILTER_INPUTS, badge, kpi, money
from dashboard.viewmodel.actions import ActionRow, spend_by_label, top_actions
from dashboard.viewmodel.overview import host_loads_view, overview_view
from dashboard.viewmodel.vms import vm_rows

PATH = "/"
TITLE = "Overview"

_GRAPH_CONFIG: Any = {"displaylogo": False, "responsive": True}


def layout(data: DashboardData, filters: Filters) -> html.Div:
    """The overview page, filled for ``filters``; the callback refreshes it when they change."""
    cards, spend_h, spend_d, util, found, basis, actions, by_label = update(
        data, filters.range_key, filters.labels, filters.hosts)
    hosts, placement = sections(data)
    return html.Div([
        html.H1("Fleet overview"),
        html.Div(cards, id=ids.OVERVIEW_KPIS, className="rs-kpis"),
        html.H2("What to do first"),
        html.Div(actions, id=ids.OVERVIEW_ACTIONS, className="rs-card rs-card-pad"),
        html.Div(dcc.Graph(id=ids.OVERVIEW_SPEND_LABEL, figure=by_label, config=_GRAPH_CONFIG),
                 className="rs-card rs-spaced"),
        html.Div([
            html.Div(dcc.Graph(id=ids.OVERVIEW_SPEND_HOUR, figure=spend_h, config=_GRAPH_CONFIG), className="rs-card"),
            html.Div(dcc.Graph(id=ids.OVERVIEW_SPEND_DAY, figure=spend_d, config=_GRAPH_CONFIG), className="rs-card"),
        ], className="rs-grid-2"),
        html.Div(basis, id=ids.OVERVIEW_FORECAST_BASIS, className="rs-note"),
        html.Div([
            html.Div(dcc.Graph(id=ids.OVERVIEW_UTILISATION, figure=util, config=_GRAPH_CONFIG), className="rs-card"),
            html.Div(dcc.Graph(id=ids.OVERVIEW_FINDINGS, figure=found, config=_GRAPH_CONFIG), className="rs-card"),
        ], className="rs-grid-2"),
        html.H2("Hosts"),
        html.Div(hosts, id=ids.OVERVIEW_HOSTS, className="rs-card rs-card-pad"),
        html.H2("Placement"),
        html.Div(placement, id=ids.OVERVIEW_PLACEMENT, className="rs-card rs-card-pad"),
    ])


#: The hosts table and the placement table: one page of rows at a time (dashboard/pages/paged.py).
HOSTS_TABLE = paged.PagedIds(ids.OVERVIEW_HOSTS)
PLACEMENT_TABLE = paged.PagedIds(ids.OVERVIEW_PLACEMENT)
HOST_HEADS = ("Host", "Spend, {range} ({currency})", "vCPUs allocated (running)", "Host CPUs",
              "Overcommit (vCPU : CPU)", "vCPU wait for a host CPU (P95 of hourly means, vCPU-weighted)",
              "Contended VMs")
PLACEMENT_HEADS = ("Service", "Risk", "Hosts", "Zones", "Members", "Why")


def sections(data: DashboardData) -> tuple[list[Any], list[Any]]:
    """The hosts and placement sections (the same for every filter), built once per data refresh: the vCPU
    wait behind the hosts table reads every hour of the window."""
    return data.cached(("overview-sections",), lambda: (hosts_section(data), placement_section(data)))


def host_spend(data: DashboardData) -> dict[str, float]:
    """Each host's spend over the default range (the VMs grid's "cost in range", summed by host)."""
    spend: dict[str, float] = {}
    for row in vm_rows(data, Filters()):
        if row["host"]:
            spend[row["host"]] = spend.get(row["host"], 0.0) + (row["range_cost"] or 0.0)
    return spend


def host_rows(data: DashboardData) -> list[html.Tr]:
    """One row per host, the biggest spender first (then by name)."""
    return data.cached(("overview-host-rows",), lambda: _host_rows(data))


def _host_rows(data: DashboardData) -> list[html.Tr]:
    share = data.settings.signals.contention_share
    spend = host_spend(data)

    def ratio(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f} : 1"

    loads = sorted(host_loads_view(data), key=lambda h: (-spend.get(h.host, 0.0), h.host))
    return [html.Tr([
        html.Td(h.host), html.Td(f"{spend.get(h.host, 0.0):,.2f}"), html.Td(str(h.vcpus_allocated)),
        html.Td("-" if h.host_cpus is None else str(h.host_cpus)),
        html.Td(ratio(h.overcommit), className="rs-warn" if (h.overcommit or 0) > 1 else None),
        html.Td("-" if h.delay_share is None else f"{h.delay_share:.1%}",
                className="rs-warn" if (h.delay_share or 0) >= share else None),
        html.Td(", ".join(h.contended_vms) or "-"),
    ]) for h in loads]


def hosts_section(data: DashboardData) -> list[Any]:
    """Each host's spend, overcommit (vCPUs of running VMs per host CPU) and how long its vCPUs waited for a
    CPU: one page of hosts, the biggest spenders first, and how many hosts are past a threshold."""
    loads = host_loads_view(data)
    if not loads:
        return [html.P("No hosts known yet.", className="rs-muted")]
    share = data.settings.signals.contention_share
    over = sum(1 for h in loads if (h.overcommit or 0) > 1)
    waiting = sum(1 for h in loads if (h.delay_share or 0) >= share)
    contended = sum(1 for h in loads if h.contended_vms)
    summary = (f"{len(loads)} hosts, the biggest spenders first: {over} overcommitted (more running vCPUs than "
               f"CPUs), {waiting} whose vCPUs wait {share:.0%} of their time or more, {contended} with contended "
               "VMs (marked in orange).")
    note = (f"A VM whose vCPUs wait {share:.0%} of their time or more is contended: starved by its host, not "
            "undersized, so it gets no CPU upsize. Host CPUs come from libvirt (getInfo) on each collection.")
    heads = [h.format(range=data.range_text(Filters().range_key), currency=data.currency) for h in HOST_HEADS]
    return [html.P(summary), paged.table(HOSTS_TABLE, heads, host_rows(data), "hosts"),
            html.P(note, className="rs-note")]


def placement_rows(data: DashboardData) -> list[html.Tr]:
    """One row per service with two or more running members, the riskiest first."""
    return data.cached(("overview-placement-rows",), lambda: [
        html.Tr([html.Td(r.service), html.Td(badge(r.level) if r.level else "spread"), html.Td(", ".join(r.hosts)),
                 html.Td(", ".join(r.zones) or "-"), html.Td(", ".join(r.members)), html.Td(r.detail)])
        for r in data.placement()])


def placement_section(data: DashboardData) -> list[Any]:
    """Services whose running members share one host or one zone, with hosts and members named."""
    risks = data.placement()
    label = data.settings.placement.service_label
    if not risks:
        return [html.P(f"No service with two or more running members (services are named by the VM label "
                       f"{label!r}).", className="rs-muted")]
    at_risk = [r for r in risks if r.at_risk]
    summary = (f"{len(at_risk)} of {len(risks)} services (label {label!r}) have every running member on one host "
               "or in one zone." if at_risk else f"All {len(risks)} services (label {label!r}) are spread over "
               "hosts and zones.")
    return [html.P(summary), paged.table(PLACEMENT_TABLE, PLACEMENT_HEADS, placement_rows(data), "services")]


def update(
    data: DashboardData, range_key: str | None, labels: Sequence[str] | None, hosts: Sequence[str] | None,
) -> tuple[list[html.Div], go.Figure, go.Figure, go.Figure, go.Figure, str, list[Any], go.Figure]:
    """Callback body: KPI cards, spend per hour and per day, utilisation, findings, forecast basis, top
    actions and spend by label."""
    filters = Filters.of(range_key, labels, hosts)
    return data.cached(("overview-page", filters), lambda: _build(data, filters))


def _build(
    data: DashboardData, filters: Filters,
) -> tuple[list[html.Div], go.Figure, go.Figure, go.Figure, go.Figure, str, list[Any], go.Figure]:
    view = overview_view(data, filters)
    cur = view.currency
    range_text = data.range_text(filters.range_key)
    cards = [
        kpi("Spend, " + range_text, money(view.range_cost, cur), f"{view.vms_total} VMs, {view.vms_running} running",
            kpi_id="overview-kpi-range"),
        kpi("Month to date", money(view.month_to_date, cur), kpi_id="overview-kpi-mtd"),
        kpi("Run-rate now", f"{view.run_rate_now:,.4f} {cur}/h",
            f"{view.running_now} VMs running in the newest samples (+ the others' disks)",
            kpi_id="overview-kpi-rate-now"),
        kpi("Forecast, month end", money(view.forecast_month_end, cur),
            "month to date + run-rate now" if "run-rate now" in view.forecast_basis
            else "month to date + trailing run-rate",
            kpi_id="overview-kpi-forecast"),
        kpi("Potential savings per month", money(view.potential_monthly_savings, cur),
            _savings_note(view.headline) + f"; judged over the last {view.lookback_days} days",
            kpi_id="overview-kpi-savings"),
        kpi("Upsizes needed per month", money(view.upsize_monthly_cost, cur),
            "extra cost of under-provisioned VMs and resize regrets", kpi_id="overview-kpi-upsize"),
    ]
    if view.unpriced_vms:
        cards.append(kpi("Unpriced VMs", str(view.unpriced_vms), "no catalogue type fits them"))
    basis = f"Forecast basis: {view.forecast_basis}. Prices: {data.settings.costs.catalogue} catalogue, {cur}."
    return (
        cards,
        figures.spend_figure(view.spend_hour, currency=cur, period="hour"),
        figures.spend_figure(view.spend_day, currency=cur, period="day"),
        figures.utilisation_figure(view.utilisation),
        figures.findings_figure(view.finding_counts),
        basis,
        actions_section(data, filters, view.lookback_days),
        figures.spend_by_label_figure(*spend_by_label(data, filters), currency=cur, range_text=range_text),
    )


ACTION_HEADS = ("VM", "Saving per month ({currency})", "Kind", "Risk", "What to do")


def actions_section(data: DashboardData, filters: Filters, lookback_days: int) -> list[Any]:
    """The VMs with the largest savings (each linking to its page), then backups that need attention."""
    if not data.is_complete():
        return [html.P(data.loading_note(), className="rs-muted")]
    rows = top_actions(data, filters, lookback_days)
    if not rows:
        return [html.P("Nothing to do: no VM in the selection saves money, and no backup is overdue.",
                       className="rs-muted")]
    heads = [h.format(currency=data.currency) for h in ACTION_HEADS]
    note = (f"Savings judged over the last {lookback_days} days of history (the range's days; 24 h uses the "
            "configured lookback); the biggest first, as the headline counts them (a VM's resize or stop plus "
            "its schedule), with storage advice added. Risk: how likely the change hurts the VM.")
    return [html.Table([html.Thead(html.Tr([html.Th(h) for h in heads])),
                        html.Tbody([_action_tr(r) for r in rows])], className="rs-table rs-actions-table"),
            html.P(note, className="rs-note")]


def _saving_text(row: ActionRow) -> str:
    parts = [f"{row.saving:,.2f}"] if row.saving else []
    if row.storage_saving:
        parts.append(f"{row.storage_saving:,.2f} storage")
    return " + ".join(parts) or "-"


def _action_tr(row: ActionRow) -> html.Tr:
    return html.Tr([
        html.Td(dcc.Link(row.name, href=f"/vm/{row.uuid}")),
        html.Td(_saving_text(row), className="rs-num"),
        html.Td(row.kind_text),
        html.Td(html.Span(row.risk, className=f"rs-risk rs-risk-{row.risk}") if row.risk else "-"),
        html.Td(row.what, className="rs-wrap"),
    ])


def register(app: Dash, data: DashboardData, **_: Any) -> None:
    """Register the overview callback."""

    @app.callback(
        Output(ids.OVERVIEW_KPIS, "children"),
        Output(ids.OVERVIEW_SPEND_HOUR, "figure"),
        Output(ids.OVERVIEW_SPEND_DAY, "figure"),
        Output(ids.OVERVIEW_UTILISATION, "figure"),
        Output(ids.OVERVIEW_FINDINGS, "figure"),
        Output(ids.OVERVIEW_FORECAST_BASIS, "children"),
        Output(ids.OVERVIEW_ACTIONS, "children"),
        Output(ids.OVERVIEW_SPEND_LABEL, "figure"),
        *FILTER_INPUTS,
        prevent_initial_call=True,
    )
    def _overview(range_key: str, labels: list[str], hosts: list[str]) -> tuple[Any, ...]:
        return update(data, range_key, labels, hosts)

    paged.register(app, HOSTS_TABLE, lambda: host_rows(data), "hosts")
    paged.register(app, PLACEMENT_TABLE, lambda: placement_rows(data), "services")


def _savings_note(headline: Headline | None) -> str:
    """The gross savings by kind, in the words every surface uses (analytics.findings.headline)."""
    if headline is None:
        return "resizes, idle stops, stopped VMs' disks and schedules"
    parts = [f"{KIND_TEXT[k]} {headline.savings_by_kind[k]:,.2f}" for k in SAVING_KINDS
             if headline.vms_by_kind.get(k)]
    return "; ".join(parts) + f"; net of upsizes {headline.net_monthly_savings:,.2f}" if parts else "none found"
