"""Shared right-sizing rules: data sufficiency, memory-unknown, savings threshold, type choice, trends."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from analytics.catalogue import CsvPriceCatalogue, MachineType
from analytics.rightsizing import get_strategy
from analytics.rightsizing.base import Finding, Need, UsageHistory, VmSpec, percentile
from analytics.rightsizing.decide import Strategy
from analytics.rightsizing.policy import apply_overrides, resolve_policy
from analytics.rightsizing.settings import KrrSettings, Policy, RightsizerSettings

GIB = 1024**3
HOUR = 3600.0
DAY = 86400.0
T0 = 1_700_006_400.0  # 2023-11-15T00:00:00Z, a UTC midnight


def _type(name: str, vcpus: int, memory_gib: float, price: float, category: str = "standard") -> MachineType:
    return MachineType(name, vcpus, int(memory_gib * GIB), price, "EUR", category=category)


@pytest.fixture
def catalogue() -> CsvPriceCatalogue:
    return CsvPriceCatalogue([
        _type("gpu.1", 1, 1, 0.001, category="gpu"),  # cheapest of all, never eligible
        _type("s.1", 1, 1, 0.010),
        _type("s.2", 2, 2, 0.020),
        _type("m.1", 1, 4, 0.030),
        _type("m.2", 2, 8, 0.060),
        _type("l.4", 4, 16, 0.120),
    ])


def _flat(days: float, cpu: float, mem_gib: float | None, *, vcpus: int = 4, memory_gib: float = 16,
          step: float = 300.0) -> UsageHistory:
    n = int(days * DAY / step)
    ts = T0 + np.arange(n) * step
    mem = None if mem_gib is None else np.full(n, mem_gib * GIB)
    return UsageHistory.from_arrays(ts, np.full(n, cpu), mem, vcpus=vcpus, memory_bytes=int(memory_gib * GIB),
                                    interval_s=step)


def test_percentile_interpolates_linearly_and_ignores_nan() -> None:
    # sorted [1, 2, 3, 4]: rank 0.5 * 3 = 1.5 -> 2 + 0.5 * (3 - 2) = 2.5
    assert percentile(np.array([4.0, np.nan, 1.0, 3.0, 2.0]), 50) == pytest.approx(2.5)
    assert np.isnan(percentile(np.array([np.nan]), 50))


def test_hourly_takes_the_peak_of_each_clock_hour() -> None:
    ts = T0 + np.array([0, 300, 3300, 3600, 3900, 7500])
    cpu = np.array([0.1, 0.7, 0.2, 0.3, np.nan, 0.4])
    mem = np.array([1.0, 3.0, 2.0, np.nan, 5.0, 4.0])
    h = UsageHistory.from_arrays(ts, cpu, mem, vcpus=1, memory_bytes=GIB)
    hours, peaks, mem_peaks = h.hourly()
    assert hours.tolist() == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert peaks.tolist() == [0.7, 0.3, 0.4]
    # the 3900 s sample has no CPU reading, so it is not data; hour 2's memory is unknown
    assert mem_peaks[0] == 3.0 and np.isnan(mem_peaks[1]) and mem_peaks[2] == 4.0


def test_from_arrays_refuses_unsorted_or_ragged_input() -> None:
    with pytest.raises(ValueError, match="not ascending"):
        UsageHistory.from_arrays([2.0, 1.0], [0.1, 0.1], None, vcpus=1, memory_bytes=GIB)
    with pytest.raises(ValueError, match="differ in length"):
        UsageHistory.from_arrays([1.0, 2.0], [0.1], None, vcpus=1, memory_bytes=GIB)


@pytest.mark.parametrize(
    ("days", "step", "determined"),
    [
        (29.0 / 24, 300.0, False),  # 29 h of data: below 30 h
        (2.9, 300.0, False),        # 69.6 h but only 2.9 days of span
        (3.0, 300.0, True),         # 72 h over 3 days
    ],
)
def test_too_little_data_is_insufficient_not_an_error(catalogue, days, step, determined) -> None:
    rec = get_strategy("krr").recommend(_flat(days, 0.1, 0.5, step=step), VmSpec(4, 16 * GIB),
                                        catalogue=catalogue)
    assert rec.is_determined is determined
    if not determined:
        assert rec.finding is Finding.INSUFFICIENT_DATA
        assert rec.reasons["overall"].startswith("insufficient data")
        assert rec.recommended_type is not None and rec.recommended_type.name == "l.4"  # stays put


def test_gaps_count_against_coverage(catalogue) -> None:
    h = _flat(10, 0.1, 0.5)
    keep = np.zeros(len(h.timestamps_s), dtype=bool)
    keep[::12] = True  # one 5-minute sample per hour: 240 samples = 20 h of data over 10 days
    sparse = UsageHistory.from_arrays(h.timestamps_s[keep], h.cpu_vcpus[keep], h.memory_used_bytes[keep],
                                      vcpus=4, memory_bytes=16 * GIB)
    assert sparse.coverage_hours == pytest.approx(20.0)
    rec = get_strategy("krr").recommend(sparse, VmSpec(4, 16 * GIB), catalogue=catalogue)
    assert rec.finding is Finding.INSUFFICIENT_DATA


def test_cheapest_fitting_eligible_type_is_chosen(catalogue) -> None:
    # KRR: CPU p95 = 0.5, memory max 3 GiB x 1.15 = 3.45 GiB -> cheapest with >= 0.5 vCPU and 3.45 GiB: m.1
    rec = get_strategy("krr").recommend(_flat(14, 0.5, 3.0), VmSpec(4, 16 * GIB), catalogue=catalogue)
    assert rec.finding is Finding.OVER_PROVISIONED
    assert rec.target_vcpus == pytest.approx(0.5)
    assert rec.target_memory_bytes == int(np.ceil(3.0 * GIB * 1.15))
    assert rec.recommended_type.name == "m.1"
    assert [o.machine_type.name for o in rec.options] == ["m.1", "m.2", "l.4"]
    # current l.4 0.12/h -> m.1 0.03/h: (0.12 - 0.03) x 720 h = 64.8 per month
    assert rec.monthly_savings == pytest.approx(64.8)
    assert rec.options[0].monthly_savings == pytest.approx(64.8)


def test_unknown_memory_is_never_downsized(catalogue) -> None:
    rec = get_strategy("krr").recommend(_flat(14, 0.5, None), VmSpec(4, 16 * GIB), catalogue=catalogue)
    assert rec.target_memory_bytes == 16 * GIB
    assert rec.recommended_type.name == "l.4"  # only l.4 has 16 GiB
    assert rec.finding is Finding.OPTIMIZED
    assert "never downsized" in rec.reasons["memory"]


def test_downsize_needs_ten_percent_and_the_minimum_saving(catalogue) -> None:
    spec = VmSpec(2, 2 * GIB)
    current = catalogue.get("s.2")  # 0.02/h = 14.40/month
    history = _flat(14, 0.5, 0.5, vcpus=2, memory_gib=2)  # fits s.1 (0.01/h): saves 7.20/month = 50 %
    krr = get_strategy("krr")
    rec = krr.recommend(history, spec, KrrSettings(min_monthly_savings=7.0), catalogue=catalogue,
                        current_type=current)
    assert rec.finding is Finding.OVER_PROVISIONED and rec.recommended_type.name == "s.1"
    rec = krr.recommend(history, spec, KrrSettings(min_monthly_savings=7.5), catalogue=catalogue,
                        current_type=current)
    assert rec.finding is Finding.OPTIMIZED and rec.recommended_type.name == "s.2"
    assert rec.monthly_savings == 0.0
    assert "below the threshold 7.50" in rec.reasons["overall"]
    # 10 % rule: saving 7.20 of 14.40 passes 10 %, fails 60 %
    rec = krr.recommend(history, spec, KrrSettings(min_savings_fraction=0.6, min_monthly_savings=0.0),
                        catalogue=catalogue, current_type=current)
    assert rec.finding is Finding.OPTIMIZED


def test_demand_above_allocation_is_under_provisioned(catalogue) -> None:
    rec = get_strategy("krr").recommend(_flat(14, 1.5, 0.5, vcpus=1, memory_gib=1), VmSpec(1, GIB),
                                        catalogue=catalogue)
    assert rec.finding is Finding.UNDER_PROVISIONED
    assert rec.recommended_type.name == "s.2"
    assert rec.monthly_savings == pytest.approx((0.010 - 0.020) * 720)


def _growing(slope_per_day: float, base: float, days: int = 14) -> UsageHistory:
    ts = T0 + np.arange(days * 24) * HOUR
    cpu = base + slope_per_day * (ts - T0) / DAY
    return UsageHistory.from_arrays(ts, cpu, np.full(len(ts), 0.5 * GIB), vcpus=4, memory_bytes=16 * GIB,
                                    interval_s=HOUR)


def test_growing_cpu_blocks_the_cpu_downsize(catalogue) -> None:
    # CPU rises 0.1 -> 1.4 vCPU over 14 days; projected another 14 days it reaches ~2.8 > 2 vCPUs
    settings = KrrSettings(trend_blocks_downsize=True)
    rec = get_strategy("krr").recommend(_growing(0.1, 0.1), VmSpec(4, 16 * GIB), settings, catalogue=catalogue)
    assert rec.evidence.cpu_trend is not None and rec.evidence.cpu_trend.growing
    assert rec.evidence.cpu_trend.slope_per_day == pytest.approx(0.1)
    assert rec.target_vcpus == 4.0
    assert "downsize blocked" in rec.reasons["cpu"]
    assert rec.recommended_type.vcpus == 4


def test_flat_cpu_does_not_block(catalogue) -> None:
    settings = KrrSettings(trend_blocks_downsize=True)
    rec = get_strategy("krr").recommend(_growing(0.0, 0.5), VmSpec(4, 16 * GIB), settings, catalogue=catalogue)
    assert rec.evidence.cpu_trend is not None and not rec.evidence.cpu_trend.growing
    assert rec.recommended_type.name == "s.1"


def test_growth_that_fits_the_new_type_does_not_block(catalogue) -> None:
    # 0.01 -> 0.14 vCPU: significant growth, but 0.3 vCPU projected still fits one vCPU
    settings = KrrSettings(trend_blocks_downsize=True)
    rec = get_strategy("krr").recommend(_growing(0.01, 0.01), VmSpec(4, 16 * GIB), settings, catalogue=catalogue)
    assert rec.evidence.cpu_trend.growing
    assert rec.recommended_type.name == "s.1"


def test_policies_merge_labels_then_vm_and_exclude_label_wins() -> None:
    policies = [
        Policy(labels={"env": "prod"}, cpu_headroom_fraction=0.3, lookback_days=32),
        Policy(vm="web-1", cpu_headroom_fraction=0.5),
        Policy(labels={"env": "dev"}, exclude=True),
    ]
    r = resolve_policy(policies, uuid="u1", name="web-1", labels={"env": "prod"})
    assert r.overrides == {"cpu_headroom_fraction": 0.5, "lookback_days": 32}
    assert not r.exclude
    assert resolve_policy(policies, uuid="u2", name="db", labels={"env": "dev"}).exclude
    r = resolve_policy(policies, uuid="u3", name="x", labels={"rightsizer_exclude": "true"})
    assert r.exclude and r.sources == ("label rightsizer_exclude=true",)
    settings = apply_overrides(RightsizerSettings(), {"cpu_headroom_fraction": 0.5, "lookback_days": 32})
    assert settings.cpu_headroom_fraction == 0.5 and settings.lookback_days == 32
    with pytest.raises(ValueError, match="less than or equal to 400"):
        apply_overrides(RightsizerSettings(), {"lookback_days": 500})


def test_a_nan_estimate_is_insufficient_data_not_a_traceback(catalogue) -> None:
    """An estimator that returns NaN (odd history) gives a named insufficient-data result."""
    krr = get_strategy("krr")

    def nan_cpu(history: UsageHistory, settings: object) -> Need:
        need = krr.estimate(history, settings)
        return replace(need, cpu=replace(need.cpu, value=float("nan")))

    broken = Strategy("broken", "returns NaN", krr.settings_type, nan_cpu)
    rec = broken.recommend(_flat(10, 0.1, 0.5), VmSpec(4, 16 * GIB), catalogue=catalogue)
    assert rec.finding is Finding.INSUFFICIENT_DATA
    assert rec.reasons["overall"].startswith("insufficient data") and "undefined" in rec.reasons["overall"]


def test_policy_profile_applies_to_our_strategy_only_and_fields_still_override_it() -> None:
    policies = [
        Policy(labels={"env": "prod"}, profile="conservative"),
        Policy(vm="web-1", profile="aggressive", memory_headroom_fraction=0.3),
    ]
    prod = resolve_policy(policies, uuid="u1", name="db-1", labels={"env": "prod"})
    web = resolve_policy(policies, uuid="u2", name="web-1", labels={"env": "prod"})
    assert prod.profile == "conservative" and web.profile == "aggressive"
    ours = apply_overrides(RightsizerSettings(), prod.overrides, prod.profile)
    assert (ours.cpu_percentile, ours.cpu_headroom_fraction, ours.memory_headroom_fraction) == (100.0, 0.15, 0.15)
    assert ours.memory_peak_risk_pct == 3.0  # every profile: memory from the spread of daily peaks
    # the VM policy's profile replaces the label policy's, and its own field wins over both
    ours = apply_overrides(RightsizerSettings(), web.overrides, web.profile)
    assert (ours.cpu_percentile, ours.cpu_headroom_fraction, ours.memory_headroom_fraction) == (95.0, 0.0, 0.3)
    assert ours.memory_peak_risk_pct is None  # a policy's own memory headroom is that headroom, not a ceiling
    assert apply_overrides(KrrSettings(), prod.overrides, prod.profile) == KrrSettings()
