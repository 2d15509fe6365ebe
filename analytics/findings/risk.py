"""Risk of a proposed resize in words (very-low .. very-high), with the facts that set it.

Four facts, each worth points; the level is the sum (0 very-low, 1 low, 2 medium, 3 high, 4+ very-high):

* **hours above the recommended size in the lookback** (:mod:`analytics.findings.projection`): none 0;
  up to 0.5 % of the hours 1; up to 2 % 2; more 3. These are hours the VM would have been CPU-saturated
  or memory-tight on the new size had it run on it;
* **trend**: a statistically growing CPU or memory trend adds 1;
* **data span**: less than 7 days of history (a week's cycle not seen once) adds 1;
* **spikiness**: the lookback's CPU peak more than twice the typical busy hour (p95 of hourly peaks)
  adds 1 (a rare burst the new size would meet at full load);
* unknown memory use adds 1 (memory is then kept, but nothing guards against a later squeeze).

A proposal without a change (optimized, insufficient data) is ``very-low`` with no facts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: Hours-over thresholds (share of the lookback's hours with data) for 1, 2 and 3 points.
HOURS_OVER_STEPS = (0.0, 0.005, 0.02)
SHORT_SPAN_DAYS = 7.0
SPIKY_RATIO = 2.0


class RiskLevel(enum.StrEnum):
    """Risk of applying a proposal, lowest first."""

    VERY_LOW = "very-low"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very-high"


_LEVELS = tuple(RiskLevel)

#: What each level means; shown wherever a risk is shown.
RISK_LEGEND: tuple[tuple[RiskLevel, str], ...] = (
    (RiskLevel.VERY_LOW, "no hour of the lookback would have exceeded the new size; steady, long history"),
    (RiskLevel.LOW, "one fact against it (a few hours over, a short history, a growing trend or spikes)"),
    (RiskLevel.MEDIUM, "two facts against it, or up to 2 % of the hours over the new size"),
    (RiskLevel.HIGH, "three facts against it, or more than 2 % of the hours over the new size"),
    (RiskLevel.VERY_HIGH, "four or more facts against it: apply only with a person watching"),
)


def legend_text() -> str:
    """The legend on one line (for tables, reports and tooltips)."""
    return "; ".join(f"{level.value}: {text}" for level, text in RISK_LEGEND)


@dataclass(frozen=True, slots=True)
class RiskFacts:
    """What the risk of one proposal rests on. ``cpu_peak_to_p95`` is NaN when unknown."""

    hours: int
    hours_over: int
    growing: bool
    span_days: float
    cpu_peak_to_p95: float
    memory_known: bool


@dataclass(frozen=True, slots=True)
class Risk:
    """A level, its points and one reason per fact that counted (plus the ones that did not)."""

    level: RiskLevel
    points: int
    reasons: tuple[str, ...]

    def text(self) -> str:
        return f"{self.level.value}: " + "; ".join(self.reasons)


NO_CHANGE = Risk(RiskLevel.VERY_LOW, 0, ("no change proposed",))


def assess_risk(facts: RiskFacts) -> Risk:
    """Score a proposal from its facts (see the module doc); never raises."""
    points = 0
    reasons: list[str] = []
    share = facts.hours_over / facts.hours if facts.hours > 0 else 0.0
    over_points = sum(1 for step in HOURS_OVER_STEPS if share > step)
    points += over_points
    reasons.append(f"{facts.hours_over} of {facts.hours} h in the lookback above the new size ({share:.1%})")
    if facts.growing:
        points += 1
        reasons.append("usage is growing")
    else:
        reasons.append("no growing trend")
    if facts.span_days < SHORT_SPAN_DAYS:
        points += 1
        reasons.append(f"only {facts.span_days:.1f} days of data (< {SHORT_SPAN_DAYS:g})")
    else:
        reasons.append(f"{facts.span_days:.1f} days of data")
    ratio = facts.cpu_peak_to_p95
    if ratio == ratio and ratio > SPIKY_RATIO:  # NaN-safe
        points += 1
        reasons.append(f"spiky: CPU peak {ratio:.1f}x the p95 of hourly peaks")
    elif ratio == ratio:
        reasons.append(f"CPU peak {ratio:.1f}x the p95 of hourly peaks")
    if not facts.memory_known:
        points += 1
        reasons.append("memory use unknown")
    return Risk(_LEVELS[min(points, len(_LEVELS) - 1)], points, tuple(reasons))
