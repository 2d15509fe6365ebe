"""The savings headline: one definition, summed once from unrounded findings, named the same on every surface.

Kinds (``SAVING_KINDS``): ``resize`` (downsizes and other type changes that save), ``idle-stop`` (stopping an
idle VM saves its compute price), ``stopped-disks`` (what the disks of VMs stopped for longer than
``[rightsizing] stopped_after`` still cost: deleting them is a person's act) and ``schedule`` (hours off under a
proposed on/off schedule, priced after any resize so no hour counts twice). Upsizes (under-provisioned VMs,
resize regrets) cost money: ``upsize_monthly_cost``. Gross is the sum of the kinds; net is gross minus upsizes.
Excluded VMs count for nothing. Dismissed or postponed findings (``core.dismissals``) are left out of gross and
net and counted apart: ``dismissed`` (how many) and ``dismissed_monthly_savings`` (what they would save).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.dismissals import Dismissal


class Judged(Protocol):
    """What the headline reads of a finding (``VmFinding``, and a view that carries the same values)."""

    @property
    def finding(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def monthly_savings(self) -> float: ...
    @property
    def excluded(self) -> bool: ...
    @property
    def currency(self) -> str: ...
    @property
    def schedule_monthly_savings(self) -> float: ...
    @property
    def dismissed(self) -> Dismissal | None: ...

SAVING_KINDS: tuple[str, ...] = ("resize", "idle-stop", "stopped-disks", "schedule")
#: How each kind reads in a sentence ("... from resizes, ...").
KIND_TEXT: Mapping[str, str] = {
    "resize": "resizes", "idle-stop": "stopping idle VMs", "stopped-disks": "stopped VMs' disks",
    "schedule": "on/off schedules",
}


def saving_kind(f: Judged) -> str | None:
    """The headline kind of a finding's own saving (schedules are counted apart); None when it has none
    (dismissed findings have none: see :func:`dismissed_saving`)."""
    return None if f.dismissed is not None else _own_kind(f)


def _own_kind(f: Judged) -> str | None:
    if f.excluded:
        return None
    if f.finding == "stopped":
        return "stopped-disks" if f.monthly_savings > 0 else None
    if f.action == "stop":
        return "idle-stop"
    if f.action == "resize" and f.monthly_savings > 0:
        return "resize"
    if f.action == "resize" and f.monthly_savings < 0:
        return "upsize"
    return None


@dataclass(frozen=True, slots=True)
class Headline:
    """Monthly figures (720 h) of a set of findings, in ``currency``, unrounded."""

    currency: str
    vms: int
    counts: Mapping[str, int]
    actions: int  # findings a plan would act on (resize or stop)
    savings_by_kind: Mapping[str, float] = field(default_factory=dict)
    upsize_monthly_cost: float = 0.0
    vms_by_kind: Mapping[str, int] = field(default_factory=dict)
    dismissed: int = 0  # findings dismissed or postponed, left out of gross and net
    dismissed_monthly_savings: float = 0.0  # what they would have added to gross

    @property
    def gross_monthly_savings(self) -> float:
        return sum(self.savings_by_kind.values())

    @property
    def net_monthly_savings(self) -> float:
        return self.gross_monthly_savings - self.upsize_monthly_cost

    def as_json(self) -> dict[str, Any]:
        """The headline as every JSON surface writes it (money to 2 decimals, rounded once here)."""
        return {
            "currency": self.currency,
            "vms": self.vms,
            "findings": dict(sorted(self.counts.items())),
            "actions": self.actions,
            "savings_by_kind": {k: round(self.savings_by_kind.get(k, 0.0), 2) for k in SAVING_KINDS},
            "vms_by_kind": {k: self.vms_by_kind.get(k, 0) for k in (*SAVING_KINDS, "upsize")},
            "gross_monthly_savings": round(self.gross_monthly_savings, 2),
            "upsize_monthly_cost": round(self.upsize_monthly_cost, 2),
            "net_monthly_savings": round(self.net_monthly_savings, 2),
            "dismissed": self.dismissed,
            "dismissed_monthly_savings": round(self.dismissed_monthly_savings, 2),
            "hours_per_month": 720,
        }

    def lines(self) -> list[str]:
        """The headline in short lines for a terminal or a mail."""
        cur = self.currency
        plural = "" if self.vms == 1 else "s"
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        out = [f"{self.vms} VM{plural}: {counts}" if counts else f"{self.vms} VM{plural}"]
        for kind in SAVING_KINDS:
            n = self.vms_by_kind.get(kind, 0)
            if n:
                out.append(f"  {KIND_TEXT[kind]}: {self.savings_by_kind.get(kind, 0.0):,.2f} {cur}/month "
                           f"({n} VM{'' if n == 1 else 's'})")
        out.append(f"gross savings {self.gross_monthly_savings:,.2f} {cur}/month")
        if self.upsize_monthly_cost:
            n = self.vms_by_kind.get("upsize", 0)
            out.append(f"upsizes cost {self.upsize_monthly_cost:,.2f} {cur}/month ({n} VM{'' if n == 1 else 's'})")
        out.append(f"net savings {self.net_monthly_savings:,.2f} {cur}/month (720-hour month)")
        if self.dismissed:
            out.append(f"dismissed: {self.dismissed} finding{'' if self.dismissed == 1 else 's'}, "
                       f"{self.dismissed_monthly_savings:,.2f} {cur}/month left out")
        return out


def headline_of(findings: Iterable[Judged]) -> Headline:
    """Sum the findings' savings by kind, from their unrounded values."""
    counts: dict[str, int] = {}
    by_kind: dict[str, float] = {}
    vms_by_kind: dict[str, int] = {}
    upsize = dismissed_saving = 0.0
    actions = vms = dismissed = 0
    currency = ""
    for f in findings:
        vms += 1
        currency = currency or f.currency
        counts[str(f.finding)] = counts.get(str(f.finding), 0) + 1
        if f.dismissed is not None:
            dismissed += 1
            dismissed_saving += would_save(f)
            continue
        actions += f.action in ("resize", "stop") and not f.excluded
        kind = saving_kind(f)
        if kind == "upsize":
            upsize -= f.monthly_savings
        elif kind is not None:
            by_kind[kind] = by_kind.get(kind, 0.0) + f.monthly_savings
        if kind is not None:
            vms_by_kind[kind] = vms_by_kind.get(kind, 0) + 1
        if f.schedule_monthly_savings:
            by_kind["schedule"] = by_kind.get("schedule", 0.0) + f.schedule_monthly_savings
            vms_by_kind["schedule"] = vms_by_kind.get("schedule", 0) + 1
    return Headline(currency=currency, vms=vms, counts=counts, actions=actions, savings_by_kind=by_kind,
                    upsize_monthly_cost=upsize, vms_by_kind=vms_by_kind, dismissed=dismissed,
                    dismissed_monthly_savings=dismissed_saving)


def headline_saving(f: Judged) -> float:
    """What one finding adds to the gross headline: its own saving by kind (never an upsize) plus its schedule's."""
    return 0.0 if f.dismissed is not None else would_save(f)


def would_save(f: Judged) -> float:
    """:func:`headline_saving` as if the finding were not dismissed (what a dismissal leaves out)."""
    kind = _own_kind(f)
    own = f.monthly_savings if kind not in (None, "upsize") else 0.0
    return own + f.schedule_monthly_savings
