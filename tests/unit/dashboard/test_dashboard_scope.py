"""A signed-in user with a label scope sees only that scope's VMs on every view the dashboard draws.

The tiny fleet has two payments VMs (A, C) and one web VM (B). A user scoped to team=payments must get, on every
view, exactly what the whole-fleet view shows with the label filter team=payments - and nothing of B.
"""

from __future__ import annotations

import pytest
from tinyfleet import A, B, C

from core.access import Principal
from dashboard.data import DashboardData, Filters
from dashboard.viewmodel.actions import spend_by_label, top_actions
from dashboard.viewmodel.backups import backup_rows
from dashboard.viewmodel.overview import overview_view
from dashboard.viewmodel.recommendations import apply_choice, apply_choices, recommendation_rows, recommendations_csv
from dashboard.viewmodel.vm_detail import find_vm, vm_detail_view
from dashboard.viewmodel.vms import vm_rows

PAYMENTS = Principal("ops-payments", "operator", ("team=payments",))
AS_FILTER = Filters(labels=("team=payments",))


def _as(data: DashboardData, who: Principal | None) -> None:
    data.principal = lambda: who


def test_every_view_of_a_scoped_user_equals_the_fleet_view_filtered_to_the_scope(data: DashboardData) -> None:
    filtered = {
        "vms": vm_rows(data, AS_FILTER),
        "recs": recommendation_rows(data, AS_FILTER),
        "backups": backup_rows(data, AS_FILTER),
        "overview": overview_view(data, AS_FILTER),
        "top": top_actions(data, AS_FILTER),
        "csv": recommendations_csv(data, AS_FILTER),
    }
    everything = {row["id"] for row in vm_rows(data, Filters())}
    assert everything == {A, B, C}

    _as(data, PAYMENTS)
    scoped = {
        "vms": vm_rows(data, Filters()),
        "recs": recommendation_rows(data, Filters()),
        "backups": backup_rows(data, Filters()),
        "overview": overview_view(data, Filters()),
        "top": top_actions(data, Filters()),
        "csv": recommendations_csv(data, Filters()),
    }
    assert {row["id"] for row in scoped["vms"]} == {A, C}
    assert scoped["vms"] == filtered["vms"]
    assert scoped["recs"] == filtered["recs"] and scoped["recs"]
    assert scoped["backups"] == filtered["backups"]
    assert scoped["top"] == filtered["top"] and all(r.uuid != B for r in scoped["top"])
    assert scoped["csv"] == filtered["csv"] and "web-1" not in scoped["csv"] and "pay-api" in scoped["csv"]
    got, want = scoped["overview"], filtered["overview"]
    assert got.range_cost == pytest.approx(want.range_cost) and got.range_cost > 0
    assert got.month_to_date == pytest.approx(want.month_to_date)
    assert got.headline == want.headline
    assert got.vms_total == 2 and got.finding_counts == want.finding_counts


def test_a_scoped_user_cannot_reach_a_vm_outside_the_scope(data: DashboardData) -> None:
    _as(data, PAYMENTS)
    assert find_vm(data, B) is None and find_vm(data, "web-1") is None
    assert vm_detail_view(data, B, Filters()) is None
    assert vm_detail_view(data, A, Filters()) is not None
    labels, hosts = data.filter_options()
    assert "team=web" not in labels and "team=payments" in labels
    assert hosts == ["h1"]  # B is the only VM on h2
    # the label filter cannot widen the scope
    assert vm_rows(data, Filters(labels=("team=web",))) == []
    assert all(uuid != B for uuid, _name, _types in apply_choices(data, Filters()))
    _key, spend = spend_by_label(data, Filters())
    assert set(spend) == {"payments"}


def test_the_fleet_view_is_unchanged_by_a_scoped_user_and_their_views_are_their_own(data: DashboardData) -> None:
    _as(data, PAYMENTS)
    assert {row["id"] for row in vm_rows(data, Filters())} == {A, C}
    _as(data, None)
    assert {row["id"] for row in vm_rows(data, Filters())} == {A, B, C}
    _as(data, Principal("everyone", "viewer"))
    assert {row["id"] for row in vm_rows(data, Filters())} == {A, B, C}


def test_writes_from_the_dashboard_need_an_operator_and_name_the_user(data: DashboardData) -> None:
    data.settings.actions.enabled = True
    applied: list[tuple[str, str, str]] = []

    def hook(vm_uuid: str, machine_type: str, *, actor: str) -> str:
        applied.append((vm_uuid, machine_type, actor))
        return "applied"

    _as(data, Principal("viewer-all", "viewer"))
    refused = apply_choice(data, hook, A, "g1.1", None)
    assert "only an operator or admin" in refused and applied == []
    _as(data, PAYMENTS)
    outside = apply_choice(data, hook, B, "g1.2", None)
    assert applied == [] and "not in the store" in outside
    assert apply_choice(data, hook, A, "g1.1", None).endswith("applied")
    assert applied == [(A, "g1.1", "ops-payments")]  # no token: the sign-in is the credential; actor = the user
