"""LibvirtSource conversion, reconnects and per-VM failures, on recorded QEMU stats and the test driver.

The QEMU records in tests/data/libvirt/qemu_bulk_stats.json were captured from real guests; the
libvirt objects around them are small stand-ins. The test driver runs in-process (no daemon).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import libvirt
import pytest

from collector.domxml import parse_labels
from collector.errors import OperationInvalidError, VmNotFoundError
from collector.hypervisor.libvirt import STATS_GROUPS, LibvirtControl, LibvirtSource
from collector.hypervisor.testfleet import FleetDomain, domain_uuid, write_fleet
from collector.model import VmState

DATA = Path(__file__).resolve().parents[2] / "data" / "libvirt" / "qemu_bulk_stats.json"
NOWAIT = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
GIB = 1024**3


def libvirt_error(code: int, message: str, domain: int = libvirt.VIR_FROM_QEMU) -> libvirt.libvirtError:
    exc = libvirt.libvirtError(message)
    exc.err = (code, domain, message, libvirt.VIR_ERR_ERROR, None, None, None, -1, -1)
    return exc


class StubSnapshot:
    def __init__(self, created_s: int) -> None:
        self.created_s = created_s

    def getXMLDesc(self, flags: int = 0) -> str:  # noqa: N802 - libvirt's name
        return f"<domainsnapshot><name>s</name><creationTime>{self.created_s}</creationTime></domainsnapshot>"


class StubDomain:
    """The virDomain calls LibvirtSource makes on the bulk path."""

    def __init__(self, record: dict[str, Any], *, xml: str = "<domain/>") -> None:
        self._name = record["name"]
        self._uuid = record["uuid"]
        self._id = record["id"]
        self.metadata_xml: str | None = record.get("metadata")
        self.snapshots: list[StubSnapshot] = []
        self.snapshot_calls = 0
        self.metadata_error: Exception | None = None
        self.xml = xml

    def name(self) -> str:
        return self._name

    def UUIDString(self) -> str:  # noqa: N802
        return self._uuid

    def ID(self) -> int:  # noqa: N802
        return self._id

    def metadata(self, kind: int, uri: str, flags: int = 0) -> str:
        assert kind == libvirt.VIR_DOMAIN_METADATA_ELEMENT
        if self.metadata_error is not None:
            raise self.metadata_error
        if self.metadata_xml is None:
            raise libvirt_error(libvirt.VIR_ERR_NO_DOMAIN_METADATA, "metadata not found")
        return self.metadata_xml

    def listAllSnapshots(self, flags: int = 0) -> list[StubSnapshot]:  # noqa: N802
        self.snapshot_calls += 1
        return self.snapshots

    def XMLDesc(self, flags: int = 0) -> str:  # noqa: N802
        return self.xml


class StubConnection:
    def __init__(
        self, records: list[tuple[StubDomain, dict[str, Any]]], *, reject_nowait: bool = False
    ) -> None:
        self.records = records
        self.reject_nowait = reject_nowait
        self.bulk_calls: list[tuple[int, int]] = []
        self.bulk_error: Exception | None = None
        self.closed = False

    def getType(self) -> str:  # noqa: N802
        return "QEMU"

    def getHostname(self) -> str:  # noqa: N802
        return "node-1"

    def getInfo(self) -> list[Any]:  # noqa: N802 - [model, memory MiB, cpus, MHz, nodes, sockets, cores, threads]
        return ["x86_64", 24031, 2, 2600, 1, 1, 2, 1]

    def getAllDomainStats(self, stats: int, flags: int) -> list[tuple[StubDomain, dict[str, Any]]]:  # noqa: N802
        self.bulk_calls.append((stats, flags))
        if self.bulk_error is not None:
            raise self.bulk_error
        if self.reject_nowait and flags & NOWAIT:
            raise libvirt_error(
                libvirt.VIR_ERR_INVALID_ARG, "invalid argument: unsupported flags (0x20000000)"
            )
        return self.records

    def close(self) -> int:
        self.closed = True
        return 0


def recorded() -> list[tuple[StubDomain, dict[str, Any]]]:
    doc = json.loads(DATA.read_text())
    return [(StubDomain(r), r["stats"]) for r in doc["records"]]


def by_name(batch: Any) -> dict[str, Any]:
    return {s.ref.name: s for s in batch.samples}


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def source_for(conn: Any, **kwargs: Any) -> tuple[LibvirtSource, list[str]]:
    opened: list[str] = []

    def open_readonly(uri: str) -> Any:
        opened.append(uri)
        return conn

    return LibvirtSource("qemu:///system", open_readonly=open_readonly, **kwargs), opened


def test_bulk_records_convert_to_samples_in_bytes() -> None:
    source, _ = source_for(StubConnection(recorded()))

    batch = source.sample_all()

    assert batch.ok and batch.errors == ()
    assert batch.driver == "QEMU" and batch.host == "node-1"
    vms = by_name(batch)
    busy = vms["rs-test-busy"]
    assert busy.state is VmState.RUNNING
    assert (busy.vcpus, busy.max_vcpus) == (1, 1)
    assert busy.memory_bytes == 196608 * 1024 == 201_326_592
    assert busy.max_memory_bytes == 201_326_592
    assert busy.cpu_time_ns == 181_560_756_000
    # balloon.available - balloon.usable = 145216 - 121932 KiB
    assert busy.memory_used_bytes == 23284 * 1024
    assert busy.labels == {"team": "payments", "env": "prod"}
    assert (busy.swap_in_bytes, busy.swap_out_bytes) == (0, 0)
    disk = vms["rs-test-disk"]
    assert disk.memory_used_bytes == (145196 - 121504) * 1024
    assert len(disk.disks) == 1
    vda = disk.disks[0]
    assert (vda.device, vda.read_bytes, vda.write_bytes) == ("vda", 12800, 23_970_643_968)
    assert (vda.read_reqs, vda.write_reqs) == (4, 365_763)
    assert (vda.capacity_bytes, vda.allocation_bytes) == (67_108_864, 67_436_544)


def test_guest_without_balloon_driver_has_no_used_memory_not_the_allocation() -> None:
    source, _ = source_for(StubConnection(recorded()))

    vm = by_name(source.sample_all())["rs-test-noballoon"]

    assert vm.memory_used_bytes is None
    assert vm.memory_bytes == 201_326_592
    assert vm.cpu_time_ns == 6_901_053_000


def test_shut_off_domain_keeps_inventory_and_disk_capacity() -> None:
    source, _ = source_for(StubConnection(recorded()))

    vm = by_name(source.sample_all())["rs-test-off"]

    assert vm.state is VmState.SHUTOFF
    assert vm.cpu_time_ns is None  # libvirt reports a stale cpu.time for inactive domains
    assert vm.memory_used_bytes is None
    assert vm.labels == {"env": "dev"}
    assert vm.disks[0].capacity_bytes == 33_554_432
    assert (vm.disks[0].read_bytes, vm.disks[0].write_bytes) == (0, 0)


def test_one_bulk_call_per_cycle_with_nowait() -> None:
    conn = StubConnection(recorded())
    source, _ = source_for(conn)

    source.sample_all()
    source.sample_all()

    assert conn.bulk_calls == [(STATS_GROUPS, NOWAIT), (STATS_GROUPS, NOWAIT)]


def test_daemon_rejecting_nowait_gets_plain_bulk_call_from_then_on() -> None:
    conn = StubConnection(recorded(), reject_nowait=True)
    source, _ = source_for(conn)

    first = source.sample_all()
    second = source.sample_all()

    assert first.ok and len(first.samples) == 5
    assert second.ok and len(second.samples) == 5
    assert conn.bulk_calls == [(STATS_GROUPS, NOWAIT), (STATS_GROUPS, 0), (STATS_GROUPS, 0)]


def test_driver_without_bulk_stats_is_listed_and_sampled_per_domain() -> None:
    class InfoDomain(StubDomain):
        def info(self) -> list[int]:
            return [libvirt.VIR_DOMAIN_SHUTOFF, 1024 * 1024, 512 * 1024, 1, 0]

    dom = InfoDomain(
        {"name": "old", "uuid": "00000000-0000-0000-0000-00000000000b", "id": -1},
        xml="<domain><vcpu>2</vcpu></domain>",
    )

    class NoBulkConnection(StubConnection):
        def getAllDomainStats(self, stats: int, flags: int) -> list[tuple[StubDomain, dict[str, Any]]]:  # noqa: N802
            self.bulk_calls.append((stats, flags))
            raise libvirt_error(libvirt.VIR_ERR_NO_SUPPORT, "function is not supported by the driver")

        def listAllDomains(self, flags: int = 0) -> list[StubDomain]:  # noqa: N802
            return [dom]

    conn = NoBulkConnection([])
    source, _ = source_for(conn)

    first = source.sample_all()
    second = source.sample_all()

    assert first.ok and second.ok
    vm = second.samples[0]
    assert (vm.ref.name, vm.state, vm.vcpus, vm.max_vcpus) == ("old", VmState.SHUTOFF, 1, 2)
    assert (vm.memory_bytes, vm.max_memory_bytes) == (512 * 1024 * 1024, GIB)
    assert len(conn.bulk_calls) == 2  # NOWAIT, then plain; never asked again


def test_failed_connect_returns_not_ok_batch_and_backs_off_exponentially() -> None:
    clock = Clock()
    attempts: list[float] = []

    def refuse(uri: str) -> Any:
        attempts.append(clock.now_s)
        raise libvirt_error(libvirt.VIR_ERR_SYSTEM_ERROR, "Failed to connect socket", libvirt.VIR_FROM_RPC)

    source = LibvirtSource("qemu:///system", open_readonly=refuse, monotonic=clock)
    for _ in range(400):  # one cycle every 0.5 s for 200 s
        batch = source.sample_all()
        assert not batch.ok
        assert batch.errors[0].kind == "connection"
        clock.now_s += 0.5

    # Delays 1, 2, 4, 8, 16, 32, then capped at 60 s.
    assert [a - 1000.0 for a in attempts] == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 123.0, 183.0]


def test_reconnect_succeeds_after_backoff_and_resets_it() -> None:
    clock = Clock()
    conn = StubConnection(recorded())
    failures = [2]

    def flaky(uri: str) -> Any:
        if failures[0]:
            failures[0] -= 1
            raise libvirt_error(libvirt.VIR_ERR_SYSTEM_ERROR, "Connection refused", libvirt.VIR_FROM_RPC)
        return conn

    source = LibvirtSource("qemu:///system", open_readonly=flaky, monotonic=clock)
    assert not source.sample_all().ok  # t=0 fails, next at t=1
    clock.now_s += 1
    assert not source.sample_all().ok  # t=1 fails, next at t=3
    clock.now_s += 1
    assert not source.sample_all().ok  # t=2 waits without trying
    clock.now_s += 1
    assert source.sample_all().ok  # t=3 connects
    assert failures == [0]


def test_connection_lost_mid_run_drops_it_and_reconnects_next_cycle() -> None:
    conn = StubConnection(recorded())
    source, opened = source_for(conn)
    assert source.sample_all().ok

    conn.bulk_error = libvirt_error(
        libvirt.VIR_ERR_INTERNAL_ERROR, "client socket is closed", libvirt.VIR_FROM_RPC
    )
    broken = source.sample_all()
    conn.bulk_error = None
    healed = source.sample_all()

    assert not broken.ok and broken.errors[0].kind == "connection"
    assert conn.closed
    assert healed.ok and len(healed.samples) == 5
    assert opened == ["qemu:///system", "qemu:///system"]


def test_vm_vanishing_mid_cycle_is_reported_per_vm() -> None:
    records = recorded()
    gone = records[0][0]
    gone.metadata_error = libvirt_error(
        libvirt.VIR_ERR_NO_DOMAIN, "Domain not found: no domain with matching uuid"
    )
    source, _ = source_for(StubConnection(records))

    batch = source.sample_all()

    assert batch.ok
    assert [(e.ref.name if e.ref else None, e.kind) for e in batch.errors] == [(gone.name(), "not-found")]
    assert len(batch.samples) == 4


def test_unexpected_failure_of_one_vm_does_not_end_the_cycle() -> None:
    records = recorded()
    records[1][0].metadata_error = RuntimeError("boom")
    source, _ = source_for(StubConnection(records))

    batch = source.sample_all()

    assert batch.ok and len(batch.samples) == 4
    assert batch.errors[0].kind == "error" and "RuntimeError: boom" in batch.errors[0].message


def test_running_domain_missing_stats_uses_per_domain_calls() -> None:
    class InfoDomain(StubDomain):
        def info(self) -> list[int]:
            return [libvirt.VIR_DOMAIN_RUNNING, 2 * 1024 * 1024, 1024 * 1024, 2, 5_000_000_000]

        def memoryStats(self) -> dict[str, int]:  # noqa: N802
            return {"actual": 1048576, "available": 1000000, "unused": 600000}

    dom = InfoDomain(
        {"name": "odd", "uuid": "00000000-0000-0000-0000-00000000000a", "id": 7},
        xml="<domain><vcpu current='2'>4</vcpu><devices/></domain>",
    )
    source, _ = source_for(StubConnection([(dom, {"state.state": 1, "state.reason": 1})]))

    vm = source.sample_all().samples[0]

    assert (vm.vcpus, vm.max_vcpus) == (2, 4)
    assert (vm.memory_bytes, vm.max_memory_bytes) == (GIB, 2 * GIB)
    assert vm.cpu_time_ns == 5_000_000_000
    assert vm.memory_used_bytes == 400000 * 1024  # available - unused when usable is absent


def test_running_domain_without_cpu_time_is_sampled_and_flagged() -> None:
    records = recorded()
    dom, stats = next((d, s) for d, s in records if d.name() == "rs-test-idle")
    del stats["cpu.time"]
    source, _ = source_for(StubConnection(records))

    batch = source.sample_all()

    assert by_name(batch)["rs-test-idle"].cpu_time_ns is None
    assert by_name(batch)["rs-test-idle"].memory_bytes == 201_326_592
    assert [(e.ref.name if e.ref else None, e.kind) for e in batch.errors] == [("rs-test-idle", "no-data")]


def test_snapshots_are_read_when_first_seen_then_every_nth_cycle() -> None:
    records = recorded()
    dom = records[0][0]
    dom.snapshots = [StubSnapshot(1_700_003_600), StubSnapshot(1_700_000_000)]
    source, _ = source_for(StubConnection(records), snapshot_every_cycles=5)

    batches = [source.sample_all() for _ in range(10)]

    assert dom.snapshot_calls == 3  # first cycle, then twice in nine more cycles
    times = by_name(batches[-1])[dom.name()].snapshot_times
    assert times == (
        datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        datetime(2023, 11, 14, 23, 13, 20, tzinfo=UTC),
    )


def balloon_source(xml: str, **kwargs: Any) -> tuple[LibvirtSource, list[tuple[str, int, int]]]:
    records = [
        (StubDomain(r, xml=xml), s)
        for r, s in ((r, r["stats"]) for r in json.loads(DATA.read_text())["records"])
        if r["name"] == "rs-test-idle"
    ]
    calls: list[tuple[str, int, int]] = []

    class RwDomain:
        def __init__(self, uuid: str) -> None:
            self.uuid = uuid

        def setMemoryStatsPeriod(self, period: int, flags: int) -> int:  # noqa: N802
            calls.append((self.uuid, period, flags))
            return 0

    class RwConnection:
        def lookupByUUIDString(self, uuid: str) -> RwDomain:  # noqa: N802
            return RwDomain(uuid)

        def close(self) -> int:
            return 0

    def open_readwrite(uri: str) -> RwConnection:
        return RwConnection()

    source, _ = source_for(StubConnection(records), open_readwrite=open_readwrite, **kwargs)
    return source, calls


def test_balloon_stats_period_is_turned_on_once_per_started_domain() -> None:
    xml = "<domain><devices><memballoon model='virtio'/></devices></domain>"
    source, calls = balloon_source(xml, enable_balloon_stats=True, balloon_period_s=10)

    source.sample_all()
    source.sample_all()

    assert calls == [("14004075-652e-5f39-8da1-4ab36434dcc1", 10, libvirt.VIR_DOMAIN_AFFECT_LIVE)]


@pytest.mark.parametrize(
    ("xml", "enabled"),
    [
        (
            "<domain><devices><memballoon model='virtio'><stats period='2'/></memballoon></devices></domain>",
            True,
        ),
        ("<domain><devices><memballoon model='none'/></devices></domain>", True),
        ("<domain><devices><memballoon model='virtio'/></devices></domain>", False),
    ],
)
def test_balloon_stats_period_left_alone(xml: str, enabled: bool) -> None:
    source, calls = balloon_source(xml, enable_balloon_stats=enabled)

    source.sample_all()

    assert calls == []


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (
            '<labels>\n  <label name="team">payments</label>\n  <label name="env"> prod </label>\n</labels>',
            {"team": "payments", "env": "prod"},
        ),
        (
            '<rs:labels xmlns:rs="https://rightsizer.dev/xmlns/labels/1"><rs:label name="backup_policy">24h'
            "</rs:label></rs:labels>",
            {"backup_policy": "24h"},
        ),
        (
            '<labels><label>no name</label><label name="rightsizer_exclude">true</label></labels>',
            {"rightsizer_exclude": "true"},
        ),
        ("<labels/>", {}),
    ],
)
def test_parse_labels(xml: str, expected: dict[str, str]) -> None:
    assert parse_labels(xml) == expected


# -- the libvirt test driver, in-process -----------------------------------------------------------


def small_fleet(tmp_path: Path) -> str:
    return write_fleet(
        tmp_path / "fleet.xml",
        [
            FleetDomain(
                "web-1",
                domain_uuid("web-1"),
                vcpus=2,
                max_vcpus=4,
                memory_bytes=2 * GIB,
                max_memory_bytes=4 * GIB,
                labels={"team": "search", "env": "prod"},
                snapshot_times=(datetime(2026, 1, 2, 3, 0, tzinfo=UTC),),
            ),
            FleetDomain(
                "db-1",
                domain_uuid("db-1"),
                vcpus=4,
                max_vcpus=4,
                memory_bytes=8 * GIB,
                max_memory_bytes=8 * GIB,
                running=False,
                labels={"rightsizer_exclude": "true"},
            ),
            FleetDomain("batch-1", domain_uuid("batch-1"), disks=2, nics=0),
        ],
    )


def test_test_driver_is_sampled_per_domain(tmp_path: Path) -> None:
    with LibvirtSource(small_fleet(tmp_path)) as source:
        batch = source.sample_all()

    assert batch.ok and batch.errors == ()
    assert batch.driver.lower() == "test"
    vms = by_name(batch)
    web = vms["web-1"]
    assert web.ref.uuid == domain_uuid("web-1")
    assert web.state is VmState.RUNNING
    assert (web.vcpus, web.max_vcpus, web.memory_bytes, web.max_memory_bytes) == (2, 4, 2 * GIB, 4 * GIB)
    assert web.cpu_time_ns is None  # the test driver's cpuTime is wall-clock, not CPU time
    assert web.memory_used_bytes == GIB  # the test driver reports half of actual as usable
    assert web.labels == {"team": "search", "env": "prod"}
    assert web.snapshot_times == (datetime(2026, 1, 2, 3, 0, tzinfo=UTC),)
    assert [d.device for d in web.disks] == ["vda"] and len(web.nets) == 1
    db = vms["db-1"]
    assert db.state is VmState.SHUTOFF
    assert (db.vcpus, db.memory_bytes) == (4, 8 * GIB)
    assert db.memory_used_bytes is None and db.disks == ()
    assert db.labels == {"rightsizer_exclude": "true"}
    assert [d.device for d in vms["batch-1"].disks] == ["vda", "vdb"] and vms["batch-1"].nets == ()


def test_control_resizes_and_reads_back_on_test_driver(tmp_path: Path) -> None:
    uri = small_fleet(tmp_path)
    with LibvirtControl(uri) as control:
        ref = control.lookup("web-1")
        assert control.lookup(ref.uuid) == ref
        control.set_vcpus(ref, 3, live=True, config=False)
        control.set_memory(ref, 3 * GIB, live=True, config=False)
        info = control.info(ref)
        capacity = control.host_capacity()
        snaps = control.snapshot_times(ref)

    assert (info.vcpus, info.max_vcpus, info.memory_bytes, info.max_memory_bytes) == (3, 4, 3 * GIB, 4 * GIB)
    assert info.state is VmState.RUNNING and info.persistent
    assert capacity.cpus == 256 and capacity.memory_bytes == 2**40  # sized by testfleet.host_xml()
    assert snaps == (datetime(2026, 1, 2, 3, 0, tzinfo=UTC),)


def test_control_errors_are_ours(tmp_path: Path) -> None:
    uri = small_fleet(tmp_path)
    with LibvirtControl(uri) as control:
        with pytest.raises(VmNotFoundError, match="nope"):
            control.lookup("nope")
        ref = control.lookup("web-1")
        with pytest.raises(OperationInvalidError):
            # The test driver refuses LIVE|CONFIG together for memory (the QEMU driver accepts it).
            control.set_memory(ref, GIB, live=True, config=True)
        with pytest.raises(ValueError, match="live=True and/or config=True"):
            control.set_vcpus(ref, 2, live=False, config=False)


def test_sources_check_their_arguments() -> None:
    bad: list[Callable[[], object]] = [
        lambda: LibvirtSource("qemu:///system", balloon_period_s=-1),
        lambda: LibvirtSource("qemu:///system", snapshot_every_cycles=0),
    ]
    for make in bad:
        with pytest.raises(ValueError, match="got"):
            make()
