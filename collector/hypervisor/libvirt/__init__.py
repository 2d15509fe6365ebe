"""libvirt implementations of the hypervisor boundary: the only package that imports ``libvirt``.

The public face: ``LibvirtSource`` samples one URI read-only, ``LibvirtControl`` is the read-write
side the actions build on, ``map_libvirt_errors`` / ``translate_libvirt_error`` are the error edge.
Inside, one job per module:

- ``errors``      libvirtError codes -> ``collector.errors`` classes (the one error edge)
- ``stats``       decoding bulk stats dicts, domain and snapshot XML into samples (pure)
- ``connection``  the sampler's read-only connection: lazy open, reconnect backoff, bulk stats call
- ``domains``     per-domain reads: labels, snapshot times, the call-by-call path of the test driver
- ``balloon``     turning on a guest's balloon stats period over a short read-write connection
- ``source``      ``LibvirtSource``: one sampling cycle over every domain, never raising
- ``control``     ``LibvirtControl``: read-write calls (resize, labels, start/stop)
"""

from __future__ import annotations

from collector.hypervisor.libvirt.control import LibvirtControl
from collector.hypervisor.libvirt.errors import (
    ERROR_CLASSES,
    map_libvirt_errors,
    silence_libvirt_stderr,
    translate_libvirt_error,
)
from collector.hypervisor.libvirt.source import LibvirtSource
from collector.hypervisor.libvirt.stats import STATS_GROUPS, vm_state

__all__ = [
    "ERROR_CLASSES",
    "STATS_GROUPS",
    "LibvirtControl",
    "LibvirtSource",
    "map_libvirt_errors",
    "silence_libvirt_stderr",
    "translate_libvirt_error",
    "vm_state",
]
