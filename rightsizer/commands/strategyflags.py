"""Strategy flags shared by ``recommend`` and ``backtest``: one flag per strategy setting, and ``--profile``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analytics.rightsizing.settings import StrategySettings
    from rightsizer.context import Context


_SKIP_FIELDS = frozenset({"lookback_days", "min_monthly_savings",
                          # outputs of the fleet calibration, not inputs
                          "cpu_margin", "memory_margin", "cpu_base_percentile", "memory_base_percentile"})


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
        if getattr(args, f"set_{field}", None) is None and getattr(args, field, None) is None:
            raise InputError(f"[rightsizing] {field} = {err.get('input')!r} (config file or environment variable "
                             f"RIGHTSIZER_RIGHTSIZING__{field.upper()}): {err['msg']}") from exc
        raise InputError(f"{_flag(field)} {err.get('input')!r}: {err['msg']}; see 'rightsizer recommend --help'") \
            from exc


def profile_base(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Our settings values for ``--profile`` (else config [rightsizing] profile). Raises InputError."""
    from analytics.rightsizing.settings import PROFILES, profile_settings
    from collector.errors import InputError

    name = args.profile or getattr(ctx.settings.rightsizing, "profile", "balanced")
    if name not in PROFILES:
        raise InputError(f"profile {name!r} (config [rightsizing] profile) is unknown; use one of "
                         f"{', '.join(PROFILES)}")
    return profile_settings(name)
