"""The API's operations: one table that the routes serve and the OpenAPI document describes."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from api import dismissals as dm
from api import models as m

PREFIX = "/api/v1"


IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint: how it is called, what it takes and returns, and whether it writes."""

    operation_id: str
    method: str
    path: str  # Flask rule, e.g. /api/v1/plans/<plan_id>
    summary: str
    response: type[BaseModel]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    write: bool = False
    idempotency_required: bool = False
    status: int = 200


OPERATIONS: tuple[Operation, ...] = (
    Operation("listVms", "GET", f"{PREFIX}/vms", "VMs in the store", m.Page[m.Vm], m.VmsQuery),
    Operation("getVm", "GET", f"{PREFIX}/vms/<vm>", "One VM by UUID or name", m.Vm),
    Operation("getCosts", "GET", f"{PREFIX}/costs", "Cost per VM and group over a window, month to date, "
              "forecast (as `rightsizer costs --output json`)", m.Costs, m.CostsQuery),
    Operation("listFindings", "GET", f"{PREFIX}/findings", "Right-sizing findings (as `rightsizer recommend "
              "--output json`)", m.Page[m.FindingOut], m.FindingsQuery),
    Operation("getSummary", "GET", f"{PREFIX}/summary", "The savings headline of the selected findings (as "
              "the summary of `rightsizer recommend` and the dashboard's Overview)", m.Summary, m.FindingsQuery),
    Operation("listBackups", "GET", f"{PREFIX}/backups", "Newest backup per VM against its policy",
              m.Page[m.BackupOut], m.BackupsQuery),
    Operation("listAudit", "GET", f"{PREFIX}/audit", "The audit log of resizes, newest first",
              m.Page[m.AuditOut], m.AuditQuery),
    Operation("listPlans", "GET", f"{PREFIX}/plans", "Plans made through the API (kept in the store), newest "
              "first", m.Page[m.Plan], m.PageQuery),
    Operation("getPlan", "GET", f"{PREFIX}/plans/<plan_id>", "A plan and its runs", m.Plan),
    Operation("createPlan", "POST", f"{PREFIX}/plans", "Make a plan from the current findings", m.Plan,
              body=m.PlanCreate, write=True, status=201),
    Operation("dryRunPlan", "POST", f"{PREFIX}/plans/<plan_id>/dry-run", "Inspect each VM and say what "
              "would change and when; changes nothing", m.PlanRun, body=m.EmptyBody, write=True),
    Operation("applyPlan", "POST", f"{PREFIX}/plans/<plan_id>/apply", "Apply, verify, revert on failure, "
              "audit (as `rightsizer apply --yes`)", m.PlanRun, body=m.EmptyBody, write=True,
              idempotency_required=True),
    # dismissals (api/dismissals.py)
    Operation("dismissFinding", "POST", f"{PREFIX}/findings/<vm>/dismissal", "Dismiss or postpone (with "
              "until) the VM's finding with a reason; audited", dm.DismissalOut, body=dm.DismissalCreate,
              write=True, status=201),
    Operation("restoreFinding", "DELETE", f"{PREFIX}/findings/<vm>/dismissal", "Restore the VM's dismissed "
              "findings; audited", dm.DismissalsRestored, query=dm.RestoreQuery, body=m.EmptyBody, write=True),
    Operation("listDismissals", "GET", f"{PREFIX}/dismissals", "Dismissed and postponed findings",
              m.Page[dm.DismissalOut], m.PageQuery),
)
