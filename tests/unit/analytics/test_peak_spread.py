"""Memory headroom from the spread of daily peaks: the statistics, the calibration, no evaluation leak,
and the sweep curve that is never dearer than KRR at the same CPU percentile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analytics.catalogue import CsvPriceCatalogue, MachineType
from analytics.frontier import (
    OUR_CURVES,
    PEAKS_HEADROOM_STRATEGY,
    PEAKS_STRATEGY,
    SWEEP_KNOBS,
    Frontier,
    knob_settings,
)
from analytics.rightsizing import get_strategy
from analytics.rightsizing.base import UsageHistory
from analytics.rightsizing.peak_spread import (
    SPREAD_FLOOR,
    calibrate_margin,
    daily_maxima,
    held_out_scores,
    memory_need,
    peak_spread,
)
from analytics.rightsizing.settings import PERCENTILE_RULE, RightsizerSettings
from analytics.traces import read_bitbrains_dir
from tests.helpers.bitbrains import usage_row, write_trace

GIB = 1024**3
DAY = 86400.0
T0 = 1375308000  # 2013-07-31T22:00:00Z
TRAIN_DAYS = 10
DAYS = 16


def test_daily_maxima_are_per_utc_day_and_skip_missing_values() -> None:
    ts = np.array([0.0, 3600.0, DAY - 1, DAY, DAY + 60, 3 * DAY])
    values = np.array([1.0, 5.0, 2.0, np.nan, 7.0, 3.0])
    np.testing.assert_array_equal(daily_maxima(ts, values), [5.0, 7.0, 3.0])
    assert len(daily_maxima(ts, np.full(6, np.nan))) == 0


def test_peak_spread_needs_three_days_and_has_a_floor() -> None:
    assert peak_spread(np.array([1.0, 2.0])) is None
    assert peak_spread(np.zeros(5)) is None
    s = peak_spread(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert s is not None and (s.median, s.spread, s.days) == (3.0, 2.0, 5)
    flat = peak_spread(np.full(7, 4.0))
    assert flat is not None and flat.spread == pytest.approx(SPREAD_FLOOR * 4.0)


def test_memory_need_lies_between_the_maximum_and_the_percentile_rule() -> None:
    steady = peak_spread(np.array([0.60, 0.62, 0.64, 0.66, 0.97]) * GIB)  # one high day, the rest steady
    assert steady is not None
    low = memory_need(steady, 0.97 * GIB, 3.0, 5.0, 0.15)
    assert low.value == pytest.approx(0.97 * GIB) and low.headroom_fraction == pytest.approx(0.0)
    assert "daily peaks: median 0.64 GiB" in low.statistic and "5 % of days above" in low.statistic
    high = memory_need(steady, 0.97 * GIB, 100.0, 5.0, 0.15)
    assert high.value == pytest.approx(0.97 * GIB * 1.15) and high.headroom_fraction == pytest.approx(0.15)
    middle = memory_need(steady, 0.7 * GIB, 3.0, 5.0, 0.15)  # median + 3 x spread between the bounds
    assert middle.value == pytest.approx(steady.median + 3.0 * steady.spread)
    assert memory_need(None, GIB, 3.0, 5.0, 0.15).value == pytest.approx(1.15 * GIB)  # too few days: the rule


def test_calibrated_margin_meets_the_risk_on_fresh_exchangeable_days() -> None:
    rng = np.random.default_rng(20261206)
    hours = 28 * 24
    t = float(T0) + 3600.0 * np.arange(hours)
    fleet = [(t, rng.uniform(0.5, 8.0) * GIB * rng.lognormal(0.0, rng.uniform(0.02, 0.3), hours))
             for _ in range(150)]
    histories = [UsageHistory.from_arrays(ts, np.full(hours, 0.5), used, vcpus=2, memory_bytes=16 * GIB,
                                          interval_s=3600.0) for ts, used in fleet]
    margin = calibrate_margin(histories, 5.0, lookback_days=28.0)
    assert margin is not None and margin > 0
    assert margin == pytest.approx(float(np.quantile(held_out_scores(fleet), 0.95)), rel=0.05)
    over = days = 0
    for ts, used in fleet:  # fresh days of each VM, drawn the same way, against its need from its window
        s = peak_spread(daily_maxima(ts, used))
        assert s is not None
        sigma = np.std(np.log(used))
        fresh = np.exp(np.mean(np.log(used))) * rng.lognormal(0.0, sigma, (14, 24))
        over += int(np.count_nonzero(fresh.max(axis=1) > s.median + margin * s.spread))
        days += 14
    assert 0.02 <= over / days <= 0.09


def _catalogue() -> CsvPriceCatalogue:
    return CsvPriceCatalogue([
        MachineType("t.1", 1, GIB, 0.005, "EUR"),
        MachineType("s.2", 2, 2 * GIB, 0.02, "EUR"),
        MachineType("g.1", 1, 4 * GIB, 0.03, "EUR"),
        MachineType("m.2", 2, 8 * GIB, 0.06, "EUR"),
        MachineType("m.4", 4, 8 * GIB, 0.09, "EUR"),
        MachineType("l.4", 4, 16 * GIB, 0.12, "EUR"),
    ])


def _write_fleet(d: Path, *, perturb_evaluation: bool) -> None:
    """Eight 4-core, 16 GiB VMs, 5-minute rows over 16 days, memory levels near the catalogue's steps;
    ``perturb_evaluation`` shuffles and rescales every value after the training split."""
    step, n = 300, DAYS * 288
    split = TRAIN_DAYS * 288
    for vm in range(8):
        rng = np.random.default_rng(vm)
        cpu = np.clip((0.2 + 0.3 * vm) * rng.lognormal(0.0, 0.3, n), 0.0, 4.0)
        level = (0.8, 0.85, 1.7, 1.75, 3.4, 3.5, 7.0, 7.2)[vm]
        used = np.clip(level * rng.lognormal(0.0, 0.01 + 0.03 * (vm % 3), n), 0.05, 16.0)
        if perturb_evaluation:
            late = np.random.default_rng(100 + vm)
            cpu[split:] = np.clip(late.permutation(cpu[split:]) * late.uniform(0.3, 3.0), 0.0, 4.0)
            used[split:] = np.clip(late.permutation(used[split:]) * late.uniform(0.3, 3.0), 0.05, 16.0)
        write_trace(d / f"{vm + 1}.csv", [usage_row(T0 + step * i, 4, c, 16.0, u)
                                          for i, (c, u) in enumerate(zip(cpu, used, strict=True))])


def test_shuffling_the_evaluation_window_changes_no_recommendation(tmp_path: Path) -> None:
    _write_fleet(tmp_path / "a", perturb_evaluation=False)
    _write_fleet(tmp_path / "b", perturb_evaluation=True)
    catalogue = _catalogue()
    settings = RightsizerSettings.model_validate({"memory_peak_risk_pct": 5.0})
    strategy = get_strategy("rightsizer")
    fronts = [Frontier(read_bitbrains_dir(tmp_path / x), catalogue, train_days=TRAIN_DAYS) for x in ("a", "b")]
    pairs = zip(fronts[0].splits, fronts[1].splits, strict=True)
    assert not all(np.array_equal(a[1].mem_used_bytes, b[1].mem_used_bytes) for a, b in pairs)
    calibrated = [strategy.fleet_settings([sp.history for _, sp in f.splits], settings) for f in fronts]
    assert calibrated[0] == calibrated[1] and calibrated[0].memory_peak_margin is not None
    recs = [f.recommendations("rightsizer", settings) for f in fronts]
    assert [(r.recommended_type, r.target_memory_bytes, r.reasons) for r in recs[0]] == \
        [(r.recommended_type, r.target_memory_bytes, r.reasons) for r in recs[1]]
    # the rule is in force: some VM needs less memory than the percentile rule's maximum + 15 %
    rule = fronts[0].recommendations("rightsizer", RightsizerSettings.model_validate(PERCENTILE_RULE))
    assert any((a.target_memory_bytes or 0) < (b.target_memory_bytes or 0) for a, b in zip(recs[0], rule, strict=True))
    assert all((a.target_memory_bytes or 0) <= (b.target_memory_bytes or 0) for a, b in zip(recs[0], rule, strict=True))


@pytest.mark.parametrize(("curve", "anchor"), [(PEAKS_STRATEGY, "krr"), (PEAKS_HEADROOM_STRATEGY, "aws")])
def test_each_peaks_curve_is_never_dearer_than_its_anchor_and_keeps_its_vcpus(
        tmp_path: Path, curve: str, anchor: str) -> None:
    _write_fleet(tmp_path / "a", perturb_evaluation=False)
    frontier = Frontier(read_bitbrains_dir(tmp_path / "a"), _catalogue(), train_days=TRAIN_DAYS)
    knob, values = SWEEP_KNOBS[curve]
    assert OUR_CURVES[curve]["memory_peak_risk_pct"] is not None
    cheaper = 0
    for value in values:
        ours = frontier.score("rightsizer", RightsizerSettings.model_validate({**OUR_CURVES[curve], knob: value}))
        krr = frontier.score(anchor, knob_settings(anchor, knob, value))
        for a, b in zip(ours.per_vm, krr.per_vm, strict=True):
            assert a.recommended_monthly_cost <= b.recommended_monthly_cost + 1e-9
            assert (a.recommended_vcpus or 0) >= min(b.recommended_vcpus or 0, b.cores)
            cheaper += a.recommended_monthly_cost < b.recommended_monthly_cost
        assert ours.savings_pct >= krr.savings_pct
    assert cheaper > 0
    points = [p for p in frontier.sweep([curve]) if p.strategy == curve]
    assert [p.value for p in points] == list(values)


def test_flat_daily_peaks_still_get_the_minimum_headroom() -> None:
    flat = peak_spread(np.full(10, 2.0) * GIB)
    assert flat is not None
    assert memory_need(flat, 2.0 * GIB, 0.0, 3.0, 0.15).value == pytest.approx(2.0 * GIB)  # no floor asked
    floored = memory_need(flat, 2.0 * GIB, 0.0, 3.0, 0.15, 0.05)
    assert floored.value == pytest.approx(2.1 * GIB) and floored.headroom_fraction == pytest.approx(0.05)
    assert memory_need(flat, 2.0 * GIB, 100.0, 3.0, 0.15, 0.05).value == pytest.approx(2.3 * GIB)  # the ceiling


def test_quartiles_are_numpys_bit_for_bit() -> None:
    from analytics.rightsizing.peak_spread import _quartiles

    rng = np.random.default_rng(20261207)
    for i in range(3000):
        values = rng.lognormal(20.0, rng.uniform(0.01, 1.0), int(rng.integers(1, 60)))
        if i % 3 == 0:
            values = np.round(values, -6)  # ties, as memory sizes have
        assert _quartiles(values) == tuple(float(v) for v in np.percentile(values, (25.0, 50.0, 75.0)))


def test_a_negative_floor_trades_memory_below_the_maximum_used() -> None:
    # one high day over steady ones: with no floor at the maximum, a margin of 0 sizes for the median day
    steady = peak_spread(np.array([0.60, 0.62, 0.64, 0.66, 0.97]) * GIB)
    assert steady is not None
    traded = memory_need(steady, 0.97 * GIB, 0.0, 50.0, 0.15, -1.0)
    assert traded.value == pytest.approx(0.64 * GIB)
    assert traded.headroom_fraction == pytest.approx(0.64 / 0.97 - 1.0) and traded.headroom_fraction < 0
    # a floor of -10 % stops it at 90 % of the maximum; the margin's lower clip (-1 spread) still holds
    assert memory_need(steady, 0.97 * GIB, -1.0, 80.0, 0.15, -0.1).value == pytest.approx(0.9 * 0.97 * GIB)
    assert RightsizerSettings(memory_peak_min_headroom_fraction=-1.0).memory_peak_min_headroom_fraction == -1.0
    with pytest.raises(ValueError, match="memory_peak_min_headroom_fraction"):
        RightsizerSettings(memory_peak_min_headroom_fraction=-1.5)


def test_the_trading_curve_spends_more_memory_risk_for_more_savings(tmp_path: Path) -> None:
    from analytics.frontier import PEAKS_TRADE_STRATEGY

    _write_fleet(tmp_path / "a", perturb_evaluation=False)
    frontier = Frontier(read_bitbrains_dir(tmp_path / "a"), _catalogue(), train_days=TRAIN_DAYS)
    knob, values = SWEEP_KNOBS[PEAKS_TRADE_STRATEGY]
    assert knob == "memory_peak_risk_pct"
    assert OUR_CURVES[PEAKS_TRADE_STRATEGY]["memory_peak_min_headroom_fraction"] == -1
    points = [p for p in frontier.sweep([PEAKS_TRADE_STRATEGY]) if p.strategy == PEAKS_TRADE_STRATEGY]
    assert [p.value for p in points] == list(values)
    # more accepted risk means a smaller fleet margin: no VM's memory need grows, none gets a dearer type
    # (CPU is the same rule at every point); at the high end some VM is sized below its maximum used
    needs = []
    for value in (values[0], values[-1]):
        recs = frontier.recommendations(
            "rightsizer", RightsizerSettings.model_validate({**OUR_CURVES[PEAKS_TRADE_STRATEGY], knob: value}))
        needs.append([(r.target_memory_bytes or 0, r.recommended_type.price_per_month if r.recommended_type else 0.0,
                       r.evidence.memory.headroom_fraction if r.evidence and r.evidence.memory else 0.0)
                      for r in recs])
    assert all(b[0] <= a[0] and b[1] <= a[1] + 1e-9 for a, b in zip(*needs, strict=True))
    assert any(b[0] < a[0] for a, b in zip(*needs, strict=True))
    assert min(h for _, _, h in needs[1]) < 0, "no VM sized below its maximum used at the highest accepted risk"
    assert all(b.savings_pct >= a.savings_pct - 1e-9 for a, b in zip(points, points[1:], strict=False))


def test_the_reason_says_a_traded_need_is_below_its_statistic() -> None:
    from analytics.rightsizing.decide import _headroom

    assert _headroom(0.15) == "+ 15% headroom" and _headroom(0.0) == "+ 0% headroom"
    assert _headroom(-0.7) == "- 70% (sized below it)"
