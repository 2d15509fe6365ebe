"""``rightsizer dismiss VM --reason TEXT [--until WHEN | --for 30d] [--kind KIND]``, ``dismiss --list`` and
``rightsizer restore VM``: dismiss or postpone a finding, list the dismissals, bring a finding back."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.dismissals import Dismissal
    from rightsizer.context import Context

DESCRIPTION = """\
Dismiss a VM's finding with a reason: it stays on every surface, marked dismissed, and is left out of the
savings headline, the digest and plans (apply --from-findings, API plans). --until WHEN (ISO 8601) or
--for 30d postpones it until then; without either it is dismissed until 'rightsizer restore VM'.
--kind (resize, stop, schedule, storage) is the VM's current finding's kind by default; a dismissal lapses
while the VM's finding is of another kind. Each change writes an audit row (dismiss, postpone, restore).
See docs/findings.md "Dismissing and postponing".
"""


def add_parser(sub: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
    """Register ``dismiss`` and ``restore``."""
    from core.dismissals import DISMISS_KINDS

    p = sub.add_parser("dismiss", parents=[parent], help="dismiss or postpone a VM's finding with a reason",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vm", nargs="?", metavar="VM", help="VM name or UUID")
    p.add_argument("--reason", metavar="TEXT", help="why (required; kept in the audit log)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--until", metavar="WHEN", help="postpone until this ISO 8601 time (UTC when naive)")
    when.add_argument("--for", dest="for_", metavar="DURATION", help="postpone for this long (30d, 2w, 12h)")
    p.add_argument("--kind", choices=DISMISS_KINDS, help="the finding kind (default: the VM's current one)")
    p.add_argument("--actor", metavar="NAME", help="who dismisses (default: the login name)")
    p.add_argument("--list", action="store_true", help="list the dismissals (active and expired) and exit")
    p.set_defaults(func=run_dismiss)
    r = sub.add_parser("restore", parents=[parent], help="restore a dismissed or postponed finding",
                       description="Remove a VM's dismissals (of --kind only when given); audited as restore.")
    r.add_argument("vm", metavar="VM", help="VM name or UUID")
    r.add_argument("--kind", choices=DISMISS_KINDS, help="restore only this kind (default: every kind)")
    r.add_argument("--actor", metavar="NAME", help="who restores (default: the login name)")
    r.set_defaults(func=run_restore)


def _actor(args: argparse.Namespace) -> str:
    import getpass

    return str(args.actor or getpass.getuser())


def _row(d: Dismissal, now: Any) -> dict[str, Any]:
    """A table row (the UUID is in the JSON output)."""
    return {"vm": d.vm_name or d.vm_uuid, "kind": d.kind, "action": d.action,
            "until": d.until.strftime("%Y-%m-%d %H:%M UTC") if d.until else "until restored",
            "active": d.active(now), "by": d.actor, "at": d.at.strftime("%Y-%m-%d %H:%M UTC"), "reason": d.reason}


def run_dismiss(args: argparse.Namespace, ctx: Context) -> int:
    from datetime import UTC, datetime

    from analytics.findings.dismissal import new_dismissal, resolve_vm
    from core.dismissals import expiry
    from core.errors import InputError

    now = datetime.now(UTC).replace(microsecond=0)  # the store keeps whole seconds
    store = ctx.open_source(create=False)
    if args.list:
        if args.vm or args.reason:
            raise InputError("dismiss --list takes no VM or --reason; run it alone")
        stored = store.dismissals()
        rows = [_row(d, now) for d in stored]
        if args.output == "json":
            ctx.out.emit([{**d.as_json(), "action": d.action, "active": d.active(now)} for d in stored], "json")
        elif rows:
            ctx.out.emit(rows)
        else:
            ctx.out.stream.write("no dismissed findings\n")
        return 0
    if not args.vm:
        raise InputError("dismiss needs a VM (name or UUID), or --list")
    if args.reason is None:
        raise InputError(f"dismiss {args.vm!r} needs --reason TEXT saying why")
    vm = resolve_vm(store.vms(), args.vm)
    until = expiry(now, args.until, args.for_)
    finding = None
    if args.kind is None:
        from analytics.analysis import AnalysisOptions, analyse_fleet

        catalogue = ctx.catalogue()
        finding = analyse_fleet(store, catalogue, AnalysisOptions.from_settings(ctx.settings, catalogue)
                                ).by_uuid().get(vm.uuid)
    d = new_dismissal(vm, finding, reason=args.reason, actor=_actor(args), at=now, until=until, kind=args.kind)
    store.dismiss(d)
    if args.output == "json":
        ctx.out.emit(d.as_json(), "json")
    else:
        until_text = f"until {d.until:%Y-%m-%d %H:%M} UTC" if d.until else "until restored"
        ctx.out.stream.write(f"{d.state} {vm.name} ({d.kind}) {until_text}: {d.reason}\n")
    return 0


def run_restore(args: argparse.Namespace, ctx: Context) -> int:
    from datetime import UTC, datetime

    from analytics.findings.dismissal import resolve_vm
    from core.errors import InputError

    store = ctx.open_source(create=False)
    vm = resolve_vm(store.vms(), args.vm)
    gone = store.restore(vm.uuid, actor=_actor(args), at=datetime.now(UTC).replace(microsecond=0), kind=args.kind)
    if not gone:
        which = f" of kind {args.kind!r}" if args.kind else ""
        raise InputError(f"VM {vm.name!r} has no dismissal{which}; 'rightsizer dismiss --list' shows them")
    if args.output == "json":
        ctx.out.emit([d.as_json() for d in gone], "json")
    else:
        for d in gone:
            ctx.out.stream.write(f"restored {vm.name} ({d.kind})\n")
    return 0
