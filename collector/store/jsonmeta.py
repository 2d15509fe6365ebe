"""Small JSON documents in the store's meta table (one key each), for facts that need no time series.

Used for each host's CPU count (``host_cpus``, for overcommit) and the guest agent's filesystem use
(``guest_fs_usage``): both change rarely, are read whole, and need no schema change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from collector.store.base import TimeSeriesStore
from core.parsing import json_loads

log = logging.getLogger(__name__)


def read_json_meta(store: TimeSeriesStore, key: str) -> dict[str, object]:
    """The JSON object under ``key`` (empty when unset or unreadable; the latter logged once per read)."""
    text = store.get_meta(key)
    if not text:
        return {}
    try:
        doc = json_loads(text)
    except json.JSONDecodeError:
        log.warning("store meta %r is not JSON; starting it afresh", key)
        return {}
    return {str(k): v for k, v in doc.items()} if isinstance(doc, dict) else {}


def merge_json_meta(store: TimeSeriesStore, key: str, updates: Mapping[str, object]) -> None:
    """Merge ``updates`` into the object under ``key`` (other entries stay); raises StoreError."""
    if not updates:
        return
    doc = read_json_meta(store, key)
    doc.update(updates)
    store.set_meta(key, json.dumps(doc, sort_keys=True))


HOST_CPUS_KEY = "host_cpus"


def stored_host_cpus(store: TimeSeriesStore) -> dict[str, int]:
    """Logical CPUs of each host the collector reached (libvirt getInfo), by host name."""
    out: dict[str, int] = {}
    for host, cpus in read_json_meta(store, HOST_CPUS_KEY).items():
        if isinstance(cpus, int) and cpus > 0:
            out[host] = cpus
    return out
