"""What the API serves, computed with the same analytics and the same plan runner as the CLI.

Reads come from the store (through the dashboard's snapshot where it already holds the answer); findings
are ``analytics.recommend`` results as ``recommend --output json`` prints them; plans are made from
findings, kept in this process by id (the id is derived from the steps, so the same findings give the same
plan), and run through ``collector.actions.runner.run_plan`` -- pre-checks, per-VM lock, verify, revert
and audit exactly as ``rightsizer apply``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.analysis import AnalysisOptions, FleetAnalysis, analyse_fleet, storage_pricing
from analytics.backups import check_backups
from analytics.catalogue import CsvPriceCatalogue, StoragePrices, load_storage_prices
from analytics.cost_summary import BUILTIN_GROUPS, summarise_costs
from analytics.costs import fleet_costs
from analytics.findings.finding import VmFinding
from analytics.fleet import data_as_of, parse_instant
from analytics.placement import one_restart_per_service
from api.problems import ProblemError, bad_parameter, not_found
from collector.actions.plan import ResizePlan, plan_from_steps
from collector.actions.result import ActionResult
from collector.errors import InputError, RightsizerError
from collector.model import VmRecord
from collector.store.base import TimeSeriesStore
from core.durations import MAX_DURATION_S
from core.instants import EARLIEST
from core.settings import Settings
from core.units import hour_floor

log = logging.getLogger(__name__)
PlanRunner = Callable[[ResizePlan, bool, str], list[ActionResult]]


@dataclass
class StoredPlan:
    plan: ResizePlan
    runs: list[dict[str, Any]] = field(default_factory=list)


def select_vms(vms: Iterable[VmRecord], hosts: Sequence[str], labels: Sequence[str]) -> list[VmRecord]:
    """VMs on any of ``hosts`` (all when empty) carrying the ``key=value`` labels (OR within a key)."""
    wanted: dict[str, set[str]] = {}
    for pair in labels:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise bad_parameter("label", f"{pair!r} is not key=value (e.g. team=payments)")
        wanted.setdefault(key, set()).add(value)
    out = []
    for vm in vms:
        if hosts and vm.host not in hosts:
            continue
        if all((vm.labels or {}).get(k) in values for k, values in wanted.items()):
            out.append(vm)
    return out


_SHORT_DURATION = re.compile(r"([0-9]{1,5})([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _instant(text: str, now: datetime, parameter: str) -> datetime:
    """``parse_instant`` (the one accepted range, core.instants) as a 400 problem naming ``parameter``.

    Every duration the schema's pattern allows is accepted: ``0d`` is ``now`` itself, and one reaching back
    past 1970 (up to ``99999w``) starts at 1970-01-01, where nothing is stored before."""
    short = _SHORT_DURATION.fullmatch(text)
    if short is not None:
        back_s = int(short.group(1)) * _UNIT_S[short.group(2)]
        if back_s == 0:
            return now
        if back_s > MAX_DURATION_S:
            return EARLIEST
    try:
        return parse_instant(text, now=now, flag=parameter)
    except InputError as exc:
        raise bad_parameter(parameter, str(exc)) from exc


class ApiService:
    """The API's view of one store, catalogue and configuration; thread-safe."""

    def __init__(self, settings: Settings, store: TimeSeriesStore, catalogue: CsvPriceCatalogue, *,
                 runner: PlanRunner | None, storage: StoragePrices | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.store = store
        self.catalogue = catalogue
        self.runner = runner
        self.storage = storage if storage is not None else load_storage_prices()
        self.clock = clock
        self._lock = threading.Lock()
        self._plans: dict[str, StoredPlan] = load_plans(store)
        self._analyses: dict[tuple[Any, ...], FleetAnalysis] = {}

    # -- reads ---------------------------------------------------------------------------------
    def vms(self) -> list[VmRecord]:
        return sorted(self.store.vms(), key=lambda v: (v.name, v.uuid))

    def vm(self, key: str) -> VmRecord:
        for vm in self.store.vms():
            if key in (vm.uuid, vm.name):
                return vm
        raise not_found("VM", key, "vm")

    def as_of(self) -> datetime:
        span = self.store.time_range()
        return data_as_of(span[1] if span else None, self.clock())

    def analysis(self, lookback_days: float | None, profile: str | None,
                 strategy: str | None = None) -> FleetAnalysis:
        """The fleet analysis ``rightsizer recommend`` makes (as of the newest data); memoised per arguments."""
        span = self.store.time_range()
        now = span[1] if span is not None else self.clock()
        try:
            options = AnalysisOptions.from_settings(self.settings, self.catalogue, strategy=strategy,
                                                    lookback_days=lookback_days, now=now)
        except InputError as exc:
            raise bad_parameter("strategy", str(exc)) from exc
        if profile is not None:
            options = options.with_changes(profile=profile)
        wall = datetime.now(UTC)  # a dismissal made or expired since is a new analysis
        dismissed = tuple(d for d in self.store.dismissals() if d.active(max(now, wall)))
        key = (now, options.lookback_days, options.strategy, options.profile, len(self.store.vms()), dismissed)
        with self._lock:
            cached = self._analyses.get(key)
        if cached is not None:
            return cached
        found = analyse_fleet(self.store, self.catalogue, options)
        with self._lock:
            if len(self._analyses) > 32:
                self._analyses.clear()
            self._analyses[key] = found
        return found

    def findings(self, lookback_days: float | None, profile: str | None,
                 strategy: str | None = None) -> list[VmFinding]:
        """The findings of :meth:`analysis`, in store order."""
        return list(self.analysis(lookback_days, profile, strategy).findings)

    def backups(self, vms: Sequence[VmRecord]) -> list[Any]:
        return check_backups(list(vms), self.store.backups(), self.settings.backups, self.clock())

    def costs(self, since: str | None, until: str | None, group_by: str,
              keep: Callable[[list[VmRecord]], list[VmRecord]] | None = None) -> dict[str, Any]:
        """The ``rightsizer costs --output json`` totals, groups and per-VM rows for one window (default
        ``[costs] window_days`` before ``until``, the window of every other surface)."""
        since = since or f"{self.settings.costs.window_days}d"
        now = self.as_of() if until is None else self.clock()
        end = _instant(until, now, "until") if until else now
        start = hour_floor(_instant(since, end, "since"))
        if start >= end:
            raise bad_parameter("since", f"{since!r} ({start.isoformat()}) is not before until ({end.isoformat()})")
        vms = self.store.vms() if keep is None else keep(self.store.vms())
        group_by = group_by.strip()
        if group_by not in BUILTIN_GROUPS:
            keys = sorted({k for vm in vms for k in vm.labels})
            if group_by not in keys:
                raise bad_parameter("group_by", f"{group_by!r} is not host, machine_type, vm or a label any VM "
                                    f"has; labels: {', '.join(keys) or '(none)'}")
        cost_settings, _note = storage_pricing(self.settings, self.catalogue.currency)
        month_start = end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        hours = self.store.frame(min(start, month_start, end - timedelta(days=7)), end, resolution="hour")
        if keep is not None and not hours.empty:  # a scoped caller: only its VMs' hours are priced
            hours = hours[hours["vm"].isin({v.uuid for v in vms})]
        frame = fleet_costs(hours, vms, self.catalogue, self.storage, cost_settings, now=end)
        s = summarise_costs(frame, vms, group_by=group_by, now=end, start=start, end=end,
                            currency=self.catalogue.currency)
        return {
            "window_start": start, "window_end": end, "currency": s.currency,
            "stopped_vm_billing": cost_settings.stopped_vm_billing, "group_by": s.group_by, "total": s.total,
            "compute_total": s.compute_total, "storage_total": s.storage_total, "month_to_date": s.month.month_to_date,
            "forecast_month_end": s.month.forecast_month_end, "forecast_basis": s.month.forecast_basis,
            "groups": [{"key": g.key, "vms": g.vms, "running_hours": g.running_hours, "cost": g.cost,
                        "share_pct": 100 * g.share} for g in s.groups],
            "vms": [{"vm": v.name, "uuid": v.vm_uuid, "host": v.host, "group": v.group,
                     "machine_type": v.machine_type, "chosen_by": v.type_source, "price_per_hour": v.price_per_hour,
                     "running_hours": v.running_hours, "compute_cost": v.compute_cost,
                     "storage_cost": v.storage_cost, "cost": v.cost, "currency": v.currency} for v in s.per_vm],
            "unpriced_vms": list(s.unpriced_vms),
        }

    # -- plans ---------------------------------------------------------------------------------
    def create_plan(self, vms: Sequence[str], hosts: Sequence[str], labels: Sequence[str],
                    lookback_days: float | None, profile: str | None, strategy: str | None = None,
                    keep: Callable[[list[VmRecord]], list[VmRecord]] | None = None) -> ResizePlan:
        """A plan of the resizes the current findings propose for the selected VMs (may have no steps);
        ``keep`` narrows the VMs to a caller's scope (a VM named outside it is a 403)."""
        known = {v.uuid: v for v in self.store.vms()}
        by_name = {v.name: v for v in known.values()}
        for key in vms:
            if key not in known and key not in by_name:
                raise ProblemError(422, "unknown-vm", "Unknown VM", f"body field 'vms': no VM {key!r}")
        if keep is not None:
            allowed = {v.uuid for v in keep(list(known.values()))}
            outside = [k for k in vms if (known[k].uuid if k in known else by_name[k].uuid) not in allowed]
            if outside:
                raise ProblemError(403, "out-of-scope", "VM outside your scope",
                                   f"body field 'vms': {outside[0]!r} is outside your scope; plan only VMs "
                                   "you can see in GET /api/v1/vms")
            known = {u: v for u, v in known.items() if u in allowed}
        chosen = {v.uuid for v in select_vms(known.values(), hosts, labels)}
        if vms:
            chosen &= {known[k].uuid if k in known else by_name[k].uuid for k in vms}
        uri = self.settings.collector.uris[0] if self.settings.collector.uris else ""
        steps = [s for f in self.findings(lookback_days, profile, strategy)
                 if f.uuid in chosen and (s := f.resize_step(uri)) is not None]
        steps, _held = one_restart_per_service(steps, known, self.settings.placement)
        try:
            plan = plan_from_steps(steps, source="api", now=self.clock())
        except InputError as exc:
            raise ProblemError(422, "invalid-plan", "Plan not valid", str(exc)) from exc
        with self._lock:
            stored = self._plans.get(plan.plan_id)
            if stored is None:
                self._plans[plan.plan_id] = StoredPlan(plan)
                save_plans(self.store, self._plans)
            else:
                plan = stored.plan
        return plan

    def plans(self) -> list[StoredPlan]:
        """Every kept plan, newest first."""
        with self._lock:
            return sorted(self._plans.values(), key=lambda p: (p.plan.created_at, p.plan.plan_id), reverse=True)

    def plan(self, plan_id: str) -> StoredPlan:
        with self._lock:
            stored = self._plans.get(plan_id)
        if stored is None:
            raise not_found("plan", plan_id, "plan_id")
        return stored

    def run(self, plan_id: str, *, apply: bool, actor: str = "api") -> dict[str, Any]:
        """Dry-run or apply a stored plan through the shared runner; returns the run (kind, at, results)."""
        from collector.actions.output import result_row

        stored = self.plan(plan_id)
        if self.runner is None:
            raise ProblemError(403, "actions-disabled", "Actions disabled",
                               "set [actions] enabled = true and a token, then restart serve")
        results = self.runner(stored.plan, apply, actor)
        run = {"kind": "apply" if apply else "dry-run", "at": self.clock(),
               "results": [result_row(r) for r in results]}
        with self._lock:
            stored.runs.append(run)
            save_plans(self.store, self._plans)
        return run


def make_runner(settings: Settings, store: Any) -> PlanRunner:
    """The plan runner of ``rightsizer apply``: same pre-checks, lock, audit, verify and revert."""
    from collector.actions.runner import run_plan

    def run(plan: ResizePlan, apply: bool, actor: str) -> list[ActionResult]:
        return run_plan(plan, settings.actions, store=store, apply=apply,
                        actor=actor)

    return run


#: The store meta key holding the API's plans and their runs (collector.store.jsonmeta), so they survive restarts.
PLANS_META_KEY = "api_plans"
#: Plans kept; the oldest go first beyond this.
MAX_KEPT_PLANS = 500


def load_plans(store: TimeSeriesStore) -> dict[str, StoredPlan]:
    """The plans a previous ``serve`` kept in ``store`` (a plan that no longer parses is dropped, logged)."""
    from collector.actions.plan import parse_plan
    from collector.store.jsonmeta import read_json_meta

    try:
        doc = read_json_meta(store, PLANS_META_KEY)
    except RightsizerError as exc:
        log.warning("the API's kept plans cannot be read (%s); starting with none", exc)
        return {}
    out: dict[str, StoredPlan] = {}
    for plan_id, entry in doc.items():
        try:
            if not isinstance(entry, dict):
                raise InputError(f"entry is a {type(entry).__name__}, not an object")
            plan = parse_plan(entry.get("plan"), source="api")
            runs = entry.get("runs", [])
            out[plan_id] = StoredPlan(plan, [dict(r) for r in runs if isinstance(r, dict)] if isinstance(
                runs, list) else [])
        except InputError as exc:
            log.warning("kept plan %r dropped: %s", plan_id, exc)
    return out


def save_plans(store: TimeSeriesStore, plans: dict[str, StoredPlan]) -> None:
    """Write ``plans`` (the newest ``MAX_KEPT_PLANS``; older ones are forgotten here too) to the store's meta;
    a store that cannot be written keeps them in memory only (logged)."""
    if len(plans) > MAX_KEPT_PLANS:
        for old in sorted(plans.values(), key=lambda p: p.plan.created_at)[:len(plans) - MAX_KEPT_PLANS]:
            plans.pop(old.plan.plan_id, None)
    doc = {pid: {"plan": p.plan.to_dict(), "runs": p.runs} for pid, p in plans.items()}
    try:
        store.set_meta(PLANS_META_KEY, json.dumps(doc, sort_keys=True, default=_json_default))
    except RightsizerError as exc:
        log.warning("the API's plans could not be kept in the store (%s); they last until serve stops", exc)


def _json_default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
