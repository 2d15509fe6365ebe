"""Errors as RFC 9457 problem documents (``application/problem+json``).

Every refusal of the API is a ``ProblemError``; the blueprint turns it into a JSON body with ``type``,
``title``, ``status``, ``detail`` and, for bad input, ``errors`` naming each parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Problem type URIs are relative references, documented in docs/api.md (RFC 9457 section 3.1.1).
_TYPE_BASE = "/api/v1/problems/"


class ParameterError(BaseModel):
    """One bad input: where it was (query, path, header, body) and what is wrong with it."""

    model_config = ConfigDict(extra="forbid")
    parameter: str = Field(description="name of the parameter or body field (dotted path)")
    location: str = Field(description="query, path, header or body")
    detail: str = Field(description="what is wrong and what is accepted")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="URI reference naming the kind of problem")
    title: str = Field(description="short summary of the kind of problem")
    status: int = Field(ge=400, le=599, description="the HTTP status code")
    detail: str = Field(description="what happened in this case and what to do")
    instance: str = Field(default="", description="the request path")
    errors: list[ParameterError] = Field(default_factory=list, description="bad parameters, when any")


@dataclass
class ProblemError(Exception):
    """Raised by handlers; rendered as a problem document with ``status``."""

    status: int
    kind: str
    title: str
    detail: str
    errors: Sequence[ParameterError] = field(default_factory=tuple)
    headers: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.detail

    def document(self, instance: str) -> dict[str, Any]:
        """The problem document for the request path ``instance``."""
        return Problem(type=_TYPE_BASE + self.kind, title=self.title, status=self.status, detail=self.detail,
                       instance=instance, errors=list(self.errors)).model_dump()


def bad_parameter(parameter: str, detail: str, *, location: str = "query") -> ProblemError:
    """A 400 naming one parameter."""
    return ProblemError(400, "bad-parameter", "Bad parameter", f"{location} parameter {parameter!r}: {detail}",
                        (ParameterError(parameter=parameter, location=location, detail=detail),))


def not_found(what: str, value: str, parameter: str) -> ProblemError:
    """A 404 for an unknown id in the path."""
    detail = f"no {what} {value!r}"
    return ProblemError(404, "not-found", "Not found", f"{parameter} {value!r}: {detail}",
                        (ParameterError(parameter=parameter, location="path", detail=detail),))
