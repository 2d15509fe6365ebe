"""One truth on every surface: the same VM shows the same finding, saving, risk and schedule everywhere.

For every VM of the demo fleet and of a store with the Bitbrains dev trace imported, the row of
``rightsizer recommend --output json`` (a real CLI process) is compared with the API's row, the values
/metrics exports, the report's JSON and CSV, and the dashboard's Recommendations data, CSV export and VM page;
the savings headline with the Overview, the report, the CLI summary and ``GET /api/v1/summary``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analytics.analysis import AnalysisOptions, analyse_fleet
from analytics.catalogue import load_catalogue
from analytics.findings.finding import FINDING_CSV_COLUMNS
from analytics.reports import build_report
from analytics.reports.base import to_plain
from analytics.reports.csv_report import CsvFormatter
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from dashboard.data import DashboardData
from dashboard.viewmodel.overview import overview_view
from dashboard.viewmodel.recommendations import recommendations_csv
from dashboard.viewmodel.vm_detail import vm_detail_view
from dashboard.views import Filters
from rightsizer.demo import demo_fleet
from rightsizer.demo_history import seed_synthetic_history
from rightsizer.service import compute_economics
from rightsizer.webapp import build_web_app

REPO = Path(__file__).resolve().parents[2]


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "rightsizer", *args, "--db", str(db)], capture_output=True,
                          text=True, env=env, timeout=300, check=True)


@pytest.fixture(scope="module", params=["demo", "bitbrains"])
def fleet_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    db = tmp_path_factory.mktemp(request.param) / "s.db"
    if request.param == "demo":
        store = SqliteStore(db)
        seed_synthetic_history(store, demo_fleet(), uri="test:///nowhere.xml")
        store.close()
    else:
        shared = Path(os.environ.get("RIGHTSIZER_SHARED_DIR", REPO.parent / "shared"))
        trace = shared / "data" / "traces" / "bitbrains-rnd-2013-08" / "2013-8"
        if not trace.is_dir():
            pytest.skip(f"the Bitbrains dev trace {trace} is absent (set RIGHTSIZER_SHARED_DIR)")
        _cli(db, "import", "--format", "bitbrains", str(trace))
    yield db


def _surface_rows(db: Path) -> dict[str, Any]:
    settings = Settings()
    catalogue = load_catalogue()
    store = SqliteStore(db)
    try:
        analysis = analyse_fleet(store, catalogue, AnalysisOptions.from_settings(settings, catalogue))
        economics = compute_economics(store, catalogue, settings, analysis.now)
        report = build_report(store, catalogue, settings, analysis.now)
        data = DashboardData(settings, store, catalogue, data_mode="demo", clock=lambda: analysis.now,
                             staged_above_vm_hours=None)
        app = build_web_app(settings, store, catalogue, data_mode="demo", data=data, warm=False)
        client = app.server.test_client()
        api = client.get("/api/v1/findings?limit=1000").get_json()
        summary = client.get("/api/v1/summary").get_json()
        snap = data.snapshot()
        dash_findings = dict(snap.findings)
        overview = overview_view(data, Filters.of("14d", None, None))  # its savings follow the range's days
        dash_csv = list(csv.DictReader(io.StringIO(recommendations_csv(data, Filters.of("30d", None, None)))))
        details = {u: vm_detail_view(data, u, Filters.of("30d", None, None)) for u in dash_findings}
        return {"analysis": analysis, "economics": economics, "report": report, "api": api, "summary": summary,
                "dash": dash_findings, "overview": overview, "dash_csv": dash_csv, "details": details}
    finally:
        store.close()


@pytest.fixture(scope="module")
def surfaces(fleet_db: Path) -> dict[str, Any]:
    cli_rows = json.loads(_cli(fleet_db, "recommend", "--output", "json").stdout)
    table = _cli(fleet_db, "recommend")
    cli_csv = list(csv.DictReader(io.StringIO(_cli(fleet_db, "recommend", "--output", "csv").stdout)))
    return {"cli": {r["uuid"]: r for r in cli_rows}, "cli_summary": table.stderr, "cli_csv": cli_csv,
            **_surface_rows(fleet_db)}


def test_api_rows_equal_the_cli_rows_key_by_key(surfaces: dict[str, Any]) -> None:
    cli, api = surfaces["cli"], {r["uuid"]: r for r in surfaces["api"]["items"]}
    assert cli and set(api) == set(cli)
    for uuid, row in cli.items():
        assert api[uuid] == row, row["name"]
    # the API now carries what the CLI always had: signal reasons and storage advice
    assert any(r["storage"] is not None for r in cli.values()) or not any(
        f.storage for f in surfaces["analysis"].findings)


def test_metrics_report_and_dashboard_agree_with_the_cli(surfaces: dict[str, Any]) -> None:
    cli = surfaces["cli"]
    econ = surfaces["economics"].by_vm
    report_rows = {r["vm_uuid"]: r for r in to_plain(surfaces["report"])["vms"]}
    dash = surfaces["dash"]
    assert cli and set(econ) & set(cli)  # the checks below run, on priced VMs too
    for uuid, row in cli.items():
        name = row["name"]
        f = next(f for f in surfaces["analysis"].findings if f.uuid == uuid)
        assert row["monthly_savings"] == round(f.monthly_savings, 4)
        if uuid in econ:  # priced VMs
            e = econ[uuid]
            assert (e.finding, round(e.monthly_savings, 4), e.risk) == (row["finding"], row["monthly_savings"],
                                                                       row["risk"]), name
            sched = row.get("schedule")
            assert (e.schedule_monthly_savings is None) == (sched is None or row["excluded"]), name
            if e.schedule_monthly_savings is not None:
                assert e.schedule_monthly_savings == pytest.approx(sched["monthly_savings"], abs=1e-4)
        r = report_rows[uuid]
        assert r["finding"] == row["finding"] and r["risk"] == row["risk"], name
        assert r["pattern"] == row["pattern"], name
        assert (r["schedule"] or None) == row.get("schedule"), name
        d = dash[uuid]
        assert (d.finding, d.risk, d.recommended_type, d.pattern) == (
            row["finding"], row["risk"], row["target"]["machine_type"], row["pattern"]), name
        assert round(d.monthly_savings, 4) == row["monthly_savings"], name
        assert d.schedule_savings == pytest.approx(row["schedule"]["monthly_savings"] if row.get("schedule")
                                                   else 0.0, abs=1e-4), name
        header = surfaces["details"][uuid].finding
        assert header is not None and header.finding == row["finding"] and header.schedule == d.schedule, name


def test_one_csv_schema_everywhere(surfaces: dict[str, Any]) -> None:
    report_csv = list(csv.DictReader(io.StringIO(CsvFormatter().render(surfaces["report"]))))
    cli_csv, dash_csv = surfaces["cli_csv"], surfaces["dash_csv"]
    for rows in (report_csv, cli_csv, dash_csv):
        assert rows and tuple(rows[0]) == FINDING_CSV_COLUMNS
    by_uuid = {r["uuid"]: r for r in report_csv}
    assert {r["uuid"]: r for r in cli_csv} == by_uuid
    for row in dash_csv:  # the dashboard exports the VMs its table lists, each row the same
        assert row == by_uuid[row["uuid"]]
    cli = surfaces["cli"]
    for uuid, row in by_uuid.items():  # target_* is the target type's size, need_* what the strategy computed
        target = cli[uuid]["target"]
        assert row["target_vcpus"] == ("" if target["vcpus"] is None else str(target["vcpus"]))


def test_the_headline_is_the_same_on_every_surface(surfaces: dict[str, Any]) -> None:
    headline = surfaces["analysis"].headline
    doc = headline.as_json()
    assert surfaces["summary"] == doc
    assert to_plain(surfaces["report"])["headline"] == doc
    assert surfaces["report"].total_monthly_savings == pytest.approx(headline.gross_monthly_savings)
    overview = surfaces["overview"]
    assert overview.potential_monthly_savings == pytest.approx(headline.gross_monthly_savings)
    assert overview.upsize_monthly_cost == pytest.approx(headline.upsize_monthly_cost)
    assert overview.headline == headline
    summary_text = surfaces["cli_summary"]
    assert f"gross savings {headline.gross_monthly_savings:,.2f}" in summary_text
    assert f"net savings {headline.net_monthly_savings:,.2f}" in summary_text
    # every kind's sum is the sum of the CLI rows of that kind
    cli = surfaces["cli"].values()
    stops = sum(r["monthly_savings"] for r in cli if r["action"] == "stop" and not r["excluded"])
    assert doc["savings_by_kind"]["idle-stop"] == pytest.approx(round(stops, 2), abs=0.011)
    scheds = sum(r["schedule"]["monthly_savings"] for r in cli if r.get("schedule") and not r["excluded"])
    assert doc["savings_by_kind"]["schedule"] == pytest.approx(round(scheds, 2), abs=0.011)


def test_the_same_window_costs_the_same_on_every_surface(fleet_db: Path, surfaces: dict[str, Any]) -> None:
    now = surfaces["analysis"].now
    cli = json.loads(_cli(fleet_db, "costs", "--since", "14d", "--until", now.isoformat(), "--output",
                          "json").stdout)
    settings, catalogue = Settings(), load_catalogue()
    store = SqliteStore(fleet_db)
    try:
        data = DashboardData(settings, store, catalogue, data_mode="demo", clock=lambda: now,
                             staged_above_vm_hours=None)
        dashboard = overview_view(data, Filters.of("14d", None, None)).range_cost
        app = build_web_app(settings, store, catalogue, data_mode="demo", data=data, warm=False)
        api = app.server.test_client().get(
            "/api/v1/costs", query_string={"since": "14d", "until": now.isoformat()}).get_json()
        report = build_report(store, catalogue, settings, now).costs.total
    finally:
        store.close()
    assert cli["total"] > 0
    assert dashboard == pytest.approx(cli["total"], rel=1e-9)
    assert api["total"] == pytest.approx(cli["total"], rel=1e-9)
    assert report == pytest.approx(cli["total"], rel=1e-9)


def test_a_vms_hourly_cost_now_is_the_same_on_the_vms_table_and_metrics(fleet_db: Path,
                                                                           surfaces: dict[str, Any]) -> None:
    from dashboard.viewmodel.vms import vm_rows

    settings, catalogue = Settings(), load_catalogue()
    now = surfaces["analysis"].now
    store = SqliteStore(fleet_db)
    try:
        data = DashboardData(settings, store, catalogue, data_mode="demo", clock=lambda: now,
                             staged_above_vm_hours=None)
        table = {r["id"]: r for r in vm_rows(data, Filters.of("30d", None, None))}
        states = {vm.uuid: vm.state.value for vm in store.vms()}
    finally:
        store.close()
    econ = surfaces["economics"].by_vm
    compared = [u for u in econ if table.get(u, {}).get("hourly_cost") is not None]
    assert compared
    for uuid in compared:
        assert table[uuid]["hourly_cost"] == pytest.approx(econ[uuid].hourly_cost, abs=1e-4), (uuid, states[uuid])
