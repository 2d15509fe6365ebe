"""The VM page's "Dismiss…" control (reason, until, token) and its callback; see dashboard.viewmodel.dismissals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from dashboard import ids
from dashboard.data import DashboardData
from dashboard.pages.common import write_credential
from dashboard.viewmodel.dismissals import dismiss, dismissal_of, restore, status_text

REASON = "vm-dismiss-reason"
UNTIL = "vm-dismiss-until"
TOKEN = "vm-dismiss-token"
DISMISS = "vm-dismiss-button"
RESTORE = "vm-restore-button"
RESULT = "vm-dismiss-result"
STATUS = "vm-dismiss-status"


def dismiss_panel(data: DashboardData, uuid: str) -> html.Details:
    """A collapsed "Dismiss…" control under the recommendation, with the VM's dismissal state."""
    token, who = write_credential(data, TOKEN)
    return html.Details([
        html.Summary("Dismiss…"),
        html.P("A dismissed finding stays on every page, greyed, and is left out of the savings, the digest and "
               f"plans. Give a date (2027-01-31) or a duration (30d) to postpone it; empty: until restored. {who}",
               className="rs-note"),
        html.P(status_text(dismissal_of(data, uuid)), id=STATUS),
        html.Div([
            dcc.Input(id=REASON, type="text", placeholder="Reason (required)", className="rs-input",
                      maxLength=500),
            dcc.Input(id=UNTIL, type="text", placeholder="Until (date or 30d; empty: until restored)",
                      className="rs-input"),
            token,
            html.Button("Dismiss", id=DISMISS, n_clicks=0, className="rs-button"),
            html.Button("Restore", id=RESTORE, n_clicks=0, className="rs-button"),
        ], className="rs-actions"),
        html.Div(id=RESULT, className="rs-result"),
    ], className="rs-card rs-card-pad", id="vm-dismiss")


def on_click(data: DashboardData, trigger: object, uuid: object, reason: object, until: object,
             token: object) -> tuple[Any, Any]:
    """Callback body: (result line, status line) after a click on Dismiss or Restore."""
    if trigger == DISMISS:
        message = dismiss(data, uuid, reason, until, token)
    elif trigger == RESTORE:
        message = restore(data, uuid, token)
    else:
        return no_update, no_update
    stamp = datetime.now(UTC).strftime("%H:%M:%S UTC")
    return f"{stamp} {message}", status_text(dismissal_of(data, uuid))


def register(app: Dash, data: DashboardData) -> None:
    @app.callback(
        Output(RESULT, "children"), Output(STATUS, "children"),
        Input(DISMISS, "n_clicks"), Input(RESTORE, "n_clicks"),
        State(ids.VM_UUID, "data"), State(REASON, "value"), State(UNTIL, "value"), State(TOKEN, "value"),
        prevent_initial_call=True,
    )
    def _click(_d: int, _r: int, uuid: str, reason: str, until: str, token: str) -> tuple[Any, Any]:
        return on_click(data, ctx.triggered_id, uuid, reason, until, token)
