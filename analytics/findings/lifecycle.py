"""Lifecycle findings: VMs that have been shut off long enough to be called ``stopped``.

A VM is *stopped* when its inventory state is shut off and the collector has not seen it running for at
least ``stopped_after_days``. Its price is what it still costs while off, under the configured stopped-VM
billing rule (``[costs] stopped_vm_billing``: ``storage-only`` = its disks, ``full`` = machine type and
disks, ``none`` = nothing); deleting it saves exactly that. Resize advice makes no sense for such a VM, and
its old usage history is not trusted for one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from analytics.catalogue import HOURS_PER_MONTH
from collector.model import VmRecord, VmState
from core.plan import DELETE_IS_MANUAL

__all__ = ["DELETE_IS_MANUAL", "StoppedVm", "find_stopped"]


@dataclass(frozen=True, slots=True)
class StoppedVm:
    """A VM shut off for at least the configured time, and what it still costs.

    ``last_running``: end of the last hour the collector saw it running (None: not seen running in the
    frame). ``stopped_days``: days from then (or from the frame's start) to ``now``.
    ``price_per_hour``: what it costs per hour while off under ``billing_rule`` (currency of the cost
    frame); ``monthly_cost`` the same per 720-hour month (what deleting it saves).
    """

    vm_uuid: str
    last_running: datetime | None
    stopped_days: float
    billing_rule: str
    storage_price_per_hour: float
    price_per_hour: float

    @property
    def monthly_cost(self) -> float:
        return self.price_per_hour * HOURS_PER_MONTH

    def reason(self, currency: str) -> str:
        if self.last_running is not None:
            off = f"shut off for {self.stopped_days:.1f} days (since {self.last_running:%Y-%m-%d %H:%M} UTC)"
        else:
            off = f"shut off for at least {self.stopped_days:.1f} days (not seen running in the data read)"
        return (f"{off}; while off it costs "
                f"{self.monthly_cost:.2f} {currency}/month ({self.billing_rule} billing of a stopped VM)")


def find_stopped(
    cost_frame: pd.DataFrame,
    vms: Sequence[VmRecord],
    *,
    now: datetime,
    stopped_after_days: float,
    billing_rule: str,
) -> dict[str, StoppedVm]:
    """Shut-off VMs not seen running for ``stopped_after_days`` or more, by UUID.

    ``cost_frame`` is :func:`analytics.costs.fleet_costs` output over a window ending at ``now`` (columns
    ``vm``, ``ts``, ``running_hours``, ``price_per_hour``, ``storage_price_per_hour``). A VM with no row in
    the frame is judged from its inventory (``first_seen``); its price is then unknown (0). Raises
    ValueError for a naive ``now`` or an unknown ``billing_rule``.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (UTC), got {now!r}")
    if billing_rule not in ("none", "storage-only", "full"):
        raise ValueError(f"unknown stopped-VM billing rule {billing_rule!r}; use none, storage-only or full")
    now_ts = pd.Timestamp(now)
    rows = _latest_rows(cost_frame)
    out: dict[str, StoppedVm] = {}
    for vm in vms:
        if vm.state is not VmState.SHUTOFF:
            continue
        last_running, frame_start, storage_h, compute_h = rows.get(vm.uuid, (None, None, 0.0, 0.0))
        since = last_running
        if since is None:  # not seen running in the frame: off at least since it starts (or first seen)
            first = pd.Timestamp(vm.first_seen)
            since = first if frame_start is None else max(first, frame_start)
        days = max((now_ts - since) / pd.Timedelta(days=1), 0.0)
        if days < stopped_after_days:
            continue
        price = 0.0
        if billing_rule in ("storage-only", "full"):
            price += storage_h
        if billing_rule == "full":
            price += compute_h
        out[vm.uuid] = StoppedVm(
            vm_uuid=vm.uuid,
            last_running=None if last_running is None else last_running.to_pydatetime(),
            stopped_days=float(days),
            billing_rule=billing_rule,
            storage_price_per_hour=storage_h,
            price_per_hour=price,
        )
    return out


_Row = tuple[pd.Timestamp | None, pd.Timestamp | None, float, float]


def _latest_rows(cost_frame: pd.DataFrame) -> Mapping[str, _Row]:
    """Per VM: end of its last running hour, first hour in the frame, newest storage and compute prices."""
    if cost_frame.empty:
        return {}
    frame = cost_frame[["vm", "ts", "running_hours", "price_per_hour", "storage_price_per_hour"]].copy()
    frame["vm"] = frame["vm"].astype(str)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame = frame.sort_values(["vm", "ts"], kind="stable")
    out: dict[str, _Row] = {}
    for uuid, group in frame.groupby("vm", sort=False):
        ran = group[group["running_hours"].to_numpy(dtype=float) > 0]
        last = None
        if len(ran):
            row = ran.iloc[-1]
            last = row["ts"] + pd.Timedelta(hours=float(row["running_hours"]))
        newest = group.iloc[-1]
        storage = float(np.nan_to_num(float(newest["storage_price_per_hour"])))
        compute = float(np.nan_to_num(float(newest["price_per_hour"])))
        out[str(uuid)] = (last, group["ts"].iloc[0], storage, compute)
    return out
