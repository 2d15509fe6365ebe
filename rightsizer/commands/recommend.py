"""``rightsizer recommend``: right-size every VM in the store; the JSON output doubles as a resize plan."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from rightsizer.commands.sourceflags import add_source_flags

if TYPE_CHECKING:

    from analytics.rightsizing.settings import StrategySettings
    from rightsizer.context import Context

DESCRIPTION = """\
Judge every VM over the last --lookback-days of hourly rollups with a strategy (default: ours,
'rightsizer'; anchors: aws, krr, vpa) and print one finding per VM: over-provisioned,
under-provisioned, optimized, idle or insufficient-data, with the current and target machine type,
prices per hour and savings per 720-hour month. The current type is the VM's 'machine_type' label when
the catalogue knows it, else the cheapest eligible type covering its allocation (type_source).

Shared rules: no recommendation with < 30 h of data or < 3 days of span; unknown memory use is never
downsized; a downsize must save max(10 %, --min-monthly-savings); a growing trend blocks a downsize.
VMs labelled rightsizer_exclude=true, or matched by an excluding policy, are shown but never resized.

--output json prints resize-plan steps (uuid, name, uri, current and target vcpus/memory/type, prices,
finding) that 'rightsizer apply PLAN.json' accepts. Strategy settings below override the strategy's
defaults; each applies only to strategies that have it.
"""

_SKIP_FIELDS = frozenset({"lookback_days", "min_monthly_savings"})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _bounds(info: Any) -> str:
    parts = []
    for m in getattr(info, "metadata", ()):
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(m, attr, None)
            if value is not None:
                parts.append(f"{sym} {value:g}" if isinstance(value, int | float) else f"{sym} {value}")
    return ", ".join(parts)


def add_settings_flags(p: argparse.ArgumentParser) -> None:
    """Add one flag per strategy setting, with its description, bounds and each strategy's default."""
    from analytics.rightsizing.settings import SETTINGS_TYPES

    group = p.add_argument_group("strategy settings (override the chosen strategy's defaults)")
    seen: dict[str, list[tuple[str, Any]]] = {}
    infos: dict[str, Any] = {}
    for strategy, model in SETTINGS_TYPES.items():
        for name, info in model.model_fields.items():
            if name in _SKIP_FIELDS:
                continue
            seen.setdefault(name, []).append((strategy, info.default))
            infos.setdefault(name, info)
    for name, defaults in seen.items():
        info = infos[name]
        per = ", ".join(f"{s}: {d:g}" if isinstance(d, float) else f"{s}: {d}" for s, d in defaults)
        bounds = _bounds(info)
        text = f"{info.description} (default {per}" + (f"; {bounds})" if bounds else ")")
        if len(defaults) < len(SETTINGS_TYPES):
            text += f"; only {', '.join(s for s, _ in defaults)}"
        text = text.replace("%", "%%")
        if info.annotation in (bool, "bool"):
            group.add_argument(_flag(name), dest=f"set_{name}", action=argparse.BooleanOptionalAction,
                               default=None, help=text)
        else:
            kind = int if info.annotation in (int, "int") else float
            group.add_argument(_flag(name), dest=f"set_{name}", type=kind, default=None,
                               metavar=name.split("_")[-1].upper(), help=text)


def settings_from_args(args: argparse.Namespace, strategy: str, base: dict[str, Any] | None = None,
                       *, strict: bool = True) -> StrategySettings:
    """Build the strategy's settings from flags over ``base``. Raises InputError naming a bad flag/value."""
    from pydantic import ValidationError

    from analytics.rightsizing.settings import SETTINGS_TYPES
    from collector.errors import InputError

    model = SETTINGS_TYPES[strategy]
    values = dict(base or {})
    for key, value in vars(args).items():
        if not key.startswith("set_") or value is None:
            continue
        name = key[4:]
        if name not in model.model_fields:
            if strict:
                owners = [s for s, m in SETTINGS_TYPES.items() if name in m.model_fields]
                raise InputError(f"{_flag(name)} does not apply to strategy {strategy!r}; it is a setting of "
                                 f"{', '.join(owners)}")
            continue
        values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        raise InputError(f"{_flag(field)} {err.get('input')!r}: {err['msg']}; see 'rightsizer recommend --help'") \
            from exc


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    from analytics.rightsizing.settings import STRATEGY_NAMES

    p = sub.add_parser(
        "recommend", parents=[parent], help="right-size every VM in the store (findings, resize plan)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--strategy", choices=STRATEGY_NAMES, help="strategy (default: config [rightsizing] strategy)")
    p.add_argument("--lookback-days", type=float, metavar="DAYS",
                   help="days of history to judge (default: config [rightsizing] lookback_days, 14)")
    p.add_argument("--min-monthly-savings", type=float, metavar="AMOUNT",
                   help="smallest monthly saving worth a downsize (default: config, 1.0)")
    p.add_argument("--now", metavar="ISO|latest|wall", default="latest",
                   help="analysis time: 'latest' = newest data in the store (default), 'wall' = the clock, "
                        "or an ISO-8601 UTC time")
    p.add_argument("--vm", action="append", metavar="NAME_OR_UUID", help="only these VMs (repeatable)")
    p.add_argument("--finding", action="append", metavar="FINDING",
                   choices=("over-provisioned", "under-provisioned", "optimized", "idle", "insufficient-data"),
                   help="only VMs with this finding (repeatable)")
    p.add_argument("--policies", metavar="FILE",
                   help="TOML file of [[policy]] overrides (vm or labels match); default: [rightsizing] policies_file")
    add_settings_flags(p)
    add_source_flags(p)
    p.set_defaults(func=run)


def _parse_now(text: str, ctx: Context) -> Any:
    from datetime import UTC, datetime

    from collector.errors import InputError

    if text == "wall":
        return datetime.now(UTC)
    if text == "latest":
        source = ctx.open_source()
        newest = source.time_range()
        if newest is None:
            if ctx.is_promql:
                raise InputError(f"{source.path} holds no rightsizer series in the last "
                                 f"{ctx.settings.source.history_days:g} days; check the scrape targets and "
                                 "[source] matchers")
            raise InputError(f"Database {str(ctx.db_path)!r} holds no samples; run 'rightsizer collect' or "
                             "'rightsizer import' first")
        return newest[1]
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"--now {text!r} is not 'latest', 'wall' or an ISO-8601 time such as "
                         "2026-11-02T10:00:00+00:00") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


TABLE_COLUMNS = (
    "name", "finding", "current_type", "type_source", "vcpus", "memory_gib", "need_vcpus", "need_memory_gib",
    "target_type", "price_before_per_hour", "price_after_per_hour", "monthly_savings", "risk", "reason",
)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from analytics.recommend import configured_policies, fleet_summary, recommend_fleet
    from analytics.rightsizing.settings import load_policies

    rs = ctx.settings.rightsizing
    strategy = args.strategy or rs.strategy
    from analytics.rightsizing.settings import STRATEGY_NAMES
    from collector.errors import InputError

    if strategy not in STRATEGY_NAMES:
        raise InputError(f"strategy {strategy!r} (config [rightsizing] strategy) is unknown; use one of "
                         f"{', '.join(STRATEGY_NAMES)}")
    base = {
        "lookback_days": args.lookback_days if args.lookback_days is not None else float(rs.lookback_days),
        "min_monthly_savings": (args.min_monthly_savings if args.min_monthly_savings is not None
                                else rs.min_monthly_savings),
    }
    settings = settings_from_args(args, strategy, base)
    policies = load_policies(Path(args.policies)) if args.policies else configured_policies(ctx.settings)
    now = _parse_now(args.now, ctx)
    store = ctx.open_source()
    findings = recommend_fleet(
        store, ctx.catalogue(), strategy=strategy, now=now, policies=policies, settings=settings,
        idle_settings=ctx.settings.idle,
    )
    if args.vm:
        wanted = set(args.vm)
        findings = [f for f in findings if f.name in wanted or f.uuid in wanted]
    if args.finding:
        findings = [f for f in findings if f.finding.value in args.finding]
    if args.output == "json":
        ctx.out.emit([f.plan_entry() for f in findings])
        return 0
    ctx.out.emit([f.row() for f in findings], columns=TABLE_COLUMNS if args.output == "table" else None)
    summary = fleet_summary(findings)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["findings"].items()))
    print(f"{summary['vms']} VMs ({counts}); {summary['changes']} resizes, net savings "
          f"{summary['monthly_savings']:.2f} {summary['currency']} per 720-hour month "
          f"(strategy {strategy}, analysis time {now:%Y-%m-%d %H:%M} UTC)", file=sys.stderr)
    return 0
