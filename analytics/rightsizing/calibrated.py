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
history has a noisier P99 and the calibration charges it through the pooled scores). Measured for memory
(``python -m bench.quantile_model_bench``: scikit-learn's quantile gradient boosting on eight features of
the daily peaks, with and without a conformal correction, against the one-margin daily-peak rule on the dev
trace): neither curve beats the other on the frontier, and the uncorrected model's realised overrun does not
follow its target (docs/backtest.md).

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

#: The base levels the calibration chooses from (percentiles of the training values), per dimension; the
#: defaults when a dimension has no calibration yet; and the centre of the spread.
CPU_BASES: tuple[float, ...] = (90.0, 95.0, 99.0, 99.9, 100.0)
MEMORY_BASES: tuple[float, ...] = (95.0, 99.0, 99.9, 100.0)
CPU_BASE_PERCENTILE = 99.0
MEMORY_BASE_PERCENTILE = 100.0
CENTRE_PERCENTILE = 50.0
#: Part of the base level every scale has, so that a flat series still gets a margin (share of base).
SPREAD_FLOOR = 0.02
#: Where each training window is cut for calibration (share of the VM's span from its first interval).
CUT_FRACTIONS: tuple[float, ...] = (0.5, 0.625, 0.75)
#: Intervals a pseudo-training part must hold to give a base and scale (an hour of 5-minute samples).
MIN_CALIBRATION_INTERVALS = 12
#: VMs the calibration reads at most: a larger fleet is calibrated on every k-th VM (k = ceil(VMs / this)).
#: 2,000 VMs x 3 cuts give millions of held-out scores, far more than a quantile at 0.01 % needs, and keep
#: the fleet pass at about a second.
MAX_CALIBRATION_VMS = 2000
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


def shape(values: np.ndarray, *, base_percentile: float) -> Shape | None:
    """The shape of one VM's series (NaN = no value); None when it has no value.

    The same interpolation as :func:`row_percentiles` (and the fleet path's), on one sorted series.
    """
    ordered = np.sort(values[~np.isnan(values)])
    if len(ordered) == 0:
        return None
    base, centre = (_at(ordered, q) for q in (base_percentile, CENTRE_PERCENTILE))
    return Shape(base, centre, (base - centre) + SPREAD_FLOOR * base)


def _at(ordered: np.ndarray, q: float) -> float:
    """The q-th percentile (0..100, linear) of an ascending array without NaN."""
    last = len(ordered) - 1
    pos = q / 100.0 * last
    lo = math.floor(pos)
    hi = min(lo + 1, last)
    low = ordered[lo]
    return float(low + (ordered[hi] - low) * (pos - lo))


def _padded(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(times, values) per VM as two VMs x longest blocks, padded with +inf times and NaN values."""
    width = max((len(t) for t, _ in series), default=0)
    times = np.full((len(series), width), np.inf)
    values = np.full((len(series), width), np.nan)
    for i, (t, v) in enumerate(series):
        times[i, : len(t)] = t
        values[i, : len(v)] = v
    return times, values


_Cut = tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]


def _cuts(series: Sequence[tuple[np.ndarray, np.ndarray]], qs: Sequence[float],
          cut_fractions: Sequence[float]) -> list[_Cut]:
    """Per cut: the percentiles ``qs`` of each VM's part before it (rows x qs; rows with fewer than
    :data:`MIN_CALIBRATION_INTERVALS` values NaN), its median, and the held-out values after it (their
    row numbers and values, 1-D)."""
    times, values = _padded(series)
    if values.size == 0:
        return []
    valid = ~np.isnan(values)
    has = valid.any(axis=1)
    first = np.where(has, np.where(valid, times, np.inf).min(axis=1), 0.0)
    last = np.where(has, np.where(valid, times, -np.inf).max(axis=1), 0.0)
    out = []
    for f in cut_fractions:
        before = times < (first + f * (last - first))[:, None]
        part = np.where(before, values, np.nan)
        stats = row_percentiles(part, (*qs, CENTRE_PERCENTILE))
        stats[np.count_nonzero(~np.isnan(part), axis=1) < MIN_CALIBRATION_INTERVALS] = np.nan
        held = ~before & valid
        out.append((stats[:, :-1], stats[:, -1], (np.nonzero(held)[0], values[held])))
    return out


def _scale(base: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Each VM's margin unit, (base - centre) + SPREAD_FLOOR x base; NaN where it is not positive."""
    scale: np.ndarray = (base - centre) + SPREAD_FLOOR * base
    scale[~(scale > 0)] = np.nan
    return scale


def pooled_scores(series: Sequence[tuple[np.ndarray, np.ndarray]], *, base_percentile: float,
                  cut_fractions: Sequence[float] = CUT_FRACTIONS) -> np.ndarray:
    """Every held-out score ``(value - base) / scale`` of every VM and cut, pooled (1-D, finite).

    ``series``: per VM, ascending times (s) and values (NaN = none) of its training window only.
    """
    out = [np.empty(0)]
    for stats, centre, (rows, held) in _cuts(series, (base_percentile,), cut_fractions):
        scores = (held - stats[rows, 0]) / _scale(stats[:, 0], centre)[rows]
        out.append(scores[np.isfinite(scores)])
    return np.concatenate(out)


@dataclass(frozen=True, slots=True)
class Calibration:
    """One dimension's fleet calibration: the base percentile chosen, its margin, and the held-out cost
    it minimised (sum over VMs and cuts of need x held-out intervals, in the dimension's unit)."""

    base_percentile: float
    margin: float
    held_out_cost: float


def calibrate_dimension(series: Sequence[tuple[np.ndarray, np.ndarray]], risk_pct: float,
                        bases: Sequence[float], cut_fractions: Sequence[float] = CUT_FRACTIONS
                        ) -> Calibration | None:
    """The base percentile (of ``bases``) and margin that meet ``risk_pct`` on the held-out parts at the
    least held-out cost; None when no VM has enough history for a score.

    For each candidate base the margin is the conformal quantile of the pooled scores; the candidates are
    then compared by what their needs would have cost over the held-out parts (need x intervals): at the
    same held-out overrun rate, the statistic that predicts the future best needs the least.
    """
    cuts = _cuts(series, bases, cut_fractions)
    best: Calibration | None = None
    for j, q in enumerate(bases):
        parts = [(stats[:, j], _scale(stats[:, j], centre), rows, held) for stats, centre, (rows, held) in cuts]
        scores = [(held - base[rows]) / scale[rows] for base, scale, rows, held in parts]
        pooled = np.concatenate([np.empty(0), *(z[np.isfinite(z)] for z in scores)])
        margin = conformal_margin(pooled, risk_pct)
        if margin is None:
            continue
        cost = 0.0
        for (base, scale, rows, _), z in zip(parts, scores, strict=True):
            counts = np.bincount(rows[np.isfinite(z)], minlength=len(base))
            need = np.maximum(base + margin * scale, 0.0)
            cost += float(np.sum(np.where(counts > 0, need * counts, 0.0)))
        if best is None or cost < best.held_out_cost:
            best = Calibration(q, margin, cost)
    return best


def conformal_margin(scores: np.ndarray, risk_pct: float) -> float | None:
    """The smallest margin with at most ``risk_pct`` % of ``scores`` above it (finite-sample conformal
    quantile, rank ceil((n + 1)(1 - risk))); the largest score when that rank is beyond them; None for no
    scores. Clipped to the settings' bounds [-1, 1000]."""
    n = len(scores)
    if n == 0:
        return None
    rank = min(max(math.ceil((n + 1) * (1.0 - risk_pct / 100.0)), 1), n)
    value = float(np.partition(scores, rank - 1)[rank - 1])  # the rank-th smallest, without a full sort
    return min(max(value, -1.0), 1000.0)


def _windows(histories: Sequence[UsageHistory], lookback_days: float, memory: bool
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for h in histories:
        w = h.window(lookback_days)
        out.append((w.timestamps_s, w.memory_used_bytes if memory else w.cpu_vcpus))
    return out


def calibrate(histories: Sequence[UsageHistory], settings: RightsizerSettings) -> RightsizerSettings:
    """``settings`` with each calibrated dimension's base percentile and margin fitted on the histories.

    ``histories``: :class:`~analytics.rightsizing.base.UsageHistory` values, each only what the strategy
    may see (the training window); of a fleet larger than :data:`MAX_CALIBRATION_VMS`, every k-th. A
    dimension whose risk target is None, or that has no scores (no history long enough), keeps its settings.
    """
    update: dict[str, float] = {}
    histories = histories[::max(1, math.ceil(len(histories) / MAX_CALIBRATION_VMS))]
    if settings.cpu_risk_pct is not None:
        cpu = calibrate_dimension(_windows(histories, settings.lookback_days, False), settings.cpu_risk_pct,
                                  CPU_BASES)
        if cpu is not None:
            update |= {"cpu_margin": cpu.margin, "cpu_base_percentile": cpu.base_percentile}
    if settings.memory_risk_pct is not None:
        mem = calibrate_dimension(_windows(histories, settings.lookback_days, True), settings.memory_risk_pct,
                                  MEMORY_BASES)
        if mem is not None:
            update |= {"memory_margin": mem.margin, "memory_base_percentile": mem.base_percentile}
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
    words = (f"{statistic} ({_words(s)} {what}: {s.spread:.0%} above its median; fleet margin {margin:+.2f} x "
             f"spread for {risk_pct:g} % overrun risk)")
    return DimensionNeed(value=value, statistic=words, observed=s.base, headroom_fraction=headroom, peak=peak,
                         shape=_words(s), spread=s.spread)


def headroom_words(need: DimensionNeed) -> str:
    """"spiky: 45 % headroom" from a calibrated need (its shape and its headroom)."""
    return f"{need.shape}: {need.headroom_fraction:.0%} headroom"
