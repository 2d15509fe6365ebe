"""Per-VM policy overrides of a strategy's settings: which policies match a VM, what they change, exclusion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from analytics.rightsizing.base import Recommendation
from analytics.rightsizing.settings import Policy, RightsizerSettings, StrategySettings, profile_overrides
from collector.domxml import EXCLUDE_LABEL, is_excluded


@dataclass(frozen=True, slots=True)
class ResolvedPolicy:
    """The overrides that apply to one VM, whether it is excluded, and which policies said so."""

    overrides: Mapping[str, float]
    exclude: bool
    sources: tuple[str, ...]
    profile: str | None = None  # our strategy's profile (the anchors ignore it)


def resolve_policy(
    policies: Sequence[Policy], *, uuid: str, name: str, labels: Mapping[str, str]
) -> ResolvedPolicy:
    """Merge the policies that match a VM: label policies in order, then VM policies (most specific wins).

    The ``rightsizer_exclude=true`` label excludes a VM whatever the policies say.
    """
    matching = [p for p in policies if p.matches(uuid=uuid, name=name, labels=labels)]
    matching.sort(key=lambda p: p.vm is not None)  # stable: label policies first, then per-VM ones
    overrides: dict[str, float] = {}
    exclude = False
    profile: str | None = None
    sources: list[str] = []
    for p in matching:
        if p.profile is not None:
            profile = p.profile
        for key in ("cpu_percentile", "cpu_headroom_fraction", "memory_headroom_fraction", "lookback_days"):
            value = getattr(p, key)
            if value is not None:
                overrides[key] = value
        if p.exclude is not None:
            exclude = p.exclude
        sources.append(f"vm={p.vm}" if p.vm is not None else
                       "labels " + ",".join(f"{k}={v}" for k, v in sorted(p.labels.items())))
    if is_excluded(labels):
        exclude = True
        sources.append(f"label {EXCLUDE_LABEL}=true")
    return ResolvedPolicy(overrides, exclude, tuple(sources), profile)


def apply_overrides(settings: StrategySettings, overrides: Mapping[str, float],
                    profile: str | None = None) -> StrategySettings:
    """A copy of ``settings`` with a profile (our strategy only) and the overrides, validated.

    Raises pydantic.ValidationError when an override is out of bounds.
    """
    merged: dict[str, float | bool | None] = {}
    if profile is not None and isinstance(settings, RightsizerSettings):
        merged.update(profile_overrides(profile))
    merged.update(overrides)
    if isinstance(settings, RightsizerSettings):
        # a policy's own CPU percentile/headroom or memory headroom sizes that dimension by the percentile
        # rule, not the calibrated one it would otherwise silently replace
        if "cpu_percentile" in overrides or "cpu_headroom_fraction" in overrides:
            merged["cpu_risk_pct"] = None
        if "memory_headroom_fraction" in overrides:
            merged["memory_risk_pct"] = None
            merged["memory_peak_risk_pct"] = None
    if not merged:
        return settings
    return type(settings).model_validate({**settings.model_dump(), **merged})


def exclude_recommendation(rec: Recommendation, sources: Sequence[str]) -> Recommendation:
    """The recommendation with ``excluded`` set: shown with its evidence, but no resize is proposed."""
    reasons = dict(rec.reasons)
    reasons["policy"] = "excluded from resizing by " + "; ".join(sources)
    return replace(rec, excluded=True, reasons=reasons)
