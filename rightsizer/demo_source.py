"""The demo mode's live source: the test driver's real inventory with the demo fleet's SYNTHETIC usage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np

from collector.hypervisor.base import HypervisorSource
from collector.model import DiskSample, NetSample, SampleBatch, VmState
from rightsizer.demo import DEFAULT_SEED, DemoVm
from rightsizer.demo_history import usage_rates


class DemoSource:
    """``HypervisorSource`` for ``serve`` in demo mode: real test-driver inventory, synthetic usage.

    States, specs and labels come from libvirt (the test driver, through the ordinary source); hosts come
    from the demo fleet, and usage continues the same SYNTHETIC generator the seeded history used, as
    cumulative counters, so rates, the store and /metrics behave as they do on a real host. The test
    driver's own counters are synthetic too (its CPU time is wall-clock) and are not used.
    """

    def __init__(self, inner: HypervisorSource, fleet: Sequence[DemoVm], *, seed: int = DEFAULT_SEED) -> None:
        self._inner = inner
        self._fleet = {vm.uuid: (index, vm) for index, vm in enumerate(fleet)}
        self._seed = seed
        self._counters: dict[str, list[float]] = {}
        self._last: datetime | None = None
        self._cycle = 0

    @property
    def uri(self) -> str:
        return self._inner.uri

    def close(self) -> None:
        self._inner.close()

    def sample_all(self) -> SampleBatch:
        """Sample the test driver and replace its counters with the demo fleet's synthetic ones."""
        batch = self._inner.sample_all()
        if not batch.ok:
            return batch
        now = batch.taken_at
        elapsed_s = 0.0 if self._last is None else max(0.0, (now - self._last).total_seconds())
        self._last = now
        self._cycle += 1
        epoch_s = np.array([now.timestamp()])
        hour = (epoch_s % 86400) / 3600.0
        weekday = ((epoch_s // 86400 + 3) % 7).astype(int)
        samples = []
        for sample in batch.samples:
            known = self._fleet.get(sample.ref.uuid)
            if known is None:
                samples.append(sample)
                continue
            index, vm = known
            counters = self._counters.setdefault(vm.uuid, [0.0] * 5)
            used: int | None = None
            if sample.state is VmState.RUNNING:
                rng = np.random.default_rng([self._seed, index, self._cycle])
                cpu, mem, disk, net, _ = usage_rates(vm, rng, hour, weekday, np.ones(1), np.zeros(1), 60.0)
                for k, rate in enumerate((cpu[0] * 1e9, disk[0] * 0.6, disk[0] * 0.4, net[0] * 0.55, net[0] * 0.45)):
                    counters[k] += float(rate) * elapsed_s
                used = None if mem is None else int(mem[0])
            samples.append(replace(
                sample, host=vm.host, cpu_time_ns=int(counters[0]), memory_used_bytes=used,
                swap_in_bytes=None, swap_out_bytes=None,
                disks=(DiskSample("vda", int(counters[1]), int(counters[2]), 0, 0, vm.disk_capacity_bytes, None),),
                nets=(NetSample("vnet0", int(counters[3]), int(counters[4])),),
            ))
        return replace(batch, samples=tuple(samples))
