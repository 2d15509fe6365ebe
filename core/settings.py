"""Settings: a TOML file, then ``RIGHTSIZER_*`` environment overrides, then command-line flags.

Loaded once by the CLI and passed down. Environment keys use ``__`` for nesting:
``RIGHTSIZER_COLLECTOR__INTERVAL_S=30`` sets ``[collector] interval_s``; list values are comma-separated.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator

from core.authsettings import AuthSettings
from core.durations import duration_days
from core.errors import ConfigError, InputError
from core.parsing import toml_loads
from core.section import Section as _Section

ENV_PREFIX = "RIGHTSIZER_"
# The project's own variables that are not settings overrides: the config path and the test rig's locations.
NON_SETTING_VARIABLES = frozenset(ENV_PREFIX + n for n in (
    "CONFIG", "DATA", "SHARED_DIR", "GUEST_DIR", "GUEST_DISK", "GUEST_INITRD", "GUEST_KERNEL", "LIBVIRTD_TIMEOUT_S",
))


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


class CollectorSettings(_Section):
    uris: list[str] = Field(default_factory=list, description="libvirt URIs to sample; empty = auto")
    local_uri: str = Field(default="qemu:///system",
                           description="URI serve samples when no uris are set and it has domains")
    interval_s: float = Field(default=60.0, ge=1.0, le=3600.0, description="seconds between cycles")
    balloon_period_s: int = Field(default=10, ge=0, le=3600, description="guest balloon stats period to enable")
    enable_balloon_stats: bool = Field(default=True, description="turn on balloon stats (needs read-write)")
    guest_agent_interval_s: float = Field(
        default=3600.0, ge=0, le=86400,
        description="seconds between QEMU guest agent filesystem queries per VM (read-write, off the collection "
                    "cycle); 0 = never")

    @field_validator("uris")
    @classmethod
    def _uris(cls, v: list[str]) -> list[str]:
        for uri in v:
            if ":" not in uri:
                raise ValueError(f"{uri!r} is not a libvirt URI (e.g. qemu:///system)")
        return v


class StoreSettings(_Section):
    path: str = Field(default="var/rightsizer.db", description="SQLite database file")
    raw_retention_days: int = Field(default=35, ge=1, le=3650)
    rollup_retention_days: int = Field(default=400, ge=1, le=36500)


class ExporterSettings(_Section):
    listen: str = Field(default="127.0.0.1:9178", description="HOST:PORT for /metrics")
    web_config_file: str = Field(
        default="", description="Prometheus exporter-toolkit web configuration (YAML: tls_server_config, "
                                "basic_auth_users with bcrypt hashes) for /metrics, read again when it changes; "
                                "empty = plain HTTP, no authentication")
    _v = field_validator("listen")(classmethod(lambda cls, v: _listen(v)))


class DashboardSettings(_Section):
    listen: str = Field(default="127.0.0.1:8050", description="HOST:PORT for the dashboard")
    enabled: bool = True
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=65536, le=1024**3,
                                description="largest request body the dashboard port accepts (413 above it)")
    public_url: str = Field(default="", description="the dashboard's address as readers reach it (e.g. "
                            "'https://rightsizer.example.com'); digests link each VM's page under it; empty = no links")
    tls_cert_file: str = Field(default="", description="PEM certificate (chain) for HTTPS on the dashboard "
                               "port; with tls_key_file; empty = plain HTTP")
    tls_key_file: str = Field(default="", description="PEM private key of tls_cert_file")
    _u = field_validator("public_url")(classmethod(lambda cls, v: _http_url(v, allow_empty=True)))
    _v = field_validator("listen")(classmethod(lambda cls, v: _listen(v)))


class CostSettings(_Section):
    catalogue: str = Field(default="stackit-eu01", description="built-in catalogue name or CSV/TOML path")
    stopped_vm_billing: Literal["none", "full", "storage-only"] = Field(
        default="storage-only",
        description="what a stopped VM costs (the provider's rule is not published): nothing, full, or disks",
    )
    include_storage: bool = True
    storage_class: str = "storage_premium_perf0"
    window_days: int = Field(default=14, ge=1, le=400,
                             description="default cost window of the dashboard, 'costs' and 'report', days")


class RightsizingSettings(_Section):
    strategy: str = Field(default="rightsizer", description="default strategy")
    profile: Literal["conservative", "balanced", "aggressive"] = Field(
        default="balanced", description="our strategy's profile: conservative, balanced or aggressive")
    lookback_days: int = Field(default=14, ge=1, le=400)
    min_monthly_savings: float = Field(default=1.0, ge=0, le=1_000_000,
                                       description="smallest saving worth a downsize")
    policies_file: str = Field(default="", description="TOML file of [[policy]] overrides per VM or label")
    stopped_after: str = Field(default="7d", description="shut off this long (e.g. '7d', '36h', '2w') = stopped")

    @field_validator("stopped_after")
    @classmethod
    def _stopped_after(cls, value: str) -> str:
        stopped_after_days(value)
        return value

    @property
    def stopped_after_days(self) -> float:
        return stopped_after_days(self.stopped_after)


def stopped_after_days(text: str) -> float:
    """Days in a duration of the one grammar (``core.durations``). Raises ValueError naming the value."""
    try:
        return duration_days(text)
    except InputError as exc:
        raise ValueError(str(exc)) from None


class IdleSettings(_Section):
    cpu_vcpus_below: float = Field(default=0.03, gt=0, le=1, description="CPU below this counts as idle")
    share_of_time: float = Field(default=0.97, gt=0, le=1)
    disk_bps_below: float = Field(default=10_000.0, ge=0)
    net_bps_below: float = Field(default=10_000.0, ge=0)
    min_days: float = Field(default=3.0, gt=0)


class SignalSettings(_Section):
    contention_share: float = Field(
        default=0.10, gt=0, le=1,
        description="vCPU time waiting for a host CPU (P95 of hourly means) from which a VM is contended")
    pressure_swap_bps: float = Field(default=256 * 1024.0, gt=0,
                                     description="guest swap in+out, bytes/s, from which an interval is pressured")
    pressure_major_faults_ps: float = Field(default=200.0, gt=0,
                                            description="guest major page faults per second marking pressure")
    storage_headroom: float = Field(default=0.25, ge=0, le=10, description="capacity kept above the used bytes")
    storage_min_bytes: float = Field(default=10e9, ge=0, description="smallest volume proposed, bytes")


class BackupSettings(_Section):
    default_policy: str = Field(default="7d", description="max backup age when a VM has no backup_policy label")
    prod_policy: str = Field(default="24h", description="max backup age for env=prod")


class ReportSettings(_Section):
    out_dir: str = "var/reports"
    cron: str = Field(default="", description="crontab expression for scheduled reports; empty = off")
    digest_cron: str = Field(default="", description="crontab expression (UTC) at which serve sends the digest "
                             "through [delivery]; empty = off")


class DeliverySettings(_Section):
    smtp_host: str = Field(default="", description="SMTP server the digest mail goes through; empty = no mail")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port (587 submission, 465 with smtp_tls)")
    smtp_starttls: Literal["auto", "always", "never"] = Field(
        default="auto", description="STARTTLS: when the server offers it (auto), required (always) or never; "
                                    "auto never sends a password over a connection left unencrypted")
    smtp_tls: bool = Field(default=False, description="TLS from the first byte (port 465) instead of STARTTLS")
    smtp_ca_file: str = Field(default="", description="CA bundle that signs the SMTP server's certificate; "
                              "empty = the system's trust store")
    smtp_user: str = Field(default="", description="SMTP AUTH user; empty = no authentication")
    smtp_password: SecretStr = Field(default=SecretStr(""), description="SMTP AUTH password")
    mail_from: str = Field(default="", description="sender address of the digest mail")
    mail_to: list[str] = Field(default_factory=list, description="recipient addresses of the digest mail")
    webhook_urls: list[str] = Field(default_factory=list,
                                    description="URLs the digest is POSTed to as JSON with a Slack-compatible "
                                                "'text' field (Slack, Mattermost, Teams workflows, ...)")
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="seconds per SMTP session or HTTP request")
    retries: int = Field(default=3, ge=0, le=10, description="retries of a failed delivery per channel")
    retry_backoff_s: float = Field(default=5.0, ge=0, le=3600,
                                   description="wait before the first retry, doubled before each next one, seconds")

    @field_validator("mail_from")
    @classmethod
    def _from(cls, v: str) -> str:
        return mail_address(v) if v else v

    @field_validator("mail_to")
    @classmethod
    def _to(cls, v: list[str]) -> list[str]:
        return [mail_address(a) for a in v]

    @field_validator("webhook_urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        return [_http_url(u) for u in v]


def mail_address(value: str) -> str:
    """``value`` when it is one plain address (local@domain); raises ValueError naming it otherwise."""
    import re

    text = value.strip()
    if not re.fullmatch(r"[^@\s<>,;\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", text):
        raise ValueError(f"{value!r} is not a mail address; write it as name@example.com")
    return text


def _http_url(value: str, *, allow_empty: bool = False) -> str:
    from urllib.parse import urlsplit

    if allow_empty and not value:
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an http(s) URL; write it as https://host/path")
    return value


class ActionSettings(_Section):
    enabled: bool = Field(default=False, description="allow applying resizes from the dashboard")
    token: SecretStr = Field(default=SecretStr(""), description="token the dashboard apply control and the API need")
    restart: Literal["never", "allowed", "window"] = "never"
    windows: list[str] = Field(default_factory=list, description="maintenance windows, e.g. 'sat 02:00-04:00'")
    min_days_between_resizes: int = Field(default=7, ge=0, le=365)
    host_uris: dict[str, str] = Field(
        default_factory=dict,
        description="host -> libvirt URI to act on, e.g. hv1 = 'qemu+ssh://root@hv1/system' (central role)")
    schedules: bool = Field(default=False, description="let serve start/stop VMs on their schedule windows "
                            "(VMs with a 'schedule' label or an accepted schedule)")
    lock_dir: str = Field(default="", description="the host's per-VM apply lock directory, one for every store; "
                          "empty = /run/rightsizer/locks for root, else $XDG_RUNTIME_DIR/rightsizer/locks or "
                          "/tmp/rightsizer-<uid>/locks")


def _zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'") from exc
    return value


class ScheduleSettings(_Section):
    timezone: str = Field(default="UTC", description="IANA time zone of schedule windows and weekly profiles")
    margin_minutes: int = Field(default=60, ge=0, le=720, description="added before and after the observed demand")
    min_off_hours_per_week: float = Field(default=24.0, ge=1, le=167, description="smallest off time worth a schedule")
    recurrence_share: float = Field(
        default=0.3, gt=0, le=1, description="a weekday-hour is on duty when demand fell in it in this share of weeks")
    demand_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="an hour is demand when its mean CPU exceeds this share of the VM's p95 "
                                             "hourly demand (and the idle threshold)")
    allow_prod: bool = Field(default=False, description="propose schedules for env=prod VMs without their own opt-in")
    busy_lookback_minutes: float = Field(default=15.0, gt=0, le=1440,
                                         description="a stop is skipped when CPU exceeded the idle threshold here")
    stop_timeout_s: float = Field(default=120.0, gt=0, le=3600, description="wait for an ACPI shutdown this long")
    _v = field_validator("timezone")(classmethod(lambda cls, v: _zone(v)))


class SourceSettings(_Section):
    kind: Literal["sqlite", "prometheus"] = Field(
        default="sqlite", description="where analytics read history: the embedded SQLite store or a PromQL API")
    url: str = Field(default="", description="Prometheus-compatible query API, e.g. http://127.0.0.1:9090")
    bearer_token_file: str = Field(default="", description="file holding a bearer token for the query API")
    basic_auth_user: str = Field(default="", description="basic-auth user for the query API")
    basic_auth_password_file: str = Field(default="", description="file holding the basic-auth password")
    ca_file: str = Field(default="", description="CA bundle to verify an https query API")
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="seconds per HTTP request")
    retries: int = Field(default=3, ge=0, le=10, description="retries (exponential backoff) on transient errors")
    matchers: str = Field(default="", description='extra label matchers for every selector, e.g. cluster="a"')
    series: Literal["rightsizer", "libvirt-exporter"] = Field(
        default="rightsizer", description="read the agents' rightsizer_* series or the Go libvirt exporters'")
    mapping_file: str = Field(default="", description="TOML [[vm]] labels/machine types for exporter series")
    resolution_s: int = Field(default=60, ge=1, le=3600,
                              description="collection interval of the series: the step of per-interval rates; "
                                          "when not set, the interval measured in the data is used")
    history_days: float = Field(default=93.0, gt=0, le=3650, description="how far back the inventory looks")
    recording_rules: Literal["auto", "always", "never"] = Field(
        default="auto", description="read the shipped recording rules' hourly rollups when present")
    max_points_per_series: int = Field(default=11_000, ge=1, description="server's points limit per series")
    max_samples_per_query: int = Field(default=20_000_000, ge=1000,
                                       description="raw samples one query may load (Prometheus: 50M)")
    query_concurrency: int = Field(default=2, ge=1, le=32,
                                   description="range queries in flight at once when reading a fleet's rollups")

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, v: str) -> str:
        v = v.strip().strip("{}").strip()
        if v and "=" not in v:
            raise ValueError(f"{v!r} is not a label matcher list such as cluster=\"a\"")
        return v


class PlacementSettings(_Section):
    zones: dict[str, str] = Field(default_factory=dict,
                                  description="host -> availability zone, e.g. {hv1 = 'eu01-1', hv2 = 'eu01-2'}")
    zone_label: str = Field(default="zone", min_length=1, max_length=100,
                            description="VM label naming its host's zone when [placement] zones lacks the host")
    service_label: str = Field(default="app", min_length=1, max_length=100,
                               description="VM label whose value names the service a VM belongs to")


class Settings(_Section):
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    exporter: ExporterSettings = Field(default_factory=ExporterSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    costs: CostSettings = Field(default_factory=CostSettings)
    rightsizing: RightsizingSettings = Field(default_factory=RightsizingSettings)
    idle: IdleSettings = Field(default_factory=IdleSettings)
    backups: BackupSettings = Field(default_factory=BackupSettings)
    signals: SignalSettings = Field(default_factory=SignalSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    actions: ActionSettings = Field(default_factory=ActionSettings)
    schedules: ScheduleSettings = Field(default_factory=ScheduleSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    placement: PlacementSettings = Field(default_factory=PlacementSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key in NON_SETTING_VARIABLES:
            continue
        parts = key[len(ENV_PREFIX):].lower().split("__")
        if len(parts) != 2:
            raise ConfigError(
                f"Environment variable {key!r} is not of the form RIGHTSIZER_SECTION__KEY "
                "(e.g. RIGHTSIZER_COLLECTOR__INTERVAL_S)"
            )
        section, name = parts
        field = Settings.model_fields.get(section)
        if field is None:
            raise ConfigError(f"Environment variable {key!r} names unknown section {section!r}")
        sub = out.setdefault(section, {})
        fields = getattr(field.annotation, "model_fields", {})
        annotation = str(fields[name].annotation) if name in fields else ""
        sub[name] = [p.strip() for p in value.split(",") if p.strip()] if "list" in annotation else value
    return out


def _is_secret(loc: list[str]) -> bool:
    """Whether the setting at ``loc`` (section, key) holds a secret (a SecretStr field)."""
    section = Settings.model_fields.get(loc[0]) if loc else None
    fields = getattr(section.annotation, "model_fields", {}) if section is not None else {}
    field = fields.get(loc[1]) if len(loc) >= 2 else None
    return field is not None and "SecretStr" in str(field.annotation)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(merged.get(k), Mapping):
            merged[k] = _merge(dict(merged[k]), v)
        else:
            merged[k] = v
    return merged


def load_settings(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read and validate settings. Raises ConfigError naming the file, key and bad value."""
    env = os.environ if env is None else env
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = env[ENV_PREFIX + "CONFIG"]
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"Config file {source!r} not found; pass an existing TOML file to --config")
        try:
            data = toml_loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Config file {source!r} is not valid TOML: {exc}") from exc
    from_env = _env_overrides(env)
    data = _merge(data, from_env)
    if overrides:
        data = _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        where = ".".join(loc)
        value = err.get("input")
        if overrides and len(loc) >= 2 and loc[1] in overrides.get(loc[0], {}):
            origin = "command line"
        elif len(loc) >= 2 and loc[1] in from_env.get(loc[0], {}):
            origin = f"environment variable {ENV_PREFIX}{loc[0].upper()}__{loc[1].upper()}"
        else:
            origin = source
        if err["type"] == "extra_forbidden":  # a misspelt key: its value may well be a secret (tokne = "...")
            section = Settings.model_fields.get(loc[0]) if len(loc) >= 2 else None
            known = sorted(getattr(section.annotation, "model_fields", {})) if section is not None else \
                sorted(Settings.model_fields)
            raise ConfigError(f"{origin}: unknown key {where!r} (its value is not shown); known keys there: "
                              f"{', '.join(known)}") from None
        shown = "(not shown)" if _is_secret(loc) else repr(value)
        raise ConfigError(f"{origin}: {where} = {shown}: {err['msg']}") from None
