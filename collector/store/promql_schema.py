"""Which series the PromQL source reads, and the PromQL that turns them into hourly rollups.

Two schemas:

``rightsizer``
    The agent's own exporter (``rightsizer_vm_*``; see collector/exporter.py). Identity on ``uuid``, name on ``vm``,
    host on ``host``.
``libvirt-exporter``
    The Go libvirt exporters (kumina, AlexZzz, Tinkoff/ntk148v forks): ``libvirt_domain_info_cpu_time_seconds_total``,
    ``libvirt_domain_info_virtual_cpus``, ``libvirt_domain_info_maximum_memory_bytes``,
    ``libvirt_domain_memory_stats_available_bytes`` / ``_usable_bytes``, ``libvirt_domain_block_stats_read_bytes_total``
    / ``_write_bytes_total``, ``libvirt_domain_interface_stats_receive_bytes_total`` / ``_transmit_bytes_total``
    (names as listed in those projects' READMEs). Their series carry ``domain`` (the name) and, in the newer forks,
    ``uuid``; the host is the scrape target's ``instance`` unless a ``host`` label is set by relabelling. Labels and
    machine types come from a mapping file (collector/store/promql_mapping.py) or a ``machine_type`` label.

Hourly rollups follow the SQLite store's rules (collector/store/sqlite.py ``_rollup``): an hour ``H`` holds the
intervals whose end lies in ``[H, H+1h)``; CPU p95/max/mean are taken over per-interval rates, evaluated as a
subquery at the collection interval (``resolution_s``) with ``irate`` over two intervals, so each step is the rate of
the interval ending there. Queries are evaluated at ``H + 1h - 1ms`` so the subquery steps are ``H, H+R, ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SchemaName = Literal["rightsizer", "libvirt-exporter"]


@dataclass(frozen=True, slots=True)
class Schema:
    """Metric and label names of one exporter family."""

    name: SchemaName
    uuid_label: str
    name_label: str
    host_label: str
    cpu_seconds: str
    vcpus: str
    memory_bytes: str
    memory_used: str  # a PromQL expression over selectors (may combine two series)
    disk_read: str
    disk_write: str
    net_rx: str
    net_tx: str
    running: str  # "" = derived from the CPU counter's presence
    info: str  # identity series for the inventory
    disk_capacity: str = ""
    cpu_usage: str = ""  # per-cycle CPU rate gauge stamped with the cycle's time ("" = rates from the counter)
    host_cpus: str = ""  # logical CPUs per host, labelled with ``host_label`` ("" = the exporters do not say)


RIGHTSIZER = Schema(
    name="rightsizer", uuid_label="uuid", name_label="vm", host_label="host",
    cpu_seconds="rightsizer_vm_cpu_seconds_total", vcpus="rightsizer_vm_vcpus",
    memory_bytes="rightsizer_vm_memory_bytes", memory_used="rightsizer_vm_memory_used_bytes{M}",
    disk_read="rightsizer_vm_disk_read_bytes_total", disk_write="rightsizer_vm_disk_write_bytes_total",
    net_rx="rightsizer_vm_network_receive_bytes_total", net_tx="rightsizer_vm_network_transmit_bytes_total",
    running="rightsizer_vm_running", info="rightsizer_vm_info", disk_capacity="rightsizer_vm_disk_capacity_bytes",
    cpu_usage="rightsizer_vm_cpu_usage_vcpus", host_cpus="rightsizer_host_cpus",
)

LIBVIRT_EXPORTER = Schema(
    name="libvirt-exporter", uuid_label="uuid", name_label="domain", host_label="instance",
    cpu_seconds="libvirt_domain_info_cpu_time_seconds_total", vcpus="libvirt_domain_info_virtual_cpus",
    memory_bytes="libvirt_domain_info_maximum_memory_bytes",
    # guest-used memory as the collector computes it: balloon available - usable
    memory_used="libvirt_domain_memory_stats_available_bytes{M} - libvirt_domain_memory_stats_usable_bytes{M}",
    disk_read="libvirt_domain_block_stats_read_bytes_total", disk_write="libvirt_domain_block_stats_write_bytes_total",
    net_rx="libvirt_domain_interface_stats_receive_bytes_total",
    net_tx="libvirt_domain_interface_stats_transmit_bytes_total",
    running="", info="libvirt_domain_info_virtual_cpus",
    # no host CPU gauge: the Go libvirt exporters (Tinkoff, inovex prometheus-libvirt-exporter README metric
    # list) export domain, storage-pool and health series only, so overcommit stays unknown on this schema
)

SCHEMAS: dict[str, Schema] = {s.name: s for s in (RIGHTSIZER, LIBVIRT_EXPORTER)}

#: Recording rules shipped in dashboard/prometheus/rightsizer.rules.yml (hourly rollups of the agent's series).
RULES: dict[str, str] = {
    "cpu_mean_vcpus": "rightsizer:vm_cpu_vcpus:avg1h",
    "cpu_p95_vcpus": "rightsizer:vm_cpu_vcpus:p95_1h",
    "cpu_max_vcpus": "rightsizer:vm_cpu_vcpus:max1h",
    "memory_used_max_bytes": "rightsizer:vm_memory_used_bytes:max1h",
    "memory_used_mean_bytes": "rightsizer:vm_memory_used_bytes:avg1h",
    "running_s": "rightsizer:vm_running_seconds:1h",
    "vcpus": "rightsizer:vm_vcpus:max1h",
    "memory_bytes": "rightsizer:vm_memory_bytes:max1h",
}


@dataclass(frozen=True, slots=True)
class RollupQueries:
    """One PromQL expression per hour-frame column, each answering one series per identity label."""

    by_column: dict[str, str]
    identity: str

    @property
    def subqueries(self) -> bool:
        """True when some expression evaluates a subquery (its inner steps count against the points limit)."""
        return any(":" in e.split("[", 1)[1] for e in self.by_column.values() if "[" in e)


def _sel(metric: str, matchers: str) -> str:
    return f"{metric}{{{matchers}}}" if matchers else metric


def rollup_queries(schema: Schema, *, matchers: str, resolution_s: int, rules: bool,
                   cpu_fallback: bool = False) -> RollupQueries:
    """The hourly-rollup expressions for ``schema`` (see the module doc for the hour alignment).

    ``cpu_fallback``: some VMs have the per-cycle CPU gauge and some only the counter (agents of two versions):
    each CPU column is the gauge's rollup ``or`` the counter's, per VM.
    """
    ident = schema.uuid_label
    r = f"{resolution_s}s"
    w = f"{2 * resolution_s}s"
    by = f"by ({ident})"

    def rate(metric: str) -> str:
        return f"max {by} (irate({_sel(metric, matchers)}[{w}]))"

    used = schema.memory_used.replace("{M}", f"{{{matchers}}}" if matchers else "")
    q: dict[str, str] = {
        "memory_used_max_bytes": f"max {by} (max_over_time(({used})[1h:{r}]))",
        "memory_used_mean_bytes": f"max {by} (avg_over_time(({used})[1h:{r}]))",
        "vcpus": f"max {by} (max_over_time({_sel(schema.vcpus, matchers)}[1h]))",
        "memory_bytes": f"max {by} (max_over_time({_sel(schema.memory_bytes, matchers)}[1h]))",
        "samples": f"max {by} (count_over_time({_sel(schema.vcpus, matchers)}[1h]))",
    }
    cpu = rate(schema.cpu_seconds)
    from_counter = {
        "cpu_mean_vcpus": f"avg_over_time(({cpu})[1h:{r}])",
        "cpu_p95_vcpus": f"quantile_over_time(0.95, ({cpu})[1h:{r}])",
        "cpu_max_vcpus": f"max_over_time(({cpu})[1h:{r}])",
    }
    if schema.cpu_usage:
        # the agent's per-cycle rate, stamped with the cycle time: the same samples the embedded store rolls up
        usage = _sel(schema.cpu_usage, matchers)
        from_gauge = {
            "cpu_mean_vcpus": f"max {by} (avg_over_time({usage}[1h]))",
            "cpu_p95_vcpus": f"max {by} (quantile_over_time(0.95, {usage}[1h]))",
            "cpu_max_vcpus": f"max {by} (max_over_time({usage}[1h]))",
        }
        q.update({col: f"({e}) or ({from_counter[col]})" if cpu_fallback else e for col, e in from_gauge.items()})
        q.update({
            "memory_used_max_bytes": f"max {by} (max_over_time({used}[1h]))",
            "memory_used_mean_bytes": f"max {by} (avg_over_time({used}[1h]))",
        })
    else:
        q.update(from_counter)
    if schema.running:
        q["running_s"] = (f"clamp_max(max {by} (sum_over_time({_sel(schema.running, matchers)}[1h])) "
                          f"* {resolution_s}, 3600)")
    else:
        q["running_s"] = f"clamp_max(count_over_time(({rate(schema.cpu_seconds)})[1h:{r}]) * {resolution_s}, 3600)"
    for col, metric in (("disk_read_bytes", schema.disk_read), ("disk_write_bytes", schema.disk_write),
                        ("net_rx_bytes", schema.net_rx), ("net_tx_bytes", schema.net_tx)):
        # increase over the hour: the sum of the per-interval deltas ending in it (VictoriaMetrics counts the delta
        # from the sample before the window, as the embedded store does; Prometheus extrapolates at the edges)
        q[col] = f"sum {by} (increase({_sel(metric, matchers)}[1h]))"
    if schema.disk_capacity:
        q["disk_capacity_bytes"] = f"sum {by} (max_over_time({_sel(schema.disk_capacity, matchers)}[1h]))"
    if rules and schema.name == "rightsizer":
        for col, record in RULES.items():
            q[col] = f"max {by} (last_over_time({_sel(record, matchers)}[1h]))"
            if cpu_fallback and col in from_counter:  # the rules roll up the gauge: VMs without it need the counter
                q[col] = f"({q[col]}) or ({from_counter[col]})"
    return RollupQueries(by_column=q, identity=ident)
