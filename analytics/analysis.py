"""The one fleet analysis: store (or an hourly frame already read) + options in, findings and headline out.

Every surface -- ``recommend``, ``costs``, ``report``, ``apply --from-findings``, ``schedule``, the API, the
dashboard, /metrics and the scheduled reports -- builds one :class:`AnalysisOptions` (from the settings, then
its flags) and calls :func:`analyse_fleet` or :func:`analyse_frame`; it formats what comes back and never
assembles a finding itself. So the same VM shows the same finding, saving, risk, schedule and storage advice
everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from analytics.catalogue import load_storage_prices
from analytics.findings.context import FleetCatalogue, LifecycleRules, lifecycle_for, storage_rules
from analytics.findings.dismissal import apply_dismissals
from analytics.findings.finding import VmFinding
from analytics.findings.headline import Headline, headline_of
from analytics.recommend import recommend_frame
from analytics.rightsizing import DEFAULT_STRATEGY
from analytics.rightsizing.settings import STRATEGY_NAMES, Policy, StrategySettings, load_policies
from collector.model import VmRecord
from collector.store.base import TimeSeriesStore
from core.errors import InputError
from core.settings import CostSettings, IdleSettings, ScheduleSettings, Settings, SignalSettings
from core.units import DEFAULT_LOOKBACK_DAYS


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    """Everything that shapes a finding, built once from the settings and flags.

    ``strategy_settings`` replaces the strategy's defaults (knobs given on the command line); then
    ``profile``, ``lookback_days`` and ``min_monthly_savings`` are taken from it. ``now`` is the analysis time
    (None: the newest data in the store, or the wall clock for an empty store). ``lifecycle`` None leaves the
    stopped/regret findings and storage advice out (tests of the pure path).
    """

    strategy: str = DEFAULT_STRATEGY
    profile: str | None = "balanced"
    lookback_days: float = float(DEFAULT_LOOKBACK_DAYS)
    min_monthly_savings: float | None = None
    strategy_settings: StrategySettings | None = None
    policies: tuple[Policy, ...] = ()
    idle: IdleSettings | None = field(default_factory=IdleSettings)
    schedules: ScheduleSettings = field(default_factory=ScheduleSettings)
    signals: SignalSettings | None = field(default_factory=SignalSettings)
    lifecycle: LifecycleRules | None = None
    now: datetime | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, catalogue: FleetCatalogue, *, strategy: str | None = None,
        lookback_days: float | None = None, now: datetime | None = None, policies: Sequence[Policy] | None = None,
        strategy_settings: StrategySettings | None = None, schedules: ScheduleSettings | None = None,
        min_monthly_savings: float | None = None,
    ) -> AnalysisOptions:
        """The options of the application settings (``[rightsizing]``, ``[idle]``, ``[schedules]``, ``[signals]``,
        ``[costs]``), each keyword overriding its setting. Raises InputError for an unknown strategy or a bad
        policies file."""
        rs = settings.rightsizing
        name = strategy or rs.strategy
        if name not in STRATEGY_NAMES:
            raise InputError(f"strategy {name!r} is unknown; use one of {', '.join(STRATEGY_NAMES)}")
        return cls(
            strategy=name, profile=rs.profile,
            lookback_days=float(rs.lookback_days if lookback_days is None else lookback_days),
            min_monthly_savings=rs.min_monthly_savings if min_monthly_savings is None else min_monthly_savings,
            strategy_settings=strategy_settings,
            policies=tuple(configured_policies(settings) if policies is None else policies),
            idle=settings.idle, schedules=schedules or settings.schedules, signals=settings.signals,
            lifecycle=lifecycle_rules(settings, catalogue), now=now,
        )

    def with_changes(self, **changes: Any) -> AnalysisOptions:
        """These options with some fields replaced (``lookback_days=30``, ``now=...``)."""
        return replace(self, **changes)

    @property
    def effective_lookback_days(self) -> float:
        """The fleet's lookback: the strategy settings' when given, else ``lookback_days``."""
        return self.strategy_settings.lookback_days if self.strategy_settings is not None else self.lookback_days


@dataclass(frozen=True, slots=True)
class FleetAnalysis:
    """One analysis of the fleet: its findings (store order), their headline and what made them."""

    now: datetime
    options: AnalysisOptions
    findings: tuple[VmFinding, ...]
    headline: Headline

    def by_uuid(self) -> dict[str, VmFinding]:
        return {f.uuid: f for f in self.findings}


def analysis_time(store: TimeSeriesStore, now: datetime | None) -> datetime:
    """``now`` when given, else the newest timestamp in the store (imported history is judged where it
    ends), else the wall clock."""
    if now is not None:
        return now
    newest = store.time_range()
    return newest[1] if newest is not None else datetime.now(UTC)


def analyse_fleet(store: TimeSeriesStore, catalogue: FleetCatalogue, options: AnalysisOptions) -> FleetAnalysis:
    """Analyse every VM the store knows over the hourly rollups of its lookback (the longest of any policy)."""
    now = analysis_time(store, options.now)
    if now.tzinfo is None:
        raise ValueError(f"the analysis time must be timezone-aware (UTC), got {now!r}")
    lookback = options.effective_lookback_days
    longest = max([lookback] + [p.lookback_days for p in options.policies if p.lookback_days is not None])
    frame = store.frame(now - pd.Timedelta(days=longest).to_pytimedelta(), now, resolution="hour")
    return analyse_frame(frame, store.vms(), store, catalogue, options, now=now)


def analyse_frame(
    frame: pd.DataFrame, vms: Sequence[VmRecord], store: TimeSeriesStore, catalogue: FleetCatalogue,
    options: AnalysisOptions, *, now: datetime,
) -> FleetAnalysis:
    """:func:`analyse_fleet` on an hourly frame already read (the dashboard's snapshot holds one); the store
    is read only for the lifecycle (shut-off VMs, the audit log), the guest filesystem use and the dismissals
    (findings a person dismissed or postponed: ``dismissed`` set, left out of the headline and plans)."""
    lookback = options.effective_lookback_days
    rules = options.lifecycle
    lifecycle = (lifecycle_for(store, vms, catalogue, rules, now=now, lookback_days=lookback)
                 if rules is not None else None)
    findings = recommend_frame(
        frame, vms, catalogue, strategy=options.strategy, now=now, lookback_days=options.lookback_days,
        policies=options.policies, settings=options.strategy_settings, idle_settings=options.idle,
        min_monthly_savings=options.min_monthly_savings, schedule_settings=options.schedules, lifecycle=lifecycle,
        profile=options.profile, signal_settings=options.signals,
        storage=storage_rules(store, rules) if rules is not None else None,
    )
    # expiries are people's time: judged on the wall clock, also for history analysed where it ends
    findings = apply_dismissals(findings, store.dismissals(), max(now, datetime.now(UTC)))
    return FleetAnalysis(now=now, options=options, findings=tuple(findings), headline=headline_of(findings))


def configured_policies(settings: Settings) -> list[Policy]:
    """The ``[rightsizing] policies_file`` overrides (empty when unset). Raises InputError on a bad file."""
    path = settings.rightsizing.policies_file
    return load_policies(Path(path)) if path else []


def lifecycle_rules(settings: Settings, catalogue: FleetCatalogue) -> LifecycleRules:
    """The lifecycle rules of the settings. Storage priced in another currency than the catalogue is left
    unpriced: this is the one place that rule is decided (see :func:`storage_pricing`)."""
    costs, _note = storage_pricing(settings, catalogue.machine_types()[0].currency
                                   if catalogue.machine_types() else "")
    return LifecycleRules(settings.rightsizing.stopped_after_days, costs, load_storage_prices())


def storage_pricing(settings: Settings, currency: str) -> tuple[CostSettings, str | None]:
    """``[costs]`` with storage turned off when the storage prices are in another currency than ``currency``,
    and the note that says so (None when storage is priced as configured)."""
    storage = load_storage_prices()
    costs = settings.costs
    if costs.include_storage and currency and storage.currency != currency:
        return (costs.model_copy(update={"include_storage": False}),
                f"Storage is not priced: its prices are in {storage.currency}, the catalogue's in {currency}.")
    return costs, None
