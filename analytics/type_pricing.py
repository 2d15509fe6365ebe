"""Which machine type, at what hourly price, each VM-hour of a fleet is billed as.

A ``machine_type`` label naming a known type wins for every hour of its VM; otherwise each hour is priced as
the cheapest generally available type covering that hour's vCPUs and memory (falling back to the inventory's
shape when the hour has none), so resizes show up in cost. Pure: numpy arrays in, numpy arrays out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analytics.catalogue import PriceCatalogue
from analytics.fleet import MACHINE_TYPE_LABEL
from analytics.frames import code_dtype
from collector.model import VmRecord

#: Where an hour's machine type came from, in the order of its code.
TYPE_SOURCES: tuple[str, ...] = ("label", "inferred", "unknown")
_SOURCE_CODE = {name: i for i, name in enumerate(TYPE_SOURCES)}


def price_hours(
    vm_codes: np.ndarray,
    vm_names: list[str],
    vcpus: np.ndarray,
    memory_bytes: np.ndarray,
    vms: Sequence[VmRecord],
    catalogue: PriceCatalogue,
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Per row: machine type code, the type names, price per hour and source code (into ``TYPE_SOURCES``).

    ``vm_codes`` index ``vm_names`` (VM UUIDs) and must be sorted by VM and time; ``vcpus`` and
    ``memory_bytes`` are the hour's shape (NaN when unknown). A type code of -1 and a NaN price mean no
    type could be found.
    """
    by_uuid = {vm.uuid: vm for vm in vms}
    type_names: list[str] = []
    type_index: dict[str, int] = {}

    def code_of(name: str) -> int:
        if name not in type_index:
            type_index[name] = len(type_names)
            type_names.append(name)
        return type_index[name]

    n_vms = len(vm_names)
    vm_type = np.full(n_vms, -1)
    vm_price = np.full(n_vms, np.nan)
    vm_vcpus = np.full(n_vms, np.nan)
    vm_mem = np.full(n_vms, np.nan)
    for i, uuid in enumerate(vm_names):
        vm = by_uuid.get(uuid)
        if vm is None:
            continue
        vm_vcpus[i], vm_mem[i] = vm.vcpus, vm.memory_bytes
        name = (vm.labels or {}).get(MACHINE_TYPE_LABEL, "").strip()
        found = catalogue.get(name) if name else None
        if found is not None:
            vm_type[i], vm_price[i] = code_of(found.name), found.price_per_hour

    # a VM keeps its shape for long runs of hours: price each run once and repeat it over the run's rows
    starts = _shape_runs(vm_codes, vcpus, memory_bytes)
    lengths = np.diff(np.append(starts, len(vm_codes)))
    run_vm = vm_codes[starts]
    run_type = vm_type[run_vm]
    run_price = vm_price[run_vm]
    run_source = np.where(run_type >= 0, _SOURCE_CODE["label"], _SOURCE_CODE["unknown"])
    rest = run_type < 0
    if rest.any():
        # a missing shape falls back to the inventory's; still missing (-1) cannot be priced
        rv = vcpus[starts[rest]].astype(np.float64)
        rm = memory_bytes[starts[rest]].astype(np.float64)
        v = np.nan_to_num(np.where(np.isnan(rv), vm_vcpus[run_vm[rest]], rv), nan=-1.0)
        m = np.nan_to_num(np.where(np.isnan(rm), vm_mem[run_vm[rest]], rm), nan=-1.0)
        run_shapes, shape_codes = np.unique(np.stack([v, m], axis=1), axis=0, return_inverse=True)
        shape_codes = shape_codes.ravel()
        u_type = np.full(len(run_shapes), -1)
        u_price = np.full(len(run_shapes), np.nan)
        for i, (sv, sm) in enumerate(run_shapes.tolist()):
            found = catalogue.cheapest_fitting(sv, sm) if sv > 0 and sm > 0 else None
            if found is not None:
                u_type[i], u_price[i] = code_of(found.name), found.price_per_hour
        run_type[rest] = u_type[shape_codes]
        run_price[rest] = u_price[shape_codes]
        run_source[rest] = np.where(u_type[shape_codes] >= 0, _SOURCE_CODE["inferred"], _SOURCE_CODE["unknown"])
    small = code_dtype(len(type_names))  # the categorical's own code width: no copy when it is built
    return (np.repeat(run_type.astype(small), lengths), type_names, np.repeat(run_price, lengths),
            np.repeat(run_source.astype(np.int8), lengths))


def _shape_runs(vm_codes: np.ndarray, vcpus: np.ndarray, memory_bytes: np.ndarray) -> np.ndarray:
    """Row indices where a run of one VM's rows with the same vCPUs and memory starts (NaN equals NaN)."""
    if len(vm_codes) == 0:
        return np.empty(0, dtype=np.int64)
    change = vm_codes[1:] != vm_codes[:-1]
    for values in (vcpus, memory_bytes):
        differs = values[1:] != values[:-1]
        both_nan = np.isnan(values[1:])
        both_nan &= np.isnan(values[:-1])
        differs &= ~both_nan
        change |= differs
    return np.concatenate([[0], np.flatnonzero(change) + 1])
