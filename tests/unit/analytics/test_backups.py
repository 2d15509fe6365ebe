from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics.backups import check_backups, policy_for
from analytics.fleet import format_duration
from collector.errors import InputError
from collector.model import VmRecord, VmState
from collector.store.base import HOUR_COLUMNS
from core.durations import parse_duration
from core.settings import BackupSettings

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
SETTINGS = BackupSettings()  # default 7d, prod 24h


def _vm(uuid: str, newest: datetime | None = None, **labels: str) -> VmRecord:
    return VmRecord(uuid=uuid, name=f"vm-{uuid}", uri="test:///default", host="h", state=VmState.RUNNING,
                    vcpus=1, max_vcpus=1, memory_bytes=2**30, max_memory_bytes=2**30, labels=labels,
                    first_seen=NOW, last_seen=NOW, newest_backup=newest)


def _one(vm: VmRecord, newest: datetime | None, **kw: object):
    found = check_backups([vm], {vm.uuid: newest} if newest else {}, SETTINGS, NOW, **kw)
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize(
    ("labels", "policy", "source", "max_age_h"),
    [
        ({}, "7d", "default", 168),
        ({"env": "prod"}, "24h", "env=prod", 24),
        ({"env": "PROD "}, "24h", "env=prod", 24),
        ({"env": "prod", "backup_policy": "12h"}, "12h", "label", 12),
        ({"backup_policy": " 1d12h "}, "1d12h", "label", 36),
        ({"backup_policy": "P2D"}, "P2D", "label", 48),
    ],
)
def test_policy_from_labels(labels: dict[str, str], policy: str, source: str, max_age_h: float) -> None:
    f = _one(_vm("a", **labels), NOW - timedelta(hours=1))
    assert (f.policy, f.policy_source, f.max_age_s) == (policy, source, max_age_h * 3600)
    assert f.status == "ok" and f.urgency == "none" and f.overdue_by_s == 0.0


def test_overdue_prod_vm_medium_then_high() -> None:
    vm = _vm("p", env="prod")
    f = _one(vm, NOW - timedelta(hours=30))  # 6 h over a 24 h policy
    assert (f.status, f.urgency, f.overdue_by_s, f.age_s) == ("overdue", "medium", 6 * 3600, 30 * 3600)
    assert "overdue by 6h" in f.reason and f.is_overdue
    f = _one(vm, NOW - timedelta(hours=48))  # a full period over
    assert (f.status, f.urgency) == ("overdue", "high")


def test_never_backed_up_is_high() -> None:
    f = _one(_vm("n"), None)
    assert (f.status, f.urgency, f.newest, f.overdue_by_s) == ("never", "high", None, None)
    assert f.is_overdue


def test_store_time_wins_over_inventory_and_inventory_is_fallback() -> None:
    vm = _vm("i", newest=NOW - timedelta(days=30))
    assert _one(vm, NOW - timedelta(hours=1)).status == "ok"
    assert _one(vm, None).status == "overdue"


def test_none_policy_needs_no_backup() -> None:
    f = _one(_vm("x", backup_policy="none"), None)
    assert (f.status, f.urgency, f.max_age_s) == ("not-required", "none", None)
    assert not f.is_overdue


@pytest.mark.parametrize("bad", ["weekly", "24", "-1d", "0h", "7 days please"])
def test_invalid_label_is_reported_and_checked_against_fallback(bad: str) -> None:
    f = _one(_vm("b", backup_policy=bad, env="prod"), NOW - timedelta(hours=30))
    assert f.status == "invalid-policy"
    assert f"invalid policy label backup_policy={bad!r}" in f.reason
    assert (f.policy, f.policy_source, f.urgency) == ("24h", "env=prod", "medium")


def test_bad_settings_policy_is_input_error() -> None:
    with pytest.raises(InputError, match="default_policy = 'weekly'"):
        check_backups([_vm("a")], {}, BackupSettings(default_policy="weekly"), NOW)


def _writes(vm: str, hours: int, written_per_hour: float, capacity: float) -> pd.DataFrame:
    frame = pd.DataFrame({c: np.full(hours, np.nan) for c in HOUR_COLUMNS})
    frame["vm"] = vm
    frame["ts"] = pd.date_range(NOW - timedelta(hours=hours), periods=hours, freq="h", tz="UTC")
    frame["disk_write_bytes"] = written_per_hour
    frame["disk_capacity_bytes"] = capacity
    return frame


def test_heavy_churn_raises_urgency() -> None:
    # 30 h since the backup, 24 h policy; 30 h x 1 GB = 30 GB written to a 100 GB disk = 30 % > 25 %
    vm = _vm("c", env="prod")
    heavy = _one(vm, NOW - timedelta(hours=30), hour_frame=_writes("c", 48, 1e9, 100e9))
    assert heavy.urgency == "high" and heavy.written_since_bytes == pytest.approx(30e9)
    assert "30% of disk capacity written" in heavy.reason
    light = _one(vm, NOW - timedelta(hours=30), hour_frame=_writes("c", 48, 0.5e9, 100e9))
    assert light.urgency == "medium" and light.written_since_bytes == pytest.approx(15e9)
    within = _one(vm, NOW - timedelta(hours=20), hour_frame=_writes("c", 48, 2e9, 100e9))
    assert (within.status, within.urgency) == ("ok", "low")


def test_findings_sorted_most_urgent_first() -> None:
    vms = [_vm("ok"), _vm("never"), _vm("late", env="prod")]
    newest = {"ok": NOW - timedelta(hours=1), "late": NOW - timedelta(hours=30)}
    order = [f.vm_uuid for f in check_backups(vms, newest, SETTINGS, NOW)]
    assert order == ["never", "late", "ok"]


def test_policy_for_reports_label_error_without_raising() -> None:
    policy, source, error = policy_for(_vm("z", backup_policy="soon"), SETTINGS)
    assert (policy, source) == ("7d", "default") and error is not None and "'soon'" in error


def test_never_backed_up_with_heavy_churn_is_critical() -> None:
    f = _one(_vm("w"), None, hour_frame=_writes("w", 48, 1e9, 100e9))  # 48 GB of 100 GB written
    assert (f.status, f.urgency) == ("never", "critical")
    assert f.written_since_bytes == pytest.approx(48e9)


@pytest.mark.parametrize(
    ("text", "hours"),
    [("24h", 24), ("7d", 168), ("1d12h", 36), (" 90M ", 1.5), ("2w", 336), ("P1D", 24), ("PT12H", 12),
     ("1.5h", 1.5), ("3600s", 1)],
)
def test_parse_duration_accepts(text: str, hours: float) -> None:
    assert parse_duration(text) == timedelta(hours=hours)


@pytest.mark.parametrize("text", ["", "24", "abc", "0h", "P", "PT", "-1d", "1x", "9" * 400 + "d"])
def test_parse_duration_refuses_with_input_error(text: str) -> None:
    with pytest.raises(InputError, match="use a positive number with a unit"):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(timedelta(seconds=s)) for s in (59, 2700, 3600, 5400, 86400, 93600, -7200)] == [
        "0m", "45m", "1h", "1h 30m", "1d", "1d 2h", "-2h"]


def test_imported_vm_without_backups_is_unknown_not_never() -> None:
    from dataclasses import replace

    from dashboard.figures import backup_age_figure

    imported = replace(_vm("t1"), source="import")
    live = _vm("l1")
    found = {f.vm_uuid: f for f in check_backups([imported, live], {}, SETTINGS, NOW)}
    assert (found["t1"].status, found["t1"].urgency) == ("unknown", "none")
    assert "unknown" in found["t1"].reason and not found["t1"].is_overdue
    assert (found["l1"].status, found["l1"].urgency) == ("never", "high")  # libvirt VMs: no snapshot = never
    # an imported VM that does have a recorded backup is judged as usual
    [judged] = check_backups([imported], {"t1": NOW - timedelta(days=10)}, SETTINGS, NOW)
    assert judged.status == "overdue"
    frame = pd.DataFrame({"name": ["vm-t1"], "age_h": [np.nan], "policy_h": [168.0], "status": ["unknown"]})
    assert [t.name for t in backup_age_figure(frame).data] == []  # nothing drawn as "never backed up"
