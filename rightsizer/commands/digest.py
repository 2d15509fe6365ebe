"""``rightsizer digest``: print the digest, or deliver it by mail and webhook (``--send``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from rightsizer.commands.sourceflags import add_source_flags

if TYPE_CHECKING:
    from rightsizer.context import Context

DESCRIPTION = """\
The digest of the fleet: the savings headline by kind, findings that are new since the last digest sent,
the top 10 VMs by saving with kind and risk, realised savings of applied changes, and overdue backups, with
a link to each VM's page when [dashboard] public_url is set. Without --send it is printed (--format text or
html; --output json for the data). --send delivers it through [delivery] (mail over SMTP, and a JSON POST
with a Slack-compatible 'text' field to each webhook URL), retrying with backoff, and records what was sent
in the store: a channel that already has this digest is skipped (--force sends again). 'serve' sends it at
[reports] digest_cron. Exit 0 when every channel has the digest, 1 when one failed, 2 on bad settings.
"""


def add_parser(sub: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
    """Register ``digest``."""
    p = sub.add_parser("digest", parents=[parent], help="print or send (--send) the digest of findings",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--send", action="store_true", help="deliver it through [delivery] instead of printing it")
    p.add_argument("--force", action="store_true", help="with --send: send again to channels that have it")
    p.add_argument("--format", dest="digest_format", choices=("text", "html"), default="text",
                   help="what to print without --send: the text or the HTML part (default text)")
    add_source_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Print or send the digest; returns the exit code."""
    from analytics.reports.digest import digest_for_store
    from collector.errors import InputError
    from rightsizer.delivery import channels, deliver

    if args.force and not args.send:
        raise InputError("--force only applies with --send; add --send")
    if args.send:
        channels(ctx.settings.delivery)  # a half-configured channel fails before the store is read
    store = ctx.open_source()
    digest = digest_for_store(store, ctx.catalogue(), ctx.settings)
    out = ctx.out.stream
    if not args.send:
        if args.output == "json":
            ctx.out.emit(digest.as_json(), "json")
        else:
            out.write(digest.html() if args.digest_format == "html" else digest.text())
        return 0
    outcomes = deliver(store, digest, ctx.settings.delivery, force=args.force)
    if args.output == "json":
        ctx.out.emit({"digest_id": digest.digest_id,
                      "channels": [{"channel": o.channel, "result": o.result, "attempts": o.attempts,
                                    "detail": o.detail} for o in outcomes]}, "json")
    else:
        for o in outcomes:
            text = o.detail if o.result == "failed" else o.channel + (f" ({o.detail})" if o.detail else "")
            out.write(f"{o.result}: {text}\n")
    failed = [o for o in outcomes if o.result == "failed"]
    if failed:
        from collector.errors import RightsizerError

        raise RightsizerError(f"digest {digest.digest_id} not delivered on {len(failed)} channel(s): "
                              + "; ".join(o.detail for o in failed))
    return 0
