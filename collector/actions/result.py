"""The outcome of one resize step, as the runner, the CLI output and the audit log see it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from collector.actions.changes import Change
from core.plan import ResizeStep

Result = Literal[
    "planned", "applied", "unchanged", "deferred", "skipped", "failed", "reverted", "revert-failed"
]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """Outcome of one step: what was (or would be) changed, and the audit record's id."""

    step: ResizeStep
    result: Result
    reason: str
    changes: tuple[Change, ...] = ()
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    operations: tuple[str, ...] = ()
    audit_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.result in ("planned", "applied", "unchanged", "deferred", "skipped")

