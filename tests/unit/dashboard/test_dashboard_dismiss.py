"""The VM page's "Dismiss…" control on a real analysis: the callback writes the dismissal (token-guarded),
the Recommendations table greys the row with its reason and its cards leave the saving out; restore undoes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_dashboard_pages import _texts as texts_of

from analytics.catalogue import load_catalogue
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from dashboard.app import create_app
from dashboard.data import DashboardData, Filters
from dashboard.pages import recommendations, vm_detail, vm_dismiss
from tests.helpers.lifecycle_fleet import DAYS, FLEET, NOW, lifecycle_points

SETTINGS = Settings.model_validate({"actions": {"enabled": True, "token": "s3cret"}})
BUSY = FLEET["busy-1"].uuid


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "fleet.db")
    hours = range(DAYS * 24)
    s.write_history([FLEET["busy-1"], FLEET["snug-1"]],
                    lifecycle_points(FLEET["busy-1"], hours, 0.5, used_gib=2)
                    + lifecycle_points(FLEET["snug-1"], hours, 2.2, used_gib=5.0))
    return s


def test_dismiss_from_the_vm_page_greys_the_row_and_leaves_the_saving_out(store: SqliteStore) -> None:
    data = DashboardData(SETTINGS, store, load_catalogue(), data_mode="import", clock=lambda: NOW)
    rows, cards, _fig, choices = recommendations.update(data, "14d", None, None)
    busy = next(r for r in rows if r["id"] == BUSY)
    assert busy["dismissed"] == "" and busy["monthly_savings"] > 0
    assert BUSY in {c["value"] for c in choices}
    saving = f"{busy['monthly_savings']:,.2f} EUR"
    assert saving in texts_of(cards)

    result, status = vm_dismiss.on_click(data, vm_dismiss.DISMISS, BUSY, "quarter end", "30d", "guess")
    assert "Wrong or missing token" in result and status == "Not dismissed." and store.dismissals() == []
    result, _ = vm_dismiss.on_click(data, vm_dismiss.DISMISS, BUSY, "  ", "", "s3cret")
    assert "the reason is empty" in result and store.dismissals() == []
    result, _ = vm_dismiss.on_click(data, vm_dismiss.DISMISS, BUSY, "x", "2020-01-01", "s3cret")
    assert "in the past" in result and store.dismissals() == []

    result, status = vm_dismiss.on_click(data, vm_dismiss.DISMISS, BUSY, "quarter end", "30d", "s3cret")
    assert "busy-1: Resize postponed by dashboard until " in result and status.endswith(": quarter end")
    (stored,) = store.dismissals()
    assert (stored.kind, stored.actor, stored.reason) == ("resize", "dashboard", "quarter end")
    assert [(e.action, e.actor) for e in store.audit(BUSY)] == [("postpone", "dashboard")]

    rows, cards, _fig, choices = recommendations.update(data, "14d", None, None)
    busy = next(r for r in rows if r["id"] == BUSY)
    assert busy["dismissed"].startswith("postponed by dashboard until ") and busy["dismissed"].endswith("quarter end")
    assert busy["reason"].startswith("Postponed by dashboard until ") and "quarter end. " in busy["reason"]
    assert "dismissed" in recommendations.HIDDEN_AT_FIRST  # no wider table: the Reason column says it
    texts = texts_of(cards)
    assert f"{saving}/month left out (greyed below)" in texts and "Dismissed" in texts
    assert BUSY not in {c["value"] for c in choices}  # not offered to apply
    grey = recommendations.DISMISSED_STYLE[-1]
    assert grey["if"] == {"filter_query": '{dismissed} != ""'} and grey["fontStyle"] == "italic"
    page = vm_detail.layout(data, BUSY, Filters())
    assert "postponed: quarter end" in texts_of(page)

    result, status = vm_dismiss.on_click(data, vm_dismiss.RESTORE, BUSY, None, None, "s3cret")
    assert result.endswith("busy-1: restored (resize).") and status == "Not dismissed."
    rows, *_ = recommendations.update(data, "14d", None, None)
    assert next(r for r in rows if r["id"] == BUSY)["dismissed"] == ""
    assert [e.action for e in store.audit(BUSY)] == ["postpone", "restore"]


def test_the_dismiss_callback_over_http(store: SqliteStore) -> None:
    app = create_app(SETTINGS, store, load_catalogue(), data_mode="import", clock=lambda: NOW, warm=False)
    http = app.server.test_client()
    body = {"output": f"..{vm_dismiss.RESULT}.children...{vm_dismiss.STATUS}.children..",
            "outputs": [{"id": vm_dismiss.RESULT, "property": "children"},
                        {"id": vm_dismiss.STATUS, "property": "children"}],
            "inputs": [{"id": vm_dismiss.DISMISS, "property": "n_clicks", "value": 1},
                       {"id": vm_dismiss.RESTORE, "property": "n_clicks", "value": 0}],
            "changedPropIds": [f"{vm_dismiss.DISMISS}.n_clicks"],
            "state": [{"id": "vm-uuid", "property": "data", "value": BUSY},
                      {"id": vm_dismiss.REASON, "property": "value", "value": "kept for DR"},
                      {"id": vm_dismiss.UNTIL, "property": "value", "value": ""},
                      {"id": vm_dismiss.TOKEN, "property": "value", "value": "s3cret"}]}
    resp = http.post("/_dash-update-component", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert "Resize dismissed by dashboard until restored: kept for DR" in resp.get_data(as_text=True)
    (stored,) = store.dismissals()
    assert stored.until is None and stored.reason == "kept for DR"
