from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from tinyfleet import END, GIB, A, B, C, make_data

from collector.errors import ActionFailed
from core.settings import CostSettings, Settings
from dashboard.data import DEFAULT_RANGE, DashboardData, Filters, csv_safe
from dashboard.viewmodel.backups import backup_rows
from dashboard.viewmodel.overview import overview_view
from dashboard.viewmodel.recommendations import apply_choice, recommendation_rows, recommendations_csv
from dashboard.viewmodel.vm_detail import vm_detail_view
from dashboard.viewmodel.vms import vm_rows

# Hand-computed hourly costs (see tinyfleet): compute price + capacity GB x 0.0000907638 + 0.00245833333.
COST_A = 0.06065813333 + 20 * 0.0000907638 + 0.00245833333  # 0.06493174266
COST_B = 0.03791133333 + 50 * 0.0000907638 + 0.00245833333  # 0.04490785666
COST_C = 10 * 0.0000907638 + 0.00245833333  # shut off: storage only (default rule)
FLEET_PER_HOUR = COST_A + COST_B + COST_C


def test_filters_normalise_order_and_unknown_range() -> None:
    # one default cost window for the dashboard, 'costs' and 'report': [costs] window_days
    assert DEFAULT_RANGE == f"{CostSettings().window_days}d" == "14d"
    assert Filters.of("bogus", ["b=2", "a=1", "a=1"], None) == Filters(DEFAULT_RANGE, ("a=1", "b=2"), ())
    assert Filters.of(None, None, None) == Filters()


@pytest.mark.parametrize(
    ("labels", "hosts", "expected"),
    [
        ((), (), {A, B, C}),
        (("team=payments",), (), {A, C}),
        (("team=payments", "team=web"), (), {A, B, C}),  # OR within one key
        (("team=payments", "env=prod"), (), {A}),  # AND across keys
        ((), ("h2",), {B}),
        (("team=web",), ("h1",), set()),
    ],
)
def test_selected_vms(data: DashboardData, labels: tuple[str, ...], hosts: tuple[str, ...],
                      expected: set[str]) -> None:
    assert set(data.selected_vms(Filters("24h", labels, hosts))) == expected


def test_filter_options_and_as_of(data: DashboardData) -> None:
    labels, hosts = data.filter_options()
    assert hosts == ["h1", "h2"]
    assert "team=payments" in labels and "machine_type=c1.2" in labels
    assert data.as_of() == END


def test_overview_spend_month_to_date_and_forecast(data: DashboardData) -> None:
    view = overview_view(data, Filters("24h"))
    assert view.currency == "EUR"
    assert len(view.spend_hour) == 24
    assert view.spend_hour["ts"].iloc[-1].to_pydatetime() == END
    assert view.spend_hour["cost"].tolist() == pytest.approx([FLEET_PER_HOUR] * 24)
    assert view.range_cost == pytest.approx(24 * FLEET_PER_HOUR)
    # spend per day: 2026-03-11 holds 23 hours of the range, 2026-03-12 one hour
    assert view.spend_day["cost"].tolist() == pytest.approx([23 * FLEET_PER_HOUR, FLEET_PER_HOUR])
    # month to date: all 48 stored hours (the clock, 01:00, is at the end of the newest hour)
    assert view.month_to_date == pytest.approx(48 * FLEET_PER_HOUR)
    # forecast: + run-rate (48 h of data, shorter than 7 days) x 479 h left in March
    assert view.forecast_month_end == pytest.approx((48 + 479) * FLEET_PER_HOUR)
    assert view.vms_total == 3 and view.vms_running == 2
    assert view.finding_counts == {"over-provisioned": 1, "under-provisioned": 1, "idle": 1}
    assert view.potential_monthly_savings == pytest.approx(23.5)
    assert view.upsize_monthly_cost == pytest.approx(5.0)


def test_overview_utilisation_counts_running_vms_only(data: DashboardData) -> None:
    util = overview_view(data, Filters("24h")).utilisation
    first = util.iloc[0]
    assert first["cpu_used_vcpus"] == pytest.approx(0.75)
    assert first["cpu_allocated_vcpus"] == pytest.approx(3.0)  # C is shut off
    assert first["memory_used_bytes"] == pytest.approx(1 * GIB)  # B reports no memory use
    assert first["memory_allocated_bytes"] == pytest.approx(8 * GIB)
    assert first["memory_known_allocated_bytes"] == pytest.approx(4 * GIB)
    spike = util[util["ts"] == END - timedelta(hours=12)].iloc[0]
    assert spike["cpu_used_vcpus"] == pytest.approx(1.8 + 0.25)


def test_overview_follows_label_filter(data: DashboardData) -> None:
    view = overview_view(data, Filters("24h", ("team=web",)))
    assert view.range_cost == pytest.approx(24 * COST_B)
    assert view.month_to_date == pytest.approx(48 * COST_B)
    assert view.finding_counts == {"under-provisioned": 1}
    assert view.potential_monthly_savings == 0.0


def test_vm_rows(data: DashboardData) -> None:
    rows = {r["id"]: r for r in vm_rows(data, Filters("24h"))}
    a = rows[A]
    assert a["name"] == "pay-api" and a["host"] == "h1" and a["machine_type"] == "c1.2"
    assert a["hourly_cost"] == pytest.approx(round(COST_A, 4))
    assert a["range_cost"] == pytest.approx(round(24 * COST_A, 2))
    assert a["cpu_p95_vcpus"] == 0.5  # 23 hours at 0.5, one at 1.8
    assert a["cpu_p95_pct"] == 25.0
    assert a["memory_used_gib"] == 1.0 and a["memory_used_pct"] == 25.0
    assert a["labels"] == "backup_policy=24h, env=prod, machine_type=c1.2, team=payments"
    assert a["finding"] == "over-provisioned" and a["monthly_savings"] == 20.5
    assert rows[B]["memory_used_gib"] is None
    assert rows[C]["state"] == "shutoff" and rows[C]["cpu_p95_vcpus"] is None
    assert rows[C]["machine_type"].endswith(" *")  # inferred from the size
    assert [r["id"] for r in vm_rows(data, Filters("24h"))] == [A, C, B]  # biggest saving first


def test_vm_detail(data: DashboardData) -> None:
    view = vm_detail_view(data, A, Filters("7d"))
    assert view is not None
    assert len(view.hours) == 48 and view.hours["vm"].eq(A).all()
    assert view.machine_type == "c1.2" and view.type_source == "label"
    assert view.price_per_hour == pytest.approx(0.06065813333)
    assert view.cost_day["cost"].sum() == pytest.approx(48 * COST_A)
    assert view.finding is not None and view.finding.recommended_type == "g1.1"
    assert view.backup is not None and view.backup.status == "ok"
    assert vm_detail_view(data, "no-such-uuid", Filters()) is None


def test_recommendation_rows_and_csv_are_formula_safe(data: DashboardData) -> None:
    rows = recommendation_rows(data, Filters())
    assert [r["id"] for r in rows] == [A, C, B]
    assert rows[0]["options"] == "g1.1 (1 vCPU, 4 GiB, 27.30 EUR/month)"
    text = recommendations_csv(data, Filters())
    parsed = list(csv.reader(io.StringIO(text)))
    header, body = parsed[0], parsed[1:]
    assert header[:3] == ["name", "uuid", "host"] and "currency" in header
    by_name = {r[0]: dict(zip(header, r, strict=True)) for r in body}
    assert set(by_name) == {"pay-api", "web-1", "'=cmd|calc"}
    assert by_name["'=cmd|calc"]["reason"] == "'=SUM(A1) idle"
    assert by_name["pay-api"]["monthly_savings"] == "20.5" and by_name["pay-api"]["currency"] == "EUR"
    assert by_name["web-1"]["monthly_savings"] == "-5.0"  # numbers stay numbers


def test_csv_safe() -> None:
    assert csv_safe("=1+1") == "'=1+1"
    assert csv_safe("@x") == "'@x"
    assert csv_safe("plain") == "plain"
    assert csv_safe(3.5) == 3.5


def test_backup_rows(data: DashboardData) -> None:
    rows = {r["id"]: r for r in backup_rows(data, Filters())}
    assert rows[A]["status"] == "ok" and rows[A]["age_h"] == 3.0 and rows[A]["policy_h"] == 24.0
    assert rows[B]["status"] == "never" and rows[B]["policy"] == "24h"  # env=prod default policy
    assert rows[C]["status"] == "no-policy"
    assert [r["id"] for r in backup_rows(data, Filters())][0] == B  # most urgent first


def test_apply_refuses_without_enabled_actions(data: DashboardData) -> None:
    calls: list[tuple[str, str, str]] = []

    def hook(vm_uuid: str, machine_type: str, *, actor: str) -> str:
        calls.append((vm_uuid, machine_type, actor))
        return "applied"

    assert "disabled" in apply_choice(data, hook, A, "g1.1", "secret")
    assert calls == []


def test_apply_checks_token_then_calls_hook(tiny_store: object) -> None:
    settings = Settings.model_validate({"actions": {"enabled": True, "token": "s3cret"}})
    data = make_data(tiny_store, settings)  # type: ignore[arg-type]
    calls: list[tuple[str, str, str]] = []

    def hook(vm_uuid: str, machine_type: str, *, actor: str) -> str:
        calls.append((vm_uuid, machine_type, actor))
        return "applied g1.1"

    assert "Wrong or missing token" in apply_choice(data, hook, A, "g1.1", "guess")
    assert "Wrong or missing token" in apply_choice(data, hook, A, "g1.1", None)
    assert calls == []
    assert apply_choice(data, hook, A, "g1.1", "s3cret") == "pay-api: applied g1.1"
    assert calls == [(A, "g1.1", "dashboard")]
    assert "not in the store" in apply_choice(data, hook, "nope", "g1.1", "s3cret")  # starts a refresh: applied
    data.wait_for_refresh()
    assert data.snapshot().built_at > 0


def test_apply_reports_action_errors(tiny_store: object) -> None:
    settings = Settings.model_validate({"actions": {"enabled": True, "token": "t"}})
    data = make_data(tiny_store, settings)  # type: ignore[arg-type]

    def hook(vm_uuid: str, machine_type: str, *, actor: str) -> str:
        raise ActionFailed("target needs 8 vCPUs, host has 4")

    assert apply_choice(data, hook, A, "g1.1", "t") == "pay-api: not applied: target needs 8 vCPUs, host has 4"


def test_snapshot_is_reused_within_ttl_and_views_are_memoised(data: DashboardData) -> None:
    first = data.snapshot()
    assert data.snapshot() is first
    assert overview_view(data, Filters("24h")) is overview_view(data, Filters("24h"))
    data.refresh()
    assert data.snapshot() is not first


def test_empty_store_gives_empty_views(store: object) -> None:
    data = make_data(store)  # type: ignore[arg-type]
    view = overview_view(data, Filters())
    assert view.vms_total == 0 and view.range_cost == 0.0
    assert vm_rows(data, Filters()) == []
    assert backup_rows(data, Filters()) == []


def test_stale_snapshot_is_served_while_a_background_refresh_runs(data: DashboardData) -> None:
    first = data.snapshot()
    data.ttl_s = 0.0
    data.last_build_s = 0.0
    assert data.snapshot() is first  # stale: served at once, a refresh starts behind it
    data.wait_for_refresh()
    data.ttl_s = 3600.0
    second = data.snapshot()
    assert second is not first
    assert second.built_at > first.built_at
