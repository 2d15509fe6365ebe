"""The finding: one VM's verdict with everything a surface shows. Defined once; every surface formats it.

Prices are per hour in the finding's currency; monthly figures use 720 hours (``core.units.HOURS_PER_MONTH``).
``savings_pct`` is the monthly saving as a share of the VM's compute price per month now (its machine type's
price; for a stopped VM, of what its disks cost), the one base every surface states.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analytics.findings.lifecycle import StoppedVm
from analytics.findings.projection import Projection
from analytics.findings.regret import Regret
from analytics.findings.risk import RiskLevel
from analytics.idle import IdleFinding
from analytics.rightsizing.base import Finding, Recommendation
from analytics.schedules import ScheduleProposal
from analytics.storage import StorageAdvice
from core.dismissals import Dismissal
from core.identity import VmRef
from core.plan import RESIZE_FINDINGS, ResizeStep, SizeSpec
from core.units import GIB, HOURS_PER_MONTH


@dataclass(frozen=True, slots=True)
class VmFinding:
    """One VM's right-sizing verdict with everything a report, dashboard or resize plan needs.

    Prices are per hour in ``currency``; ``monthly_savings`` uses 720 h per month and is 0 when the VM is
    excluded or no change is advised. ``target_*`` are the recommended type's capacity, ``need_*`` what
    the strategy computed.
    """

    uuid: str
    name: str
    uri: str
    host: str
    strategy: str
    finding: Finding
    current_type: str | None
    current_type_source: str
    current_vcpus: int
    current_memory_bytes: int
    need_vcpus: float | None
    need_memory_bytes: int | None
    target_type: str | None
    target_vcpus: int | None
    target_memory_bytes: int | None
    price_before_per_hour: float | None
    price_after_per_hour: float | None
    currency: str
    monthly_savings: float
    risk: RiskLevel
    excluded: bool
    reasons: Mapping[str, str]
    options: tuple[Mapping[str, Any], ...]
    recommendation: Recommendation = field(repr=False, compare=False)
    idle: IdleFinding | None = field(default=None, repr=False, compare=False)
    action: str = "none"  # resize | stop | none (what a plan would do; deleting is never planned)
    savings_pct: float = 0.0  # monthly_savings as a share of what the VM costs now, percent
    risk_reasons: tuple[str, ...] = ()
    need_cpu_statistic: str = ""
    need_memory_statistic: str = ""
    #: each dimension's headroom in words and why (:func:`analytics.findings.headroom.headroom_text`)
    need_headroom: str = ""
    projection: Projection | None = field(default=None, repr=False, compare=False)
    stopped: StoppedVm | None = field(default=None, repr=False, compare=False)
    regret: Regret | None = field(default=None, repr=False, compare=False)
    pattern: str = "unknown"
    schedule: ScheduleProposal | None = None
    storage: StorageAdvice | None = None  # volume class and capacity advice (all disks together)
    #: At its type's size, with a persistent maximum memory an older downsize left above it: the plan gets a
    #: step to the same size that only lowers ``<memory>`` (effective at next restart).
    lowers_max_memory: bool = False
    #: Dismissed or postponed by a person (``core.dismissals``): left out of the headline and of plans.
    dismissed: Dismissal | None = None

    @property
    def is_actionable(self) -> bool:
        """True when a plan has a step for this VM (a resize, or a stop)."""
        return self.action in ("resize", "stop") and not self.excluded and self.dismissed is None

    @property
    def combined_monthly_savings(self) -> float:
        """The resize's saving plus the schedule's (priced after the resize, so no hour counts twice)."""
        resize = self.monthly_savings if self.changes_type else 0.0
        return resize + (self.schedule.monthly_savings if self.schedule is not None else 0.0)

    @property
    def schedule_monthly_savings(self) -> float:
        """The proposed schedule's saving (0 without one, or when the VM is excluded)."""
        return self.schedule.monthly_savings if self.schedule is not None and not self.excluded else 0.0

    @property
    def changes_type(self) -> bool:
        return (not self.excluded and self.target_type is not None and self.current_type is not None
                and self.target_type != self.current_type)

    def row(self) -> dict[str, Any]:
        """Flat row for table/CSV output."""
        return {
            "name": self.name,
            "finding": self.finding.value,
            "current_type": self.current_type,
            "type_source": self.current_type_source,
            "vcpus": self.current_vcpus,
            "memory_gib": round(self.current_memory_bytes / GIB, 2),
            "need_vcpus": None if self.need_vcpus is None else round(self.need_vcpus, 3),
            "need_memory_gib": None if self.need_memory_bytes is None else round(self.need_memory_bytes / GIB, 2),
            "target_type": self.target_type,
            "price_before_per_hour": self.price_before_per_hour,
            "price_after_per_hour": self.price_after_per_hour,
            "monthly_savings": round(self.monthly_savings, 2),
            "savings_pct": round(self.savings_pct, 1),
            "currency": self.currency,
            "action": self.action,
            "risk": self.risk.value,
            "excluded": self.excluded,
            "reason": self.reasons.get("overall", ""),
            "pattern": self.pattern,
            "schedule": self.schedule.on if self.schedule is not None else "",
            "schedule_savings": round(self.schedule.monthly_savings, 2) if self.schedule is not None else 0.0,
            "storage_class": self.storage.recommended_class if self.storage is not None else "",
            "storage_savings": round(self.storage.monthly_savings, 2) if self.storage is not None else 0.0,
            "uuid": self.uuid,
        }

    def csv_row(self) -> dict[str, Any]:
        """The one CSV schema of findings (``FINDING_CSV_COLUMNS``): the dashboard's export, the report's
        findings.csv and ``recommend --output csv``. ``need_*`` is what the strategy computed, ``target_*``
        the recommended type's size."""
        s = self.schedule
        st = self.storage
        return {
            "name": self.name, "uuid": self.uuid, "host": self.host, "finding": self.finding.value,
            "action": self.action, "excluded": self.excluded, "current_type": self.current_type or "",
            "current_vcpus": self.current_vcpus, "current_memory_gib": round(self.current_memory_bytes / GIB, 3),
            "need_vcpus": None if self.need_vcpus is None else round(self.need_vcpus, 3),
            "need_memory_gib": None if self.need_memory_bytes is None else round(self.need_memory_bytes / GIB, 3),
            "need_headroom": self.need_headroom,
            "target_type": self.target_type or "", "target_vcpus": self.target_vcpus,
            "target_memory_gib": None if self.target_memory_bytes is None else round(self.target_memory_bytes / GIB, 3),
            "price_before_per_hour": self.price_before_per_hour, "price_after_per_hour": self.price_after_per_hour,
            "monthly_savings": round(self.monthly_savings, 2), "savings_pct": round(self.savings_pct, 1),
            "currency": self.currency, "risk": self.risk.value, "pattern": self.pattern,
            "schedule": s.on if s is not None else "", "schedule_timezone": s.timezone if s is not None else "",
            "schedule_monthly_savings": round(s.monthly_savings, 2) if s is not None else 0.0,
            "storage_class": st.current_class if st is not None else "",
            "storage_recommended_class": st.recommended_class if st is not None else "",
            "storage_monthly_savings": round(st.monthly_savings, 2) if st is not None else 0.0,
            "reason": self.reasons.get("overall", ""),
        }

    def resize_step(self, default_uri: str = "") -> ResizeStep | None:
        """The resize this finding proposes as the plan's own value type; None when it proposes none.

        Only findings whose action is a resize (over-/under-provisioned, resize-regret), not excluded,
        whose target size differs get a step; and a VM whose persistent maximum memory is left above its
        type's memory gets a step to the size it has, which lowers only that maximum. The VM's URI is
        ``default_uri`` when the store recorded none.
        """
        if self.dismissed is not None:
            return None
        if self.lowers_max_memory and self.current_type and not self.excluded:
            size = SizeSpec(self.current_vcpus, self.current_memory_bytes, self.current_type)
            return ResizeStep(vm=VmRef(uri=self.uri or default_uri, uuid=self.uuid, name=self.name), current=size,
                              target=size, price_before_per_hour=self.price_before_per_hour,
                              price_after_per_hour=self.price_before_per_hour, currency=self.currency,
                              finding=self.finding.value)
        if (self.action != "resize" or self.finding.value not in RESIZE_FINDINGS or self.excluded
                or self.target_vcpus is None or self.target_memory_bytes is None):
            return None
        if self.target_vcpus == self.current_vcpus and self.target_memory_bytes == self.current_memory_bytes:
            return None
        return ResizeStep(
            vm=VmRef(uri=self.uri or default_uri, uuid=self.uuid, name=self.name),
            current=SizeSpec(self.current_vcpus, self.current_memory_bytes, self.current_type or ""),
            target=SizeSpec(self.target_vcpus, self.target_memory_bytes, self.target_type or ""),
            price_before_per_hour=self.price_before_per_hour,
            price_after_per_hour=self.price_after_per_hour,
            currency=self.currency,
            finding=self.finding.value,
        )

    def plan_entry(self) -> dict[str, Any]:
        """JSON object for a resize plan: identity, before, after, prices, finding and reasons."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "uri": self.uri,
            "host": self.host,
            "finding": self.finding.value,
            "strategy": self.strategy,
            "excluded": self.excluded,
            "current": {
                "machine_type": self.current_type,
                "type_source": self.current_type_source,
                "vcpus": self.current_vcpus,
                "memory_bytes": self.current_memory_bytes,
            },
            "target": {
                "machine_type": self.target_type,
                "vcpus": self.target_vcpus,
                "memory_bytes": self.target_memory_bytes,
            },
            "need": {"vcpus": self.need_vcpus, "memory_bytes": self.need_memory_bytes,
                     "cpu_statistic": self.need_cpu_statistic, "memory_statistic": self.need_memory_statistic,
                     "headroom": self.need_headroom},
            "action": self.action,
            "price_before_per_hour": self.price_before_per_hour,
            "price_after_per_hour": self.price_after_per_hour,
            "currency": self.currency,
            "monthly_savings": round(self.monthly_savings, 4),
            "savings_pct": round(self.savings_pct, 2),
            "hours_per_month": HOURS_PER_MONTH,
            "risk": self.risk.value,
            "risk_reasons": list(self.risk_reasons),
            "projected": None if self.projection is None else {
                "hours": self.projection.hours,
                "hours_cpu_over_100_pct": self.projection.hours_cpu_over,
                "hours_memory_over_90_pct": self.projection.hours_memory_over,
            },
            "reasons": dict(self.reasons),
            "options": list(self.options),
            "pattern": self.pattern,
            "storage": self.storage.as_json() if self.storage is not None else None,
            "lowers_max_memory": self.lowers_max_memory,
            "schedule": self.schedule.as_json() if self.schedule else None,  # null when none is proposed
            "dismissed": None if self.dismissed is None else {
                "kind": self.dismissed.kind, "reason": self.dismissed.reason, "by": self.dismissed.actor,
                "at": self.dismissed.at.isoformat(),
                "until": None if self.dismissed.until is None else self.dismissed.until.isoformat()},
            **({"combined_monthly_savings": round(self.combined_monthly_savings, 4)} if self.schedule else {}),
        }


#: Columns of :meth:`VmFinding.csv_row`, in order.
FINDING_CSV_COLUMNS: tuple[str, ...] = (
    "name", "uuid", "host", "finding", "action", "excluded", "current_type", "current_vcpus", "current_memory_gib",
    "need_vcpus", "need_memory_gib", "need_headroom", "target_type", "target_vcpus", "target_memory_gib",
    "price_before_per_hour", "price_after_per_hour", "monthly_savings", "savings_pct", "currency", "risk", "pattern",
    "schedule", "schedule_timezone", "schedule_monthly_savings", "storage_class", "storage_recommended_class",
    "storage_monthly_savings", "reason",
)
