"""What applied resizes and stops have saved since they were applied, from the audit log and the hours seen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from analytics.frames import epoch_ns, utc_timestamp
from collector.store.base import AuditEntry, TimeSeriesStore
from core.plan import STOP_ACTION


@dataclass(frozen=True, slots=True)
class RealisedSaving:
    """What an applied resize has saved since it was applied: (before - after) x hours."""

    vm_uuid: str
    vm_name: str
    plan_id: str
    applied_at: datetime
    ended_at: datetime | None  # a later revert or resize of the same VM; None while in force
    price_before_per_hour: float
    price_after_per_hour: float
    hours: float
    saving: float
    currency: str


def realised_savings(
    entries: Sequence[AuditEntry],
    now: datetime,
    *,
    currency: str = "",
    hour_frame: pd.DataFrame | None = None,
) -> list[RealisedSaving]:
    """Savings of applied resizes and stops: (price before - after) per hour x the hours they were in force.

    An "applied" entry is in force until the same VM's next "applied" or "reverted" entry, or ``now``.
    With ``hour_frame`` (hourly rollups: ``vm``, ``ts``, ``running_s``) the hours are the running hours the
    collector saw in that span (the apply's own hour pro rata); a VM that was off or unobserved saved
    nothing then; a stop counts the hours the VM stayed off instead (until it is seen running again).
    Without it they are wall-clock hours (an upper bound). Entries without both prices are skipped.
    """
    running = _running_by_vm(hour_frame) if hour_frame is not None else None
    ordered = sorted(entries, key=lambda e: (e.ts, e.id or 0))
    open_by_vm: dict[str, AuditEntry] = {}
    closed: list[tuple[AuditEntry, datetime | None]] = []
    for entry in ordered:
        if entry.result not in ("applied", "reverted"):
            continue
        previous = open_by_vm.pop(entry.vm_uuid, None)
        if previous is not None:
            closed.append((previous, entry.ts))
        if entry.result == "applied":
            open_by_vm[entry.vm_uuid] = entry
    closed.extend((entry, None) for entry in open_by_vm.values())
    out: list[RealisedSaving] = []
    for entry, ended in closed:
        if entry.price_before_per_hour is None or entry.price_after_per_hour is None:
            continue
        stop = ended or now
        wall_h = max((stop - entry.ts) / timedelta(hours=1), 0.0)
        if running is None:
            hours = wall_h
        elif entry.action == STOP_ACTION:  # a stop saves the hours the VM stayed off
            hours = max(wall_h - _running_hours(running.get(entry.vm_uuid), entry.ts, stop), 0.0)
        else:
            hours = _running_hours(running.get(entry.vm_uuid), entry.ts, stop)
        delta = entry.price_before_per_hour - entry.price_after_per_hour
        out.append(RealisedSaving(
            vm_uuid=entry.vm_uuid,
            vm_name=entry.vm_name,
            plan_id=entry.plan_id,
            applied_at=entry.ts,
            ended_at=ended,
            price_before_per_hour=entry.price_before_per_hour,
            price_after_per_hour=entry.price_after_per_hour,
            hours=hours,
            saving=delta * hours,
            currency=entry.currency or currency,
        ))
    return sorted(out, key=lambda s: (s.applied_at, s.vm_name))


def _running_by_vm(hour_frame: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per VM UUID: (hour start ns, running hours 0..1) from an hourly rollup frame."""
    if hour_frame.empty:
        return {}
    ts_ns = epoch_ns(hour_frame["ts"])
    run_h = np.clip(np.nan_to_num(pd.to_numeric(hour_frame["running_s"], errors="coerce").to_numpy(
        dtype=float, na_value=np.nan)) / 3600.0, 0.0, 1.0)
    vm = hour_frame["vm"].astype(str).to_numpy()
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for uuid in np.unique(vm):
        mask = vm == uuid
        out[str(uuid)] = (ts_ns[mask], run_h[mask])
    return out


def _running_hours(rows: tuple[np.ndarray, np.ndarray] | None, start: datetime, stop: datetime) -> float:
    """Running hours in ``[start, stop)``; an hour cut by the span counts its running time pro rata."""
    if rows is None or stop <= start:
        return 0.0
    ts_ns, run_h = rows
    hour_ns = 3_600_000_000_000
    lo = np.maximum(ts_ns, utc_timestamp(start).value)
    hi = np.minimum(ts_ns + hour_ns, utc_timestamp(stop).value)
    overlap = np.clip((hi - lo) / hour_ns, 0.0, 1.0)
    return float(np.sum(run_h * overlap))


def realised_savings_for_store(store: TimeSeriesStore, now: datetime, *, currency: str = "") -> list[RealisedSaving]:
    """:func:`realised_savings` over the store's audit log, counting the running hours the store saw."""
    entries = store.audit()
    applied = [e.ts for e in entries if e.result == "applied"]
    if not applied:
        return []
    hours = store.frame(min(applied) - timedelta(hours=1), now, resolution="hour")
    return realised_savings(entries, now, currency=currency, hour_frame=hours)
