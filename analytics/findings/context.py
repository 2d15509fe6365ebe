"""What a finding needs beside usage: stopped VMs, resize regrets, VMs shut off now, and storage rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pandas as pd

from analytics.catalogue import MachineType, StoragePrices
from analytics.costs import COST_INPUT_COLUMNS, fleet_costs
from analytics.findings.lifecycle import StoppedVm, find_stopped
from analytics.findings.regret import Regret, find_regrets, resizes_in_force
from analytics.rightsizing.base import FittingCatalogue
from analytics.storage import StorageRules
from collector.model import VmRecord, VmState
from collector.store.base import TimeSeriesStore
from core.settings import CostSettings


def storage_rules(store: TimeSeriesStore, rules: LifecycleRules) -> StorageRules | None:
    """Storage advice inputs: the billed class and prices, and the guest agent's filesystem use in ``store``.

    None when storage is not priced (``[costs] include_storage = false`` or another currency).
    """
    from collector.guestfs import stored_usage

    if not rules.cost_settings.include_storage:
        return None
    used = {uuid: float(u.used_bytes) for uuid, u in stored_usage(store).items()}
    return StorageRules(rules.storage, rules.cost_settings.storage_class, used)


class FleetCatalogue(FittingCatalogue, Protocol):
    """What the fleet path needs from a catalogue: fitting plus lookup by name (``CsvPriceCatalogue``)."""

    def get(self, name: str) -> MachineType | None: ...

    def machine_types(self) -> Sequence[MachineType]: ...


@dataclass(frozen=True, slots=True)
class LifecycleRules:
    """How stopped VMs are found and priced (``[rightsizing] stopped_after``, ``[costs]``)."""

    stopped_after_days: float
    cost_settings: CostSettings
    storage: StoragePrices


def lifecycle_for(
    store: TimeSeriesStore, vms: Sequence[VmRecord], catalogue: FleetCatalogue, rules: LifecycleRules, *,
    now: datetime, lookback_days: float,
) -> Lifecycle:
    """Stopped VMs (priced by the billing rule) and regrets of the resizes in the audit log.

    Shut-off VMs are read over at least 30 days (or ``stopped_after``), so the verdict does not depend on
    the lookback;
    each resize in force is watched for ``lookback_days`` after it was applied.
    """
    off = [vm for vm in vms if vm.state is VmState.SHUTOFF]
    stopped: Mapping[str, StoppedVm] = {}
    shut_off: Mapping[str, StoppedVm] = {}
    if off:
        days = max(rules.stopped_after_days, lookback_days, 30.0) + 1.0  # few VMs: read enough to date it
        since = now - pd.Timedelta(days=days).to_pytimedelta()
        rows = store.frame(since, now, resolution="hour", vms=[vm.uuid for vm in off],
                           columns=COST_INPUT_COLUMNS)  # all fleet_costs reads
        costs = fleet_costs(rows, off, catalogue, rules.storage, rules.cost_settings, now=now)
        every_off = find_stopped(costs, off, now=now, stopped_after_days=0.0,
                                 billing_rule=rules.cost_settings.stopped_vm_billing)
        stopped = {u: s for u, s in every_off.items() if s.stopped_days >= rules.stopped_after_days}
        shut_off = {u: s for u, s in every_off.items() if u not in stopped}
    resizes = resizes_in_force(store.audit())
    regrets: Mapping[str, Regret] = {}
    if resizes:
        since = min(r.applied_at for r in resizes) - pd.Timedelta(hours=1).to_pytimedelta()
        watched = store.frame(since, now, resolution="hour", vms=[r.vm_uuid for r in resizes])
        regrets = find_regrets(resizes, watched, catalogue, now=now, watch_days=lookback_days)
    return Lifecycle(stopped=stopped, regrets=regrets, shut_off=shut_off)


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """What the fleet path knows beside usage, by VM UUID: stopped VMs, resizes that overran, and VMs shut
    off now for less than ``stopped_after`` (their size advice is informational: nothing saved while off)."""

    stopped: Mapping[str, StoppedVm] = field(default_factory=dict)
    regrets: Mapping[str, Regret] = field(default_factory=dict)
    shut_off: Mapping[str, StoppedVm] = field(default_factory=dict)
