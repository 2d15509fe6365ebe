"""TOML and JSON parsing that turns "nested deeper than Python's stack" into the format's own parse error.

``tomllib`` and ``json`` recurse once per nesting level, so a document of 50,000 ``[`` raises RecursionError
(a traceback) where every caller expects ``TOMLDecodeError`` / ``JSONDecodeError`` (a one-line "not valid
TOML/JSON" message, exit 2). Every file, answer and request body the product parses goes through here.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

#: the deepest nesting accepted; far beyond any configuration, plan or API answer, far below the stack limit
MAX_DEPTH = 64
_TOO_DEEP = f"nested too deeply (more than {MAX_DEPTH} levels)"


class _TooDeepJSONError(json.JSONDecodeError):
    """A JSONDecodeError without a position (the whole document is the problem)."""

    def __str__(self) -> str:
        return self.msg


def toml_loads(text: str) -> dict[str, Any]:
    """``tomllib.loads``; raises TOMLDecodeError also for nesting deeper than ``MAX_DEPTH``."""
    try:
        doc = tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError(_TOO_DEEP) from None
    if _depth(doc) > MAX_DEPTH:
        raise tomllib.TOMLDecodeError(_TOO_DEEP)
    return doc


def json_loads(text: str | bytes) -> Any:
    """``json.loads``; raises JSONDecodeError also for nesting deeper than ``MAX_DEPTH``."""
    shown = text if isinstance(text, str) else text[:200].decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise _TooDeepJSONError(_TOO_DEEP, shown, 0) from None
    if _depth(doc) > MAX_DEPTH:
        raise _TooDeepJSONError(_TOO_DEEP, shown, 0)
    return doc


def _depth(doc: Any) -> int:
    """Nesting depth of lists and dicts, without recursion (a parsed document may be deep)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest
