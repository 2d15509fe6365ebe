"""The web face of ``serve``: the dashboard with the HTTP API mounted on its Flask server (the composition root
is the one place both are put together; neither imports the other)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dash import Dash

from analytics.catalogue import CsvPriceCatalogue
from api.routes import mount_api
from api.service import ApiService, PlanRunner
from collector.store.base import TimeSeriesStore
from core.settings import Settings
from dashboard.app import create_app
from dashboard.signin import mount_signin


def build_web_app(settings: Settings, store: TimeSeriesStore, catalogue: CsvPriceCatalogue, *, data_mode: str,
                  plan_runner: PlanRunner | None = None, clock: Callable[[], datetime] | None = None,
                  **dashboard: Any) -> Dash:
    """The dashboard (``create_app`` with ``dashboard`` keywords) and the API on one server; API writes run plans
    through ``plan_runner`` (None: refused as disabled)."""
    app = create_app(settings, store, catalogue, data_mode=data_mode, clock=clock, **dashboard)
    mount_signin(app.server, settings.auth)  # with [[auth.users]]: the dashboard needs a sign-in
    mount_api(app.server, ApiService(settings, store, catalogue, runner=plan_runner,
                                     storage=dashboard.get("storage"), clock=clock or (lambda: datetime.now(UTC))))
    return app
