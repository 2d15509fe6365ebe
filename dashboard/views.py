"""The dashboard's view values: the filters every page shares and the frozen results views return."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from analytics.findings.finding import VmFinding
from analytics.findings.headline import Headline, headline_saving
from analytics.findings.projection import Projection
from analytics.storage import StorageAdvice
from collector.model import VmRecord
from core.dismissals import Dismissal
from core.units import LOOKBACK_CHOICES_DAYS

GIB = 1024**3
HOUR_S = 3600
#: Selectable time ranges (label -> length). The loaded window also always covers month-to-date.
RANGES: Mapping[str, timedelta] = {
    "24h": timedelta(hours=24), "7d": timedelta(days=7), "14d": timedelta(days=14), "30d": timedelta(days=30),
}
#: The default cost window, the same as ``[costs] window_days`` (14) for 'costs' and 'report'.
DEFAULT_RANGE = "14d"
#: Lookback choices of the Recommendations and VM pages (days); the default is [rightsizing] lookback_days.
LOOKBACKS_DAYS: tuple[int, ...] = LOOKBACK_CHOICES_DAYS  # 7, 14, 30, 93 (longer ones where the history allows)
DATA_MODES: Mapping[str, str] = {
    "live": "Live data from libvirt",
    "demo": "Demo fleet on the libvirt test driver with SYNTHETIC usage history",
    "import": "Imported traces (historical data, not this machine)",
    "central": "Central: fleet history from a Prometheus-compatible query API",
}
#: Other spellings of the modes (``rightsizer serve`` says "imported").
MODE_ALIASES: Mapping[str, str] = {"imported": "import"}
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Filters:
    """The global filters: a time range key, ``key=value`` label pairs and host names."""

    range_key: str = DEFAULT_RANGE
    labels: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()

    @classmethod
    def of(cls, range_key: str | None, labels: Iterable[str] | None, hosts: Iterable[str] | None) -> Filters:
        """Normalise raw component values (None, lists in any order) into a hashable key; values of another
        JSON type than the components send (a crafted request) count as not chosen."""
        key = range_key if isinstance(range_key, str) and range_key in RANGES else DEFAULT_RANGE
        return cls(key, _texts(labels), _texts(hosts))


def _texts(values: object) -> tuple[str, ...]:
    """The distinct strings of a list (sorted); anything else is nothing chosen."""
    if not isinstance(values, list | tuple):
        return ()
    return tuple(sorted({v for v in values if isinstance(v, str)}))


@dataclass(frozen=True, slots=True)
class OptionView:
    """One machine type that covers a VM's need."""

    machine_type: str
    vcpus: int
    memory_bytes: int
    price_per_month: float
    monthly_savings: float


@dataclass(frozen=True, slots=True)
class FindingView:
    """A VM's right-sizing result, flattened for display."""

    vm_uuid: str
    finding: str
    current_type: str | None
    recommended_type: str | None
    monthly_savings: float
    risk: str  # very-low .. very-high (analytics.findings.risk)
    target_vcpus: float | None
    target_memory_bytes: int | None
    recommended_vcpus: int | None = None
    recommended_memory_bytes: int | None = None
    options: tuple[OptionView, ...] = ()  # resize options only
    reasons: Mapping[str, str] = field(default_factory=dict)
    evidence: Mapping[str, str] = field(default_factory=dict)
    excluded: bool = False
    savings_pct: float = 0.0
    action: str = "none"  # resize | stop | none
    risk_reasons: tuple[str, ...] = ()
    need_statistic: str = ""  # what target_vcpus is (the strategy's CPU statistic + headroom)
    need_memory_statistic: str = ""  # what target_memory_bytes is (the memory statistic + headroom)
    other_options: tuple[str, ...] = ()  # stop / snapshot-then-delete / delete, in words
    projection: Projection | None = None  # the lookback replayed on the recommended type
    lookback_days: float = 14.0
    pattern: str = "unknown"  # analytics.patterns: office-hours, nightly-batch, steady, spiky, idle, unknown
    schedule: str = ""  # proposed on-window with its zone, e.g. "Mon-Fri 07:00-19:00 UTC"; "" = none
    schedule_savings: float = 0.0  # per month, after any resize
    schedule_risk: str = ""  # low | medium | high
    schedule_risk_text: str = ""
    storage: StorageAdvice | None = None  # volume class and capacity advice (all disks together)
    currency: str = ""
    source: VmFinding | None = field(default=None, repr=False, compare=False)  # the finding this view shows
    dismissed: Dismissal | None = None  # dismissed or postponed: greyed, left out of the headline

    @property
    def schedule_monthly_savings(self) -> float:
        return 0.0 if self.excluded else self.schedule_savings

    @property
    def combined_savings(self) -> float:
        """What this VM adds to the headline's gross savings (its own saving by kind plus its schedule's)."""
        return headline_saving(self)


@dataclass(frozen=True, slots=True)
class BackupView:
    """A VM's newest backup against its policy.

    ``status``: ok, overdue, never, no-policy, invalid-policy; ``urgency``: none, low, medium, high, critical.
    """

    vm_uuid: str
    policy: str
    policy_h: float | None
    newest: datetime | None
    age_h: float | None
    status: str
    urgency: str = "none"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class OverviewView:
    """Everything the overview page draws, for one filter set; money in ``currency``."""

    currency: str
    spend_hour: pd.DataFrame
    spend_day: pd.DataFrame
    utilisation: pd.DataFrame
    finding_counts: Mapping[str, int]
    range_cost: float
    month_to_date: float
    forecast_month_end: float
    forecast_basis: str
    potential_monthly_savings: float
    upsize_monthly_cost: float
    vms_total: int
    vms_running: int
    unpriced_vms: int
    run_rate_now: float = 0.0  # compute + disks/h of the VMs running in the newest raw samples, disks of others
    running_now: int = 0  # VMs running in their newest raw sample
    headline: Headline | None = None  # the selected VMs' savings by kind (analytics.findings.headline)
    lookback_days: int = 14  # the history the savings were judged over (the range's days, else the configured)


@dataclass(frozen=True, slots=True)
class VmDetailView:
    """One VM: its record, hourly series in the range, cost per day and its finding."""

    vm: VmRecord
    currency: str
    hours: pd.DataFrame
    cost_day: pd.DataFrame
    machine_type: str | None
    type_source: str
    price_per_hour: float | None
    finding: FindingView | None
    backup: BackupView | None


def storage_class_text(name: str) -> str:
    """A storage class as people read it: ``storage_premium_perf0`` -> "Premium perf0", ``storage_hdd`` -> "HDD"."""
    words = name.removeprefix("storage_").replace("-", "_").split("_")
    shown = [w.upper() if w in _ACRONYMS else w for w in words if w]
    return (" ".join(shown)[:1].upper() + " ".join(shown)[1:]) if shown else name


_ACRONYMS = frozenset({"hdd", "ssd", "nvme", "iops"})


def labels_text(labels: Mapping[str, str] | None) -> str:
    """Labels as ``key=value`` pairs joined by ", " (plain text)."""
    return ", ".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas: text starting with = + - @ TAB CR gets a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value
