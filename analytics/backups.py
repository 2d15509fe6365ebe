"""Backup age against policy: is each VM's newest snapshot or backup older than its policy allows?

The policy comes from the VM's ``backup_policy`` label ("24h", "7d", "1d12h", "P1D", or "none" for no
backups required); without the label, ``env=prod`` VMs get ``BackupSettings.prod_policy`` and all others
``default_policy``. A label we cannot parse is reported as an invalid policy label, and the VM is still
checked against the policy it would have without the label so that it is not silently dropped.

Urgency (none < low < medium < high < critical):

* within policy: ``none``; overdue by less than one policy period: ``medium``; by one period or more,
  or never backed up: ``high``.
* ``unknown`` (urgency ``none``): no backup found and no source that could show one exists for the VM
  (history imported from a trace, ``NO_BACKUP_SOURCE``); saying "never backed up" would be a guess.
* Heavy churn raises it one step (an in-policy VM becomes ``low``): more than ``HEAVY_CHURN_SHARE`` of
  the VM's disk capacity written since its newest backup (or within the data we hold, when it has never
  been backed up) -- that much data would be lost or would make the next backup large. The rule is ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from analytics.fleet import format_duration
from analytics.frames import appearance_codes, epoch_ns, numeric_column
from collector.errors import InputError
from collector.model import VmRecord
from core.durations import parse_duration
from core.settings import BackupSettings

BACKUP_POLICY_LABEL = "backup_policy"
NO_POLICY = frozenset({"none", "off", "never", "no", "false", "disabled"})
#: Share of disk capacity written since the newest backup that counts as heavy churn.
HEAVY_CHURN_SHARE = 0.25
URGENCY_LEVELS: tuple[str, ...] = ("none", "low", "medium", "high", "critical")

#: Where a VM's history came from when nothing can tell its backups (trace imports hold no snapshots).
NO_BACKUP_SOURCE = frozenset({"import"})

BackupStatus = Literal["ok", "overdue", "never", "unknown", "not-required", "invalid-policy"]
PolicySource = Literal["label", "env=prod", "default"]


@dataclass(frozen=True, slots=True)
class BackupFinding:
    """One VM's backup state: newest backup, its age, the policy, how overdue and how urgent."""

    vm_uuid: str
    vm_name: str
    newest: datetime | None
    age_s: float | None
    policy: str  # the policy text applied, e.g. "24h" or "none"
    policy_source: PolicySource
    max_age_s: float | None  # None when no backup is required
    overdue_by_s: float | None  # 0 within policy; None when never backed up or not required
    status: BackupStatus
    urgency: str
    written_since_bytes: float | None  # disk bytes written since the newest backup (within the data held)
    disk_capacity_bytes: float | None
    reason: str

    @property
    def is_overdue(self) -> bool:
        if self.status == "unknown":
            return False
        return self.max_age_s is not None and (self.newest is None or (self.overdue_by_s or 0.0) > 0)


def policy_for(vm: VmRecord, settings: BackupSettings) -> tuple[str, PolicySource, str | None]:
    """Return the policy text, where it came from, and an error text when the VM's label was unusable."""
    fallback, source = (
        (settings.prod_policy, "env=prod")
        if (vm.labels or {}).get("env", "").strip().lower() == "prod"
        else (settings.default_policy, "default")
    )
    label = (vm.labels or {}).get(BACKUP_POLICY_LABEL)
    if label is None or not label.strip():
        return fallback, source, None  # type: ignore[return-value]
    if label.strip().lower() in NO_POLICY:
        return label.strip().lower(), "label", None
    try:
        parse_duration(label)
    except InputError:
        return fallback, source, (  # type: ignore[return-value]
            f"invalid policy label backup_policy={label!r} (use e.g. '24h', '7d' or 'none'); "
            f"checked against the {source} policy {fallback!r} instead"
        )
    return label.strip(), "label", None


def check_backups(
    vms: Sequence[VmRecord],
    newest: Mapping[str, datetime],
    settings: BackupSettings,
    now: datetime,
    *,
    hour_frame: pd.DataFrame | None = None,
) -> list[BackupFinding]:
    """Judge every VM's newest backup (``store.backups()``, else ``VmRecord.newest_backup``) at ``now`` (UTC).

    ``hour_frame`` (optional, hourly rollups) supplies disk bytes written for the churn rule.
    Never raises on bad labels; a bad *settings* policy raises InputError naming it.
    """
    for key, text in (("default_policy", settings.default_policy), ("prod_policy", settings.prod_policy)):
        if text.strip().lower() not in NO_POLICY:
            try:
                parse_duration(text)
            except InputError as exc:
                raise InputError(f"[backups] {key} = {text!r} is not a duration; use e.g. '24h' or '7d'") from exc
    written, capacity = _churn(hour_frame, newest, vms)
    findings = [
        _judge(vm, newest.get(vm.uuid) or vm.newest_backup, settings, now, written.get(vm.uuid),
               capacity.get(vm.uuid))
        for vm in vms
    ]
    rank = {u: i for i, u in enumerate(URGENCY_LEVELS)}
    return sorted(findings, key=lambda f: (-rank[f.urgency], -(f.overdue_by_s or 0.0), f.vm_name))


def _churn(
    hour_frame: pd.DataFrame | None, newest: Mapping[str, datetime], vms: Sequence[VmRecord]
) -> tuple[dict[str, float], dict[str, float]]:
    """Bytes written since each VM's newest backup, and its newest known disk capacity.

    Works on integer VM codes and epoch nanoseconds (no per-row strings or timestamps): linear in the rows.
    """
    if hour_frame is None or hour_frame.empty or "disk_write_bytes" not in hour_frame.columns:
        return {}, {}
    codes, names = appearance_codes(hour_frame["vm"])
    ts_ns = epoch_ns(hour_frame["ts"])
    written = numeric_column(hour_frame, "disk_write_bytes")
    since = {vm.uuid: newest.get(vm.uuid) or vm.newest_backup for vm in vms}
    none = np.iinfo(np.int64).max
    cutoff = np.array([_epoch_ns(since.get(name)) for name in names], dtype=np.int64)
    # an hour whose start precedes the backup still counts: its writes may be after it (conservative)
    row_cutoff = cutoff[codes] if len(cutoff) else np.full(len(codes), none)
    after = ((row_cutoff == none) | (ts_ns + _HOUR_NS > row_cutoff)) & (codes >= 0)
    sums = pd.Series(written[after]).groupby(codes[after]).sum(min_count=1).dropna()
    capacity = numeric_column(hour_frame, "disk_capacity_bytes")
    known = np.flatnonzero(~np.isnan(capacity) & (codes >= 0))
    newest_row = pd.Series(ts_ns[known]).groupby(codes[known]).idxmax()  # the newest known capacity's row
    return ({names[int(c)]: float(v) for c, v in sums.items()},
            {names[int(c)]: float(capacity[known[int(i)]]) for c, i in newest_row.items()})


_HOUR_NS = 3_600_000_000_000


def _epoch_ns(ts: datetime | None) -> int:
    """Epoch nanoseconds of ``ts`` (naive: UTC); None (no backup) is the largest int64."""
    if ts is None:
        return int(np.iinfo(np.int64).max)
    stamp = pd.Timestamp(ts)
    return int((stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).value)


def _bump(urgency: str) -> str:
    i = URGENCY_LEVELS.index(urgency)
    return URGENCY_LEVELS[min(i + 1, len(URGENCY_LEVELS) - 1)]


def _judge(
    vm: VmRecord,
    newest: datetime | None,
    settings: BackupSettings,
    now: datetime,
    written: float | None,
    capacity: float | None,
) -> BackupFinding:
    policy, source, label_error = policy_for(vm, settings)
    age = (now - newest) if newest is not None else None
    max_age_s: float | None = None
    overdue_s: float | None = None
    status: BackupStatus
    if policy.lower() in NO_POLICY:
        status, urgency = "not-required", "none"
        text = f"backup_policy={policy!r}: no backups required"
    else:
        max_age = parse_duration(policy)
        max_age_s = max_age.total_seconds()
        if age is None and vm.source in NO_BACKUP_SOURCE:
            status, urgency = "unknown", "none"
            text = (f"backups unknown: this VM's history was imported ({vm.source}) and holds no snapshots or "
                    f"backups; policy {policy} ({source})")
        elif age is None:
            status, urgency = "never", "high"
            text = f"no backup or snapshot found; policy {policy} ({source})"
        else:
            overdue = age - max_age
            overdue_s = max(overdue.total_seconds(), 0.0)
            if overdue <= timedelta(0):
                status, urgency = "ok", "none"
                text = f"newest backup {format_duration(age)} old, within policy {policy} ({source})"
            else:
                status = "overdue"
                urgency = "medium" if overdue < max_age else "high"
                text = (
                    f"newest backup {format_duration(age)} old, overdue by {format_duration(overdue)} "
                    f"against policy {policy} ({source})"
                )
        if status != "unknown" and written is not None and capacity and written > HEAVY_CHURN_SHARE * capacity:
            urgency = _bump(urgency)
            text += f"; {written / capacity:.0%} of disk capacity written since (heavy churn raises urgency)"
    if label_error is not None:
        status = "invalid-policy"
        text = f"{label_error}: {text}"
    return BackupFinding(
        vm_uuid=vm.uuid,
        vm_name=vm.name,
        newest=newest,
        age_s=age.total_seconds() if age is not None else None,
        policy=policy,
        policy_source=source,
        max_age_s=max_age_s,
        overdue_by_s=overdue_s,
        status=status,
        urgency=urgency,
        written_since_bytes=written,
        disk_capacity_bytes=capacity,
        reason=text,
    )
