"""Backtest harness: current type, train/evaluate split, costs and overrun shares (hand-computed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analytics.backtest import comparison_rows, memory_hindsight_savings_pct, run_backtest
from analytics.catalogue import CsvPriceCatalogue
from analytics.rightsizing import get_strategy
from analytics.traces import read_bitbrains_dir
from rightsizer.cli import main
from tests.helpers.backtest import backtest_types, write_catalogue


def test_krr_backtest_costs_and_overruns(trace_dir: Path) -> None:
    vms = read_bitbrains_dir(trace_dir)
    [result] = run_backtest(vms, [get_strategy("krr")], CsvPriceCatalogue(backtest_types()), train_days=14)
    by_vm = {r.vm: r for r in result.per_vm}
    # VM 1: current l.4 (cheapest with >= 4 vCPUs and 16 GiB; the GPU type is never eligible).
    # KRR: P95 0.5 vCPU, memory 1 GiB x 1.15 -> s.2. Evaluation: 10 of 144 intervals above 2 vCPUs,
    # 3 of 144 above 2 GiB.
    assert by_vm["1"].current_type == "l.4" and by_vm["1"].recommended_type == "s.2"
    assert (by_vm["1"].eval_intervals, by_vm["1"].cpu_overrun_intervals, by_vm["1"].mem_overrun_intervals) == (
        144, 10, 3)
    assert by_vm["2"].finding == "insufficient-data" and by_vm["2"].recommended_type == "s.2"
    assert not by_vm["2"].evaluated
    assert result.vms == 2 and result.vms_evaluated == 1
    assert result.current_monthly_cost == pytest.approx((0.12 + 0.02) * 720)      # 100.8
    assert result.recommended_monthly_cost == pytest.approx((0.02 + 0.02) * 720)  # 28.8
    assert result.savings_pct == pytest.approx(100 * (100.8 - 28.8) / 100.8)
    assert result.cpu_overrun_pct == pytest.approx(100 * 10 / 144)
    assert result.mem_overrun_pct == pytest.approx(100 * 3 / 144)


def test_training_window_hides_the_evaluation(trace_dir: Path) -> None:
    vms = read_bitbrains_dir(trace_dir)
    catalogue = CsvPriceCatalogue(backtest_types())
    # With 15 training days the strategy sees the 2.5 vCPU hours (10 of 360 = 2.8 %, under P95's 5 %),
    # and the 2.5 GiB peak stays in the evaluation: the same type is chosen.
    [short] = run_backtest(vms, [get_strategy("krr")], catalogue, train_days=15)
    assert {r.vm: r.recommended_type for r in short.per_vm}["1"] == "s.2"
    # AWS sees the same training data but sizes memory at max + 20 % and CPU at P99.5 + 20 %:
    # P99.5 of 360 intervals with 10 at 2.5 -> 2.5 x 1.2 = 3.0 vCPU -> l.4.
    [aws] = run_backtest(vms, [get_strategy("aws")], catalogue, train_days=15)
    assert {r.vm: r.recommended_type for r in aws.per_vm}["1"] == "l.4"
    assert aws.cpu_overrun_pct == 0.0


def test_json_keys_and_comparison_rows(trace_dir: Path) -> None:
    results = run_backtest(read_bitbrains_dir(trace_dir), [get_strategy("rightsizer"), get_strategy("vpa")],
                           CsvPriceCatalogue(backtest_types()))
    doc = results[0].as_dict()
    for key in ("strategy", "vms", "vms_evaluated", "current_monthly_cost", "recommended_monthly_cost",
                "savings_pct", "cpu_overrun_pct", "mem_overrun_pct", "per_vm"):
        assert key in doc
    assert doc["strategy"] == "rightsizer" and len(doc["per_vm"]) == 2
    assert [r["strategy"] for r in comparison_rows(results)] == ["rightsizer", "vpa"]
    with pytest.raises(ValueError, match="train_days"):
        run_backtest([], [get_strategy("krr")], CsvPriceCatalogue(backtest_types()), train_days=0)


def test_cli_prints_the_json_contract(trace_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backtest", str(trace_dir), "--format", "bitbrains", "--strategy", "krr", "--train-days", "14",
                 "--catalogue", str(write_catalogue(tmp_path)), "--output", "json", "--db", str(tmp_path / "x.db")])
    assert code == 0
    [doc] = json.loads(capsys.readouterr().out)
    assert doc["strategy"] == "krr" and doc["vms_evaluated"] == 1
    assert doc["cpu_overrun_pct"] == pytest.approx(100 * 10 / 144, abs=1e-4)


def test_cli_table_compares_all_strategies(trace_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backtest", str(trace_dir), "--catalogue", str(write_catalogue(tmp_path)),
                 "--db", str(tmp_path / "x.db")])
    assert code == 0
    out = capsys.readouterr().out
    for name in ("rightsizer", "aws", "krr", "vpa"):
        assert f"\n{name} " in out
    assert "rightsizer vs aws:" in out


def test_cli_bad_directory_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backtest", str(tmp_path / "missing"), "--db", str(tmp_path / "x.db")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "not found" in err[0] and "missing" in err[0]


def test_memory_hindsight_bound(trace_dir: Path) -> None:
    # VM 1's evaluation peak is 2.5 GiB: the cheapest type holding it is m.2 (8 GiB, 0.06/h) instead of l.4
    # (0.12/h); VM 2 has too little history and keeps s.2 (0.02/h). (100.8 - 57.6) / 100.8 = 42.857 %.
    bound = memory_hindsight_savings_pct(read_bitbrains_dir(trace_dir), CsvPriceCatalogue(backtest_types()))
    assert bound == pytest.approx(100 * (100.8 - 57.6) / 100.8)
