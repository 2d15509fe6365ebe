from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.patterns import PATTERNS, PatternSettings, fit_patterns, name_centre, week_bins
from bench.patterns_bench import synthetic_pattern_frame


@pytest.fixture(scope="module")
def fleet() -> tuple[pd.DataFrame, dict[str, str]]:
    return synthetic_pattern_frame(4, 28, seed=7)


def test_every_generated_pattern_is_found(fleet: tuple[pd.DataFrame, dict[str, str]]) -> None:
    frame, truth = fleet
    result = fit_patterns(frame)
    wrong = {vm: (want, result.pattern_of(vm)) for vm, want in truth.items() if result.pattern_of(vm) != want}
    assert wrong == {}
    assert result.counts() == {p: 4 for p in PATTERNS}


def test_fit_is_deterministic_and_profiles_are_weekly(fleet: tuple[pd.DataFrame, dict[str, str]]) -> None:
    frame, _truth = fleet
    a, b = fit_patterns(frame), fit_patterns(frame.sample(frac=1.0, random_state=3))
    assert {k: v.pattern for k, v in a.by_vm.items()} == {k: v.pattern for k, v in b.by_vm.items()}
    office = a.by_vm["office-hours-00000"].profile_vcpus
    assert office.shape == (168,)
    assert office[0 * 24 + 10] > 10 * office[5 * 24 + 10]  # Monday 10:00 busy, Saturday 10:00 quiet


def test_unknown_names_its_evidence() -> None:
    frame, _ = synthetic_pattern_frame(1, 28)
    vp = fit_patterns(frame).by_vm["unknown-00000"]
    assert vp.pattern == "unknown" and vp.hours == 48 and "48 h" in vp.reason


def test_time_zone_moves_the_profile() -> None:
    ts = pd.Series(pd.to_datetime(["2026-11-02T08:00:00Z"]))  # Monday 08:00 UTC
    assert week_bins(ts)[1][0] == 8
    assert week_bins(ts, "Asia/Tokyo")[1][0] == 17  # 17:00 in Tokyo


def test_centre_names() -> None:
    s = PatternSettings()
    office = np.zeros(168)
    for d in range(5):
        office[d * 24 + 8: d * 24 + 18] = 1.0
    night = np.zeros(168)
    for d in range(7):
        night[d * 24 + 1: d * 24 + 4] = 1.0
    assert name_centre(office, s) == "office-hours"
    assert name_centre(night, s) == "nightly-batch"
    assert name_centre(np.maximum(office, 0.4), s) == "steady"  # never really quiet


def test_empty_frame() -> None:
    cols = ["vm", "ts", "cpu_mean_vcpus", "cpu_max_vcpus"]
    assert fit_patterns(pd.DataFrame(columns=cols)).by_vm == {}


def test_vms_without_cpu_data_are_unknown() -> None:
    frame = pd.DataFrame({"vm": ["a", "a", "b"], "ts": pd.to_datetime(["2026-11-02T00:00Z", "2026-11-02T01:00Z",
                                                                      "2026-11-02T00:00Z"]),
                          "cpu_mean_vcpus": [np.nan, np.nan, 0.5], "cpu_max_vcpus": [np.nan, np.nan, 0.6]})
    result = fit_patterns(frame)
    assert result.pattern_of("a") == "unknown" and result.pattern_of("b") == "unknown"
    assert fit_patterns(frame.iloc[:2]).pattern_of("a") == "unknown"
