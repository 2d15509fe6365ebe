"""Savings-risk sweep: the JSON point contract, knob order, the risk budget, odd VMs and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analytics.catalogue import CsvPriceCatalogue, MachineType
from analytics.frontier import SWEEP_KNOBS, Frontier, dominates
from analytics.rightsizing.budget import BudgetVm, allocate
from analytics.traces import read_bitbrains_dir
from rightsizer.cli import main
from tests.helpers.backtest import T0, backtest_types, write_catalogue
from tests.helpers.bitbrains import HEADER, usage_row

GIB = 1024**3


def test_sweep_json_points_cover_every_strategy_and_knob(
        trace_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backtest", str(trace_dir), "--format", "bitbrains", "--sweep", "--output", "json",
                 "--catalogue", str(write_catalogue(tmp_path)), "--db", str(tmp_path / "x.db")])
    assert code == 0
    points = json.loads(capsys.readouterr().out)
    for p in points:
        assert {"strategy", "knob", "value", "savings_pct", "cpu_overrun_pct", "mem_overrun_pct"} <= p.keys()
    for strategy, (knob, values) in SWEEP_KNOBS.items():
        assert [p["value"] for p in points if p["strategy"] == strategy and p["knob"] == knob] == list(values)
    profiles = [p["value"] for p in points if p["knob"] == "profile"]
    assert profiles == ["conservative", "balanced", "aggressive"]
    # a lower KRR percentile never saves less: the curve is monotone in its knob
    krr = [p["savings_pct"] for p in points if p["strategy"] == "krr"]
    assert krr == sorted(krr, reverse=True)


def test_sweep_table_and_csv(trace_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backtest", str(trace_dir), "--sweep", "--strategy", "aws", "--output", "csv",
                 "--catalogue", str(write_catalogue(tmp_path)), "--db", str(tmp_path / "x.db")])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("strategy,knob,value,savings_pct,cpu_overrun_pct,mem_overrun_pct")
    assert len(lines) == 1 + len(SWEEP_KNOBS["aws"][1])


def test_sweep_html_chart_and_bad_html_path(trace_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "curves.html"
    args = ["backtest", str(trace_dir), "--sweep", "--strategy", "krr", "--catalogue",
            str(write_catalogue(tmp_path)), "--db", str(tmp_path / "x.db")]
    assert main([*args, "--html", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "KRR style" in page and "Savings vs risk" in page  # a human curve name, not the knob's
    capsys.readouterr()
    assert main([*args, "--html", str(tmp_path / "missing" / "c.html")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("sweep:")]
    assert len(err) == 1 and "--html" in err[0]


def test_sweep_html_draws_the_risk_target_curve_under_the_dashboards_name(
        trace_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from analytics.reports.frontier_chart import CURVE_COLOURS, CURVE_NAMES

    out = tmp_path / "ours.html"
    assert main(["backtest", str(trace_dir), "--sweep", "--strategy", "rightsizer", "--html", str(out),
                 "--catalogue", str(write_catalogue(tmp_path)), "--db", str(tmp_path / "x.db")]) == 0
    page = out.read_text(encoding="utf-8")
    name, _ = CURVE_NAMES[("rightsizer-risk", "risk_pct")]
    assert name == "rightsizer, per-VM headroom by accepted risk" and name in page
    assert CURVE_COLOURS[("rightsizer-risk", "risk_pct")] in page  # the colour the dashboard and report draw it in
    # --strategy rightsizer draws every curve of ours, each under its own name
    ours = [s for s in SWEEP_KNOBS if s not in ("aws", "krr", "vpa")]
    assert [s for s in ours if CURVE_NAMES[(s, SWEEP_KNOBS[s][0])][0] not in page] == []
    capsys.readouterr()


def test_sweep_on_a_folder_without_a_usable_vm_is_one_line_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "short"
    d.mkdir()
    (d / "1.csv").write_text("\n".join([HEADER, *[usage_row(T0 + 3600 * i, 1, 0.2, 2, 0.5) for i in range(20)]]) + "\n")
    code = main(["backtest", str(d), "--sweep", "--catalogue", str(write_catalogue(tmp_path)),
                 "--db", str(tmp_path / "x.db")])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("sweep:")]
    assert code == 2
    assert len(err) == 1 and str(d) in err[0] and "--train-days" in err[0]


def test_unknown_profile_is_one_line_exit_2(trace_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["backtest", str(trace_dir), "--profile", "nosuch", "--db", str(tmp_path / "x.db")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "'nosuch'" in err[0]


def test_profiles_order_risk(trace_dir: Path) -> None:
    frontier = Frontier(read_bitbrains_dir(trace_dir), CsvPriceCatalogue(backtest_types()), train_days=14)
    points = {p.value: p for p in frontier.sweep(["rightsizer"]) if p.knob == "profile"}
    assert points["conservative"].savings_pct <= points["balanced"].savings_pct <= points["aggressive"].savings_pct
    assert dominates(points["balanced"], points["balanced"])


def test_budget_spends_risk_where_the_tail_is_cheap() -> None:
    # Two VMs on 2 vCPUs. "spiky" exceeds 1 vCPU in 2 of 1,000 intervals; "busy" in 400. A budget of
    # 0.2 % of 2,000 intervals (4) lets only the spiky one drop to 1 vCPU; a zero budget keeps both.
    catalogue = CsvPriceCatalogue([MachineType("one", 1, 4 * GIB, 0.01, "EUR"),
                                   MachineType("two", 2, 4 * GIB, 0.02, "EUR")])
    spiky = np.r_[np.full(998, 0.3), [1.5, 1.5]]
    busy = np.r_[np.full(600, 0.5), np.full(400, 1.5)]
    vms = [BudgetVm(spiky, GIB, 2, catalogue.cheapest_fitting(2, GIB)),  # type: ignore[arg-type]
           BudgetVm(busy, GIB, 2, catalogue.cheapest_fitting(2, GIB))]  # type: ignore[arg-type]
    assert [t.name for t in allocate(vms, catalogue, budget_fraction=0.002, headroom=0.0)] == ["one", "two"]
    assert [t.name for t in allocate(vms, catalogue, budget_fraction=0.0, headroom=0.0)] == ["two", "two"]
    assert [t.name for t in allocate(vms, catalogue, budget_fraction=1.0, headroom=0.0)] == ["one", "one"]
    with pytest.raises(ValueError, match="budget_fraction"):
        allocate(vms, catalogue, budget_fraction=-1.0, headroom=0.0)


def test_vm_without_memory_readings_late_in_training_does_not_stop_the_backtest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 2-minute samples; provisioned memory 0 for most of the month; shut off (no CPU capacity) from day 5 to
    # day 20, so VPA's 8 daily memory peaks before the end of training are empty.
    d = tmp_path / "odd"
    d.mkdir()
    rows = []
    for i in range(30 * 720):
        day = i / 720
        off = 5 <= day <= 20
        fields = usage_row(T0 + 120 * i, 2, 0.4, 0 if day < 25 else 4, 0.5).split(";\t")
        if off:
            fields[2] = fields[3] = fields[4] = "0"
        rows.append(";\t".join(fields))
    (d / "1.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    code = main(["backtest", str(d), "--strategy", "all", "--output", "json",
                 "--catalogue", str(write_catalogue(tmp_path)), "--db", str(tmp_path / "x.db")])
    assert code == 0
    docs = {doc["strategy"]: doc for doc in json.loads(capsys.readouterr().out)}
    [vpa] = docs["vpa"]["per_vm"]
    assert vpa["finding"] != "insufficient-data" and vpa["recommended_type"] is not None


def test_budget_price_path_walks_from_cheapest_to_safest() -> None:
    # the two VMs of the budget test: the spiky one gives up its vCPU first (2 risked intervals for 7.2 EUR),
    # the busy one last (400 for 7.2 EUR)
    from analytics.rightsizing.budget import price_path

    catalogue = CsvPriceCatalogue([MachineType("one", 1, 4 * GIB, 0.01, "EUR"),
                                   MachineType("two", 2, 4 * GIB, 0.02, "EUR")])
    spiky = np.r_[np.full(998, 0.3), [1.5, 1.5]]
    busy = np.r_[np.full(600, 0.5), np.full(400, 1.5)]
    two = catalogue.cheapest_fitting(2, GIB)
    assert two is not None
    vms = [BudgetVm(spiky, GIB, 2, two), BudgetVm(busy, GIB, 2, two)]
    path = price_path(vms, catalogue, headroom=0.0)
    assert [[t.name for t in types] for _, types in path] == [["one", "one"], ["one", "two"], ["two", "two"]]
    prices = [lam for lam, _ in path]
    assert prices[0] == 0.0 and prices[1] == pytest.approx(7.2 / 400) and prices[2] == pytest.approx(7.2 / 2)


def test_frontier_budget_path_points(trace_dir: Path) -> None:
    frontier = Frontier(read_bitbrains_dir(trace_dir), CsvPriceCatalogue(backtest_types()), train_days=14)
    points = frontier.budget_path()
    assert points and all(p.knob == "risk_price" and p.strategy == "rightsizer-budget" for p in points)
    values = [float(p.value) for p in points]
    assert values == sorted(values)
    savings = [p.savings_pct for p in points]
    assert savings == sorted(savings, reverse=True)  # a higher price of risk never buys a cheaper fleet
