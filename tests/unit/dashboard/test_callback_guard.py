"""Crafted Dash callback requests: wrongly typed values are refused, never a 500 with a traceback (issue 24 L3)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask.testing import FlaskClient
from tinyfleet import NOW

from analytics.catalogue import load_catalogue
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from core.tokens import token_matches
from dashboard.app import create_app

HOSTILE: list[Any] = [None, True, -1, 1e308, "\ud800", "x" * 5000, [], [[1]], {"a": [1]}, [None, 3, "a"],
                      {"row_id": ["x"]}, "../../etc", 12345678901234567890123]


@pytest.fixture
def client(tiny_store: SqliteStore) -> tuple[FlaskClient, dict[str, Any]]:
    settings = Settings.model_validate({"actions": {"enabled": True, "token": "s3cret"}})
    app = create_app(settings, tiny_store, load_catalogue(), data_mode="demo", clock=lambda: NOW, warm=False,
                     actions=lambda *a: "applied")
    return app.server.test_client(), app.callback_map


def _body(key: str, spec: dict[str, Any], slot: int, value: Any) -> dict[str, Any]:
    outs = [part.rsplit(".", 1) for part in (key[2:-2].split("...") if key.startswith("..") else [key])]
    outputs: Any = [{"id": i, "property": p} for i, p in outs]
    args = [dict(a) for a in spec["inputs"]] + [dict(s) for s in spec.get("state", [])]
    for n, arg in enumerate(args):
        arg["value"] = value if n == slot else None
    inputs, state = args[:len(spec["inputs"])], args[len(spec["inputs"]):]
    return {"output": key, "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
            "state": state, "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}


def test_no_callback_answers_500_or_logs_a_traceback_for_any_hostile_value(
        client: tuple[FlaskClient, dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    http, callbacks = client
    tried = 0
    with caplog.at_level(logging.WARNING):
        for key, spec in callbacks.items():
            slots = len(spec["inputs"]) + len(spec.get("state", []))
            for slot in range(slots):
                for value in HOSTILE:
                    resp = http.post("/_dash-update-component", json=_body(key, spec, slot, value))
                    assert resp.status_code in (200, 204, 400), (key, slot, value, resp.status_code)
                    tried += 1
    assert tried > 500
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR][:3]


def test_a_lone_surrogate_token_is_a_refusal(client: tuple[FlaskClient, dict[str, Any]]) -> None:
    assert token_matches("\ud800", "s3cret") is False
    assert token_matches("s3cret", "s3cret") is True
    http, _ = client
    body = {"output": "recs-apply-result.children", "outputs": {"id": "recs-apply-result", "property": "children"},
            "inputs": [{"id": "recs-apply-button", "property": "n_clicks", "value": 1}],
            "changedPropIds": ["recs-apply-button.n_clicks"],
            "state": [{"id": "recs-apply-vm", "property": "value", "value": "x"},
                      {"id": "recs-apply-type", "property": "value", "value": "g1.1"},
                      {"id": "recs-apply-token", "property": "value", "value": "\ud800"}]}
    resp = http.post("/_dash-update-component", json=body)
    assert resp.status_code == 200
    assert "nothing was applied" in resp.get_data(as_text=True)
