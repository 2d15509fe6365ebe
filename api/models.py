"""The API's own types: query and body models (validated input) and response models (the documented shapes).

The OpenAPI document is generated from these models (``api.openapi``); handlers validate every
request against them, so the document and the behaviour cannot drift apart. Field names of findings,
plans and results are those of ``rightsizer recommend --output json`` and ``rightsizer apply --output json``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from analytics.rightsizing.settings import STRATEGY_NAMES

T = TypeVar("T")
StrategyName = Literal[STRATEGY_NAMES]  # type: ignore[valid-type]
Profile = Literal["conservative", "balanced", "aggressive"]
LabelPair = Annotated[str, StringConstraints(pattern=r"^[^=]+=", max_length=200)]
#: ISO 8601 date or date-time, or a duration back from the other end of the window (7d, 24h, 90m).
WHEN_PATTERN = (r"^([0-9]{1,5}[smhdw]|[0-9]{4}-[0-9]{2}-[0-9]{2}"
                r"([T ][0-9]{2}(:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?)$")


# ------------------------------------------------------------------------------------------- input
class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=200)


class PageQuery(_Query):
    limit: int = Field(default=100, ge=1, le=1000, description="items per page")
    offset: int = Field(default=0, ge=0, le=10**9, description="items to skip")


class SelectQuery(PageQuery):
    host: list[str] = Field(default_factory=list, description="only VMs on these hosts (repeatable)")
    label: list[LabelPair] = Field(default_factory=list, description="only VMs with these key=value labels "
                             "(repeatable; OR within a key, AND across keys)")


class VmsQuery(SelectQuery):
    pass


class BackupsQuery(SelectQuery):
    pass


class FindingsQuery(SelectQuery):
    lookback_days: float | None = Field(default=None, ge=1, le=93, allow_inf_nan=False,
                                        description="days of history to judge (default: [rightsizing])")
    profile: Profile | None = Field(default=None, description="our strategy's profile (default: [rightsizing])")
    strategy: StrategyName | None = Field(default=None, description="strategy (default: [rightsizing])")
    finding: list[str] = Field(default_factory=list, description="only these findings (repeatable)")


class CostsQuery(_Query):
    since: str | None = Field(default=None, pattern=WHEN_PATTERN,
                              description="window start: ISO date/time or a duration before until (default: "
                                          "[costs] window_days, 14d, as `rightsizer costs`, the dashboard and "
                                          "the report)")
    until: str | None = Field(default=None, pattern=WHEN_PATTERN,
                              description="window end: ISO date/time or a duration before now (default: now, "
                                          "or the newest data)")
    group_by: str = Field(default="host", description="host, machine_type, vm or a label key")


class AuditQuery(PageQuery):
    vm: str | None = Field(default=None, description="only this VM (UUID or name)")


class PlanCreate(BaseModel):
    """Which findings become the plan: the filters narrow the fleet, ``vms`` names VMs (UUID or name)."""

    model_config = ConfigDict(extra="forbid", str_max_length=200)
    vms: list[str] = Field(default_factory=list, max_length=1000, description="only these VMs (UUID or name)")
    host: list[str] = Field(default_factory=list, max_length=1000, description="only VMs on these hosts")
    label: list[LabelPair] = Field(default_factory=list, max_length=1000, description="key=value labels")
    lookback_days: float | None = Field(default=None, ge=1, le=93, allow_inf_nan=False)
    profile: Profile | None = None
    strategy: StrategyName | None = None


class EmptyBody(BaseModel):
    """Dry runs and applies take no options; an empty JSON object (or no body) is expected."""

    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------ output
class Page(BaseModel, Generic[T]):
    """One page of a list; ``next`` is the path of the next page, null on the last."""

    items: list[T]
    total: int = Field(ge=0)
    limit: int = Field(ge=1)
    offset: int = Field(ge=0)
    next: str | None = None


class Vm(BaseModel):
    uuid: str
    name: str
    uri: str
    host: str
    state: str
    vcpus: int
    max_vcpus: int
    memory_bytes: int
    max_memory_bytes: int
    labels: dict[str, str]
    source: str
    first_seen: datetime
    last_seen: datetime


class SizeOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    machine_type: str | None = None
    vcpus: int | None = None
    memory_bytes: int | None = None


class CurrentSize(SizeOut):
    type_source: str


class NeedOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    vcpus: float | None = None
    memory_bytes: int | None = None
    cpu_statistic: str = ""
    memory_statistic: str = ""
    headroom: str = Field("", description="each dimension's headroom in words and why (\"\" without a need)")


class FindingOut(BaseModel):
    """One VM's finding, as one element of ``rightsizer recommend --output json`` (later fields kept)."""

    model_config = ConfigDict(extra="allow")

    uuid: str
    name: str
    uri: str
    host: str
    finding: str
    strategy: str
    excluded: bool
    current: CurrentSize
    target: SizeOut
    need: NeedOut
    price_before_per_hour: float | None
    price_after_per_hour: float | None
    currency: str
    monthly_savings: float
    risk: Any
    reasons: dict[str, Any]
    options: list[dict[str, Any]]
    savings_pct: float
    pattern: str
    storage: dict[str, Any] | None
    schedule: dict[str, Any] | None = None


class Summary(BaseModel):
    """The savings headline of the selected VMs' findings: one definition on every surface (720-hour month)."""

    currency: str
    vms: int
    findings: dict[str, int]
    actions: int
    savings_by_kind: dict[str, float] = Field(description="resize, idle-stop, stopped-disks, schedule")
    vms_by_kind: dict[str, int]
    gross_monthly_savings: float
    upsize_monthly_cost: float
    net_monthly_savings: float
    dismissed: int = Field(default=0, description="findings dismissed or postponed, left out of gross and net")
    dismissed_monthly_savings: float = Field(default=0.0, description="what the dismissed findings would save")
    hours_per_month: int


class BackupOut(BaseModel):
    vm_uuid: str
    vm_name: str
    newest: datetime | None
    age_s: float | None
    policy: str
    policy_source: str
    max_age_s: float | None
    overdue_by_s: float | None
    status: str
    urgency: str
    reason: str


class CostGroup(BaseModel):
    key: str
    vms: int
    running_hours: float
    cost: float
    share_pct: float


class CostVm(BaseModel):
    vm: str
    uuid: str
    host: str
    group: str
    machine_type: str | None
    chosen_by: str
    price_per_hour: float | None
    running_hours: float
    compute_cost: float
    storage_cost: float
    cost: float
    currency: str


class Costs(BaseModel):
    window_start: datetime
    window_end: datetime
    currency: str
    stopped_vm_billing: str
    group_by: str
    total: float
    compute_total: float
    storage_total: float
    month_to_date: float
    forecast_month_end: float
    forecast_basis: str
    groups: list[CostGroup]
    vms: list[CostVm]
    unpriced_vms: list[str]


class StepSize(BaseModel):
    vcpus: int
    memory_bytes: int
    machine_type: str


class PlanStep(BaseModel):
    uuid: str
    name: str
    uri: str
    current: StepSize
    target: StepSize
    price_before_per_hour: float | None
    price_after_per_hour: float | None
    currency: str
    finding: str


class ResultRow(BaseModel):
    """One VM's outcome, as one row of ``rightsizer apply --output json``."""

    name: str
    uuid: str
    uri: str
    result: str
    vcpus_before: int
    vcpus_after: int
    vcpus_when: str
    memory_bytes_before: int
    memory_bytes_after: int
    memory_when: str
    machine_type_before: str
    machine_type_after: str
    price_before_per_hour: float | None
    price_after_per_hour: float | None
    currency: str
    finding: str
    reason: str
    operations: list[str]
    audit_id: int | None


class PlanRun(BaseModel):
    kind: Literal["dry-run", "apply"]
    at: datetime
    results: list[ResultRow]


class Plan(BaseModel):
    version: int
    plan_id: str
    created_at: datetime
    steps: list[PlanStep]
    runs: list[PlanRun] = Field(default_factory=list)


class AuditOut(BaseModel):
    id: int | None
    ts: datetime
    actor: str
    vm_uuid: str
    vm_name: str
    action: str
    result: str
    reason: str
    plan_id: str
    price_before_per_hour: float | None
    price_after_per_hour: float | None
    currency: str
    before: dict[str, Any]
    after: dict[str, Any]


class Health(BaseModel):
    status: Literal["ok", "ready", "not-ready"]
    detail: str = ""
