"""VM detail: CPU, memory and disk over time with allocated and recommended sizes, cost, the recommendation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html

from dashboard import figures, ids
from dashboard.data import GIB, DashboardData, Filters, FindingView, VmDetailView
from dashboard.pages.common import FILTER_INPUTS, badge, chips, empty, lookback_control, money, risk_legend
from dashboard.pages.vm_dismiss import dismiss_panel
from dashboard.pages.vm_dismiss import register as register_dismiss
from dashboard.viewmodel.history import available_lookbacks
from dashboard.viewmodel.vm_detail import headroom_line, vm_detail_view
from dashboard.views import storage_class_text

PATH_PREFIX = "/vm/"
TITLE = "VM"

_GRAPH_CONFIG: Any = {"displaylogo": False, "responsive": True}


def layout(data: DashboardData, uuid: str, filters: Filters, *, lookback: int | None = None) -> html.Div:
    """The page of VM ``uuid``, filled for ``filters`` and ``lookback`` (days; None: the configured one); the
    callback refreshes it when they change."""
    default = data.lookback_days(lookback)
    header, cpu, mem, disk, cost, rec, options = update(
        data, uuid, filters.range_key, filters.labels, filters.hosts, default)
    return html.Div([
        dcc.Store(id=ids.VM_UUID, data=uuid),
        html.Div(header, id=ids.VM_HEADER),
        html.Div([
            html.Div(dcc.Graph(id=ids.VM_CPU, figure=cpu, config=_GRAPH_CONFIG), className="rs-card"),
            html.Div(dcc.Graph(id=ids.VM_MEMORY, figure=mem, config=_GRAPH_CONFIG), className="rs-card"),
            html.Div(dcc.Graph(id=ids.VM_DISK, figure=disk, config=_GRAPH_CONFIG), className="rs-card"),
            html.Div(dcc.Graph(id=ids.VM_COST, figure=cost, config=_GRAPH_CONFIG), className="rs-card"),
        ], className="rs-grid-2"),
        html.H2("Recommendation"),
        lookback_control(ids.VM_LOOKBACK, default, available_lookbacks(data)),
        html.Div(rec, id=ids.VM_RECOMMENDATION, className="rs-card rs-card-pad"),
        dismiss_panel(data, uuid),
        risk_legend(ids.VM_LEGEND),
        html.Div(placement_finding(data, uuid), id=ids.VM_PLACEMENT),
        html.H2("Options"),
        html.Div(options, id=ids.VM_OPTIONS, className="rs-card rs-card-pad"),
    ])


def placement_finding(data: DashboardData, uuid: str) -> list[Any]:
    """The placement-risk finding of the VM's service, or nothing when it is spread."""
    risk = data.vm_placement(uuid)
    if risk is None:
        return []
    return [html.H2("Placement"), html.Div([
        html.Div([html.Span(f"placement risk: {risk.level}", className="rs-badge rs-badge-under-provisioned")]),
        html.P(risk.detail),
        html.Table([html.Tr([html.Th("Service"), html.Td(risk.service)]),
                    html.Tr([html.Th("Hosts"), html.Td(", ".join(risk.hosts))]),
                    html.Tr([html.Th("Zones"), html.Td(", ".join(risk.zones) or "-")]),
                    html.Tr([html.Th("Members"), html.Td(", ".join(risk.members))])], className="rs-kv"),
    ], className="rs-card rs-card-pad")]


def _header(view: VmDetailView) -> html.Div:
    vm = view.vm
    cur = view.currency
    source = {"label": "from the machine_type label", "inferred": "inferred from the size"}.get(
        view.type_source, "unknown")
    price = money(view.price_per_hour, cur, 4) + " / h" if view.price_per_hour is not None else "not priced"
    rows = [
        ("UUID", vm.uuid), ("Host", vm.host), ("URI", vm.uri), ("State", vm.state.value),
        ("Size", f"{vm.vcpus} vCPUs, {vm.memory_bytes / GIB:g} GiB"),
        ("Machine type", f"{view.machine_type or '-'} ({source})"), ("Compute price", price),
        ("Data source", vm.source),
    ]
    if view.backup is not None:
        rows.append(("Newest backup", f"{view.backup.status}: {view.backup.detail}" if view.backup.detail
                     else view.backup.status))
    return html.Div([
        html.H1(vm.name, id="vm-name"),
        html.Div(chips(vm.labels)),
        html.Table([html.Tr([html.Th(k), html.Td(v)]) for k, v in rows], className="rs-kv"),
    ])


def _recommendation(f: FindingView | None, currency: str) -> list[Any]:
    if f is None:
        return [html.P("No recommendation for this VM yet.", className="rs-muted")]
    headroom = headroom_line(f)
    out: list[Any] = [
        html.Div([
            badge(f.finding),
            html.Span(f"risk {f.risk}", className="rs-badge", title="; ".join(f.risk_reasons)),
            html.Span("excluded from resizing (rightsizer_exclude)", className="rs-badge") if f.excluded else None,
            html.Span(f"{f.dismissed.state}: {f.dismissed.reason}", className="rs-badge rs-muted",
                      id="vm-dismissed") if f.dismissed is not None else None,
        ]),
        html.Table([
            html.Tr([html.Th("Current type"), html.Td(f.current_type or "-")]),
            html.Tr([html.Th("Recommended type"), html.Td(f.recommended_type or "-")]),
            html.Tr([html.Th("Action"), html.Td(f.action)]),
            html.Tr([html.Th(f"Need ({f.need_statistic} + headroom)" if f.need_statistic else "Need"), html.Td(
                (f"{f.target_vcpus:.2f} vCPUs" if f.target_vcpus is not None else "-") + ", "
                + (f"{f.target_memory_bytes / GIB:.2f} GiB" if f.target_memory_bytes is not None else "-"))]),
            *([html.Tr([html.Th("Headroom"), html.Td(headroom, id=ids.VM_HEADROOM)])] if headroom else []),
            html.Tr([html.Th("Savings"), html.Td(money(f.monthly_savings, currency)
                                                 + f" / month ({f.savings_pct:.1f} % of its compute price)")]),
            *([html.Tr([html.Th("Schedule"), html.Td(
                f"on {f.schedule}: saves {money(f.schedule_savings, currency)} / month more (total "
                f"{money(f.combined_savings, currency)})", id="vm-schedule")])] if f.schedule else []),
            html.Tr([html.Th("Lookback"), html.Td(f"{f.lookback_days:g} days")]),
            html.Tr([html.Th("Risk"), html.Td(f"{f.risk}: " + "; ".join(f.risk_reasons), id="vm-risk")]),
        ], className="rs-kv"),
        html.H2("Why"),
        html.Ul([html.Li([html.B(k + ": "), v]) for k, v in f.reasons.items()], className="rs-reasons"),
    ]
    if f.evidence:
        out += [html.H2("Evidence"),
                html.Table([html.Tr([html.Th(k), html.Td(v)]) for k, v in f.evidence.items()], className="rs-kv")]
    return out


def _storage(f: FindingView | None) -> list[Any]:
    """The VM's storage advice: class its P99 load needs, capacity by use, monthly prices."""
    a = f.storage if f is not None else None
    if a is None:
        return []

    def gb(value: float | None) -> str:
        return "unknown" if value is None else f"{value / 1e9:,.1f} GB"

    def change(before: str, after: str, why: str) -> str:
        return f"{before} -> {after}" if after != before else f"{before} (no change{why})"

    iops = "IOPS unknown" if a.iops_p99 is None else f"{a.iops_p99:,.0f} IOPS"
    rate = "throughput unknown" if a.bps_p99 is None else _rate_text(a.bps_p99)
    capacity = (f"{gb(a.capacity_bytes)} (no change: use unknown)" if a.recommended_capacity_bytes is None
                else change(gb(a.capacity_bytes), gb(a.recommended_capacity_bytes), ""))
    classes = change(storage_class_text(a.current_class), storage_class_text(a.recommended_class),
                     ": disk load unknown" if a.needed_class is None else "")
    return [html.H2("Storage"), html.Table([
        html.Tr([html.Th("Performance class"), html.Td(classes)]),
        html.Tr([html.Th("Disk load (P99)"), html.Td(f"{iops}, {rate}")]),
        html.Tr([html.Th("Capacity"), html.Td(capacity)]),
        html.Tr([html.Th("Used"), html.Td(f"{gb(a.used_bytes)} ({a.used_source})")]),
        html.Tr([html.Th("Price"), html.Td(f"{money(a.monthly_cost, a.currency)} -> "
                                           f"{money(a.recommended_monthly_cost, a.currency)} / month")]),
        html.Tr([html.Th("Savings"), html.Td(money(a.monthly_savings, a.currency) + " / month")]),
    ], className="rs-kv", id=ids.VM_STORAGE), html.P(a.reason, className="rs-note")]


def _rate_text(bps: float) -> str:
    unit, size = figures.rate_unit(bps)
    return f"{bps / size:,.1f} {unit}"


def _pattern(f: FindingView | None, view: VmDetailView, timezone: str) -> list[Any]:
    """The weekday x hour heat map, the VM's pattern and its proposed on/off schedule."""
    text = f"Pattern: {f.pattern if f else 'unknown'}. "
    if f is not None and f.schedule:
        text += (f"Proposed schedule: on {f.schedule}, saving {money(f.schedule_savings, view.currency)} / month "
                 f"(hourly billing; disks are billed anyway). Risk {f.schedule_risk_text}")
    else:
        text += "No on/off schedule proposed."
    return [
        html.H2("Weekly pattern"),
        html.P(text, id=ids.VM_PATTERN),
        dcc.Graph(id=ids.VM_HEATMAP, figure=figures.weekly_profile_figure(view.hours, timezone=timezone,
                                                                         allocated_vcpus=view.vm.vcpus),
                  config=_GRAPH_CONFIG),
    ]


def _options(f: FindingView | None, currency: str) -> Any:
    others = [html.P(text) for text in (f.other_options if f is not None else ())]
    if f is None or not f.options:
        return others or html.P("No alternative machine types.", className="rs-muted")
    header = html.Tr([html.Th(h) for h in ("Machine type", "vCPUs", "Memory (GiB)",
                                           f"Price ({currency}/month)", f"Savings ({currency}/month)")])
    body = [
        html.Tr([html.Td(o.machine_type), html.Td(str(o.vcpus)), html.Td(f"{o.memory_bytes / GIB:g}"),
                 html.Td(f"{o.price_per_month:,.2f}"), html.Td(f"{o.monthly_savings:,.2f}")])
        for o in f.options
    ]
    return [*others, html.Table([header, *body], className="rs-kv")]


_PageParts = tuple[Any, go.Figure, go.Figure, go.Figure, go.Figure, Any, Any]


def update(data: DashboardData, uuid: str | None, range_key: str | None, labels: Sequence[str] | None,
           hosts: Sequence[str] | None, lookback: int | None = None) -> _PageParts:
    """Callback body: header, CPU/memory/disk/cost figures, recommendation (with the projected utilisation
    on the recommended type), options."""
    filters = Filters.of(range_key, labels, hosts)
    days = data.lookback_days(lookback)
    key = uuid if isinstance(uuid, str) else ""  # a crafted callback may send any JSON value
    return data.cached(("vm-page", key, filters.range_key, days), lambda: _build(data, key, filters, days))


def _build(data: DashboardData, uuid: str, filters: Filters, lookback: int) -> _PageParts:
    view = vm_detail_view(data, uuid, filters, lookback)
    if view is None:
        blank = figures.empty_figure("", "Unknown VM")
        return (empty(f"No VM with UUID or name {uuid!r} in the store. Go back to the VM list."), blank, blank, blank,
                blank, None, None)
    f = view.finding
    rec_label = f"recommended: {f.recommended_type}" if f and f.recommended_type else "recommended"
    need_label = f"need: {f.need_statistic} + headroom" if f and f.need_statistic else "need"
    return (
        _header(view),
        figures.vm_cpu_figure(view.hours, recommended_vcpus=f.recommended_vcpus if f else None,
                              recommended_label=rec_label, needed_vcpus=f.target_vcpus if f else None,
                              need_label=need_label),
        figures.vm_memory_figure(view.hours, recommended_bytes=f.recommended_memory_bytes if f else None,
                                 recommended_label=rec_label,
                                 needed_bytes=f.target_memory_bytes if f else None,
                                 need_label=(f"need: {f.need_memory_statistic} + headroom"
                                             if f and f.need_memory_statistic else "need")),
        figures.vm_disk_figure(view.hours),
        figures.vm_cost_figure(view.cost_day, currency=view.currency),
        [dcc.Graph(id=ids.VM_PROJECTION, config=_GRAPH_CONFIG, figure=figures.projection_figure(
            f.projection if f else None, target=(f.recommended_type or "?") if f else "?", lookback_days=lookback)),
         *_recommendation(f, view.currency), *_storage(f), *_pattern(f, view, data.settings.schedules.timezone)],
        _options(f, view.currency),
    )


def register(app: Dash, data: DashboardData, **_: Any) -> None:
    """Register the VM page callbacks (the page, and its "Dismiss…" control)."""
    register_dismiss(app, data)

    @app.callback(
        Output(ids.VM_HEADER, "children"),
        Output(ids.VM_CPU, "figure"),
        Output(ids.VM_MEMORY, "figure"),
        Output(ids.VM_DISK, "figure"),
        Output(ids.VM_COST, "figure"),
        Output(ids.VM_RECOMMENDATION, "children"),
        Output(ids.VM_OPTIONS, "children"),
        Input(ids.VM_UUID, "data"),
        *FILTER_INPUTS,
        Input(ids.VM_LOOKBACK, "value"),
        prevent_initial_call=True,
    )
    def _detail(uuid: str, range_key: str, labels: list[str], hosts: list[str], lookback: int) -> tuple[Any, ...]:
        return update(data, uuid, range_key, labels, hosts, lookback)
