"""``rightsizer apply``: show what a resize plan would change, and apply it with ``--yes``.

Without ``--yes`` nothing is changed and nothing is written: every VM is inspected read-only and the diff
says, per dimension, when the change would take effect (now, next restart, in a maintenance window, or
deferred). With ``--yes`` each step is applied, verified against libvirt, reverted on failure and recorded in
the store's audit log (``--history`` prints it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analytics.findings.finding import VmFinding
    from collector.actions.plan import ResizePlan
    from collector.actions.result import ActionResult
    from collector.actions.stop import StopResult, StopStep
    from collector.store.base import AuditEntry
    from rightsizer.context import Context

DEFAULT_URI = "qemu:///system"
_FAILED = ("failed", "reverted", "revert-failed")


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "apply", parents=[parent], help="dry-run or apply a resize plan (vCPUs, memory) through libvirt",
        description="Show, per VM, the vCPU, memory and price change of a resize plan and when each change "
                    "takes effect. Nothing is changed without --yes. Applied steps are verified and, on any "
                    "failure, reverted to the saved domain state; every outcome goes to the audit log.",
    )
    p.add_argument("plan", nargs="?", metavar="PLAN.json", help="plan file (see collector/actions/plan.py)")
    p.add_argument("--yes", action="store_true", help="apply the plan (default: dry run)")
    p.add_argument("--uri", metavar="URI", help="libvirt URI for every VM in the plan (overrides the plan's URIs)")
    p.add_argument("--restart", choices=("never", "allowed", "window"),
                   help="may a resize restart a VM (to raise max vCPUs/memory)? default: config [actions] restart")
    p.add_argument("--history", action="store_true", help="print the audit log of past applies and exit")
    p.add_argument("--vm", metavar="NAME_OR_UUID", help="with --history: only this VM")
    p.add_argument("--from-findings", action="store_true",
                   help="build the plan from the current recommendations (rightsizer recommend)")
    p.add_argument("--save-plan", metavar="PATH", help="write the plan as JSON (e.g. from --from-findings) and go on")
    p.add_argument("--actor", metavar="NAME", help="who applies, for the audit log (default: the OS user)")
    p.add_argument("--allow-stop", action="store_true",
                   help="also stop the idle VMs the plan names (graceful shutdown; never a delete: deleting "
                        "a VM is left to a person). Without it stop steps are listed and skipped")
    p.add_argument("--shutdown-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="how long a graceful shutdown may take before the step fails and is reverted")
    p.set_defaults(func=run, settings_overrides=_overrides)


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {"actions": {"restart": args.restart}} if args.restart else {}


def run(args: argparse.Namespace, ctx: Context) -> int:
    from collector.errors import InputError

    if args.history:
        return _history(args, ctx)
    if bool(args.plan) == bool(args.from_findings):
        raise InputError("give exactly one of PLAN.json or --from-findings (or --history to see past applies)")
    if not 0 < args.shutdown_timeout <= 86_400:  # also refuses nan and inf
        raise InputError(f"--shutdown-timeout {args.shutdown_timeout!r} must be a number of seconds in (0, 86400]")
    findings = _current_findings(ctx) if args.from_findings else []
    plan = _load(args, ctx, findings)
    stops = _stop_steps(args, ctx, findings)
    if args.save_plan:
        _save_plan({**plan.to_dict(), "stops": [s.to_dict(allowed=args.allow_stop, note=_stop_note(args))
                                                for s in stops]}, Path(args.save_plan))
    results = _run_plan(plan, args, ctx)
    stopped = _run_stops(stops, args, ctx)
    _print(results, plan, args, ctx, stopped)
    return 1 if any(r.result in _FAILED for r in results) or any(r.result == "failed" for r in stopped) else 0


def _stop_note(args: argparse.Namespace) -> str:
    from core.plan import DELETE_IS_MANUAL

    return ("stop only; " if args.allow_stop else "needs --allow-stop (stop only; ") + DELETE_IS_MANUAL + \
        ("" if args.allow_stop else ")")


def _stop_steps(args: argparse.Namespace, ctx: Context, findings: list[VmFinding]) -> list[StopStep]:
    """Stop steps: the idle VMs of the current findings, or the plan file's entries with action 'stop'."""

    from collector.actions.stop import StopStep
    from collector.model import VmRef

    rows: list[Any]
    if args.from_findings:
        rows = [f.plan_entry() for f in findings if f.action == "stop" and not f.excluded and f.dismissed is None]
    else:
        from core.parsing import json_loads

        try:
            doc = json_loads(Path(args.plan).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []  # load_plan has already reported a bad file
        rows = doc if isinstance(doc, list) else list(doc.get("steps", [])) + list(doc.get("stops", []))
    uri = _default_uri(args, ctx)
    return [
        StopStep(vm=VmRef(uri=args.uri or r.get("uri") or uri, uuid=str(r["uuid"]), name=str(r.get("name", ""))),
                 price_per_hour=_price(r.get("price_before_per_hour")), currency=str(r.get("currency", "")))
        for r in rows if isinstance(r, dict) and r.get("action") == "stop" and r.get("uuid")
        and not r.get("excluded")
    ]


def _price(value: object) -> float | None:
    """A plan row's hourly price when it is a finite number >= 0 (else unknown: the stop is not priced)."""
    import math

    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    price = float(value)
    return price if math.isfinite(price) and price >= 0 else None


def _run_stops(stops: list[StopStep], args: argparse.Namespace, ctx: Context) -> list[StopResult]:
    import getpass

    from collector.actions.locks import vm_lock_dir
    from collector.actions.stop import StopResult, stop_vm
    from collector.errors import HypervisorError
    from collector.hypervisor.libvirt import LibvirtControl

    out: list[StopResult] = []
    store = ctx.open_store() if args.yes and stops and args.allow_stop else None
    lock_dir = vm_lock_dir(ctx.settings.actions.lock_dir)
    for step in stops:
        if not args.allow_stop:
            out.append(StopResult(step, "skipped", _stop_note(args)))
            continue
        try:
            control = LibvirtControl(step.vm.uri)
        except HypervisorError as exc:
            out.append(StopResult(step, "failed", str(exc)))
            continue
        out.append(stop_vm(control, step, apply=args.yes, audit=store, actor=args.actor or getpass.getuser(),
                           timeout_s=args.shutdown_timeout, lock_dir=lock_dir))
    return out


def _save_plan(doc: dict[str, Any], path: Path) -> None:
    """Write the plan document as JSON; a missing folder or a folder in the way is an InputError."""
    import json

    from collector.errors import InputError
    from collector.store.faults import write_failure

    try:
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise write_failure(path, exc, InputError(
            f"--save-plan {str(path)!r}: cannot write the plan there ({exc.strerror}); pass a file path in an "
            "existing folder")) from exc


def _default_uri(args: argparse.Namespace, ctx: Context) -> str:
    if args.uri:
        return str(args.uri)
    uris = ctx.settings.collector.uris
    return uris[0] if uris else DEFAULT_URI


def _load(args: argparse.Namespace, ctx: Context, findings: list[VmFinding]) -> ResizePlan:
    from collector.actions.plan import load_plan, plan_from_steps

    default_uri = _default_uri(args, ctx)
    if args.from_findings:
        from analytics.placement import one_restart_per_service
        from core.textsafe import terminal_safe

        steps = [step for f in findings if (step := f.resize_step(default_uri)) is not None]
        vms = {vm.uuid: vm for vm in ctx.open_store(create=False).vms()}
        steps, held = one_restart_per_service(steps, vms, ctx.settings.placement)
        for step, why in held:
            print(terminal_safe(f"apply: {step.vm.name} held back: {why}"), file=sys.stderr)
        plan = plan_from_steps(steps)
    else:
        plan = load_plan(args.plan, default_uri=default_uri)
    return plan.with_uri(args.uri) if args.uri else plan


def _current_findings(ctx: Context) -> list[VmFinding]:
    """The current recommendations for the fleet in the store (resize and stop steps come from them)."""
    from analytics.analysis import AnalysisOptions, analyse_fleet

    store = ctx.open_source()
    catalogue = ctx.catalogue()
    return list(analyse_fleet(store, catalogue, AnalysisOptions.from_settings(ctx.settings, catalogue)).findings)


def _run_plan(plan: ResizePlan, args: argparse.Namespace, ctx: Context) -> list[ActionResult]:
    from collector.actions.runner import run_plan

    store = None
    if args.yes:
        store = ctx.open_store()
    elif ctx.db_path.exists():
        store = ctx.open_store(create=False)  # the dry run also reports "resized recently"
    return run_plan(plan, ctx.settings.actions, store=store, apply=args.yes,
                    actor=args.actor, shutdown_timeout_s=args.shutdown_timeout)


def _print(results: list[ActionResult], plan: ResizePlan, args: argparse.Namespace, ctx: Context,
           stopped: list[StopResult]) -> None:
    from collector.actions.output import format_results, result_row
    from core.textsafe import terminal_safe

    stop_rows = [{"plan_id": plan.plan_id, "name": r.step.vm.name, "uuid": r.step.vm.uuid, "uri": r.step.vm.uri,
                  "action": "stop", "result": r.result, "reason": r.reason} for r in stopped]
    if ctx.out.fmt != "table":
        ctx.out.emit([{"plan_id": plan.plan_id, "action": "resize", **result_row(r)} for r in results] + stop_rows)
        return
    stream = ctx.out.stream
    mode = "apply" if args.yes else "dry run"
    stream.write(f"Plan {plan.plan_id} ({len(plan.steps)} VM(s), {mode}, restart policy "
                 f"{ctx.settings.actions.restart!r})\n\n")
    stream.write(format_results(results))
    for row in stop_rows:
        stream.write(terminal_safe(f"stop {row['name']}: {row['result']} -- {row['reason']}") + "\n")
    if not args.yes:
        stream.write("Dry run: nothing was changed. Run again with --yes to apply.\n")


def _history(args: argparse.Namespace, ctx: Context) -> int:
    store = ctx.open_store(create=False)
    entries = store.audit()
    if args.vm:
        entries = [e for e in entries if args.vm in (e.vm_uuid, e.vm_name)]
    rows = [_history_row(e) for e in entries]
    if not rows and ctx.out.fmt == "table":
        ctx.out.stream.write("The audit log is empty: no resize has been applied yet.\n")
        return 0
    if ctx.out.fmt == "json":
        ctx.out.emit([{**r, "before": _no_xml(e.before), "after": dict(e.after)} for r, e in zip(rows, entries,
                                                                                                   strict=True)])
    else:
        ctx.out.emit(rows)
    return 0


def _no_xml(values: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(values).items() if k != "inactive_xml"}


def _history_row(e: AuditEntry) -> dict[str, Any]:
    from collector.domxml import format_bytes

    def size(d: Any, vkey: str, mkey: str) -> str:
        v, m = d.get(vkey), d.get(mkey)
        if v is None or m is None:
            return "-"
        return f"{v} vCPU, {format_bytes(int(m))}"

    return {
        "id": e.id,
        "ts": e.ts,
        "actor": e.actor,
        "vm": e.vm_name,
        "result": e.result,
        "before": size(e.before, "config_vcpus", "config_memory_bytes"),
        "after": size(e.after, "config_vcpus", "config_memory_bytes"),
        "target": size(e.after, "target_vcpus", "target_memory_bytes"),
        "price_per_hour": (f"{e.price_before_per_hour:.4f}->{e.price_after_per_hour:.4f} {e.currency}".strip()
                           if e.price_before_per_hour is not None and e.price_after_per_hour is not None else "-"),
        "plan_id": e.plan_id,
        "reason": e.reason,
    }
