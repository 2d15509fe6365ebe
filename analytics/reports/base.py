"""The report's values and the formatter registry: formatters turn one ``Report`` into one file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from analytics.backups import BackupFinding
from analytics.cost_summary import FLATTEN, CostSummary, GroupCost
from analytics.findings.headline import Headline
from analytics.idle import IdleFinding
from analytics.realised import RealisedSaving

if TYPE_CHECKING:
    from analytics.findings.finding import VmFinding
    from analytics.own_frontier import OwnFrontier

#: Field metadata: ``to_plain`` leaves the field out (the report's findings go to findings.csv, not report.json).
SKIP = "skip"


@dataclass(frozen=True, slots=True)
class VmReportRow:
    """Everything the report says about one VM, flat (one CSV row)."""

    vm_uuid: str
    name: str
    host: str
    labels: Mapping[str, str]
    machine_type: str | None
    type_source: str
    price_per_hour: float | None
    running_hours: float
    cost: float
    vcpus: int
    memory_bytes: int
    cpu_p95_vcpus: float | None  # 95th percentile of the hourly P95 CPU in the window
    memory_used_max_bytes: float | None
    finding: str | None = None  # right-sizing finding, when recommendations ran
    recommended_type: str | None = None
    monthly_savings: float | None = None
    risk: str | None = None  # very-low .. very-high (analytics.findings.risk)
    savings_pct: float | None = None
    cpu_need_vcpus: float | None = None  # the strategy's CPU need, named by cpu_need_statistic
    cpu_need_statistic: str = ""
    recommendation_reason: str = ""
    pattern: str = "unknown"
    schedule: Mapping[str, Any] | None = None  # the proposed on/off schedule (as in recommend --output json)
    schedule_monthly_savings: float = 0.0
    idle_status: str | None = None
    backup_status: str | None = None
    backup_urgency: str | None = None
    backup_reason: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """One fleet report: window, costs, per-VM rows and the idle and backup findings."""

    generated_at: datetime
    window_start: datetime
    window_end: datetime
    currency: str
    stopped_vm_billing: str
    strategy: str | None  # None when no recommendations were made
    costs: CostSummary
    label_key: str | None  # the label spend is grouped by in the "by label" chart
    spend_by_label: tuple[GroupCost, ...]
    spend_by_host: tuple[GroupCost, ...]
    vms: tuple[VmReportRow, ...]
    idle: tuple[IdleFinding, ...]
    backups: tuple[BackupFinding, ...]
    realised_savings: tuple[RealisedSaving, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    frontier: OwnFrontier | None = None  # savings vs risk of the stored lookback (None: not computed)
    findings: tuple[VmFinding, ...] = field(default=(), repr=False, metadata={SKIP: True})
    headline: Headline | None = None

    @property
    def total_monthly_savings(self) -> float:
        """The headline's gross savings (resizes, idle stops, stopped VMs' disks, schedules)."""
        return self.headline.gross_monthly_savings if self.headline is not None else 0.0


class ReportFormatter(Protocol):
    """Renders a report as the text of one file named ``filename``."""

    name: str
    filename: str

    def render(self, report: Report) -> str: ...


FORMATTERS: dict[str, ReportFormatter] = {}


def register(formatter: ReportFormatter) -> ReportFormatter:
    """Add a formatter under its ``name``; raises ValueError if the name is taken by another."""
    existing = FORMATTERS.get(formatter.name)
    if existing is not None and existing is not formatter:
        raise ValueError(f"Report formatter {formatter.name!r} is already registered; pick another name")
    FORMATTERS[formatter.name] = formatter
    return formatter


def to_plain(value: Any) -> Any:
    """Convert report values (dataclasses, datetimes, mappings, tuples) to JSON-compatible data."""
    import dataclasses
    import math

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        if isinstance(value, Headline):
            return value.as_json()
        for f in dataclasses.fields(value):
            if f.metadata.get(SKIP):
                continue
            plain = to_plain(getattr(value, f.name))
            if f.metadata.get(FLATTEN) and isinstance(plain, dict):  # a nested value's fields, in its place
                out.update(plain)
            else:
                out[f.name] = plain
        return out
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value
