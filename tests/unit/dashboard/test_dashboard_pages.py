"""Callbacks and layouts as plain functions, on the three-VM store of ``tinyfleet``."""

from __future__ import annotations

import csv
import io

import pytest
from dash import dcc, html, no_update
from tinyfleet import NOW, A, B, C, components, make_data

from analytics.catalogue import load_catalogue
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from dashboard import app as app_module
from dashboard import ids
from dashboard.data import DashboardData, Filters
from dashboard.pages import backups, overview, recommendations, vm_detail, vms
from dashboard.pages.common import drilldown
from dashboard.viewmodel.recommendations import savings_risk
from dashboard.viewmodel.vm_detail import find_vm, vm_detail_view


def _ids(component: object) -> set[str]:
    """Every component id in a layout tree."""
    return {c.id for c in components(component) if isinstance(getattr(c, "id", None), str)}


def _texts(component: object) -> list[str]:
    out: list[str] = []
    stack = [component]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, list | tuple):
            stack.extend(node)
        elif node is not None:
            children = getattr(node, "children", None)
            if children is not None:
                stack.append(children)
    return out


def test_overview_update(data: DashboardData) -> None:
    cards, spend_h, spend_d, util, found, basis, _actions, _by_label = overview.update(data, "24h", None, None)
    texts = _texts(cards)
    assert "Month to date" in texts and "Potential savings per month" in texts
    assert "23.50 EUR" in texts
    assert spend_h.layout.title.text == "Spend per hour (EUR)" and len(spend_h.data[0].x) == 24
    assert spend_d.layout.title.text == "Spend per day (EUR)"
    assert util.layout.yaxis.title.text == "vCPUs"
    assert sorted(found.data[0].y) == ["idle", "over-provisioned", "under-provisioned"]
    assert basis.startswith("Forecast basis: month to date")


def test_vms_update_follows_filters(data: DashboardData) -> None:
    rows, note = vms.update(data, "24h", None, None)
    assert len(rows) == 3 and note.startswith("3 VMs match")
    rows, note = vms.update(data, "24h", ["team=payments"], ["h1"])
    assert {r["id"] for r in rows} == {A, C}
    assert note.startswith("2 VMs match the filters (of 3)")


def test_drilldown_opens_the_rows_vm_for_every_table() -> None:
    assert drilldown({"row": 0, "column": 0, "column_id": "name", "row_id": A}) == f"/vm/{A}"
    assert drilldown({"row": 3, "column": 2, "column_id": "risk", "row_id": A + "#schedule"}) == f"/vm/{A}"
    assert drilldown({"row": 1, "column": 0, "column_id": "name", "row_id": A + "#storage"}) == f"/vm/{A}"
    assert drilldown(None) is no_update
    assert drilldown({"row": 0, "column": 0, "column_id": "name"}) is no_update


def test_vms_columns_carry_units_and_currency() -> None:
    names = [c["name"] for c in vms.columns("EUR")]
    assert "Cost (EUR / h)" in names and "Savings (EUR / month)" in names  # spaced so that headers wrap
    assert "CPU p95 of hourly means (vCPU)" in names and "Memory used max (GiB)" in names
    assert "CPU need (vCPU)" in names and "Savings (%)" in names


def test_vm_detail_update(data: DashboardData) -> None:
    header, cpu, mem, disk, cost, rec, options = vm_detail.update(data, A, "7d", None, None)
    texts = _texts(header)
    assert "pay-api" in texts and "c1.2 (from the machine_type label)" in texts
    by_name = {t.name: t for t in cpu.data}
    assert list(by_name["recommended: g1.1"].y) == [1, 1]
    (need,) = [t for t in cpu.data if t.name.startswith("need: ")]  # named by its statistic
    assert list(need.y) == [0.6, 0.6] and need.name.endswith(" + headroom")
    assert mem.layout.yaxis.title.text == "GiB"
    assert disk.layout.yaxis.title.text == "KiB/s"  # 1,000 and 2,000 B/s: KiB/s, not fractions of a MiB/s
    assert cost.layout.yaxis.title.text == "EUR per day"
    rec_texts = _texts(rec)
    assert "over-provisioned" in rec_texts and any(t.startswith("20.50 EUR / month (") for t in rec_texts)
    assert "g1.1" in _texts(options)


def test_vm_detail_charts_name_every_statistic_and_need_by_its_statistic(data: DashboardData) -> None:
    _header, cpu, mem, *_rest = vm_detail.update(data, A, "7d", None, None)
    for fig in (cpu, mem):
        assert fig.data and all(t.name and t.showlegend is not False for t in fig.data), [t.name for t in fig.data]
    finding = vm_detail_view(data, A, Filters.of("7d", None, None), 14).finding
    assert finding is not None and finding.need_memory_statistic == "max of memory used"
    (need,) = [t for t in mem.data if t.name.startswith("need: ")]
    assert need.name == "need: max of memory used + headroom"
    assert need.y[0] == pytest.approx(finding.target_memory_bytes / 1024**3)


def test_vm_detail_unknown_uuid(data: DashboardData) -> None:
    header, *_figs, rec, options = vm_detail.update(data, "<script>", "7d", None, None)
    assert _texts(header) == ["No VM with UUID or name '<script>' in the store. Go back to the VM list."]
    assert rec is None and options is None


def test_recommendations_update_and_export(data: DashboardData) -> None:
    rows, cards, fig, choices = recommendations.update(data, "30d", None, None)
    assert [r["id"] for r in rows] == [A, C, B]
    assert "23.50 EUR" in _texts(cards)
    assert list(fig.data[0].x) == [20.5, 3.0]
    assert {c["value"] for c in choices} == {A, B}  # C has no option to apply
    download = recommendations.export(data, 1, "30d", ["team=payments"], None)
    assert download["filename"] == "rightsizer-recommendations-20260312T0000Z.csv"
    assert download["type"] == "text/csv"
    names = [r[0] for r in csv.reader(io.StringIO(download["content"]))][1:]
    assert names == ["pay-api", "'=cmd|calc"]
    assert recommendations.export(data, 0, "30d", None, None) is no_update


def test_recommendations_type_choices(data: DashboardData) -> None:
    assert recommendations.type_choices(data, A, "30d", None, None) == [{"label": "g1.1", "value": "g1.1"}]
    assert recommendations.type_choices(data, "nope", "30d", None, None) == []


def test_apply_panel_only_when_enabled(tiny_store: SqliteStore) -> None:
    off = recommendations.layout(make_data(tiny_store), Filters())
    assert ids.RECS_APPLY_BUTTON not in _ids(off) and ids.RECS_EXPORT in _ids(off)
    enabled = Settings.model_validate({"actions": {"enabled": True, "token": "t"}})
    on = recommendations.layout(make_data(tiny_store, enabled), Filters())
    assert {ids.RECS_APPLY_BUTTON, ids.RECS_APPLY_TOKEN, ids.RECS_APPLY_VM} <= _ids(on)


def test_backups_update(data: DashboardData) -> None:
    rows, cards, fig = backups.update(data, "30d", None, None)
    assert [r["status"] for r in rows] == ["never", "ok", "no-policy"]
    texts = _texts(cards)
    assert texts.count("1") >= 2  # one never backed up, one within policy
    assert fig.layout.title.text == "Newest backup age vs policy (hours)"


def test_router_picks_pages_and_marks_navigation(data: DashboardData) -> None:
    page, nav = app_module.route(data, f"/vm/{A}")
    stores = [c for c in page.children if isinstance(c, dcc.Store)]
    assert stores[0].data == A
    assert [link.className for link in nav] == ["", "active", "", ""]
    page, nav = app_module.route(data, "/recommendations")
    assert ids.RECS_TABLE in _ids(page) and nav[2].className == "active"
    page, _ = app_module.route(data, "/nowhere")
    assert "Page not found" in _texts(page)
    page, _ = app_module.route(data, None)
    assert ids.OVERVIEW_KPIS in _ids(page)


def test_router_finds_a_vm_by_name_as_well_as_by_uuid(data: DashboardData) -> None:
    def page_uuid(path: str) -> str:
        page, _ = app_module.route(data, path)
        return str(next(c for c in page.children if isinstance(c, dcc.Store)).data)

    assert page_uuid("/vm/web-1") == B
    assert page_uuid(f"/vm/{A}") == A
    assert page_uuid("/vm/%3Dcmd%7Ccalc") == C  # the browser percent-encodes the name in the path
    assert page_uuid("/vm/no-such-vm") == "no-such-vm"  # and the page says it does not know it
    assert find_vm(data, "pay-api") == A and find_vm(data, "nope") is None


def test_router_fills_pages_for_the_current_filters(data: DashboardData) -> None:
    page, _ = app_module.route(data, "/vms", Filters("24h", ("team=web",), ()))
    table = next(c for c in page.children if getattr(c, "id", None) == ids.VMS_TABLE)
    assert [r["id"] for r in table.data] == [B]
    page, _ = app_module.route(data, "/", Filters("24h"))
    kpis = next(c for c in page.children if getattr(c, "id", None) == ids.OVERVIEW_KPIS)
    assert "23.50 EUR" in _texts(kpis)


def test_banner_names_the_data_mode() -> None:
    assert "SYNTHETIC" in app_module.banner_text("demo")
    assert app_module.banner_text("live") == "Live data from libvirt"
    assert "Imported traces" in app_module.banner_text("import")


def test_imported_is_an_alias_of_import(tiny_store: SqliteStore) -> None:
    data = DashboardData(Settings(), tiny_store, load_catalogue(), data_mode="imported")
    assert data.data_mode == "import"


def test_create_app_builds_shell_with_filters_and_banner(tiny_store: SqliteStore) -> None:
    app = app_module.create_app(Settings(), tiny_store, load_catalogue(), data_mode="demo", clock=lambda: NOW,
                                warm=False)
    shell = app.layout()
    found = _ids(shell)
    assert {ids.FILTER_LABELS, ids.FILTER_HOSTS, ids.FILTER_RANGE, ids.BANNER, ids.PAGE, ids.URL} <= found
    banner = [c for c in shell.children if isinstance(c, html.Div) and getattr(c, "id", None) == ids.BANNER][0]
    assert "Demo fleet on the libvirt test driver with SYNTHETIC usage history" in _texts(banner)
    assert banner.className == "rs-banner rs-banner-demo"
    routes = {rule.rule for rule in app.server.url_map.iter_rules()}
    assert "/_dash-update-component" in routes


def test_recommendations_page_says_when_history_is_too_short_for_savings_vs_risk(data: DashboardData) -> None:
    # the tiny fleet's history is shorter than two halves of 30 h over 3 days
    texts = " ".join(_texts(recommendations.layout(data, Filters())))
    assert "Savings vs risk" in texts and "Not enough history yet" in texts


def _steady_store(tmp_path) -> SqliteStore:  # type: ignore[no-untyped-def]
    """One VM at 0.5 of 4 vCPUs for 14 days of hourly history."""
    import uuid as uuid_mod
    from datetime import timedelta

    from collector.model import UsagePoint, VmRecord, VmState

    first = NOW - timedelta(days=14)
    vm = VmRecord(uuid=str(uuid_mod.uuid5(uuid_mod.NAMESPACE_DNS, "steady")), name="steady", uri="test:///default",
                  host="h1", state=VmState.RUNNING, vcpus=4, max_vcpus=4, memory_bytes=16 * 1024**3,
                  max_memory_bytes=16 * 1024**3, labels={}, first_seen=first, last_seen=NOW)
    points = [UsagePoint(vm_uuid=vm.uuid, ts=first + timedelta(hours=i), state=VmState.RUNNING, vcpus=4,
                         memory_bytes=vm.memory_bytes, cpu_vcpus=0.5, memory_used_bytes=1024**3, disk_read_bps=1e6,
                         disk_write_bps=1e6, net_rx_bps=1e6, net_tx_bps=1e6, interval_s=3600.0)
              for i in range(14 * 24)]
    store = SqliteStore(tmp_path / "f.db")
    store.write_history([vm], points)
    return store


def test_recommendations_page_draws_savings_vs_risk(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = _steady_store(tmp_path)
    data = make_data(store)
    page = recommendations.layout(data, Filters())
    graph = next(c for c in _walk(page) if getattr(c, "id", None) == ids.RECS_FRONTIER)
    names = [t["name"] for t in graph.figure.to_dict()["data"]]
    assert "in use: balanced" in names and "AWS Compute Optimizer style" in names
    assert not [n for n in names if "_" in n]  # human names, not knob names
    layout = graph.figure.to_dict()["layout"]
    assert layout["xaxis"]["range"][0] < 0  # padded: a point at no overrun is not clipped at the edge
    assert "VM-hours" in layout["xaxis"]["title"]["text"]
    assert savings_risk(data).vms_evaluated == 1
    # the per-VM headroom curve beside the rest: every risk target's point, in the order of the target
    risk = [p for p in savings_risk(data).points if p.strategy == "rightsizer-risk"]
    assert [p.value for p in risk] == [0.3, 1.0, 3.0, 10.0]
    trace = next(t for t in graph.figure.to_dict()["data"]
                 if t["name"] == "rightsizer, per-VM headroom by accepted risk")
    assert [t.split(";")[0] for t in trace["text"]] == [f"accepted risk {p.value:g} % of intervals" for p in risk]
    assert list(trace["y"]) == [round(p.savings_pct, 3) for p in risk]
    peaks = [p for p in savings_risk(data).points if p.strategy == "rightsizer-peaks-risk"]
    trace = next(t for t in graph.figure.to_dict()["data"]
                 if t["name"] == "rightsizer, daily-peak memory by accepted risk")
    assert [t.split(";")[0] for t in trace["text"]] == [f"accepted memory risk {p.value:g} % of days (CPU P95)"
                                                        for p in peaks] and len(peaks) == 2
    note = " ".join(_texts(next(c for c in _walk(page) if getattr(c, "id", None) == ids.RECS_FRONTIER_RISK_NOTE)))
    assert "0.3, 1, 3, 10 % of hours above the CPU need" in note and "1, 10 % of days above the memory need" in note
    store.close()


def test_savings_vs_risk_follows_the_lookback_control(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = _steady_store(tmp_path)
    try:
        data = make_data(store)
        page = recommendations.layout(data, Filters())
        section = next(c for c in _walk(page) if getattr(c, "id", None) == ids.RECS_FRONTIER_SECTION)
        assert "trained on the first 7.0 days of the 14-day lookback" in " ".join(_texts(section))
        week = " ".join(_texts(html.Div(recommendations.frontier_section(data, 7))))
        assert "trained on the first 3.5 days of the 7-day lookback" in week
        assert savings_risk(data, 7).train_days == 3.5 and savings_risk(data, 14).train_days == 7.0
        app = app_module.create_app(Settings(), store, load_catalogue(), data_mode="live", clock=lambda: NOW,
                                    warm=False)
        assert any(ids.RECS_FRONTIER_SECTION in key and ids.RECS_LOOKBACK in str(cb.get("inputs"))
                   for key, cb in app.callback_map.items())
    finally:
        store.close()


def _walk(component: object) -> list[object]:
    out = [component]
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children] if children is not None else []:
        out += _walk(child)
    return out


def test_backups_page_says_unknown_for_imported_vms(tmp_path) -> None:
    from dataclasses import replace

    from tinyfleet import RECORDS, points

    store = SqliteStore(tmp_path / "imported.db")
    store.write_history([replace(r, source="import") for r in RECORDS], points())
    try:
        rows, cards, _fig = backups.update(make_data(store), "30d", None, None)
        web = next(r for r in rows if r["name"] == "web-1")
        assert (web["status"], web["urgency"], web["newest_backup"]) == ("unknown", "none", "unknown")
        assert "never" not in [r["status"] for r in rows]
        assert "Unknown" in _texts(cards)
    finally:
        store.close()
