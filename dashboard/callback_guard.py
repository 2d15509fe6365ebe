"""Dash callback requests carry whatever a client sends: a value of the wrong JSON type is a 400, not a 500.

The page's components send the types each callback expects, but ``/_dash-update-component`` takes any JSON
from anyone who can reach the port (a list where a string belongs, ``"\\ud800"`` as a token, a number beyond
``int``). The callback bodies check what they use (``Filters.of``, ``token_matches``, ``drilldown``,
``lookback_days``); this guard is the net under them: a callback that fails on its input with one of
``BAD_INPUT`` answers 400 and logs one line naming the callback and the error, instead of a 500 with a
traceback. Other exceptions (a store that cannot be read, a bug of another kind) keep their 500 and traceback.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from dash import Dash
from flask import Response, request

log = logging.getLogger(__name__)

#: what a callback raises when a crafted request hands it a value of a type or range its component never sends
BAD_INPUT: tuple[type[Exception], ...] = (TypeError, ValueError, KeyError, IndexError, AttributeError,
                                          OverflowError, UnicodeError, RecursionError)
ENDPOINT = "_dash-update-component"


def guard_callbacks(app: Dash) -> None:
    """Answer a callback request whose input its callback cannot take with 400 (see the module doc)."""
    endpoint = app.config.routes_pathname_prefix + ENDPOINT
    dispatch = app.server.view_functions[endpoint]

    @functools.wraps(dispatch)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return dispatch(*args, **kwargs)
        except BAD_INPUT as exc:
            body = request.get_json(silent=True)
            output = str(body.get("output", "?"))[:200] if isinstance(body, dict) else "?"
            log.warning("dashboard callback %r refused its input: %s: %s", output, type(exc).__name__,
                        str(exc)[:200])
            return Response(json.dumps({"message": "the callback's input is not a value its component sends"}),
                            status=400, mimetype="application/json")

    app.server.view_functions[endpoint] = guarded
