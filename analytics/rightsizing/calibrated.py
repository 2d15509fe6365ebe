"""Per-VM headroom calibrated on the fleet: each VM sized from its own spread, one margin fitted fleet-wide.

A uniform rule (P99.5 + 20 % for every VM) makes steady VMs pay for the spikiness of others. Here each
VM's need is its own upper level plus a margin in units of its own spread:

    need = base + k x scale,   scale = (base - centre) + SPREAD_FLOOR x base

CPU: ``base`` is the P99 of interval demand, ``centre`` its median; memory: ``base`` is the maximum used,
``centre`` the median. A steady VM (base close to its median) gets a few per cent; a spiky one (P99 far
above its median, the daily peaks far apart) gets tens of per cent. ``k`` may be negative down to -1
(the median): the aggressive end sizes below the observed upper level.

**Calibration** (split-conformal, locally weighted; Lei et al., "Distribution-free predictive inference
for regression", JASA 2018, section 5.2; one margin for a fleet-wide interval overrun target, as in
conformal risk control): inside each VM's *training* window the history is cut at
:data:`CUT_FRACTIONS` of its span; the part before a cut gives the VM's base and scale, every interval
after it (up to the end of the training window) a score ``(value - base) / scale``. All scores of all
VMs and cuts are pooled, and ``k`` is their conformal quantile at ``1 - risk``: the smallest margin whose
pooled share of held-out intervals above the need is at most the risk target. Nothing after the training
window is read: the evaluation of a backtest cannot move the margin (tests/unit/analytics/
test_calibrated.py shuffles it to prove so).

Why conformal calibration and not a fleet-wide quantile model (gradient boosting, quantile regression):
the score needs only two order statistics per VM and window, runs as a few array operations over the
whole fleet (a sort of a VMs x intervals block per cut), and its guarantee is distribution-free: with
exchangeable VM-windows the held-out overrun share is at most the target. A learned model would need
features, tuning and a fit per training split, and on a fleet of tens of VMs it has too few examples to
beat two statistics; the scale already carries spikiness, daily-peak spread and data span (a short
history has a noisier P99 and the calibration charges it through the pooled scores).

The margin is a fleet value: :func:`calibrate` returns the settings with ``cpu_margin`` and
``memory_margin`` set, and every VM's estimate reads them. A single VM recommended on its own (no fleet
pass) is calibrated on its own history, a fleet of one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analytics.rightsizing.base import UsageHistory
from analytics.rightsizing.needs import DimensionNeed
from analytics.rightsizing.settings import RightsizerSettings

#: CPU: the percentile of interval demand the margin is added to, and the centre of the spread.
CPU_BASE_PERCENTILE = 99.0
CENTRE_PERCENTILE = 50.0
#: Part of the base level every scale has, so that a flat series still gets a margin (share of base).
SPREAD_FLOOR = 0.02
#: Where each training window is cut for calibration (share of the VM's span from its first interval).
CUT_FRACTIONS: tuple[float, ...] = (0.5, 0.625, 0.75)
#: Intervals a pseudo-training part must hold to give a base and scale (an hour of 5-minute samples).
MIN_CALIBRATION_INTERVALS = 12
#: Relative spread ((base - centre) / base) below which a VM reads "steady", at or above which "spiky".
STEADY_BELOW = 0.2
SPIKY_FROM = 0.5


@dataclass(frozen=True, slots=True)
class Shape:
    """One VM's level and spread in one dimension (vCPUs or bytes): ``base`` the upper level (P99 or
    maximum), ``centre`` the median, ``scale`` the unit of its margin."""

    base: float
    centre: float
    scale: float

    @property
    def spread(self) -> float:
        """Relative spread (base - centre) / base, 0..1 (0 for an empty or zero series)."""
        return (self.base - self.centre) / self.base if self.base > 0 else 0.0

    def need(self, margin: float) -> float:
        """The level ``margin`` scales above base (never below zero)."""
        return max(self.base + margin * self.scale, 0.0)


def row_percentiles(block: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Per row of ``block`` (NaN = no value): the percentiles ``qs`` (0..100, linear), shape (rows, len(qs)).

    Rows without a value give NaN. Same interpolation as ``np.percentile(method="linear")`` on the row's
    values, for every row at once (a NaN-last sort of the block).
    """
    ordered = np.sort(block, axis=1)  # NaN sorts last
    counts = np.count_nonzero(~np.isnan(block), axis=1)
    out = np.full((block.shape[0], len(qs)), np.nan)
    has = counts > 0
    if not has.any():
        return out
    rows = np.flatnonzero(has)
    last = counts[has] - 1
    for j, q in enumerate(qs):
        pos = q / 100.0 * last
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, last)
        low = ordered[rows, lo]
        out[has, j] = low + (ordered[rows, hi] - low) * (pos - lo)
    return out


def _shapes(block: np.ndarray, base_q: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: base, centre and scale arrays (NaN for rows with too few values)."""
    stats = row_percentiles(block, (base_q, CENTRE_PERCENTILE))
    base, centre = stats[:, 0], stats[:, 1]
    scale = (base - centre) + SPREAD_FLOOR * base
    few = np.count_nonzero(~np.isnan(block), axis=1) < MIN_CALIBRATION_INTERVALS
    scale[few | ~(scale > 0)] = np.nan
    return base, centre, scale


def shape(values: np.ndarray, *, base_percentile: float) -> Shape | None:
    """The shape of one VM's series (NaN = no value); None when it has no value."""
    base, centre, _ = _shapes(values[None, :], base_percentile)
    if math.isnan(base[0]):
        return None
    scale = (base[0] - centre[0]) + SPREAD_FLOOR * base[0]
    return Shape(float(base[0]), float(centre[0]), float(scale))


def _padded(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(times, values) per VM as two VMs x longest blocks, padded with +inf times and NaN values."""
    width = max((len(t) for t, _ in series), default=0)
    times = np.full((len(series), width), np.inf)
    values = np.full((len(series), width), np.nan)
    for i, (t, v) in enumerate(series):
        times[i, : len(t)] = t
        values[i, : len(v)] = v
    return times, values


def pooled_scores(series: Sequence[tuple[np.ndarray, np.ndarray]], *, base_percentile: float,
                  cut_fractions: Sequence[float] = CUT_FRACTIONS) -> np.ndarray:
    """Every held-out score ``(value - base) / scale`` of every VM and cut, pooled (1-D, finite).

    ``series``: per VM, ascending times (s) and values (NaN = none) of its training window only.
    """
    times, values = _padded(series)
    if values.size == 0:
        return np.empty(0)
    valid = ~np.isnan(values)
    has = valid.any(axis=1)
    first = np.where(has, np.where(valid, times, np.inf).min(axis=1), 0.0)
    last = np.where(has, np.where(valid, times, -np.inf).max(axis=1), 0.0)
    out = []
    for f in cut_fractions:
        cut = (first + f * (last - first))[:, None]
        before = times < cut
        base, _, scale = _shapes(np.where(before, values, np.nan), base_percentile)
        held = np.where(before, np.nan, values)
        scores = (held - base[:, None]) / scale[:, None]
        out.append(scores[np.isfinite(scores)])
    return np.concatenate(out)


def conformal_margin(scores: np.ndarray, risk_pct: float) -> float | None:
    """The smallest margin with at most ``risk_pct`` % of ``scores`` above it (finite-sample conformal
    quantile, rank ceil((n + 1)(1 - risk))); the largest score when that rank is beyond them; None for no
    scores. Clipped to the settings' bounds [-1, 1000]."""
    n = len(scores)
    if n == 0:
        return None
    rank = math.ceil((n + 1) * (1.0 - risk_pct / 100.0))
    ordered = np.sort(scores)
    value = float(ordered[min(max(rank, 1), n) - 1])
    return min(max(value, -1.0), 1000.0)


def _windows(histories: Sequence[UsageHistory], lookback_days: float, memory: bool
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for h in histories:
        w = h.window(lookback_days)
        out.append((w.timestamps_s, w.memory_used_bytes if memory else w.cpu_vcpus))
    return out


def calibrate(histories: Sequence[UsageHistory], settings: RightsizerSettings) -> RightsizerSettings:
    """``settings`` with ``cpu_margin`` / ``memory_margin`` fitted on the histories' training windows.

    ``histories``: :class:`~analytics.rightsizing.base.UsageHistory` values, each only what the strategy
    may see. A dimension whose risk target is None, or that has no scores (no history long enough), keeps
    its margin.
    """
    update: dict[str, float] = {}
    if settings.cpu_risk_pct is not None:
        scores = pooled_scores(_windows(histories, settings.lookback_days, False),
                               base_percentile=CPU_BASE_PERCENTILE)
        margin = conformal_margin(scores, settings.cpu_risk_pct)
        if margin is not None:
            update["cpu_margin"] = margin
    if settings.memory_risk_pct is not None:
        scores = pooled_scores(_windows(histories, settings.lookback_days, True), base_percentile=100.0)
        margin = conformal_margin(scores, settings.memory_risk_pct)
        if margin is not None:
            update["memory_margin"] = margin
    return settings.model_copy(update=update) if update else settings


def _words(s: Shape) -> str:
    return "steady" if s.spread < STEADY_BELOW else "spiky" if s.spread >= SPIKY_FROM else "variable"


#: A calibrated need never exceeds the conservative profile's: the largest value seen + 20 % (a margin
#: fitted on a few VMs' regime shifts must not upsize every VM past anything it has ever used).
CAP_HEADROOM_FRACTION = 0.20


def dimension_need(s: Shape, margin: float, risk_pct: float, *, what: str, statistic: str,
                   peak: float) -> DimensionNeed:
    """A calibrated need with its evidence in words ("spiky: p99 of CPU demand ..., 45 % headroom").

    ``peak``: the largest value of the window; the need is at most ``peak x (1 + CAP_HEADROOM_FRACTION)``.
    """
    value = s.need(margin)
    if math.isfinite(peak) and peak > 0:
        value = min(value, peak * (1.0 + CAP_HEADROOM_FRACTION))
    headroom = value / s.base - 1.0 if s.base > 0 else 0.0
    words = (f"{_words(s)} {what} ({statistic} {s.spread:.0%} above its median; fleet margin {margin:+.2f} x "
             f"spread for {risk_pct:g} % overrun risk): {statistic}")
    return DimensionNeed(value=value, statistic=words, observed=s.base, headroom_fraction=headroom, peak=peak)


def headroom_words(need: DimensionNeed) -> str:
    """"spiky: 45 % headroom" from a calibrated need (its first word and its headroom)."""
    return f"{need.statistic.split(' ', 1)[0]}: {need.headroom_fraction:.0%} headroom"
