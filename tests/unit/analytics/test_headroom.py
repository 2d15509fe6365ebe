"""A VM's headroom in words (analytics.findings.headroom): spiky vs steady, daily peaks, the fixed rule."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.catalogue import CsvPriceCatalogue, MachineType
from analytics.findings.headroom import dimension_text, headroom_text, statistic_name
from analytics.rightsizing import get_strategy
from analytics.rightsizing.base import UsageHistory, VmSpec
from analytics.rightsizing.calibrated import calibrate
from analytics.rightsizing.needs import DimensionNeed
from analytics.rightsizing.settings import RightsizerSettings

GIB = 1024**3
T0 = 1_700_006_400
HOURS = 14 * 24
#: The balanced profile's rules written out, so that this test keeps its meaning if the profiles change.
FIXED_RULE = {"cpu_percentile": 99.5, "cpu_headroom_fraction": 0.2, "memory_percentile": 100.0,
              "memory_headroom_fraction": 0.15, "cpu_risk_pct": None, "memory_risk_pct": None,
              "memory_peak_risk_pct": None, "daily_peak_percentile": 0.0}


def _catalogue() -> CsvPriceCatalogue:
    return CsvPriceCatalogue([MachineType(f"t.{v}", v, 4 * v * GIB, 0.01 * v, "EUR") for v in (1, 2, 4, 8)])


def _history(cpu: np.ndarray, mem_gib: np.ndarray | float = 1.0) -> UsageHistory:
    t = float(T0) + 3600.0 * np.arange(len(cpu))
    mem = np.broadcast_to(np.asarray(mem_gib, dtype=float) * GIB, cpu.shape).copy()
    return UsageHistory.from_arrays(t, cpu, mem, vcpus=8, memory_bytes=32 * GIB, interval_s=3600.0)


def _fleet() -> tuple[UsageHistory, UsageHistory]:
    rng = np.random.default_rng(3)
    steady = rng.normal(1.0, 0.01, HOURS)
    spiky = rng.normal(0.3, 0.01, HOURS)
    bursts = rng.random(HOURS) < 0.03
    spiky[bursts] = rng.uniform(0.8, 2.0, int(bursts.sum()))  # bursts of random height, a few a day
    return _history(steady), _history(spiky)


def test_spiky_and_steady_vms_say_how_much_headroom_they_got_and_why() -> None:
    histories = _fleet()
    settings = calibrate(list(histories), RightsizerSettings.model_validate({"cpu_risk_pct": 1.0,
                                                                             "memory_peak_risk_pct": None}))
    strategy = get_strategy("rightsizer")
    steady, spiky = (strategy.recommend(h, VmSpec(8, 32 * GIB), settings, catalogue=_catalogue())
                     for h in histories)
    assert steady.evidence is not None and spiky.evidence is not None
    s_cpu, p_cpu = steady.evidence.cpu, spiky.evidence.cpu
    assert s_cpu is not None and p_cpu is not None
    q = statistic_name(p_cpu.statistic)
    assert q.startswith("P") and q == statistic_name(s_cpu.statistic)  # one fleet base level for both
    spiky_text = headroom_text(spiky)
    steady_text = headroom_text(steady)
    assert spiky_text.startswith(f"spiky CPU ({q} {round(p_cpu.spread * 100)} % above its median): "
                                 f"{round(p_cpu.headroom_fraction * 100)} % headroom over its {q}; memory: ")
    assert steady_text.startswith(f"steady CPU ({q} {round(s_cpu.spread * 100)} % above its median): "
                                  f"{round(s_cpu.headroom_fraction * 100)} % headroom over its {q}; memory: ")
    assert p_cpu.headroom_fraction > s_cpu.headroom_fraction  # the spiky VM got more, and the words say so
    # memory had no risk target and no daily-peak rule here: the fixed rule, said as such
    assert spiky_text.endswith("memory: 15 % headroom over its maximum (fixed, not fitted to this VM)")


def test_the_fixed_rule_reads_as_fixed_headroom_for_every_dimension() -> None:
    steady, _ = _fleet()
    settings = RightsizerSettings.model_validate(FIXED_RULE)
    rec = get_strategy("rightsizer").recommend(steady, VmSpec(8, 32 * GIB), settings, catalogue=_catalogue())
    assert headroom_text(rec) == ("CPU: 20 % headroom over its P99.5 (fixed, not fitted to this VM); "
                                  "memory: 15 % headroom over its maximum (fixed, not fitted to this VM)")


def test_memory_from_daily_peaks_names_their_spread() -> None:
    days = HOURS // 24
    flat = np.repeat(1.0 + 0.002 * np.arange(days), 24)  # daily peaks 1.000 .. 1.026 GiB: steady
    wandering = np.repeat(np.resize([1.0, 2.0, 1.2, 1.8, 1.1, 1.9, 1.5], days), 24)  # spiky day to day
    settings = RightsizerSettings.model_validate({**FIXED_RULE, "memory_peak_risk_pct": 3.0})
    strategy = get_strategy("rightsizer")
    settings = strategy.fleet_settings([_history(np.full(HOURS, 0.5), m) for m in (flat, wandering)], settings)
    texts = [headroom_text(strategy.recommend(_history(np.full(HOURS, 0.5), m), VmSpec(8, 32 * GIB), settings,
                                              catalogue=_catalogue())).split("; ")[1] for m in (flat, wandering)]
    # their interquartile range is 1.3 % of the median, below the 2 % floor every spread has
    assert texts[0].startswith("steady memory (daily peaks spread over 2 % of their median): ")
    assert texts[1].startswith("spiky memory (daily peaks spread over ")
    assert all(t.endswith(" % headroom over its maximum") for t in texts)


@pytest.mark.parametrize(("statistic", "name"), [
    ("p99.5 of CPU demand", "P99.5"),
    ("max of memory used", "maximum"),
    ("p99 of CPU demand (spiky CPU: 62% above its median; fleet margin +1.20 x spread for 1 % overrun risk)", "P99"),
    ("p90 of daily peak-hour CPU demand", "P90 of daily peak-hour CPU demand"),
    ("p95 of CPU demand (24 h-decaying histogram)", "P95"),
    ("p99 of memory used", "P99"),
    ("p100 of CPU demand", "maximum"),
])
def test_statistic_names(statistic: str, name: str) -> None:
    assert statistic_name(statistic) == name


def test_a_need_below_its_statistic_and_unknown_memory_and_no_need() -> None:
    below = DimensionNeed(0.9, "p99 of CPU demand (spiky CPU: ...)", 1.0, -0.1, 2.0, shape="spiky", spread=0.6)
    assert dimension_text("CPU", below) == "spiky CPU (P99 60 % above its median): sized 10 % below its P99"
    rec = get_strategy("rightsizer").recommend(_history(np.full(HOURS, 0.5)), VmSpec(8, 32 * GIB),
                                               RightsizerSettings.model_validate(FIXED_RULE), catalogue=_catalogue())
    assert rec.evidence is not None
    from dataclasses import replace

    no_memory = replace(rec, evidence=replace(rec.evidence, memory=None))
    assert headroom_text(no_memory).endswith("; memory: use unknown, kept at its allocation")
    short = get_strategy("rightsizer").recommend(_history(np.full(10, 0.5)), VmSpec(8, 32 * GIB),
                                                 catalogue=_catalogue())
    assert not short.is_determined and headroom_text(short) == ""
