from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.analysis import AnalysisOptions, FleetAnalysis, analyse_fleet
from analytics.catalogue import load_catalogue
from analytics.findings.finding import FINDING_CSV_COLUMNS
from analytics.reports import (
    FORMATTERS,
    Report,
    build_report,
    register,
    write_files,
    write_report,
)
from analytics.reports.base import to_plain
from analytics.reports.html_report import figures
from collector.errors import InputError
from collector.model import VmRecord, VmState
from collector.store.base import RAW_COLUMNS
from collector.store.sqlite import SqliteStore
from core.settings import Settings

T0 = datetime(2026, 5, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=4)
EVIL_CSV = "=cmd|' /C calc'!A0"
EVIL_HTML = "<script>alert(1)</script>"


def _vm(uuid: str, name: str, vcpus: int, gib: int, host: str, **labels: str) -> VmRecord:
    return VmRecord(uuid=uuid, name=name, uri="test:///default", host=host, state=VmState.RUNNING, vcpus=vcpus,
                    max_vcpus=vcpus, memory_bytes=gib * 2**30, max_memory_bytes=gib * 2**30, labels=labels,
                    first_seen=T0, last_seen=NOW)


def _raw(uuid: str, vcpus: int, gib: int, cpu_vcpus: float) -> pd.DataFrame:
    n = 4 * 24 * 4  # 4 days of 15-minute samples
    frame = pd.DataFrame({c: np.full(n, np.nan) for c in RAW_COLUMNS})
    frame["vm"] = uuid
    frame["ts"] = pd.date_range(T0, periods=n, freq="15min", tz="UTC")
    frame["state"] = "running"
    frame["vcpus"] = float(vcpus)
    frame["memory_bytes"] = float(gib * 2**30)
    frame["memory_used_bytes"] = gib * 2**30 * 0.25
    frame["cpu_vcpus"] = cpu_vcpus
    frame["interval_s"] = 900.0
    frame["disk_read_bps"] = 0.0
    frame["disk_write_bps"] = 0.0
    frame["net_rx_bps"] = 0.0
    frame["net_tx_bps"] = 0.0
    frame["disk_capacity_bytes"] = 50e9
    frame["gap"] = False
    return frame


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "rs.db")
    vms = [
        _vm("u1", EVIL_CSV, 1, 4, "h1", team="pay"),
        _vm("u2", EVIL_HTML, 4, 16, "h2", team="web", env="prod"),
        _vm("u3", "quiet", 2, 8, "h2", team="web"),
    ]
    s.write_history(vms, pd.concat([_raw("u1", 1, 4, 0.5), _raw("u2", 4, 16, 0.3), _raw("u3", 2, 8, 0.01)]))
    s.record_backups("u2", [NOW - timedelta(hours=30)])
    yield s
    s.close()


def _report(store: SqliteStore) -> Report:
    return build_report(store, load_catalogue(), Settings(), NOW)


def _analysis(store: SqliteStore) -> FleetAnalysis:
    catalogue = load_catalogue()
    return analyse_fleet(store, catalogue, AnalysisOptions.from_settings(Settings(), catalogue, now=NOW))


def test_report_rows_costs_and_findings(store: SqliteStore) -> None:
    report = _report(store)
    rows = {r.vm_uuid: r for r in report.vms}
    assert set(rows) == {"u1", "u2", "u3"}
    assert report.window_start == NOW - timedelta(days=14)
    # u3: 2 vCPU / 8 GiB -> g1.2 at 0.07582266667/h, 96 h, 50 GB disk at 0.0000907638 + 0.00245833333
    assert rows["u3"].cost == pytest.approx(96 * (0.07582266667 + 50 * 0.0000907638 + 0.00245833333))
    assert rows["u3"].idle_status == "idle" and rows["u1"].idle_status == "active"
    assert (rows["u2"].backup_status, rows["u2"].backup_urgency) == ("overdue", "medium")
    assert rows["u1"].backup_status == "never"
    # the right-sizing columns are the one analysis's findings, and the total is its headline
    analysis = _analysis(store)
    assert {f.uuid for f in analysis.findings} == set(rows)
    for f in analysis.findings:
        assert rows[f.uuid].finding == f.finding.value
        assert rows[f.uuid].recommended_type == (f.target_type if f.changes_type else None)
    assert rows["u2"].finding == "over-provisioned" and rows["u2"].monthly_savings > 0
    assert report.total_monthly_savings == pytest.approx(analysis.headline.gross_monthly_savings)
    assert report.headline == analysis.headline
    assert report.label_key == "team"
    assert {g.key for g in report.spend_by_label} == {"pay", "web"}
    assert {g.key for g in report.spend_by_host} == {"h1", "h2"}
    assert rows["u2"].cpu_p95_vcpus == pytest.approx(0.3)
    assert rows["u2"].memory_used_max_bytes == pytest.approx(4 * 2**30)


def test_files_written_and_html_escapes_names(store: SqliteStore, tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = write_files(_report(store), out)
    assert [p.name for p in paths] == ["report.html", "findings.csv", "vms.csv", "report.json"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert EVIL_HTML not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("Plotly.newPlot(") == 6  # five fleet charts and the savings-vs-risk frontier
    assert 'id="savings-risk"' in page and "in use: balanced" in page
    assert re.search(r"<script[^>]*\bsrc=", page) is None  # plotly.js is inline: works offline
    assert "* plotly.js v" in page
    assert "Top savings per month" in page


def test_report_savings_vs_risk_draws_the_risk_target_curve_in_order(store: SqliteStore, tmp_path: Path) -> None:
    report = _report(store)
    assert report.frontier is not None
    risk = [p for p in report.frontier.points if p.strategy == "rightsizer-risk"]
    assert [p.value for p in risk] == [0.3, 1.0, 3.0, 10.0]
    fig = next(f for key, _, f in figures(report) if key == "savings-risk")
    trace = next(t for t in fig["data"] if t["name"] == "rightsizer, per-VM headroom by accepted risk")
    # every point of the curve, in the order of its risk target, at its own savings and overrun
    assert [t.split(";")[0] for t in trace["text"]] == [f"accepted risk {p.value:g} % of intervals" for p in risk]
    assert trace["x"] == [round(p.cpu_overrun_pct, 4) for p in risk]
    assert trace["y"] == [round(p.savings_pct, 3) for p in risk]
    peaks = [p for p in report.frontier.points if p.strategy == "rightsizer-peaks-risk"]
    assert [p.value for p in peaks] == [1.0, 10.0]
    trace = next(t for t in fig["data"] if t["name"] == "rightsizer, daily-peak memory by accepted risk")
    assert trace["y"] == [round(p.savings_pct, 3) for p in peaks]
    names = {t["name"] for t in fig["data"]}
    assert {"rightsizer, by CPU percentile", "AWS Compute Optimizer style", "KRR style"} <= names  # beside the rest
    write_files(report, tmp_path, ["html"])
    assert "rightsizer, per-VM headroom by accepted risk" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_findings_csv_is_formula_safe_and_in_the_one_findings_schema(store: SqliteStore, tmp_path: Path) -> None:
    write_files(_report(store), tmp_path, ["csv", "vms-csv"])
    with (tmp_path / "findings.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = {r["uuid"]: r for r in reader}
        assert tuple(reader.fieldnames or ()) == FINDING_CSV_COLUMNS
    assert rows["u1"]["name"] == "'" + EVIL_CSV
    assert rows["u2"]["name"] == EVIL_HTML
    by_uuid = _analysis(store).by_uuid()
    assert rows["u2"]["monthly_savings"] == f"{round(by_uuid['u2'].monthly_savings, 2)}"
    with (tmp_path / "vms.csv").open(newline="", encoding="utf-8") as fh:
        vms = {r["uuid"]: r for r in csv.DictReader(fh)}
    assert vms["u1"]["vm"] == "'" + EVIL_CSV
    for row in [*rows.values(), *vms.values()]:
        for key, value in row.items():
            assert not value.startswith(("=", "+", "@")), (key, value)


def test_report_json_round_trips(store: SqliteStore, tmp_path: Path) -> None:
    write_files(_report(store), tmp_path, ["json"])
    doc = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    headline = _analysis(store).headline
    assert doc["strategy"] == "rightsizer"
    assert doc["total_monthly_savings"] == pytest.approx(headline.gross_monthly_savings)
    assert doc["headline"] == headline.as_json()
    assert all("schedule" in v and "pattern" in v for v in doc["vms"])
    assert len(doc["vms"]) == 3 and doc["generated_at"] == NOW.isoformat()
    assert doc["costs"]["total"] == pytest.approx(sum(v["cost"] for v in doc["vms"]))


def test_chart_labels_are_escaped() -> None:
    report = _report_stub()
    labels = [x for _, _, fig in figures(report) for trace in fig["data"] for x in trace.get("x", [])]
    assert "&lt;b&gt;" in labels and "<b>" not in labels


def _report_stub() -> Report:
    from analytics.cost_summary import CostSummary, GroupCost
    from analytics.forecast import MonthFigures

    group = GroupCost(key="<b>", vms=1, running_hours=1.0, compute_cost=1.0, storage_cost=0.0, cost=1.0, share=1.0)
    summary = CostSummary(
        currency="EUR", start=T0, end=NOW, group_by="host", total=1.0, compute_total=1.0, storage_total=0.0,
        groups=(group,), per_vm=(), unpriced_vms=(),
        month=MonthFigures(month_start=T0, month_to_date=1.0, run_rate_per_hour=0.0, run_rate_hours=0.0,
                           remaining_hours=0.0, forecast_month_end=1.0, forecast_basis=""),
    )
    return Report(generated_at=NOW, window_start=T0, window_end=NOW, currency="EUR", stopped_vm_billing="none",
                  strategy=None, costs=summary, label_key="team", spend_by_label=(group,), spend_by_host=(group,),
                  vms=(), idle=(), backups=())


def test_cost_summary_month_figures_stay_flat_keys_in_plain_output() -> None:
    plain = to_plain(_report_stub().costs)
    assert list(plain) == [
        "currency", "start", "end", "group_by", "total", "compute_total", "storage_total", "groups", "per_vm",
        "month_start", "month_to_date", "run_rate_per_hour", "run_rate_hours", "remaining_hours",
        "forecast_month_end", "forecast_basis", "unpriced_vms",
    ]
    assert plain["month_to_date"] == 1.0 and plain["month_start"] == T0.isoformat() and "month" not in plain


def test_write_report_entry_point(store: SqliteStore, tmp_path: Path) -> None:
    paths = write_report(store, load_catalogue(), Settings(), tmp_path / "sched", NOW)
    assert sorted(p.name for p in paths) == ["findings.csv", "report.html", "report.json", "vms.csv"]
    doc = json.loads((tmp_path / "sched" / "report.json").read_text(encoding="utf-8"))
    assert len(doc["vms"]) == 3
    # either right-sizing ran, or the report says it is costs-only
    assert doc["strategy"] == "rightsizer" or any("costs-only" in n for n in doc["notes"])


def test_unknown_format_and_duplicate_registration(store: SqliteStore, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="'pdf'"):
        write_files(_report(store), tmp_path, ["pdf"])

    class Other:
        name = "json"
        filename = "x.json"

        def render(self, report: Report) -> str:
            return ""

    with pytest.raises(ValueError, match="already registered"):
        register(Other())
    assert set(FORMATTERS) >= {"html", "csv", "json"}


def test_spend_by_dataset_axis_is_categorical_not_dates() -> None:
    from dataclasses import replace

    stub = _report_stub()
    group = replace(stub.spend_by_label[0], key="2013-8")  # a Bitbrains dataset name plotly would read as a date
    report = replace(stub, label_key="dataset", spend_by_label=(group,))
    figs = {fid: (title, fig) for fid, title, fig in figures(report)}
    title, fig = figs["spend-label"]
    assert title == "Spend by dataset" and fig["data"][0]["x"] == ["2013-8"]
    assert fig["layout"]["xaxis"]["type"] == "category"
    assert all(f["layout"].get("xaxis", {}).get("type") == "category" or f["layout"].get("yaxis", {}).get("type")
               == "category" for _t, f in figs.values())
