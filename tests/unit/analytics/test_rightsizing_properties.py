"""Every strategy on odd histories (all zeros, NaN gaps, one sample, irregular steps): a result, never a crash."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analytics.rightsizing import STRATEGY_NAMES, get_strategy
from analytics.rightsizing.base import Finding, UsageHistory, VmSpec
from analytics.rightsizing.settings import PROFILES, SETTINGS_TYPES, profile_settings
from tests.helpers.catalogues import small_catalogue

GIB = 1024**3
T0 = 1_700_000_000.0
CATALOGUE = small_catalogue()
#: Data rules off, so the estimators themselves meet the odd data (the defaults would stop most at 30 h).
NO_DATA_RULES = {"min_coverage_hours": 0.0, "min_span_days": 0.0}
SPEC = VmSpec(4, 16 * GIB)

cpu_value = st.one_of(st.just(math.nan), st.just(0.0), st.floats(0.0, 8.0, allow_nan=False))
mem_value = st.one_of(st.just(math.nan), st.just(0.0), st.floats(0.0, 32.0 * GIB, allow_nan=False))


@st.composite
def histories(draw: st.DrawFn) -> UsageHistory:
    n = draw(st.integers(1, 200))
    steps = draw(st.lists(st.floats(1.0, 3 * 86400.0), min_size=n, max_size=n))  # irregular, with long gaps
    ts = T0 + np.cumsum(steps)
    cpu = draw(st.lists(cpu_value, min_size=n, max_size=n))
    mem = draw(st.one_of(st.none(), st.lists(mem_value, min_size=n, max_size=n)))
    interval = draw(st.sampled_from([120.0, 300.0, 3600.0]))
    return UsageHistory.from_arrays(ts, cpu, mem, vcpus=SPEC.vcpus, memory_bytes=SPEC.memory_bytes,
                                    interval_s=interval)


def _check(history: UsageHistory, name: str, values: dict[str, object]) -> None:
    settings_model = SETTINGS_TYPES[name].model_validate(values)
    rec = get_strategy(name).recommend(history, SPEC, settings_model, catalogue=CATALOGUE)
    if rec.finding is Finding.INSUFFICIENT_DATA:
        assert rec.reasons["overall"]  # a named reason
        return
    assert rec.target_vcpus is not None and math.isfinite(rec.target_vcpus) and rec.target_vcpus >= 0
    assert rec.target_memory_bytes is not None and rec.target_memory_bytes >= 0
    assert rec.recommended_type is not None
    assert math.isfinite(rec.monthly_savings)


CASES = [(name, {}) for name in STRATEGY_NAMES] + [
    ("rightsizer", profile_settings(p)) for p in PROFILES if p != "balanced"]


@pytest.mark.parametrize(("name", "profile"), CASES, ids=[f"{n}-{sorted(p.items())}" for n, p in CASES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories())
@example(history=UsageHistory.from_arrays([T0], [0.5], [GIB], vcpus=4, memory_bytes=16 * GIB))  # one sample
@example(history=UsageHistory.from_arrays(T0 + np.arange(500) * 300.0, np.zeros(500), np.zeros(500),
                                          vcpus=4, memory_bytes=16 * GIB))  # all zeros
@example(history=UsageHistory.from_arrays(  # memory readings only long before the end (VPA keeps 8 days)
    T0 + np.arange(4000) * 300.0, np.full(4000, 0.3),
    np.r_[np.full(1000, GIB), np.full(3000, np.nan)], vcpus=4, memory_bytes=16 * GIB))
def test_strategies_never_crash_on_odd_histories(name: str, profile: dict[str, object],
                                                   history: UsageHistory) -> None:
    with np.errstate(all="ignore"):
        _check(history, name, {**profile, **NO_DATA_RULES})
        _check(history, name, dict(profile))  # and with the shared data rules on
