"""A small client for the Prometheus HTTP query API (Prometheus, VictoriaMetrics, Thanos, Mimir, Cortex).

Only what the PromQL source needs: ``/api/v1/query``, ``/api/v1/query_range``, ``/api/v1/series`` and
``/api/v1/labels`` (https://prometheus.io/docs/prometheus/latest/querying/api/). Transient failures
(connection refused, timeouts, HTTP 429/502/503/504) are retried with exponential backoff; everything else
becomes one :class:`PromqlError` that names the URL and the query. Bad credentials (401/403), a server that
does not answer in the API's JSON envelope, and a refused query are :class:`PromqlInputError` (the CLI
exits 2: the user has to fix a URL, a credential or a limit).
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.errors import InputError, StoreError

log = logging.getLogger(__name__)

_RETRY_STATUS = {429, 502, 503, 504}


class PromqlError(StoreError):
    """The query API failed at run time (after retries)."""


class PromqlInputError(InputError):
    """The URL, credentials or the query are wrong: unreachable, 401/403, not a Prometheus API, refused."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to authenticate: a bearer token, or basic auth; both read from files so secrets stay out of config."""

    bearer_token: str = ""
    basic_user: str = ""
    basic_password: str = ""

    def header(self) -> str | None:
        if self.bearer_token:
            return f"Bearer {self.bearer_token}"
        if self.basic_user:
            raw = f"{self.basic_user}:{self.basic_password}".encode()
            return "Basic " + base64.b64encode(raw).decode("ascii")
        return None


def read_secret(path: str, what: str) -> str:
    """The stripped contents of a secret file. Raises InputError naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InputError(f"cannot read {what} file {path!r}: {exc.strerror}; check [source] settings") from exc


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of a query answer: its labels and (epoch seconds, value) points."""

    labels: Mapping[str, str]
    ts_s: Sequence[float]
    values: Sequence[float]


@dataclass
class PromqlClient:
    """Blocking client; safe to share between threads (no mutable state besides counters)."""

    url: str
    credentials: Credentials = field(default_factory=Credentials)
    ca_file: str = ""
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    queries: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise PromqlInputError(f"Prometheus URL {self.url!r} is not http(s)://HOST:PORT[/path]; "
                                   "fix --prometheus-url or [source] url")
        self.url = self.url.rstrip("/")
        self._ssl: ssl.SSLContext | None = None
        if parsed.scheme == "https":
            try:
                self._ssl = ssl.create_default_context(cafile=self.ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise PromqlInputError(f"CA file {self.ca_file!r}: {exc}; fix [source] ca_file") from exc

    # -- endpoints -------------------------------------------------------------------------------
    def query(self, expr: str, at_s: float) -> list[Sample]:
        """Instant query at ``at_s`` (epoch seconds); vector answers only."""
        data = self._call("/api/v1/query", {"query": expr, "time": _fmt(at_s)}, expr)
        return _vector(data, self._where(expr))

    def query_range(self, expr: str, start_s: float, end_s: float, step_s: float) -> list[Sample]:
        """Range query; the caller keeps ``(end - start) / step`` within the server's points limit."""
        params = {"query": expr, "start": _fmt(start_s), "end": _fmt(end_s), "step": _fmt(step_s)}
        data = self._call("/api/v1/query_range", params, expr)
        return _matrix(data, self._where(expr))

    def series(self, match: str, start_s: float, end_s: float) -> list[dict[str, str]]:
        """Label sets of the series matching ``match`` with samples between start and end."""
        data = self._call("/api/v1/series", {"match[]": match, "start": _fmt(start_s), "end": _fmt(end_s)}, match)
        if not isinstance(data, list):
            raise PromqlInputError(f"{self._where(match)}: /api/v1/series did not return a list")
        return [dict(d) for d in data]

    def labels(self) -> list[str]:
        """Label names the server knows (used to check it speaks the Prometheus API)."""
        data = self._call("/api/v1/labels", {}, "/api/v1/labels")
        if not isinstance(data, list):
            raise PromqlInputError(f"{self.url}/api/v1/labels did not return a list: not a Prometheus-compatible "
                                   "query API; check --prometheus-url")
        return [str(x) for x in data]

    # -- transport -------------------------------------------------------------------------------
    def _where(self, expr: str) -> str:
        return f"{self.url} query {expr!r}"

    def _request(self, path: str, params: Mapping[str, str]) -> urllib.request.Request:
        body = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(self.url + path, data=body, method="POST")
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        auth = self.credentials.header()
        if auth:
            req.add_header("Authorization", auth)
        return req

    def _call(self, path: str, params: Mapping[str, str], what: str) -> Any:
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                return self._once(path, params, what)
            except _Transient as exc:
                if attempt >= self.retries:
                    raise exc.final from None
                delay = self.backoff_s * (2 ** attempt)
                attempt += 1
                log.warning("%s; retry %d/%d in %.1fs", exc.final, attempt, self.retries, delay)
                self.sleep(delay)
            finally:
                self.queries += 1
                self.seconds += time.perf_counter() - started

    def _once(self, path: str, params: Mapping[str, str], what: str) -> Any:
        where = f"{self.url}{path} ({what!r})" if what != path else f"{self.url}{path}"
        try:
            with urllib.request.urlopen(self._request(path, params), timeout=self.timeout_s,
                                        context=self._ssl) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            if exc.code in (401, 403):
                raise PromqlInputError(f"{where}: HTTP {exc.code} {exc.reason}; check the bearer token or basic "
                                       "auth in [source]") from exc
            if exc.code in _RETRY_STATUS:
                raise _Transient(PromqlError(f"{where}: HTTP {exc.code} {exc.reason}")) from exc
            detail = _error_text(raw)
            if exc.code in (400, 422) and detail:
                raise PromqlInputError(f"{where}: the server refused the query: {detail}") from exc
            raise PromqlInputError(f"{where}: HTTP {exc.code} {exc.reason}{': ' + detail if detail else ''}; "
                                   "is this a Prometheus-compatible query API?") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Transient(PromqlInputError(f"{where}: cannot reach the server ({reason}); check "
                                              "--prometheus-url and that it is running")) from exc
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise PromqlInputError(f"{where}: the answer is not JSON; not a Prometheus-compatible query API, "
                                   "check --prometheus-url") from exc
        if not isinstance(doc, dict) or "status" not in doc:
            raise PromqlInputError(f"{where}: the answer has no 'status'; not a Prometheus-compatible query API")
        if doc["status"] != "success":
            raise PromqlInputError(f"{where}: the server refused the query: {doc.get('error', doc)}")
        return doc.get("data")


class _Transient(Exception):  # noqa: N818 - internal signal, never escapes _call
    def __init__(self, final: Exception) -> None:
        super().__init__(str(final))
        self.final = final


def _error_text(raw: bytes) -> str:
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()[:200]
    return str(doc.get("error", "")) if isinstance(doc, dict) else ""


def _fmt(ts_s: float) -> str:
    return f"{ts_s:.3f}"


def _vector(data: Any, where: str) -> list[Sample]:
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise PromqlInputError(f"{where}: expected a vector answer, got {str(data)[:120]!r}")
    return [Sample(r["metric"], (float(r["value"][0]),), (float(r["value"][1]),)) for r in data["result"]]


def _matrix(data: Any, where: str) -> list[Sample]:
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise PromqlInputError(f"{where}: expected a matrix answer, got {str(data)[:120]!r}")
    out = []
    for r in data["result"]:
        pts = r["values"]
        out.append(Sample(r["metric"], [float(p[0]) for p in pts], [float(p[1]) for p in pts]))
    return out
