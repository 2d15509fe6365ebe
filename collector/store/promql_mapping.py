"""Labels and machine types for VMs whose series carry neither (the Go libvirt exporters' series).

A TOML file of ``[[vm]]`` tables; ``match`` is a domain name or UUID, ``machine_type`` a catalogue type, ``labels``
any key/value pairs (``team``, ``env``, ``backup_policy``...)::

    [[vm]]
    match = "web-1"
    machine_type = "c1.2"
    labels = { team = "shop", env = "prod" }
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collector.errors import InputError
from core.parsing import toml_loads


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    match: str = Field(min_length=1, description="domain name or UUID")
    machine_type: str = Field(default="", description="catalogue machine type of this VM")
    labels: dict[str, str] = Field(default_factory=dict)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vm: list[_Entry] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class VmMapping:
    """Labels per domain name or UUID (machine type under the ``machine_type`` key)."""

    by_key: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def labels_for(self, uuid: str, name: str) -> dict[str, str]:
        out = dict(self.by_key.get(name, {}))
        out.update(self.by_key.get(uuid, {}))
        return out


def load_mapping(path: str) -> VmMapping:
    """Read a mapping file; "" gives an empty mapping. Raises InputError naming the file and the field."""
    if not path:
        return VmMapping()
    p = Path(path)
    try:
        data = toml_loads(p.read_text(encoding="utf-8"))
        parsed = _File.model_validate(data)
    except OSError as exc:
        raise InputError(f"mapping file {path!r}: {exc.strerror}; fix [source] mapping_file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"mapping file {path!r} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise InputError(f"mapping file {path!r}: {where}: {err['msg']}") from exc
    out: dict[str, dict[str, str]] = {}
    for e in parsed.vm:
        labels = dict(e.labels)
        if e.machine_type:
            labels["machine_type"] = e.machine_type
        out.setdefault(e.match, {}).update(labels)
    return VmMapping(by_key=out)
