"""``rightsizer collect``: sample libvirt into the store, once (``--once``) or on an interval."""

from __future__ import annotations

import argparse
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.model import SampleBatch, UsagePoint
    from rightsizer.context import Context

log = logging.getLogger(__name__)
DEFAULT_URI = "qemu:///system"


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "collect", parents=[parent], help="sample per-VM CPU, memory, disk and net from libvirt into the store",
        description="Sample every domain of each libvirt URI (read-only) and store rates and allocations. "
                    "With --once, one cycle is run and the sampled VMs are printed.",
    )
    p.add_argument("--once", action="store_true", help="run one cycle, print what was sampled, exit")
    p.add_argument("--uri", action="append", metavar="URI",
                   help=f"libvirt URI, repeatable (default: config [collector] uris, else {DEFAULT_URI})")
    p.add_argument("--interval", type=float, metavar="SECONDS", help="seconds between cycles (without --once)")
    p.set_defaults(func=run, settings_overrides=collector_overrides)


def collector_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Settings from --uri and --interval (shared by collect and serve)."""
    over: dict[str, dict[str, Any]] = {}
    if args.uri:
        over["collector"] = {"uris": args.uri}
    if args.interval is not None:
        over.setdefault("collector", {})["interval_s"] = args.interval
    return over


def make_sources(ctx: Context, uris: list[str], *, long_running: bool = True) -> list[Any]:
    """One read-only LibvirtSource per URI, configured from settings.

    Long-running collectors also ask guest agents for filesystem use (``[collector] guest_agent_interval_s``);
    a one-shot cycle does not (the answer would arrive after it ended).
    """
    from collector.hypervisor.libvirt import LibvirtSource

    c = ctx.settings.collector
    return [LibvirtSource(u, balloon_period_s=c.balloon_period_s, enable_balloon_stats=c.enable_balloon_stats,
                          guest_agent_every_s=c.guest_agent_interval_s if long_running else 0.0)
            for u in uris]


def vm_rows(batches: list[SampleBatch], points: list[UsagePoint]) -> list[dict[str, Any]]:
    """One dict per sampled VM: identity, allocation, counters and the rates of this cycle."""
    by_vm = {p.vm_uuid: p for p in points}
    rows: list[dict[str, Any]] = []
    for b in batches:
        for s in b.samples:
            p = by_vm.get(s.ref.uuid)
            rows.append({
                "name": s.ref.name, "uuid": s.ref.uuid, "host": s.host, "uri": b.uri, "state": s.state.value,
                "vcpus": s.vcpus, "max_vcpus": s.max_vcpus, "memory_bytes": s.memory_bytes,
                "max_memory_bytes": s.max_memory_bytes, "memory_used_bytes": s.memory_used_bytes,
                "cpu_time_ns": s.cpu_time_ns, "cpu_vcpus": p.cpu_vcpus if p else None,
                "disk_read_bytes": s.disk_read_bytes, "disk_write_bytes": s.disk_write_bytes,
                "net_rx_bytes": s.net_rx_bytes, "net_tx_bytes": s.net_tx_bytes,
                "disks": [{"device": d.device, "read_bytes": d.read_bytes, "write_bytes": d.write_bytes,
                           "read_reqs": d.read_reqs, "write_reqs": d.write_reqs,
                           "capacity_bytes": d.capacity_bytes, "allocation_bytes": d.allocation_bytes}
                          for d in s.disks],
                "nets": [{"device": n.device, "rx_bytes": n.rx_bytes, "tx_bytes": n.tx_bytes} for n in s.nets],
                "labels": dict(s.labels),
            })
    return rows


def _collect_until_signal(sampler: Any, uris: list[str], ctx: Context) -> None:
    """Run a cycle every interval until SIGTERM or SIGINT; the cycle in progress finishes first."""
    import signal
    import threading

    from collector.errors import StoreError

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, stopping after the current cycle", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    interval = ctx.settings.collector.interval_s
    log.info("collecting from %s every %.0f s into %s", ", ".join(uris), interval, ctx.db_path)
    next_at = time.monotonic() + interval
    while not stop.wait(max(0.0, next_at - time.monotonic())):
        next_at += interval
        try:
            batches = sampler.poll_once()
        except StoreError as exc:  # a full disk: keep sampling, store again once there is room
            log.error("cycle not stored: %s; retrying next interval", exc)
            continue
        n = sum(len(b.samples) for b in batches)
        log.info("cycle: %d VMs from %d URI(s) in %.3f s", n, len(batches), sampler.snapshot.cycle_seconds)
    log.info("stopped")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from collector.errors import InputError
    from collector.sampler import Sampler

    uris = ctx.settings.collector.uris or [DEFAULT_URI]
    sources = make_sources(ctx, uris, long_running=not args.once)
    try:
        probe = [s.sample_all() for s in sources]
        down = [b for b in probe if not b.ok]
        if down:
            # nothing is written when a URI is unreachable at start: the user fixes the URI first
            reasons = "; ".join(f"{b.uri}: {', '.join(e.message for e in b.errors) or 'unreachable'}"
                                for b in down)
            raise InputError(f"cannot reach libvirt ({reasons}); check --uri and that libvirtd runs")
        sampler = Sampler(sources, ctx.open_store(writer=True), interval_s=ctx.settings.collector.interval_s)
        points = sampler.ingest(probe)
        if args.once:
            ctx.out.emit(vm_rows(probe, points), columns=None if ctx.out.fmt != "table" else
                         ["name", "host", "state", "vcpus", "memory_bytes", "memory_used_bytes", "cpu_vcpus"])
            return 0
        _collect_until_signal(sampler, uris, ctx)
        return 0
    finally:
        for s in sources:
            s.close()
