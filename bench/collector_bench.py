"""Collector cycle time against floors measured in the same run.

    python -m bench.collector_bench [--cycles 30] [--fleet-size 1000] [--no-guests] [--strict]

1. QEMU: ``LibvirtSource.sample_all()`` vs a bare ``conn.getAllDomainStats()`` on the same daemon and
   domains (the rs-test-busy/idle/disk guests, booted here or reused). Target: ratio <= 1.25.
2. libvirt test driver, 1,000 domains: ``sample_all()`` vs the bare per-domain libvirt calls it cannot
   avoid (info, memoryStats, blockStats, interfaceStats, metadata). Target: <= 0.5 s per cycle.

Medians of interleaved runs; ``--strict`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import libvirt

from collector.domxml import LABELS_NAMESPACE
from collector.hypervisor.libvirt import STATS_GROUPS, LibvirtSource, silence_libvirt_stderr
from collector.hypervisor.testfleet import make_fleet, write_fleet
from collector.sampler import Sampler
from collector.store.sqlite import SqliteStore
from tests.integration.domains import (
    REPO_ROOT,
    GuestSpec,
    boot_guest,
    build_guest_images,
    create_disk,
    remove_domain,
    wait_for_console,
)

QEMU_URI = "qemu:///system"
NOWAIT = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
QEMU_RATIO_TARGET = 1.25
FLEET_CYCLE_TARGET_S = 0.5
WORKLOADS = ("busy", "idle", "disk")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(
    a: Callable[[], object], b: Callable[[], object], cycles: int
) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` alternately ``cycles`` times each, after two warm-up rounds."""
    for _ in range(2):
        a()
        b()
    times_a: list[float] = []
    times_b: list[float] = []
    for i in range(cycles):
        # Alternate the order so neither side always runs right after the other.
        if i % 2:
            times_a.append(timed(a))
            times_b.append(timed(b))
        else:
            times_b.append(timed(b))
            times_a.append(timed(a))
    return times_a, times_b


def ensure_guests(work: Path) -> list[str]:
    """Boot the rs-test-* guests that are not running; return the names booted here."""
    images = build_guest_images()
    conn = libvirt.open(QEMU_URI)
    booted: list[str] = []
    try:
        running = {d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
        for workload in WORKLOADS:
            name = f"rs-test-{workload}"
            if name in running:
                continue
            disk = create_disk(work / f"{workload}.qcow2", 64) if workload == "disk" else None
            spec = GuestSpec(name, workload, disk=disk, console_log=work / f"{workload}.console.log")
            boot_guest(conn, spec, images)
            booted.append(name)
        for name in booted:
            wait_for_console(work / f"{name.removeprefix('rs-test-')}.console.log", timeout_s=180)
    finally:
        conn.close()
    return booted


def set_suspended(names: list[str], suspended: bool) -> None:
    conn = libvirt.open(QEMU_URI)
    try:
        for name in names:
            dom = conn.lookupByName(name)
            dom.suspend() if suspended else dom.resume()
    finally:
        conn.close()


def bench_qemu(cycles: int) -> float:
    conn = libvirt.openReadOnly(QEMU_URI)
    source = LibvirtSource(QEMU_URI)
    try:
        domains = len(conn.listAllDomains(0))

        def bare() -> object:
            return conn.getAllDomainStats(STATS_GROUPS, NOWAIT)

        ours, floor = interleaved(source.sample_all, bare, cycles)
        full = full_cycles(QEMU_URI, cycles)
        version = conn.getLibVersion()
    finally:
        source.close()
        conn.close()
    med_ours, med_floor = statistics.median(ours), statistics.median(floor)
    ratio = med_ours / med_floor
    lib = f"{version // 1_000_000}.{version // 1000 % 1000}.{version % 1000}"
    print(f"QEMU ({QEMU_URI}, libvirt {lib}, {domains} domains)")
    print(f"  floor: bare getAllDomainStats     median {med_floor * 1e3:8.2f} ms  (n={cycles})")
    print(f"  LibvirtSource.sample_all()        median {med_ours * 1e3:8.2f} ms  (n={cycles})")
    verdict = "ok" if ratio <= QEMU_RATIO_TARGET else "MISSED"
    print(f"  ratio                             {ratio:8.2f}     (target <= {QEMU_RATIO_TARGET}) {verdict}")
    med_full = statistics.median(full)
    print(f"  full cycle (sample + rates + SQLite write) median {med_full * 1e3:8.2f} ms, "
          f"ratio vs floor {med_full / med_floor:.2f} (information)")
    return ratio


def bench_fleet(size: int, cycles: int, work: Path) -> float:
    uri = write_fleet(work / f"fleet-{size}.xml", make_fleet(size))
    open_start = time.perf_counter()
    conn = libvirt.openReadOnly(uri)
    open_s = time.perf_counter() - open_start
    source = LibvirtSource(uri)
    try:
        first_s = timed(source.sample_all)  # includes the source's own connect and cold caches

        def bare() -> object:
            for dom, _ in conn.getAllDomainStats(STATS_GROUPS, NOWAIT):
                dom.info()
                try:
                    dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, LABELS_NAMESPACE, 0)
                except libvirt.libvirtError:
                    pass
                if dom.isActive():
                    dom.memoryStats()
                    dom.blockStats("vda")
                    dom.interfaceStats("testnet0")  # the test driver's name for each domain's first NIC
            return None

        ours, floor = interleaved(source.sample_all, bare, cycles)
        full = full_cycles(uri, cycles)
    finally:
        source.close()
        conn.close()
    med_ours, med_floor = statistics.median(ours), statistics.median(floor)
    print(f"test driver fleet ({size} domains, opened in {open_s:.2f} s)")
    print(f"  first cycle (cold caches)         {first_s:8.3f} s")
    print(f"  floor: bare per-domain calls      median {med_floor:8.3f} s  (n={cycles})")
    verdict = "ok" if med_ours <= FLEET_CYCLE_TARGET_S else "MISSED"
    print(
        f"  LibvirtSource.sample_all()        median {med_ours:8.3f} s  (n={cycles}, "
        f"target <= {FLEET_CYCLE_TARGET_S} s) {verdict}"
    )
    print(f"  ratio vs floor                    {med_ours / med_floor:8.2f}")
    print(f"  full cycle (sample + rates + SQLite write) median {statistics.median(full):8.3f} s (information)")
    return med_ours


def full_cycles(uri: str, cycles: int) -> list[float]:
    """Durations of ``Sampler.poll_once`` (sampling, rates, one SQLite transaction) into a fresh store."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        sampler = Sampler([LibvirtSource(uri)], store, interval_s=1.0)
        try:
            sampler.poll_once()  # connect and warm caches outside the timing
            return [timed(sampler.poll_once) for _ in range(cycles)]
        finally:
            sampler.close()
            store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.collector_bench", description="Collector cycle time against same-run floors."
    )
    parser.add_argument("--cycles", type=int, default=30, help="timed cycles per side (>= 20)")
    parser.add_argument("--fleet-size", type=int, default=1000, help="test-driver domains")
    parser.add_argument("--no-guests", action="store_true", help="skip the QEMU part (no libvirtd needed)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args([] if argv is None else argv)  # bench/__main__ calls main() with no arguments
    if args.cycles < 20:
        parser.error(f"--cycles must be >= 20 for a stable median, got {args.cycles!r}")
    silence_libvirt_stderr()
    missed = False
    with tempfile.TemporaryDirectory(prefix="rightsizer-bench-") as tmp:
        work = Path(tmp)
        booted: list[str] = []
        try:
            if not args.no_guests:
                subprocess.run(["bash", str(REPO_ROOT / "scripts" / "libvirtd-up.sh")], check=True)
                booted = ensure_guests(work)
                reused = [f"rs-test-{w}" for w in WORKLOADS if f"rs-test-{w}" not in booted]
                print(f"guests: booted {booted or 'none'}; reused {reused or 'none'}")
                time.sleep(3)  # let freshly booted guests settle into their workloads
                missed |= bench_qemu(args.cycles) > QEMU_RATIO_TARGET
                # The busy guest would take one of this host's cores from the in-process fleet run.
                set_suspended(booted, True)
            try:
                missed |= bench_fleet(args.fleet_size, args.cycles, work) > FLEET_CYCLE_TARGET_S
            finally:
                if booted:
                    set_suspended(booted, False)
        finally:
            if booted:
                conn = libvirt.open(QEMU_URI)
                try:
                    for name in booted:
                        remove_domain(conn, name)
                finally:
                    conn.close()
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
