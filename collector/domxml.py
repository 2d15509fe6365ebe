"""Domain XML facts in one place: our labels namespace, label parsing, sizes and the exclude rule.

The collector (labels from live metadata), the resize action (labels and sizes from the persistent XML),
analytics (the exclude rule) and the demo fleet (writing labels) all read these from here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

from collector.errors import ActionFailed

LABELS_NAMESPACE = "https://rightsizer.dev/xmlns/labels/1"
LABELS_PREFIX = "rs"
#: A VM carrying this label with a true value (see :func:`is_excluded`) is never resized.
EXCLUDE_LABEL = "rightsizer_exclude"
MACHINE_TYPE_LABEL = "machine_type"
_TRUE = frozenset({"true", "yes", "1", "on"})

KIB = 1024
MIB = 1024**2
GIB = 1024**3
#: libvirt's memory units (https://libvirt.org/formatdomain.html#memory-allocation); KiB when none is given.
_UNITS = {
    "b": 1, "bytes": 1, "kb": 1000, "k": KIB, "kib": KIB, "mb": 1000**2, "m": MIB, "mib": MIB,
    "gb": 1000**3, "g": GIB, "gib": GIB, "tb": 1000**4, "t": 1024**4, "tib": 1024**4,
}


def is_excluded(labels: Mapping[str, str] | None) -> bool:
    """Return True when ``rightsizer_exclude`` is true, yes, 1 or on (any case, spaces ignored).

    The one rule for analytics (findings shown, no resize proposed) and the resize action (step skipped).
    """
    return (labels or {}).get(EXCLUDE_LABEL, "").strip().lower() in _TRUE


def parse_labels(xml: str) -> dict[str, str]:
    """Return our labels from a whole domain XML or from the ``<labels>`` metadata element alone.

    libvirt's ``metadata()`` returns the element without its namespace prefix; a namespaced copy is
    accepted too. In a domain XML only ``<metadata>``'s labels count (``<seclabel>`` has ``<label>`` too).
    Labels without a name are ignored; text is stripped. Raises ET.ParseError on malformed XML.
    """
    root = ET.fromstring(xml)
    if root.tag == "domain":
        containers = root.findall(f"metadata/{{{LABELS_NAMESPACE}}}labels")
    else:
        containers = [root]
    labels: dict[str, str] = {}
    for container in containers:
        for el in container.iter():
            if el.tag in ("label", f"{{{LABELS_NAMESPACE}}}label"):
                name = el.get("name")
                if name:
                    labels[name] = (el.text or "").strip()
    return labels


@dataclass(frozen=True, slots=True)
class ConfigSpec:
    """Sizes in a domain XML: current and maximum vCPUs, current and maximum memory in bytes."""

    vcpus: int
    max_vcpus: int
    memory_bytes: int
    max_memory_bytes: int


def size_bytes(el: ET.Element | None) -> int | None:
    """Return a libvirt memory element (``<memory unit='KiB'>…``) in bytes; None when absent or empty."""
    if el is None or el.text is None:
        return None
    unit = (el.get("unit") or "KiB").lower()
    return int(el.text.strip()) * _UNITS.get(unit, KIB)


def parse_config(xml: str) -> ConfigSpec:
    """Read vCPUs and memory from a domain XML. Raises ActionFailed when the XML lacks them."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ActionFailed(f"Domain XML does not parse ({exc}); cannot read its size") from exc
    vcpu = root.find("vcpu")
    max_mem = size_bytes(root.find("memory"))
    if vcpu is None or vcpu.text is None or max_mem is None:
        raise ActionFailed("Domain XML has no <vcpu> or <memory>; cannot read its size")
    max_vcpus = int(vcpu.text.strip())
    cur_mem = size_bytes(root.find("currentMemory"))
    return ConfigSpec(
        vcpus=int(vcpu.get("current", max_vcpus)),
        max_vcpus=max_vcpus,
        memory_bytes=cur_mem if cur_mem is not None else max_mem,
        max_memory_bytes=max_mem,
    )


def format_bytes(n: int) -> str:
    """Render a memory size for people: whole GiB, else whole MiB below 1 GiB, else GiB with 2 decimals."""
    if n % GIB == 0:
        return f"{n // GIB} GiB"
    if n < GIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    return f"{n / GIB:.2f} GiB"
