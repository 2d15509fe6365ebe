"""Prometheus exporter: serves the sampler's last snapshot and the latest cost/recommendation view.

A scrape never calls libvirt: it reads two immutable snapshots that the collection cycle and the
analytics job replace. Names follow Prometheus conventions (base units, ``_total`` counters, identity
on one ``_info`` metric) and pass ``promtool check metrics``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from collector.model import VmState
from collector.sampler import Snapshot

_LABEL_KEY = re.compile(r"[^a-zA-Z0-9_]")
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
    """Cost and right-sizing view of one VM, as computed by analytics (no analytics import here)."""

    machine_type: str
    hourly_cost: float
    currency: str
    finding: str = ""
    current_type: str = ""
    recommended_type: str = ""
    monthly_savings: float = 0.0


@dataclass(frozen=True, slots=True)
class EconomicsView:
    """Per-VM economics keyed by UUID; replaced whole by the analytics job."""

    by_vm: Mapping[str, VmEconomics] = field(default_factory=dict)
    #: (service, level, 1.0 at risk else 0.0) for every service with two or more running members
    placement: tuple[tuple[str, str, float], ...] = ()


class RightsizerCollector(Collector):
    """Custom collector yielding metric families from the current snapshots."""

    def __init__(self, snapshot: Callable[[], Snapshot],
                 economics: Callable[[], EconomicsView] = EconomicsView) -> None:
        self._snapshot = snapshot
        self._economics = economics
        self._warned: set[tuple[str, ...]] = set()

    def describe(self) -> list[Metric]:
        return []  # families depend on the data; an empty describe keeps registration cheap

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        econ = self._economics().by_vm
        info = InfoMetricFamily("rightsizer_vm", "Identity of each VM; join on vm/uuid.",
                                labels=None)
        state = GaugeMetricFamily("rightsizer_vm_running", "1 when the domain is running, else 0.",
                                  labels=["vm", "uuid", "host"])
        vcpus = GaugeMetricFamily("rightsizer_vm_vcpus", "vCPUs currently allocated.",
                                  labels=["vm", "uuid", "host"])
        cpu = CounterMetricFamily("rightsizer_vm_cpu_seconds", "CPU time consumed by the domain.",
                                  labels=["vm", "uuid", "host"], unit="")
        mem = GaugeMetricFamily("rightsizer_vm_memory_bytes", "Memory allocated (current balloon size).",
                                labels=["vm", "uuid", "host"])
        mem_max = GaugeMetricFamily("rightsizer_vm_memory_max_bytes", "Maximum memory of the domain.",
                                    labels=["vm", "uuid", "host"])
        used = GaugeMetricFamily("rightsizer_vm_memory_used_bytes",
                                 "Guest-used memory from balloon stats; absent when the guest reports none.",
                                 labels=["vm", "uuid", "host"])
        rd = CounterMetricFamily("rightsizer_vm_disk_read_bytes", "Bytes read from each disk.",
                                 labels=["vm", "uuid", "host", "device"])
        wr = CounterMetricFamily("rightsizer_vm_disk_write_bytes", "Bytes written to each disk.",
                                 labels=["vm", "uuid", "host", "device"])
        rx = CounterMetricFamily("rightsizer_vm_network_receive_bytes", "Bytes received per interface.",
                                 labels=["vm", "uuid", "host", "device"])
        tx = CounterMetricFamily("rightsizer_vm_network_transmit_bytes", "Bytes sent per interface.",
                                 labels=["vm", "uuid", "host", "device"])
        cost = GaugeMetricFamily("rightsizer_vm_hourly_cost",
                                 "Pay-as-you-go price per hour of the VM's machine type (0 when not billed).",
                                 labels=["vm", "uuid", "currency"])
        rec = InfoMetricFamily("rightsizer_vm_recommendation", "Latest right-sizing finding of each VM.")
        savings = GaugeMetricFamily("rightsizer_vm_potential_monthly_savings",
                                    "Monthly saving if the recommendation is applied.",
                                    labels=["vm", "uuid", "currency"])
        for batch in snap.batches.values():
            for s in batch.samples:
                base = [s.ref.name, s.ref.uuid, s.host]
                e = econ.get(s.ref.uuid)
                labels = {"vm": s.ref.name, "uuid": s.ref.uuid, "host": s.host, "uri": batch.uri,
                          "state": s.state.value, "machine_type": e.machine_type if e else ""}
                labels.update(prometheus_labels(s.labels, self._warned))
                info.add_metric([], labels)
                state.add_metric(base, 1.0 if s.state is VmState.RUNNING else 0.0)
                vcpus.add_metric(base, float(s.vcpus))
                if s.cpu_time_ns is not None:
                    cpu.add_metric(base, s.cpu_time_ns / 1e9)
                mem.add_metric(base, float(s.memory_bytes))
                mem_max.add_metric(base, float(s.max_memory_bytes))
                if s.memory_used_bytes is not None:
                    used.add_metric(base, float(s.memory_used_bytes))
                for d in s.disks:
                    rd.add_metric(base + [d.device], float(d.read_bytes))
                    wr.add_metric(base + [d.device], float(d.write_bytes))
                for nic in s.nets:
                    rx.add_metric(base + [nic.device], float(nic.rx_bytes))
                    tx.add_metric(base + [nic.device], float(nic.tx_bytes))
                if e is not None:
                    cost.add_metric([s.ref.name, s.ref.uuid, e.currency], e.hourly_cost)
                    if e.finding:
                        rec.add_metric([], {"vm": s.ref.name, "uuid": s.ref.uuid, "finding": e.finding,
                                            "current_type": e.current_type,
                                            "recommended_type": e.recommended_type})
                        savings.add_metric([s.ref.name, s.ref.uuid, e.currency], e.monthly_savings)
        yield from (info, state, vcpus, cpu, mem, mem_max, used, rd, wr, rx, tx, cost, rec, savings)

        up = GaugeMetricFamily("rightsizer_up", "1 when the last cycle reached the libvirt URI.", labels=["uri"])
        vms = GaugeMetricFamily("rightsizer_collector_vms", "Domains sampled in the last cycle.", labels=["uri"])
        for uri, h in snap.health.items():
            up.add_metric([uri], 1.0 if h.up else 0.0)
            seen = snap.batches.get(uri)
            vms.add_metric([uri], float(len(seen.samples)) if (seen is not None and h.up) else 0.0)
        yield up
        yield vms
        yield GaugeMetricFamily("rightsizer_collector_cycle_seconds", "Duration of the last collection cycle.",
                                value=snap.cycle_seconds)
        yield CounterMetricFamily("rightsizer_collector_cycles", "Collection cycles run.",
                                  value=float(snap.cycles_total))
        errs = CounterMetricFamily("rightsizer_collector_errors", "Errors by kind (per VM or per URI).",
                                   labels=["kind"])
        for kind, count in sorted(snap.errors_total.items()):
            errs.add_metric([kind], float(count))
        yield errs
        risk = GaugeMetricFamily("rightsizer_service_placement_risk",
                                 "1 when every running member of the service is on one host (level single-host) or "
                                 "in one zone while the fleet has another (level zone).",
                                 labels=["service", "level"])
        for service, level, value in self._economics().placement:
            risk.add_metric([service, level], value)
        yield risk


def build_registry(snapshot: Callable[[], Snapshot],
                   economics: Callable[[], EconomicsView] = EconomicsView) -> CollectorRegistry:
    """A fresh registry holding only the rightsizer collector (no process/platform defaults)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RightsizerCollector(snapshot, economics))
    return registry


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


class _ThreadingWSGIServer(WSGIServer):
    daemon_threads = True


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve /metrics on host:port in a daemon thread; returns the server (call shutdown()) and thread."""
    from socketserver import ThreadingMixIn

    class Server(ThreadingMixIn, _ThreadingWSGIServer):
        pass

    app = make_wsgi_app(registry)
    server = make_server(host, port, app, server_class=Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server, thread
