from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.patterns import PATTERNS, PatternSettings, _group_quantiles, fit_patterns, name_centre, week_bins
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


def test_group_quantiles_equal_numpy_per_group() -> None:
    rng = np.random.default_rng(11)
    counts = rng.integers(0, 50, 300)
    codes = np.repeat(np.arange(300), counts)
    values = np.round(rng.lognormal(0.0, 1.0, len(codes)), 2)  # ties as well
    shuffled = rng.permutation(len(codes))
    for c, v in ((codes, values), (codes[shuffled], values[shuffled])):
        median, p99 = _group_quantiles(c, v, 301, (0.5, 0.99))
        for g in range(301):
            mine = v[c == g]
            if len(mine) == 0:
                assert np.isnan(median[g]) and np.isnan(p99[g])
                continue
            assert median[g] == pytest.approx(np.quantile(mine, 0.5), rel=1e-12)
            assert p99[g] == pytest.approx(np.quantile(mine, 0.99), rel=1e-12)


def test_week_bins_in_utc_and_a_zone_over_sparse_and_dense_hours() -> None:
    dense = pd.Series(pd.date_range("2026-03-28", periods=24 * 10, freq="h", tz="UTC"))
    sparse = pd.Series(pd.to_datetime(["2020-01-06 05:00", "2026-03-29 01:00"], utc=True))
    for ts in (dense, sparse):
        for zone in ("UTC", "Europe/Berlin"):
            local = ts.dt.tz_convert(zone)
            want = local.dt.day_of_week.to_numpy() * 24 + local.dt.hour.to_numpy()
            epoch_s, bins = week_bins(ts, zone)
            assert bins.tolist() == want.tolist()
            assert epoch_s.tolist() == [t.timestamp() for t in ts]


def test_prefetch_imports_kmeans_in_the_background() -> None:
    import subprocess
    import sys

    code = ("import sys, threading\n"
            "from analytics.patterns import prefetch_clustering\n"
            "assert 'sklearn.cluster' not in sys.modules\n"
            "prefetch_clustering()\n"
            "names = [t.name for t in threading.enumerate()]\n"
            "for t in threading.enumerate():\n"
            "    if t.name == 'import-sklearn-cluster': t.join()\n"
            "print('import-sklearn-cluster' in names, 'sklearn.cluster' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.split() == ["True", "True"]
