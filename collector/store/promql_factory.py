"""Build the PromQL source from ``[source]`` settings (the composition root calls this)."""

from __future__ import annotations

from typing import Any

from collector.errors import InputError
from collector.store.promql import PromqlStore
from collector.store.promql_http import Credentials, PromqlClient, read_secret
from collector.store.promql_mapping import load_mapping
from collector.store.promql_schema import SCHEMAS
from core.settings import Settings


def promql_client(settings: Settings) -> PromqlClient:
    """The query API client of ``[source]``. Raises InputError on bad settings (URL, secret files)."""
    src = settings.source
    if not src.url:
        raise InputError("[source] kind = 'prometheus' needs a URL: pass --prometheus-url URL or set [source] url")
    if src.bearer_token_file and src.basic_auth_user:
        raise InputError("[source]: set bearer_token_file or basic_auth_user, not both")
    creds = Credentials(
        bearer_token=read_secret(src.bearer_token_file, "bearer token") if src.bearer_token_file else "",
        basic_user=src.basic_auth_user,
        basic_password=read_secret(src.basic_auth_password_file, "basic-auth password")
        if src.basic_auth_password_file else "",
    )
    return PromqlClient(src.url, credentials=creds, ca_file=src.ca_file, timeout_s=src.timeout_s,
                        retries=src.retries)


def promql_store(settings: Settings, local: Any, client: PromqlClient | None = None) -> PromqlStore:
    """A PromqlStore over ``[source]``; ``local`` keeps audit/meta/backups. Raises InputError on bad settings."""
    src = settings.source
    client = client or promql_client(settings)
    return PromqlStore(
        client=client, schema=SCHEMAS[src.series], local=local, matchers=src.matchers,
        resolution_s=src.resolution_s, resolution_explicit="resolution_s" in src.model_fields_set,
        history_days=src.history_days,
        max_points_per_series=src.max_points_per_series, max_samples_per_query=src.max_samples_per_query,
        use_rules=src.recording_rules, host_uris=dict(settings.actions.host_uris),
        mapping=load_mapping(src.mapping_file), concurrency=src.query_concurrency,
    )
