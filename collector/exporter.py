"""Prometheus exporter: the sampler's last snapshot and the latest cost/recommendation view as metric families.

A scrape never calls libvirt and never renders: ``collector.exposition`` renders these families once per
collection cycle and per analytics refresh, and serves the bytes. Names follow Prometheus conventions (base
units, ``_total`` counters, identity on one ``_info`` metric) and pass ``promtool check metrics``. A value
the hypervisor did not report is absent, never 0. ``describe()`` lists every family, so
``restricted_registry`` and ``/metrics?name[]=`` work.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from collector.hypervisor.base import ERROR_KINDS
from collector.model import SampleBatch, UsagePoint, VmSample, VmState
from collector.sampler import STORE_ERROR_KIND, Snapshot

_LABEL_KEY = re.compile(r"[^a-zA-Z0-9_]")
_VM = ("vm", "uuid", "host")
_DISK = ("vm", "uuid", "host", "device")
_NIC = _DISK
_MONEY = ("vm", "uuid", "currency")
log = logging.getLogger(__name__)


def prometheus_labels(labels: Mapping[str, str], warned: set[tuple[str, ...]] | None = None) -> dict[str, str]:
    """Domain labels as ``label_<key>`` (like kube-state-metrics), every one kept.

    The prefix keeps ``vm``/``uuid`` labels apart from the identity labels. Keys that sanitise to one name
    (``a-b`` and ``a_b``) all stay: the key already in Prometheus form keeps the name, the others get
    ``_conflict1``, ``_conflict2`` … in key order, with one warning per set of keys (tracked in ``warned``).
    """
    groups: dict[str, list[str]] = {}
    for key in sorted(labels):
        groups.setdefault("label_" + _LABEL_KEY.sub("_", key), []).append(key)
    out: dict[str, str] = {}
    for name, keys in groups.items():
        exact = [k for k in keys if "label_" + k == name]
        ordered = exact + [k for k in keys if k not in exact]
        out[name] = labels[ordered[0]]
        for n, key in enumerate(ordered[1:], start=1):
            out[f"{name}_conflict{n}"] = labels[key]
        if len(keys) > 1 and (warned is None or tuple(keys) not in warned):
            if warned is not None:
                warned.add(tuple(keys))
            log.warning("domain labels %s all map to Prometheus label %r; exported as %s", keys, name,
                        [name] + [f"{name}_conflict{n}" for n in range(1, len(keys))])
    return out


@dataclass(frozen=True, slots=True)
class VmEconomics:
    """Cost and right-sizing view of one VM, as computed by analytics (no analytics import here).

    ``hourly_cost`` is what the VM costs per hour now: its machine type while billed plus its disks
    (``storage_hourly_cost``). ``monthly_savings`` is signed: an upsize is a negative saving (its cost).
    ``None`` means unknown (the metric is then absent).
    """

    machine_type: str
    hourly_cost: float
    currency: str
    finding: str = ""
    current_type: str = ""
    recommended_type: str = ""
    monthly_savings: float = 0.0
    storage_hourly_cost: float | None = None
    backup_age_seconds: float | None = None  # None: never backed up
    backup_overdue: bool | None = None  # None: no backup policy applies
    idle: bool | None = None  # None: not enough data to judge
    #: storage advice: monthly saving of the advised class/capacity (None: no advice), classes, use source
    storage_monthly_savings: float | None = None
    storage_current_class: str = ""
    storage_recommended_class: str = ""
    storage_used_source: str = ""
    risk: str = ""  # the finding's risk in words (very-low .. very-high); a label of the recommendation info
    pattern: str = ""  # workload pattern (office-hours, nightly-batch, steady, spiky, idle, unknown)
    schedule_monthly_savings: float | None = None  # the proposed on/off schedule's saving (None: no schedule)
    #: the analysis' signals over its lookback (None: no finding): vCPUs waiting for host CPUs, guest memory pressure
    contended: bool | None = None
    memory_pressure: bool | None = None


@dataclass(frozen=True, slots=True)
class EconomicsView:
    """Per-VM economics keyed by UUID; replaced whole by the analytics job."""

    by_vm: Mapping[str, VmEconomics] = field(default_factory=dict)
    #: (service, level, 1.0 at risk else 0.0) for every service with two or more running members
    placement: tuple[tuple[str, str, float], ...] = ()


def _g(name: str, doc: str, labels: tuple[str, ...] = _VM) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _c(name: str, doc: str, labels: tuple[str, ...] = _VM) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _vm_families() -> dict[str, Metric]:
    """Empty per-VM families, keyed by a short name (also what ``describe`` returns)."""
    libvirt_doc = "https://libvirt.org/html/libvirt-libvirt-domain.html#virConnectGetAllDomainStats"
    fams: dict[str, Metric] = {
        "info": InfoMetricFamily("rightsizer_vm", "Identity of each VM; join on vm/uuid.", labels=None),
        "running": _g("rightsizer_vm_running", "1 when the domain is running, else 0."),
        "vcpus": _g("rightsizer_vm_vcpus", "vCPUs currently allocated."),
        "cpu": _c("rightsizer_vm_cpu_seconds", "CPU time consumed by the domain."),
        "usage": _g("rightsizer_vm_cpu_usage_vcpus",
                    "CPU used over the last collection interval in vCPUs (the cycle's rate of cpu_seconds_total), "
                    "stamped with the cycle's time so a central PromQL source rolls up the same samples as the "
                    "embedded store."),
        "delay": _c("rightsizer_vm_cpu_delay_seconds",
                    "Time the vCPUs were runnable but waiting for a host CPU, summed over vCPUs "
                    f"(vcpu.N.delay, {libvirt_doc})."),
        "mem": _g("rightsizer_vm_memory_bytes", "Memory allocated (current balloon size)."),
        "mem_max": _g("rightsizer_vm_memory_max_bytes", "Maximum memory of the domain."),
        "used": _g("rightsizer_vm_memory_used_bytes",
                   "Guest-used memory from balloon stats; absent when the guest reports none."),
        "swap_in": _c("rightsizer_vm_memory_swap_in_bytes", "Bytes the guest read from swap (balloon.swap_in)."),
        "swap_out": _c("rightsizer_vm_memory_swap_out_bytes", "Bytes the guest wrote to swap (balloon.swap_out)."),
        "majflt": _c("rightsizer_vm_memory_major_faults", "Major page faults in the guest (balloon.major_fault)."),
        "rd": _c("rightsizer_vm_disk_read_bytes", "Bytes read from each disk.", _DISK),
        "wr": _c("rightsizer_vm_disk_write_bytes", "Bytes written to each disk.", _DISK),
        "rd_reqs": _c("rightsizer_vm_disk_read_requests", "Read requests completed per disk.", _DISK),
        "wr_reqs": _c("rightsizer_vm_disk_write_requests", "Write requests completed per disk.", _DISK),
        "rd_time": _c("rightsizer_vm_disk_read_time_seconds", "Time spent on reads per disk (block.N.rd.times).",
                      _DISK),
        "wr_time": _c("rightsizer_vm_disk_write_time_seconds",
                      "Time spent on writes per disk (block.N.wr.times).", _DISK),
        "capacity": _g("rightsizer_vm_disk_capacity_bytes", "Guest-visible size of each disk.", _DISK),
        "allocation": _g("rightsizer_vm_disk_allocation_bytes",
                         "Highest written offset of each disk's image (how much of it is in use on the host).",
                         _DISK),
        "rx": _c("rightsizer_vm_network_receive_bytes", "Bytes received per interface.", _NIC),
        "tx": _c("rightsizer_vm_network_transmit_bytes", "Bytes sent per interface.", _NIC),
    }
    return fams


def _econ_families() -> dict[str, Metric]:
    return {
        "cost": _g("rightsizer_vm_hourly_cost",
                   "What the VM costs per hour now: machine type while billed plus its disks.", _MONEY),
        "storage_cost": _g("rightsizer_vm_storage_hourly_cost", "Hourly cost of the VM's disks.", _MONEY),
        "rec": InfoMetricFamily("rightsizer_vm_recommendation", "Latest right-sizing finding of each VM."),
        "savings": _g("rightsizer_vm_potential_monthly_savings",
                      "Monthly saving if the recommendation is applied; negative for an upsize (its cost).",
                      _MONEY),
        "backup_age": _g("rightsizer_vm_backup_age_seconds",
                         "Age of the newest backup/snapshot; absent when the VM was never backed up.", ("vm", "uuid")),
        "backup_overdue": _g("rightsizer_vm_backup_overdue", "1 when the newest backup is older than the VM's policy.",
                             ("vm", "uuid")),
        "placement": _g("rightsizer_service_placement_risk",
                        "1 when every running member of the service is on one host (level single-host) or in "
                        "one zone while the fleet has another (level zone).", ("service", "level")),
        "storage_savings": _g("rightsizer_vm_storage_potential_monthly_savings",
                              "Monthly saving of the advised volume performance class and capacity (all disks).",
                              _MONEY),
        "storage_rec": InfoMetricFamily("rightsizer_vm_storage_recommendation",
                                        "Storage advice of each VM: class now, class its P99 load needs, and where "
                                        "the used bytes come from (guest-agent, allocation, unknown)."),
        "schedule_savings": _g("rightsizer_vm_schedule_monthly_savings",
                               "Monthly saving of the proposed on/off schedule, after any resize (absent: none).",
                               _MONEY),
        "idle": _g("rightsizer_vm_idle", "1 when the VM is idle by the [idle] rule, 0 when not; absent when unknown.",
                   ("vm", "uuid")),
        "signal": _g("rightsizer_vm_signal",
                     "1 when the analysis saw the signal over its lookback, else 0: contention (vCPUs waiting for "
                     "host CPUs, [signals] contention_share) or memory-pressure (guest swap or major-fault bursts).",
                     ("vm", "uuid", "signal")),
    }


def _health_families() -> dict[str, Metric]:
    return {
        "up": _g("rightsizer_up", "1 when the last cycle reached the libvirt URI.", ("uri",)),
        "vms": _g("rightsizer_collector_vms", "Domains sampled in the last cycle.", ("uri",)),
        "host_cpus": _g("rightsizer_host_cpus", "Logical CPUs of each hypervisor host.", ("host",)),
        "cycle": GaugeMetricFamily("rightsizer_collector_cycle_seconds", "Duration of the last collection cycle."),
        "cycles": CounterMetricFamily("rightsizer_collector_cycles", "Collection cycles run."),
        "errors": _c("rightsizer_collector_errors", "Errors by kind (per VM or per URI).", ("kind",)),
    }


def _info_labels(s: VmSample, batch: SampleBatch, e: VmEconomics | None,
                 warned: set[tuple[str, ...]]) -> dict[str, str]:
    labels = {"vm": s.ref.name, "uuid": s.ref.uuid, "host": s.host, "uri": batch.uri,
              # an agent has no economics: pass the domain's own machine_type label on
              "state": s.state.value, "machine_type": e.machine_type if e else s.labels.get("machine_type", "")}
    labels.update(prometheus_labels(s.labels, warned))
    return labels


def _add(fam: Metric, labels: list[str], value: float | int | None, scale: float = 1.0) -> None:
    """Add a sample when the value is known (absent, never 0, when the hypervisor did not report it)."""
    if value is not None:
        fam.add_metric(labels, float(value) * scale)  # type: ignore[attr-defined]


def _add_vm(f: dict[str, Metric], s: VmSample, batch: SampleBatch, e: VmEconomics | None,
            warned: set[tuple[str, ...]], point: UsagePoint | None = None) -> None:
    base = [s.ref.name, s.ref.uuid, s.host]
    f["info"].add_metric([], _info_labels(s, batch, e, warned))  # type: ignore[attr-defined]
    _add(f["running"], base, 1.0 if s.state is VmState.RUNNING else 0.0)
    _add(f["vcpus"], base, s.vcpus)
    _add(f["cpu"], base, s.cpu_time_ns, 1e-9)
    if point is not None and point.cpu_vcpus is not None:
        f["usage"].add_metric(base, point.cpu_vcpus, timestamp=point.ts.timestamp())  # type: ignore[attr-defined]
    _add(f["delay"], base, s.cpu_delay_ns, 1e-9)
    _add(f["mem"], base, s.memory_bytes)
    _add(f["mem_max"], base, s.max_memory_bytes)
    _add(f["used"], base, s.memory_used_bytes)
    _add(f["swap_in"], base, s.swap_in_bytes)
    _add(f["swap_out"], base, s.swap_out_bytes)
    _add(f["majflt"], base, s.major_faults)
    for d in s.disks:
        dev = base + [d.device]
        _add(f["rd"], dev, d.read_bytes)
        _add(f["wr"], dev, d.write_bytes)
        _add(f["rd_reqs"], dev, d.read_reqs)
        _add(f["wr_reqs"], dev, d.write_reqs)
        _add(f["rd_time"], dev, d.read_time_ns, 1e-9)
        _add(f["wr_time"], dev, d.write_time_ns, 1e-9)
        _add(f["capacity"], dev, d.capacity_bytes)
        _add(f["allocation"], dev, d.allocation_bytes)
    for nic in s.nets:
        _add(f["rx"], base + [nic.device], nic.rx_bytes)
        _add(f["tx"], base + [nic.device], nic.tx_bytes)


def _add_econ(f: dict[str, Metric], s: VmSample, e: VmEconomics) -> None:
    money = [s.ref.name, s.ref.uuid, e.currency]
    vm = [s.ref.name, s.ref.uuid]
    _add(f["cost"], money, e.hourly_cost)
    _add(f["storage_cost"], money, e.storage_hourly_cost)
    if e.finding:
        f["rec"].add_metric([], {"vm": s.ref.name, "uuid": s.ref.uuid, "finding": e.finding,  # type: ignore[attr-defined]
                                 "current_type": e.current_type, "recommended_type": e.recommended_type,
                                 "risk": e.risk, "pattern": e.pattern})
        _add(f["savings"], money, e.monthly_savings)
    _add(f["schedule_savings"], money, e.schedule_monthly_savings)
    if e.storage_monthly_savings is not None:
        _add(f["storage_savings"], money, e.storage_monthly_savings)
        f["storage_rec"].add_metric([], {"vm": s.ref.name, "uuid": s.ref.uuid,  # type: ignore[attr-defined]
                                         "current_class": e.storage_current_class,
                                         "recommended_class": e.storage_recommended_class,
                                         "used_source": e.storage_used_source})
    _add(f["backup_age"], vm, e.backup_age_seconds)
    _add(f["backup_overdue"], vm, None if e.backup_overdue is None else int(e.backup_overdue))
    _add(f["idle"], vm, None if e.idle is None else int(e.idle))
    for signal, seen in (("contention", e.contended), ("memory-pressure", e.memory_pressure)):
        _add(f["signal"], [*vm, signal], None if seen is None else int(seen))


class RightsizerCollector(Collector):
    """Custom collector yielding metric families from the current snapshots."""

    def __init__(self, snapshot: Callable[[], Snapshot],
                 economics: Callable[[], EconomicsView] = EconomicsView) -> None:
        self._snapshot = snapshot
        self._economics = economics
        self._warned: set[tuple[str, ...]] = set()

    def describe(self) -> list[Metric]:
        return [*_vm_families().values(), *_econ_families().values(), *_health_families().values()]

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        view = self._economics()
        econ = view.by_vm
        vm_f, econ_f, health = _vm_families(), _econ_families(), _health_families()
        for batch in snap.batches.values():
            for s in batch.samples:
                e = econ.get(s.ref.uuid)
                _add_vm(vm_f, s, batch, e, self._warned, snap.points.get(s.ref.uuid))
                if e is not None:
                    _add_econ(econ_f, s, e)
        for service, level, value in view.placement:
            econ_f["placement"].add_metric([service, level], value)  # type: ignore[attr-defined]
        for uri, h in snap.health.items():
            health["up"].add_metric([uri], 1.0 if h.up else 0.0)  # type: ignore[attr-defined]
            seen = snap.batches.get(uri)
            health["vms"].add_metric(  # type: ignore[attr-defined]
                [uri], float(len(seen.samples)) if (seen is not None and h.up) else 0.0)
        for batch in snap.batches.values():
            if batch.host_cpus is not None and batch.host:
                health["host_cpus"].add_metric([batch.host], float(batch.host_cpus))  # type: ignore[attr-defined]
        health["cycle"].add_metric([], snap.cycle_seconds)  # type: ignore[attr-defined]
        health["cycles"].add_metric([], float(snap.cycles_total))  # type: ignore[attr-defined]
        # every known kind from the start, so rate() and alerts see 0 rather than no series
        for kind in sorted(set(ERROR_KINDS) | {STORE_ERROR_KIND} | set(snap.errors_total)):
            health["errors"].add_metric([kind], float(snap.errors_total.get(kind, 0)))  # type: ignore[attr-defined]
        yield from alternate_order([*vm_f.values(), *econ_f.values(), *health.values()])


def alternate_order(families: Iterable[Metric]) -> Iterator[Metric]:
    """Every other family of more than one sample lists its samples in reverse order.

    gzip (deflate) refers back at most 32 KiB, and one per-VM family of 1,000 VMs is ~120 KB of text: in one
    order throughout, a VM's uuid is never within reach of its line in the family before. Reversed, the VMs
    that close one family open the next, so their uuids compress to back-references (9 % fewer gzip bytes at
    1,000 VMs). The order of samples within a family means nothing to Prometheus.
    """
    flip = False
    for fam in families:
        if len(fam.samples) > 1:
            if flip:
                fam.samples.reverse()
            flip = not flip
        yield fam


def build_registry(snapshot: Callable[[], Snapshot],
                   economics: Callable[[], EconomicsView] = EconomicsView) -> CollectorRegistry:
    """A fresh registry holding only the rightsizer collector (no process/platform defaults)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RightsizerCollector(snapshot, economics))
    return registry
