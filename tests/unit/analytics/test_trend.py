"""Theil-Sen slopes, Mann-Kendall test, and the growth verdict (hand-computed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.trend import Z_95, daily_quantiles, fit_trend, theil_sen


def test_theil_sen_recovers_a_line_and_ignores_one_outlier() -> None:
    days = np.arange(7.0)
    line = 1.0 + 2.0 * days
    spiked = line.copy()
    spiked[3] = 100.0
    slope, intercept, z, n = theil_sen(days, np.vstack([line, spiked]))
    assert slope.tolist() == pytest.approx([2.0, 2.0])
    assert intercept.tolist() == pytest.approx([1.0, 1.0])
    assert n.tolist() == [7, 7]


def test_mann_kendall_z_for_a_strictly_rising_series() -> None:
    # n = 5: S = 10 concordant pairs; var = 5 x 4 x 15 / 18 = 16.667; z = (10 - 1) / sqrt(16.667) = 2.2045
    _, _, z, _ = theil_sen(np.arange(5.0), np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]))
    assert z[0] == pytest.approx(9 / math.sqrt(5 * 4 * 15 / 18))


def test_missing_days_are_skipped() -> None:
    values = np.array([[1.0, np.nan, 3.0, 4.0, np.nan, 6.0]])
    slope, intercept, _, n = theil_sen(np.arange(6.0), values)
    assert n[0] == 4
    assert slope[0] == pytest.approx(1.0)
    assert intercept[0] == pytest.approx(1.0)


def test_growing_needs_significance_and_material_growth() -> None:
    days = np.arange(14.0)
    rising = fit_trend(days, 1.0 + 0.1 * days, horizon_days=14, growth_fraction=0.10)
    # level on day 13 = 2.3, projected = 2.3 + 1.4 = 3.7; rise 1.4 >= 10 % of 2.3; z >> 1.645
    assert rising.level == pytest.approx(2.3)
    assert rising.projected == pytest.approx(3.7)
    assert rising.z > Z_95 and rising.growing
    slow = fit_trend(days, 10.0 + 0.001 * days, horizon_days=14, growth_fraction=0.10)
    assert slow.slope_per_day == pytest.approx(0.001) and not slow.growing  # rise 0.014 < 1.0
    rng = np.random.default_rng(3)
    noise = fit_trend(days, 1.0 + rng.normal(0, 0.05, 14), horizon_days=14, growth_fraction=0.10)
    assert not noise.growing
    assert fit_trend(np.arange(3.0), np.array([1.0, 2.0, 3.0]), horizon_days=14) is None  # < 4 days


def test_daily_quantiles_group_by_utc_day() -> None:
    day0 = 1_700_006_400.0
    ts = np.array([day0, day0 + 10, day0 + 86_399, day0 + 86_400, day0 + 90_000])
    values = np.array([1.0, 2.0, 3.0, 10.0, np.nan])
    days, q = daily_quantiles(ts, values, q=50)
    assert days.tolist() == [day0 / 86400, day0 / 86400 + 1]
    assert q.tolist() == [2.0, 10.0]


def test_vectorised_theil_sen_matches_scipy_reference_per_series():
    # the fleet fit must give, series by series, the textbook Sen slope (median of pairwise slopes)
    from scipy.stats import kendalltau, theilslopes

    rng = np.random.default_rng(7)
    days = np.arange(14, dtype=float)
    values = rng.normal(2.0, 0.3, (25, 14)) + rng.uniform(-0.1, 0.2, (25, 1)) * days
    values[3, [2, 9]] = np.nan  # missing days are skipped, as scipy does on the kept points
    slope, _intercept, z, n = theil_sen(days, values)
    for row in range(values.shape[0]):
        keep = ~np.isnan(values[row])
        ref = theilslopes(values[row, keep], days[keep])
        assert slope[row] == pytest.approx(ref.slope, rel=1e-12, abs=1e-12)
        assert n[row] == keep.sum()
        tau = kendalltau(days[keep], values[row, keep]).statistic
        assert np.sign(z[row]) == np.sign(tau)  # Mann-Kendall direction agrees with Kendall's tau
