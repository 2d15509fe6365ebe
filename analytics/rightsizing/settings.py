"""Validated settings of every right-sizing strategy, and per-VM/per-label policies.

Pydantic models only (no numpy): the CLI builds ``--help`` and flags from these fields' bounds and
descriptions without loading the analytics. Each strategy module re-exports its settings class.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.parsing import toml_loads

MIB = 1024**2
DEFAULT_STRATEGY = "rightsizer"
#: Every strategy name, ours first.
STRATEGY_NAMES: tuple[str, ...] = ("rightsizer", "aws", "krr", "vpa")


class StrategySettings(BaseModel):
    """Settings every strategy has; subclasses set their published defaults. Bounds generate --help."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lookback_days: float = Field(14.0, gt=0, le=400, description="days of history to look at (14; 32 or 93)")
    min_coverage_hours: float = Field(
        30.0, ge=0, le=10_000, description="hours of data needed before recommending anything")
    min_span_days: float = Field(3.0, ge=0, le=400, description="days from first to last sample needed")
    min_savings_fraction: float = Field(
        0.10, ge=0, le=1, description="a downsize must save at least this share of the VM's cost")
    min_monthly_savings: float = Field(
        1.0, ge=0, le=1_000_000, description="a downsize must save at least this much per month (currency)")
    cpu_percentile: float = Field(95.0, gt=0, le=100, description="percentile of CPU demand to size for")
    cpu_headroom_fraction: float = Field(0.0, ge=0, le=10, description="headroom added on top of CPU need")
    memory_percentile: float = Field(100.0, gt=0, le=100, description="percentile of memory used (100 = max)")
    memory_headroom_fraction: float = Field(
        0.15, ge=0, le=10, description="headroom added on top of memory need")
    trend_blocks_downsize: bool = Field(
        False, description="a growing trend (robust fit of daily p95) blocks a downsize of that dimension")
    trend_growth_fraction: float = Field(
        0.10, ge=0, le=10,
        description="growth over the projection horizon, as a share of the current level, that counts as growing")


class RightsizerSettings(StrategySettings):
    """Settings of our strategy; the defaults are the ``balanced`` profile (see :data:`PROFILES`)."""

    cpu_percentile: float = Field(
        99.5, gt=0, le=100, description="percentile of CPU demand per interval to size for")
    cpu_headroom_fraction: float = Field(0.20, ge=0, le=10, description="CPU headroom over that level")
    daily_peak_percentile: float = Field(
        0.0, ge=0, le=100,
        description="also cover this percentile of the daily peak-hour CPU demand (0 = off)")
    daily_peak_headroom_fraction: float = Field(
        0.15, ge=0, le=10, description="headroom over the daily peak-hour level")
    memory_percentile: float = Field(100.0, gt=0, le=100, description="memory statistic (100 = maximum used)")
    memory_headroom_fraction: float = Field(0.15, ge=0, le=10, description="memory headroom over the maximum")
    vcpu_floor_memory_headroom_fraction: float = Field(
        0.20, ge=0, le=10,
        description=("keep at least the vCPUs of the cheapest type holding memory used with this headroom "
                     "(0 = off): trimming memory headroom never takes vCPUs away"))
    trend_blocks_downsize: bool = Field(False, description="a growing trend blocks a downsize of that dimension")
    cpu_risk_pct: float | None = Field(
        None, ge=0, le=50,
        description=("fleet CPU overrun target, % of intervals: each VM's CPU headroom is calibrated on the fleet's "
                     "training windows to meet it (None: the percentile rule, cpu_percentile + headroom)"))
    memory_risk_pct: float | None = Field(
        None, ge=0, le=50,
        description=("fleet memory overrun target, % of intervals, calibrated like the CPU one (None: maximum "
                     "used + memory_headroom_fraction)"))
    memory_peak_risk_pct: float | None = Field(
        3.0, ge=0, le=90,
        description=("fleet share of held-out training days, %, whose memory peak may exceed the need: each VM's "
                     "memory headroom over its maximum used is fitted from the spread of its daily peaks, at most "
                     "memory_headroom_fraction (3; None: that headroom for every VM)"))
    memory_peak_min_headroom_fraction: float = Field(
        0.05, ge=-1, le=10,
        description=("the least headroom over the maximum used the daily-peak rule leaves (a VM with flat daily "
                     "peaks is not sized to exactly what it used; 5 %: on the dev trace it costs 0-0.2 points of "
                     "savings and no overrun); below 0 the need may fall under the maximum used: memory is "
                     "traded for savings and overruns become possible (-1: no floor)"))
    memory_peak_margin: float | None = Field(
        None, ge=-1, le=1000,
        description="calibrated memory margin in units of the daily peaks' spread (set by the fleet calibration)")
    cpu_margin: float | None = Field(
        None, ge=-1, le=1000,
        description="calibrated CPU margin in units of each VM's spread (set by the fleet calibration)")
    memory_margin: float | None = Field(
        None, ge=-1, le=1000,
        description="calibrated memory margin in units of each VM's spread (set by the fleet calibration)")
    cpu_base_percentile: float | None = Field(
        None, gt=0, le=100,
        description="calibrated CPU base level, a percentile of interval demand (set by the fleet calibration)")
    memory_base_percentile: float | None = Field(
        None, gt=0, le=100,
        description="calibrated memory base level, a percentile of memory used (set by the fleet calibration)")


#: The settings that turn the calibrated rules off: our strategy then sizes by the percentile rule above
#: (the uniform-headroom family of earlier versions, kept for policies and the sweep's comparison curves).
PERCENTILE_RULE: dict[str, float | None] = {"cpu_risk_pct": None, "memory_risk_pct": None,
                                            "memory_peak_risk_pct": None}


#: Our profiles: overrides of :class:`RightsizerSettings` (``balanced`` is the model's defaults). Every profile
#: sizes memory the same way: the maximum used plus a headroom fitted per VM from the spread of its daily peaks
#: (``memory_peak_risk_pct`` 3 % of held-out training days, at most 15 %); they differ in the CPU statistic.
#: conservative: the largest CPU demand seen (P100) + 15 %; balanced: AWS's P99.5 + 20 %; aggressive: KRR's P95, no
#: headroom. Each profile's vCPU floor is the memory headroom of the anchor whose CPU rule it takes, so it never
#: gets fewer vCPUs than that anchor's type (up to the VM's allocation): balanced (and conservative) AWS's 20 %,
#: aggressive KRR's 15 %. Measured on the dev trace at 7/10/14/21 training days (docs/backtest.md): balanced weakly
#: dominates aws, no anchor sweep point beats any profile. The daily-peak CPU rule and the growth rule are in no
#: profile: on the backtest frontier they bought no less overrun for the savings they cost (README, "Backtest");
#: both stay available as settings.
PROFILES: dict[str, dict[str, float | bool | None]] = {
    "conservative": {"cpu_percentile": 100.0, "cpu_headroom_fraction": 0.15},
    "balanced": {},
    "aggressive": {"cpu_percentile": 95.0, "cpu_headroom_fraction": 0.0,
                   "vcpu_floor_memory_headroom_fraction": 0.15},
}
DEFAULT_PROFILE = "balanced"


def profile_overrides(name: str) -> dict[str, float | bool | None]:
    """Every setting any profile touches, at profile ``name``'s value (so one profile replaces another)."""
    keys = sorted({k for values in PROFILES.values() for k in values})
    defaults = RightsizerSettings.model_fields
    return {k: PROFILES[name].get(k, defaults[k].default) for k in keys}


def profile_settings(name: str, base: Mapping[str, object] | None = None) -> dict[str, object]:
    """The settings values of profile ``name`` over ``base``. Raises KeyError listing the profiles."""
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    return {**(base or {}), **PROFILES[name]}


class AwsSettings(StrategySettings):
    """AWS Compute Optimizer defaults: CPU P99.5 + 20 %, memory max + 20 %."""

    cpu_percentile: float = Field(99.5, gt=0, le=100, description="CPU utilisation threshold (AWS: P99.5)")
    cpu_headroom_fraction: float = Field(0.20, ge=0, le=10, description="CPU headroom (AWS: 20 %)")
    memory_percentile: float = Field(100.0, gt=0, le=100, description="memory statistic (AWS: maximum)")
    memory_headroom_fraction: float = Field(0.20, ge=0, le=10, description="memory headroom (AWS: 20 %)")


class KrrSettings(StrategySettings):
    """KRR simple-strategy defaults: CPU P95, memory max x 1.15."""

    cpu_percentile: float = Field(95.0, gt=0, le=100, description="CPU percentile (KRR: 95)")
    cpu_headroom_fraction: float = Field(0.0, ge=0, le=10, description="CPU headroom (KRR: none)")
    memory_percentile: float = Field(100.0, gt=0, le=100, description="memory statistic (KRR: max)")
    memory_headroom_fraction: float = Field(0.15, ge=0, le=10, description="memory buffer (KRR: 15 %)")


class VpaSettings(StrategySettings):
    """VPA recommender defaults: P90 + 15 % over decaying histograms with a 24 h half-life."""

    cpu_percentile: float = Field(90.0, gt=0, le=100, description="CPU target percentile (VPA: 0.9)")
    cpu_headroom_fraction: float = Field(0.15, ge=0, le=10, description="safety margin (VPA: 0.15)")
    memory_percentile: float = Field(90.0, gt=0, le=100, description="memory-peaks percentile (VPA: 0.9)")
    memory_headroom_fraction: float = Field(0.15, ge=0, le=10, description="safety margin (VPA: 0.15)")
    half_life_hours: float = Field(24.0, gt=0, le=10_000, description="histogram decay half-life (VPA: 24 h)")
    memory_interval_hours: float = Field(
        24.0, gt=0, le=10_000, description="memory peak aggregation interval (VPA: 24 h)")
    memory_interval_count: int = Field(8, ge=1, le=1000, description="memory intervals kept (VPA: 8)")
    bucket_growth: float = Field(0.05, gt=0, le=1, description="histogram bucket growth ratio - 1 (VPA: 0.05)")
    min_cpu_vcpus: float = Field(0.025, ge=0, le=64, description="minimum CPU target (VPA: 25 millicores)")
    min_memory_bytes: int = Field(250 * MIB, ge=0, description="minimum memory target (VPA: 250 MiB)")


#: The settings model of each strategy, by name.
SETTINGS_TYPES: dict[str, type[StrategySettings]] = {
    "rightsizer": RightsizerSettings,
    "aws": AwsSettings,
    "krr": KrrSettings,
    "vpa": VpaSettings,
}


class Policy(BaseModel):
    """A per-VM or per-label override of strategy settings (validated input, e.g. ``--policies FILE``).

    A policy applies to a VM when ``vm`` (name or UUID) matches, or when it has no ``vm`` and every
    ``labels`` item matches the VM's labels. Unset fields leave the strategy's value alone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    vm: str | None = Field(None, description="VM name or UUID this policy applies to")
    labels: dict[str, str] = Field(default_factory=dict, description="labels a VM must all carry")
    profile: Literal["conservative", "balanced", "aggressive"] | None = Field(
        None, description="our strategy's profile for matching VMs (the fields below still override it)")
    cpu_percentile: float | None = Field(None, gt=0, le=100, description="CPU percentile override")
    cpu_headroom_fraction: float | None = Field(None, ge=0, le=10, description="CPU headroom override")
    memory_headroom_fraction: float | None = Field(None, ge=0, le=10, description="memory headroom override")
    lookback_days: float | None = Field(None, gt=0, le=400, description="lookback override, days")
    exclude: bool | None = Field(None, description="true: never propose a resize for matching VMs")
    schedules: bool | None = Field(
        None, description="true: on/off schedules may be proposed and applied for matching VMs, env=prod included")

    def matches(self, *, uuid: str, name: str, labels: Mapping[str, str]) -> bool:
        """True when this policy applies to the VM."""
        if self.vm is not None:
            return self.vm in (uuid, name)
        return bool(self.labels) and all(labels.get(k) == v for k, v in self.labels.items())


def load_policies(path: Path) -> list[Policy]:
    """Read ``[[policy]]`` tables from a TOML file. Raises InputError naming file, entry, field and value."""
    import tomllib

    from collector.errors import InputError

    if not path.is_file():
        raise InputError(f"Policy file {str(path)!r} not found; pass a TOML file with [[policy]] tables")
    try:
        doc = toml_loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"Policy file {str(path)!r} is not valid TOML: {exc}") from exc
    tables = doc.get("policy", [])
    if not isinstance(tables, list):
        raise InputError(f"{path}: 'policy' must be an array of tables ([[policy]]), got {type(tables).__name__}")
    out = []
    for i, table in enumerate(tables):
        try:
            out.append(Policy.model_validate(table))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "?"
            raise InputError(f"{path}: policy[{i}] field {field!r} value {err.get('input')!r}: {err['msg']}") \
                from exc
    return out
