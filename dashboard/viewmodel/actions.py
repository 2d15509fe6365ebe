"""The Overview's "what to do first": the VMs with the largest savings (the headline's per-VM share, as the
digest ranks them), each with its kinds and risk, then the backups that need attention; and spend by label."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analytics.findings.headline import headline_saving, saving_kind
from analytics.reports import choose_label_key
from dashboard.views import Filters, FindingView, storage_class_text

if TYPE_CHECKING:
    from dashboard.data import DashboardData

#: How many VMs the top-actions list shows, and how many backups after them.
TOP_ACTIONS = 10
TOP_BACKUPS = 5
#: A headline kind as the list names it.
KIND_WORDS: Mapping[str, str] = {"resize": "resize", "idle-stop": "stop", "stopped-disks": "stopped disks",
                                 "schedule": "schedule"}
#: Backup states that call for a person.
_BACKUP_ATTENTION = ("overdue", "never", "invalid-policy")


@dataclass(frozen=True, slots=True)
class ActionRow:
    """One line of the top-actions list; ``saving`` per month in the page's currency (0 for a backup)."""

    uuid: str
    name: str
    kinds: tuple[str, ...]  # resize, stop, stopped disks, schedule, storage, backup
    saving: float  # what the VM adds to the headline's gross savings (analytics.findings.headline)
    risk: str
    what: str
    storage_saving: float = 0.0  # storage advice (class, capacity), apart from the headline

    @property
    def kind_text(self) -> str:
        return " + ".join(self.kinds)


def top_actions(data: DashboardData, filters: Filters, lookback: int | None = None) -> list[ActionRow]:
    """The selected VMs' actions, biggest saving first (ties by name), then backups needing attention."""
    snap = data.snapshot()
    days = data.lookback_days(lookback)
    return data.memo(snap, ("top-actions", filters.labels, filters.hosts, days),
                     lambda: _top_actions(data, filters, days))


def _top_actions(data: DashboardData, filters: Filters, days: int) -> list[ActionRow]:
    snap = data.snapshot()
    findings = data.findings_for(snap, days)
    selected = data.selected(snap, filters)
    rows = [row for uuid in selected if uuid in findings
            for row in [_saving_row(snap.by_uuid[uuid].name, findings[uuid], data.currency)] if row is not None]
    rows.sort(key=lambda r: (-r.saving, -r.storage_saving, r.name))
    backups = sorted((b for u in selected if (b := snap.backups.get(u)) is not None and b.status in _BACKUP_ATTENTION),
                     key=lambda b: (-(b.age_h or float("inf")), snap.by_uuid[b.vm_uuid].name))
    return rows[:TOP_ACTIONS] + [
        ActionRow(b.vm_uuid, snap.by_uuid[b.vm_uuid].name, ("backup",), 0.0, b.urgency,
                  b.detail or f"backup {b.status} (policy {b.policy})") for b in backups[:TOP_BACKUPS]]


def _saving_row(name: str, f: FindingView, currency: str) -> ActionRow | None:
    """The VM's saving (headline share plus storage advice), or None when it saves nothing."""
    kind = saving_kind(f)
    saving = headline_saving(f)
    kinds: list[str] = []
    what: list[str] = []
    risk = f.risk
    if kind in ("resize", "idle-stop", "stopped-disks"):
        kinds.append(KIND_WORDS[kind])
        what.append(_own_text(f, kind, currency))
    if f.schedule_monthly_savings > 0:
        kinds.append("schedule")
        what.append(f"run {f.schedule} ({f.schedule_monthly_savings:,.2f} {currency}/month)")
        if not kinds[:-1]:
            risk = f.schedule_risk or f.risk
    storage = f.storage
    saving_storage = 0.0
    if storage is not None and storage.is_change and not f.excluded:
        kinds.append("storage")
        saving_storage = storage.monthly_savings
        what.append(f"disks {storage_class_text(storage.current_class)} -> "
                    f"{storage_class_text(storage.recommended_class)} ({saving_storage:,.2f} {currency}/month)")
        if saving <= 0:
            risk = "low"
    if saving <= 0 and saving_storage <= 0:
        return None
    return ActionRow(f.vm_uuid, name, tuple(kinds), saving, risk, "; ".join(what), saving_storage)


def _own_text(f: FindingView, kind: str, currency: str) -> str:
    amount = f"{f.monthly_savings:,.2f} {currency}/month"
    if kind == "resize":
        return f"resize {f.current_type or '?'} -> {f.recommended_type or '?'} ({amount})"
    if kind == "idle-stop":
        return f"stop the idle VM ({amount})"
    return f"delete or archive the stopped VM's disks ({amount})"


def spend_by_label(data: DashboardData, filters: Filters) -> tuple[str | None, dict[str, float]]:
    """The label key spend is charted by (as the report chooses it: team, project, env, else the first other)
    and each value's spend over the filters' range; VMs without the label count as "(none)"."""
    snap = data.snapshot()

    def compute() -> tuple[str | None, dict[str, float]]:
        from dashboard.viewmodel.vms import vm_rows

        key = choose_label_key(list(snap.vms))
        if key is None:
            return None, {}
        spend: dict[str, float] = {}
        for row in vm_rows(data, filters):
            value = (snap.by_uuid[row["id"]].labels.get(key) or "").strip() or "(none)"
            spend[value] = spend.get(value, 0.0) + (row["range_cost"] or 0.0)
        return key, dict(sorted(spend.items(), key=lambda kv: (-kv[1], kv[0])))

    return data.memo(snap, ("spend-by-label", filters), compute)
