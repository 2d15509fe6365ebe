"""``rightsizer apply``: show what a resize plan would change, and apply it with ``--yes``.

Without ``--yes`` nothing is changed and nothing is written: every VM is inspected read-only and the diff
says, per dimension, when the change would take effect (now, next restart, in a maintenance window, or
deferred). With ``--yes`` each step is applied, verified against libvirt, reverted on failure and recorded in
the store's audit log (``--history`` prints it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.actions.plan import ResizePlan, ResizeStep
    from collector.actions.result import ActionResult
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
    if args.shutdown_timeout <= 0:
        raise InputError(f"--shutdown-timeout {args.shutdown_timeout!r} must be > 0 seconds")
    plan = _load(args, ctx)
    if args.save_plan:
        import json

        Path(args.save_plan).write_text(json.dumps(plan.to_dict(), indent=2) + "\n", encoding="utf-8")
    results = _run_plan(plan, args, ctx)
    _print(results, plan, args, ctx)
    return 1 if any(r.result in _FAILED for r in results) else 0


def _default_uri(args: argparse.Namespace, ctx: Context) -> str:
    if args.uri:
        return str(args.uri)
    uris = ctx.settings.collector.uris
    return uris[0] if uris else DEFAULT_URI


def _load(args: argparse.Namespace, ctx: Context) -> ResizePlan:
    from collector.actions.plan import load_plan, plan_from_steps

    default_uri = _default_uri(args, ctx)
    if args.from_findings:
        plan = plan_from_steps(_finding_steps(ctx, default_uri))
    else:
        plan = load_plan(args.plan, default_uri=default_uri)
    return plan.with_uri(args.uri) if args.uri else plan


def _finding_steps(ctx: Context, default_uri: str) -> list[ResizeStep]:
    """The resize steps the current recommendations for the fleet in the store propose."""
    from analytics.recommend import findings_for_settings

    store = ctx.open_source()
    findings = findings_for_settings(store, ctx.catalogue(), ctx.settings)
    return [step for f in findings if (step := f.resize_step(default_uri)) is not None]


def _run_plan(plan: ResizePlan, args: argparse.Namespace, ctx: Context) -> list[ActionResult]:
    from collector.actions.runner import run_plan

    store = None
    if args.yes:
        store = ctx.open_store()
    elif ctx.db_path.exists():
        store = ctx.open_store(create=False)  # the dry run also reports "resized recently"
    return run_plan(plan, ctx.settings.actions, store=store, db_path=ctx.db_path, apply=args.yes,
                    actor=args.actor, shutdown_timeout_s=args.shutdown_timeout)


def _print(results: list[ActionResult], plan: ResizePlan, args: argparse.Namespace, ctx: Context) -> None:
    from collector.actions.output import format_results, result_row

    if ctx.out.fmt != "table":
        ctx.out.emit([{"plan_id": plan.plan_id, **result_row(r)} for r in results])
        return
    stream = ctx.out.stream
    mode = "apply" if args.yes else "dry run"
    stream.write(f"Plan {plan.plan_id} ({len(plan.steps)} VM(s), {mode}, restart policy "
                 f"{ctx.settings.actions.restart!r})\n\n")
    stream.write(format_results(results))
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
