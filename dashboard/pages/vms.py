"""VMs: a sortable, filterable grid of every VM matching the global filters; a row click opens the VM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash import Dash, Output, html

from dashboard import ids
from dashboard.data import DashboardData, Filters
from dashboard.pages.common import FILTER_INPUTS, data_table, register_drilldown, tooltips
from dashboard.viewmodel.recommendations import need_statistic
from dashboard.viewmodel.vms import vm_rows

PATH = "/vms"
TITLE = "VMs"
#: Columns behind the table's "Toggle Columns" button at first: the size is in the machine type's name, and the
#: schedule (also on the VM page and the Recommendations table) keeps the table within a 1,360 px window.
HIDDEN_AT_FIRST = ("vcpus", "memory_gib", "schedule", "schedule_savings")
#: Columns whose text wraps onto up to three lines (px wide); the long ones show whole in a tooltip.
WRAPPED = {"name": 130, "host": 90, "finding": 100, "labels": 160}
TOOLTIPS = ("labels",)


def _num(precision: int) -> dict[str, str]:
    """A DataTable number format: thousands separators and ``precision`` decimals."""
    return {"specifier": f",.{precision}f"}


def columns(currency: str) -> list[dict[str, Any]]:
    """Grid columns; headers carry units and the currency."""
    return [
        {"id": "name", "name": "VM"},
        {"id": "host", "name": "Host"},
        {"id": "machine_type", "name": "Machine type"},
        {"id": "hourly_cost", "name": f"Cost ({currency} / h)", "type": "numeric", "format": _num(4)},
        {"id": "need_vcpus", "name": "CPU need (vCPU)", "type": "numeric", "format": _num(2)},
        {"id": "cpu_p95_vcpus", "name": "CPU p95 of hourly means (vCPU)", "type": "numeric", "format": _num(2)},
        {"id": "cpu_p95_pct", "name": "CPU p95 of hourly means (%)", "type": "numeric", "format": _num(1)},
        {"id": "memory_used_gib", "name": "Memory used max (GiB)", "type": "numeric", "format": _num(2)},
        {"id": "memory_used_pct", "name": "Memory used max (%)", "type": "numeric", "format": _num(1)},
        {"id": "finding", "name": "Finding"},
        {"id": "pattern", "name": "Pattern"},
        {"id": "schedule", "name": "Schedule"},
        {"id": "schedule_savings", "name": f"Schedule saves ({currency} / month)", "type": "numeric",
         "format": _num(2)},
        {"id": "monthly_savings", "name": f"Savings ({currency} / month)", "type": "numeric", "format": _num(2)},
        {"id": "savings_pct", "name": "Savings (%)", "type": "numeric", "format": _num(1)},
        {"id": "labels", "name": "Labels"},
        {"id": "state", "name": "State"},
        {"id": "vcpus", "name": "vCPUs", "type": "numeric"},
        {"id": "memory_gib", "name": "Memory (GiB)", "type": "numeric", "format": _num(1)},
        {"id": "range_cost", "name": f"Cost in range ({currency})", "type": "numeric", "format": _num(2)},
    ]


def layout(data: DashboardData, filters: Filters, *, table_filter: str = "") -> html.Div:
    """The VMs page, filled for ``filters``, its table searched by ``table_filter`` (a filter_query)."""
    rows, note = update(data, filters.range_key, filters.labels, filters.hosts)
    return html.Div([
        html.H1("Virtual machines"),
        html.Div(note, id=ids.VMS_COUNT, className="rs-note"),
        html.P("Click a row to open the VM. Type in the row under the headers to filter a column "
               "(e.g. > 1 or payments); click a header to sort. * = machine type inferred from the size. "
               "CPU need is what the recommendations size for: " + (need_statistic(data) or "the strategy's "
               "statistic") + f" + headroom over the last {data.lookback_days(None)} days (the same name on the "
               "Recommendations and VM pages, in the report and in 'rightsizer recommend'). CPU p95 of hourly "
               "means is a utilisation figure over the selected range, not the need.", className="rs-note"),
        data_table(
            id=ids.VMS_TABLE,
            columns=columns(data.currency),
            widths_px={"pattern": 76, "machine_type": 80, "schedule": 96},
            wrap_px=WRAPPED,
            hidden=HIDDEN_AT_FIRST,
            data=rows,
            tooltip_data=tooltips(rows, TOOLTIPS),
            sort_action="native",
            sort_mode="multi",
            filter_action="native",
            filter_query=table_filter,
            page_action="native",
            page_size=25,
            cell_selectable=True,
        ),
    ])


def update(data: DashboardData, range_key: str | None, labels: Sequence[str] | None,
           hosts: Sequence[str] | None) -> tuple[list[dict[str, Any]], str]:
    """Callback body: grid rows and the count line."""
    filters = Filters.of(range_key, labels, hosts)
    rows = vm_rows(data, filters)
    total = len(data.selected_vms(Filters()))
    note = f"{len(rows)} VMs match the filters (of {total}); figures over the last {filters.range_key}."
    return rows, note


def register(app: Dash, data: DashboardData, **_: Any) -> None:
    """Register the grid and drilldown callbacks."""

    @app.callback(Output(ids.VMS_TABLE, "data"), Output(ids.VMS_TABLE, "tooltip_data"),
                  Output(ids.VMS_COUNT, "children"), *FILTER_INPUTS, prevent_initial_call=True)
    def _rows(range_key: str, labels: list[str], hosts: list[str]) -> tuple[Any, ...]:
        rows, note = update(data, range_key, labels, hosts)
        return rows, tooltips(rows, TOOLTIPS), note

    register_drilldown(app, ids.VMS_TABLE)
