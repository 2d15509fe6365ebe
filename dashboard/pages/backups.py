"""Backups: each VM's newest backup against the age its policy allows; gaps first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Output, dcc, html

from dashboard import figures, ids
from dashboard.data import DashboardData, Filters
from dashboard.pages.common import FILTER_INPUTS, data_table, kpi, register_drilldown
from dashboard.viewmodel.backups import backup_rows

PATH = "/backups"
TITLE = "Backups"

COLUMNS: list[dict[str, Any]] = [
    {"id": "name", "name": "VM"},
    {"id": "host", "name": "Host"},
    {"id": "env", "name": "env"},
    {"id": "policy", "name": "Policy"},
    {"id": "policy_h", "name": "Max age (h)", "type": "numeric"},
    {"id": "newest_backup", "name": "Newest backup"},
    {"id": "age_h", "name": "Age (h)", "type": "numeric"},
    {"id": "status", "name": "Status"},
    {"id": "urgency", "name": "Urgency"},
    {"id": "detail", "name": "Detail"},
]


def layout(data: DashboardData, filters: Filters) -> html.Div:
    """The backups page, filled for ``filters``."""
    rows, cards, fig = update(data, filters.range_key, filters.labels, filters.hosts)
    return html.Div([
        html.H1("Backups"),
        html.P(f"Policy from the backup_policy label; otherwise {data.settings.backups.prod_policy} for env=prod "
               f"and {data.settings.backups.default_policy} for the rest. Backups are libvirt snapshots "
               "(their creation time).", className="rs-note"),
        html.Div(cards, id=ids.BACKUPS_SUMMARY, className="rs-kpis"),
        data_table(
            id=ids.BACKUPS_TABLE, columns=COLUMNS, data=rows, sort_action="native", filter_action="native",
            page_action="native", page_size=25,
        ),
        html.Div(dcc.Graph(id=ids.BACKUPS_AGE, figure=fig, config={"displaylogo": False}), className="rs-card",
                 style={"marginTop": "14px"}),
    ])


def update(data: DashboardData, range_key: str | None, labels: Sequence[str] | None,
           hosts: Sequence[str] | None) -> tuple[list[dict[str, Any]], list[html.Div], go.Figure]:
    """Callback body: table rows, summary cards and the age-vs-policy figure."""
    filters = Filters.of(range_key, labels, hosts)
    return data.cached(("backups-page", filters.labels, filters.hosts), lambda: _build(data, filters))


def _build(data: DashboardData,
           filters: Filters) -> tuple[list[dict[str, Any]], list[html.Div], go.Figure]:
    rows = backup_rows(data, filters)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    cards = [
        kpi("Overdue", str(counts.get("overdue", 0)), "newest backup older than the policy"),
        kpi("Never backed up", str(counts.get("never", 0)), "a policy, but no backup found"),
        kpi("Within policy", str(counts.get("ok", 0))),
        kpi("No policy", str(counts.get("no-policy", 0)), "backup_policy=none"),
    ]
    if counts.get("unknown"):
        cards.append(kpi("Unknown", str(counts["unknown"]), "no backup source (imported history)"))
    frame = pd.DataFrame(rows, columns=["name", "age_h", "policy_h", "status"]) if rows else pd.DataFrame(
        {"name": [], "age_h": [], "policy_h": [], "status": []})
    for col in ("age_h", "policy_h"):
        frame[col] = pd.to_numeric(frame[col])
    return rows, cards, figures.backup_age_figure(frame)


def register(app: Dash, data: DashboardData, **_: Any) -> None:
    """Register the backups callback; a row opens its VM's page."""
    register_drilldown(app, ids.BACKUPS_TABLE)

    @app.callback(
        Output(ids.BACKUPS_TABLE, "data"), Output(ids.BACKUPS_SUMMARY, "children"), Output(ids.BACKUPS_AGE, "figure"),
        *FILTER_INPUTS,
        prevent_initial_call=True,
    )
    def _backups(range_key: str, labels: list[str], hosts: list[str]) -> tuple[Any, ...]:
        return update(data, range_key, labels, hosts)
