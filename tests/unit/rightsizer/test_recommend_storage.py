"""`rightsizer recommend` carries each VM's storage advice in its JSON and its table."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.guestfs import GuestFsUsage, record_usage
from collector.model import UsagePoint, VmRecord, VmState
from collector.store.sqlite import SqliteStore
from rightsizer import cli

GIB = 1024**3
NOW = datetime(2026, 3, 10, tzinfo=UTC)
#: A memory clause of analytics.findings.headroom: the fixed rule, or a headroom fitted to the daily peaks.
MEMORY_WORDS = (r"(memory: \d+ % headroom over its maximum \(fixed, not fitted to this VM\)"
                r"|(steady|variable|spiky) memory \(daily peaks spread over \d+ % of their median\): "
                r"\d+ % headroom over its maximum)")


def _db(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "rs.db"
    store = SqliteStore(path)
    first = NOW - timedelta(days=10)
    vm = VmRecord(str(uuid.uuid5(uuid.NAMESPACE_DNS, "files")), "files", "test:///default", "hv1", VmState.RUNNING,
                  2, 2, 4 * GIB, 4 * GIB, {}, first, NOW)
    points = [UsagePoint(vm.uuid, first + timedelta(hours=h), VmState.RUNNING, 2, 4 * GIB, cpu_vcpus=0.5,
                         memory_used_bytes=GIB, disk_read_bps=1e6, disk_write_bps=1e6, interval_s=3600.0,
                         disk_capacity_bytes=200_000_000_000, disk_allocation_bytes=30_000_000_000,
                         disk_read_iops=20.0, disk_write_iops=20.0) for h in range(240)]
    store.write_history([vm], points)
    record_usage(store, {vm.uuid: GuestFsUsage(5_000_000_000, 190_000_000_000, 1, NOW)})
    store.close()
    return path, vm.uuid


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(cli, "COMMANDS", ("recommend",))
    monkeypatch.delenv("RIGHTSIZER_CONFIG", raising=False)
    return cli.main(list(argv))


def test_recommend_json_and_table_show_storage_advice(monkeypatch, capsys, tmp_path) -> None:
    db, vm_uuid = _db(tmp_path)
    assert _run(monkeypatch, "recommend", "--db", str(db), "--output", "json") == 0
    (entry,) = json.loads(capsys.readouterr().out)
    storage = entry["storage"]
    assert entry["uuid"] == vm_uuid
    assert storage["used_source"] == "guest-agent" and storage["used_bytes"] == 5e9
    assert storage["recommended_capacity_bytes"] == 10e9 and storage["current_class"] == "storage_premium_perf0"
    # 190 GB less at the STACKIT eu01 capacity price 0.0000907638 EUR per GB-hour, 720 h
    assert storage["monthly_savings"] == pytest.approx(190 * 0.0000907638 * 720, abs=0.01)
    assert storage["currency"] == "EUR" and "guest-agent" in entry["reasons"]["storage"]
    assert _run(monkeypatch, "recommend", "--db", str(db), "--wide") == 0
    table = capsys.readouterr().out
    assert re.search(rf"storage_savings\s+{storage['monthly_savings']:.2f}\n", table), table
    assert re.search(r"storage_class\s+storage_premium_perf0\n", table), table


def test_recommend_table_is_one_line_per_vm_within_120_columns_and_explain_gives_the_detail(
        monkeypatch, capsys, tmp_path) -> None:
    db, _uuid = _db(tmp_path)
    assert _run(monkeypatch, "recommend", "--db", str(db)) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["name", "finding", "change", "saving", "risk", "schedule"]
    assert len(lines) == 1 + 1 and max(len(line) for line in lines) <= 120  # header + one line per VM
    assert all(len(line) <= 120 for line in captured.err.splitlines())
    assert "net savings" in captured.err and "1 VM: 1 over-provisioned" in captured.err
    assert _run(monkeypatch, "recommend", "--db", str(db), "--explain", "files") == 0
    explained = capsys.readouterr().out
    assert re.search(r"why: storage\s+", explained) and re.search(r"storage_class\s+storage_premium_perf0", explained)
    # the headroom in the VM page's words (balanced: the AWS CPU rule, fixed); the table may wrap it
    headroom = " ".join(explained[explained.index("headroom "):explained.index("why: ")].split())
    cpu = r"headroom CPU: 20 % headroom over its P99\.5 \(fixed, not fitted to this VM\); "
    assert re.fullmatch(cpu + MEMORY_WORDS, headroom), headroom
