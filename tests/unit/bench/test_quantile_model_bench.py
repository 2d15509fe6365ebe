"""The quantile-model bench's features are scale-free and its examples come from the training days only."""

from __future__ import annotations

import numpy as np
import pytest

from bench.quantile_model_bench import conformal_correction, examples, features


def test_features_do_not_depend_on_the_vms_size() -> None:
    peaks = np.array([1.0, 1.2, 0.9, 1.5, 1.1, 1.3, 1.0])
    small, large = features(peaks), features(peaks * 64 * 1024**3)
    assert small == pytest.approx(large)
    n, spread, top_over_median, last, last3, slope, since_top, near_top = small
    assert n == 7 and top_over_median == pytest.approx(1.5 / 1.1) and last == pytest.approx(1.0 / 1.5)
    assert since_top == pytest.approx(3 / 7) and near_top == pytest.approx(1 / 7) and spread > 0 and slope > 0


def test_examples_are_the_days_after_each_cut_over_the_maximum_before_it() -> None:
    a = np.array([1.0, 2.0, 1.0, 2.0, 1.0, 4.0, 1.0, 2.0])  # 8 days: cuts after 4, 5 and 6 days
    b = np.array([3.0, 3.0])  # too few days for any cut
    x, y, groups = examples([a, b])
    assert len(x) == len(y) == len(groups) == 4 + 3 + 2 and set(groups) == {0}
    np.testing.assert_allclose(y[:4], a[4:] / 2.0)  # the first cut's maximum is 2
    np.testing.assert_allclose(y[4:7], a[5:] / 2.0)
    np.testing.assert_allclose(y[7:], a[6:] / 4.0)  # the last cut has seen the 4


def test_the_corrected_quantile_covers_the_held_out_half_as_asked() -> None:
    from bench.quantile_model_bench import _model

    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, size=(800, 8))
    y = 1.0 + x[:, 0] + rng.standard_t(2, 800) * 0.2  # heavy tails: the raw quantile model misses more
    groups = np.arange(800) % 40
    correction = conformal_correction(x, y, groups, 10.0)
    covered = []
    for fold in (0, 1):
        train, test = groups % 2 != fold, groups % 2 == fold
        model = _model(10.0).fit(x[train], y[train])
        covered.append(y[test] <= model.predict(x[test]) + correction)
    assert np.concatenate(covered).mean() >= 0.90  # the conformal rank: at most 10 % of scores above
