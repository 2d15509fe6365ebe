"""Resize plans: which VM goes from which size to which, validated before anything is changed.

A plan file is JSON, either ``{"plan_id": ..., "created_at": ..., "steps": [STEP, ...]}`` or a bare list of
steps. A step names the VM and both sizes, nested or flat (the flat form is what ``rightsizer recommend
--output json`` prints)::

    {"uuid": "...", "name": "web-1", "uri": "qemu:///system",
     "current": {"vcpus": 4, "memory_bytes": 8589934592, "machine_type": "c1.2"},
     "target":  {"vcpus": 2, "memory_bytes": 4294967296, "machine_type": "g1.1"},
     "price_before_per_hour": 0.1, "price_after_per_hour": 0.05, "currency": "EUR",
     "finding": "over-provisioned"}

    {"uuid": ..., "current_vcpus": 4, "current_memory_bytes": ..., "target_vcpus": 2, ...}

Memory is bytes and must be a whole number of KiB (libvirt's unit).
"""

from __future__ import annotations

import hashlib
import json
import numbers
import uuid as uuidlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from collector.errors import InputError
from collector.model import VmRef
from core.parsing import json_loads
from core.plan import (
    MIN_MEMORY_BYTES,
    NOT_RESIZE_ACTIONS,
    PLAN_VERSION,
    RESIZE_FINDINGS,
    ResizePlan,
    ResizeStep,
    SizeSpec,
)
from core.units import KIB

_REGENERATE = "fix the plan file or regenerate it with 'rightsizer apply --from-findings'"


class _SpecIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # strict: JSON true is not 1 vCPU, "2" is not 2
    vcpus: int = Field(ge=1, le=4096, strict=True, description="virtual CPUs")
    memory_bytes: int = Field(ge=MIN_MEMORY_BYTES, le=2**50, strict=True,
                              description="memory in bytes, a multiple of 1024")
    machine_type: str | None = Field(default="", max_length=200, description="null or empty = unknown")

    @field_validator("memory_bytes")
    @classmethod
    def _kib(cls, v: int) -> int:
        if v % KIB:
            raise ValueError(f"must be a whole number of KiB (libvirt's unit); {v} is not divisible by 1024")
        return v


class _StepIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    uuid: str = Field(min_length=1, description="domain UUID")
    name: str = Field(default="", max_length=200)
    uri: str = Field(default="", max_length=1000, description="libvirt URI; empty = --uri or the default")
    current: _SpecIn
    target: _SpecIn
    price_before_per_hour: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    price_after_per_hour: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    currency: str = Field(default="", max_length=8)
    finding: str = Field(default="", max_length=100)

    @field_validator("uuid")
    @classmethod
    def _uuid(cls, v: str) -> str:
        try:
            return str(uuidlib.UUID(v))
        except ValueError as exc:
            raise ValueError("is not a UUID like '3f1c5e0a-6b1d-4d2e-9c1a-0f5e2b7d9a41'") from exc


class _PlanIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    version: int = Field(default=PLAN_VERSION, ge=1, le=PLAN_VERSION)
    plan_id: str = Field(default="", max_length=100)
    created_at: datetime | None = None
    steps: list[_StepIn]


_FLAT_ALIASES: Mapping[str, tuple[str, ...]] = {
    "uuid": ("uuid", "vm_uuid", "vm"),
    "name": ("name", "vm_name"),
}


def _lowers_max_memory(raw: Any) -> bool:
    """True for a recommend row whose step only lowers the persistent maximum memory (``lowers_max_memory``)."""
    return isinstance(raw, Mapping) and raw.get("lowers_max_memory") is True


def _nest(raw: Any) -> Any:
    """Turn a flat recommend row (``current_vcpus``, ``target_memory_bytes`` …) into the nested form.

    A row that only lowers the persistent maximum memory targets the size the VM has, at the same price.
    """
    if not isinstance(raw, Mapping):
        return raw
    out = dict(raw)
    for key, aliases in _FLAT_ALIASES.items():
        if key not in out:
            for alias in aliases:
                if alias in raw and isinstance(raw[alias], str):
                    out[key] = raw[alias]
                    break
    for side in ("current", "target"):
        if side not in out:
            flat = {k[len(side) + 1:]: v for k, v in raw.items() if k.startswith(side + "_")}
            if flat:
                out[side] = flat
    if _lowers_max_memory(raw) and isinstance(out.get("current"), Mapping):
        out["target"] = dict(out["current"])
        out["price_after_per_hour"] = out.get("price_before_per_hour")
    return out


def _where(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _value_at(doc: Any, loc: Sequence[int | str]) -> Any:
    for part in loc:
        try:
            doc = doc[part]
        except (KeyError, IndexError, TypeError):
            return "(missing)"
    return doc


def plan_id_for(steps: Iterable[ResizeStep]) -> str:
    """Return a stable id for a set of steps (same VMs and targets -> same id)."""
    canon = json.dumps(
        sorted([s.vm.uuid, s.target.vcpus, s.target.memory_bytes, s.target.machine_type] for s in steps),
        separators=(",", ":"),
    )
    return "plan-" + hashlib.sha256(canon.encode()).hexdigest()[:12]


def parse_plan(doc: Any, *, source: str = "plan", default_uri: str = "") -> ResizePlan:
    """Validate a decoded plan document. Raises InputError naming the field, the bad value and the fix."""
    if isinstance(doc, list):
        doc = {"steps": doc}
    if not isinstance(doc, Mapping):
        raise InputError(f"{source}: expected a JSON object with 'steps' or a list of steps, got {type(doc).__name__}")
    doc = dict(doc)
    if isinstance(doc.get("steps"), list):
        # recommend's full output lists every VM: entries whose action is not a resize are no step
        doc["steps"] = [_nest(s) for s in doc["steps"] if _lowers_max_memory(s)
                        or not (isinstance(s, Mapping) and s.get("action") in NOT_RESIZE_ACTIONS)]
    try:
        model = _PlanIn.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        value = _value_at(doc, loc)
        raise InputError(f"{source}: {_where(loc)} = {value!r}: {err['msg']}; {_REGENERATE}") from exc
    steps: list[ResizeStep] = []
    seen: dict[str, int] = {}
    for i, s in enumerate(model.steps):
        if s.uuid in seen:
            raise InputError(
                f"{source}: steps[{i}].uuid = {s.uuid!r} appears twice (first at steps[{seen[s.uuid]}]); "
                "keep one step per VM"
            )
        seen[s.uuid] = i
        uri = s.uri or default_uri
        steps.append(
            ResizeStep(
                vm=VmRef(uri=uri, uuid=s.uuid, name=s.name or s.uuid),
                current=SizeSpec(s.current.vcpus, s.current.memory_bytes, s.current.machine_type or ""),
                target=SizeSpec(s.target.vcpus, s.target.memory_bytes, s.target.machine_type or ""),
                price_before_per_hour=s.price_before_per_hour,
                price_after_per_hour=s.price_after_per_hour,
                currency=s.currency.upper(),
                finding=s.finding,
            )
        )
    created = model.created_at or datetime.now(UTC)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return ResizePlan(
        plan_id=model.plan_id or plan_id_for(steps), created_at=created, steps=tuple(steps), source=source
    )


def load_plan(path: Path | str, *, default_uri: str = "") -> ResizePlan:
    """Read and validate a plan JSON file. Raises InputError naming the file, field and value."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"Plan file {str(p)!r} not found; pass a JSON plan or use --from-findings")
    try:
        doc = json_loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"Plan file {str(p)!r} is not valid JSON: {exc}") from exc
    except ValueError as exc:  # an integer beyond Python's digit limit
        raise InputError(f"Plan file {str(p)!r} holds a number too long to be a size ({exc}); {_REGENERATE}") \
            from exc
    except RecursionError as exc:
        raise InputError(f"Plan file {str(p)!r} is nested too deeply to be a plan; {_REGENERATE}") from exc
    return parse_plan(doc, source=str(p), default_uri=default_uri)


def plan_from_steps(steps: Iterable[ResizeStep], *, source: str = "findings",
                    now: datetime | None = None) -> ResizePlan:
    """Validate typed steps (e.g. ``VmFinding.resize_step()``) with the plan-file rules and make a plan.

    Raises InputError naming the step and field when a value is out of bounds.
    """
    plan = parse_plan({"steps": [s.to_dict() for s in steps]}, source=source)
    if now is not None:
        return ResizePlan(plan_id=plan.plan_id, created_at=now, steps=plan.steps, source=plan.source)
    return plan


def plan_from_findings(
    rows: Iterable[Mapping[str, Any]], *, default_uri: str = "", now: datetime | None = None
) -> ResizePlan:
    """Build a plan from ``recommend --output json`` rows: one step per over-/under-provisioned VM.

    Rows are nested like ``VmFinding.plan_entry()`` or carry the flat keys ``current_vcpus``,
    ``target_memory_bytes`` ... Rows with another finding, no target, the same size, or ``excluded`` set
    are left out, except a row with ``lowers_max_memory`` true: it becomes a step to the size the VM has,
    which lowers only the persistent maximum memory left above it. Raises InputError on a row with bad values.
    """
    docs: list[dict[str, Any]] = []
    for row in rows:
        finding = row.get("finding", "") or ""
        finding = str(getattr(finding, "value", finding))
        if row.get("excluded", False):
            continue
        if finding not in RESIZE_FINDINGS and not _lowers_max_memory(row):
            continue
        doc = _nest({**row, "finding": finding})
        target = doc.get("target") or {}
        if target.get("vcpus") is None or target.get("memory_bytes") is None:
            continue
        current = doc.get("current") or {}
        same = (current.get("vcpus"), current.get("memory_bytes")) == (target.get("vcpus"), target.get("memory_bytes"))
        if same and not _lowers_max_memory(row):
            continue
        for side in ("current", "target"):
            spec = dict(doc.get(side) or {})
            if isinstance(spec.get("memory_bytes"), float) and spec["memory_bytes"].is_integer():
                spec["memory_bytes"] = int(spec["memory_bytes"])
            for key in ("vcpus", "memory_bytes"):  # numpy integers from analytics are plain ints here
                if isinstance(spec.get(key), numbers.Integral) and not isinstance(spec[key], bool):
                    spec[key] = int(spec[key])
            if spec.get("machine_type") is None:
                spec.pop("machine_type", None)
            doc[side] = spec
        docs.append(doc)
    plan = parse_plan({"steps": docs}, source="findings", default_uri=default_uri)
    if now is not None:
        return ResizePlan(plan_id=plan.plan_id, created_at=now, steps=plan.steps, source=plan.source)
    return plan


__all__ = [
    "ResizePlan", "ResizeStep", "SizeSpec", "load_plan", "parse_plan", "plan_from_findings", "plan_from_steps",
    "plan_id_for",
]
