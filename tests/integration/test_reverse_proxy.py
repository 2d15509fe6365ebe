"""A real nginx (Debian's) with its own basic authentication in front of ``serve``, naming the user in a header.

nginx connects to serve from 127.0.0.2 (``proxy_bind``), the only address in ``[auth] trusted_proxies``; the
test's own requests come from 127.0.0.1, so a header they forge is ignored. nginx also lists a user's groups
(an nginx ``map``, as oauth2-proxy or Keycloak would send them), mapped to a role and scope by ``[[auth.groups]]``.
Chromium signs in through nginx; the scoped operator sees only its team's VMs on every page, in the CSV export
and through the API.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from engines import free_port
from playwright.sync_api import Browser
from served import Served, serve

pytestmark = [pytest.mark.integration, pytest.mark.browser]

NGINX = "/usr/sbin/nginx"
USERS = {"finops": "finops-pass-1", "ops-payments": "ops-pass-2", "carol": "carol-pass-3"}


def _htpasswd(path: Path) -> None:
    # {SHA} is one of the formats nginx's auth_basic reads on every platform
    path.write_text("".join(f"{u}:{{SHA}}{base64.b64encode(hashlib.sha1(p.encode()).digest()).decode()}\n"
                            for u, p in USERS.items()), encoding="utf-8")


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Served]]:
    if not Path(NGINX).exists():
        pytest.fail(f"{NGINX} is missing; install Debian's nginx (scripts/install-system.sh)")
    cwd = tmp_path_factory.mktemp("proxy")
    config = cwd / "auth.toml"
    config.write_text('[auth]\nproxy_header = "X-Forwarded-User"\ntrusted_proxies = ["127.0.0.2"]\n'
                      'proxy_groups_header = "X-Forwarded-Groups"\n\n'
                      '[[auth.users]]\nname = "finops"\nrole = "viewer"\n\n'
                      '[[auth.users]]\nname = "ops-payments"\nrole = "operator"\nscope = ["team=payments"]\n\n'
                      '[[auth.groups]]\nname = "payments-viewers"\nrole = "viewer"\nscope = ["team=payments"]\n',
                      encoding="utf-8")
    served_iter = serve(cwd, "--demo", "--config", str(config))
    served = next(served_iter)
    port = free_port()
    _htpasswd(cwd / "htpasswd")
    (cwd / "nginx").mkdir()
    conf = cwd / "nginx.conf"
    conf.write_text(f"""
daemon off;
worker_processes 1;
user root;
pid {cwd}/nginx.pid;
error_log {cwd}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log {cwd}/nginx-access.log;
  map $remote_user $rs_groups {{ carol "staff,payments-viewers"; default ""; }}
  client_body_temp_path {cwd}/nginx/body;
  proxy_temp_path {cwd}/nginx/proxy;
  fastcgi_temp_path {cwd}/nginx/fastcgi;
  uwsgi_temp_path {cwd}/nginx/uwsgi;
  scgi_temp_path {cwd}/nginx/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_basic "rightsizer";
      auth_basic_user_file {cwd}/htpasswd;
      proxy_bind 127.0.0.2;
      proxy_set_header X-Forwarded-User $remote_user;
      proxy_set_header X-Forwarded-Groups $rs_groups;
      proxy_set_header Host $host;
      proxy_pass {served.base};
    }}
  }}
}}
""", encoding="utf-8")
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(cwd)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(base + "/healthz", timeout=5)
            break
        except requests.RequestException:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log = (cwd / "nginx-error.log").read_text() if (cwd / "nginx-error.log").exists() else ""
                pytest.fail(f"nginx did not start: {log[-2000:]}")
            time.sleep(0.2)
    try:
        yield base, served
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(cwd / "nginx", ignore_errors=True)
        next(served_iter, None)


def test_the_proxy_names_the_user_and_its_scope_applies(behind_nginx: tuple[str, Served]) -> None:
    base, served = behind_nginx
    assert requests.get(f"{base}/api/v1/vms", timeout=60).status_code == 401  # nginx asks first
    everyone = requests.get(f"{base}/api/v1/vms", params={"limit": 1000}, auth=("finops", USERS["finops"]),
                            timeout=60).json()["items"]
    mine = requests.get(f"{base}/api/v1/vms", params={"limit": 1000},
                        auth=("ops-payments", USERS["ops-payments"]), timeout=60).json()["items"]
    assert {v["labels"]["team"] for v in mine} == {"payments"}
    assert len({v["labels"]["team"] for v in everyone}) > 1 and len(mine) < len(everyone)
    forged = requests.get(f"{served.base}/api/v1/vms", headers={"X-Forwarded-User": "finops"}, timeout=60)
    assert forged.status_code == 401  # straight to serve from 127.0.0.1: the header is not believed
    # carol is no [[auth.users]] name: her group payments-viewers gives the role and scope
    carol = ("carol", USERS["carol"])
    hers = requests.get(f"{base}/api/v1/vms", params={"limit": 1000}, auth=carol, timeout=60).json()["items"]
    assert {v["uuid"] for v in hers} == {v["uuid"] for v in mine}
    plan = requests.post(f"{base}/api/v1/plans", json={"vms": [mine[0]["name"]]}, auth=carol, timeout=60)
    assert plan.status_code == 403  # a viewer


def test_chromium_through_nginx_sees_the_dashboard(behind_nginx: tuple[str, Served], browser: Browser) -> None:
    base, _served = behind_nginx
    # one Chromium for the session (conftest's ``browser``)
    page = browser.new_page(http_credentials={"username": "finops", "password": USERS["finops"]})
    denied = browser.new_page(http_credentials={"username": "finops", "password": "wrong"})
    try:
        page.goto(base + "/", timeout=60_000)
        page.get_by_role("heading", name="Overview").first.wait_for(timeout=60_000)  # rendered by Dash
        assert "Sign in" not in page.content()
        response = denied.goto(base + "/", timeout=60_000)
        assert response is not None and response.status == 401
    finally:
        page.context.close()
        denied.context.close()


def _named(names: set[str], text: str) -> set[str]:
    """The names of ``names`` that appear in ``text`` as whole names (not inside a longer one)."""
    return {n for n in names if re.search(rf"(?<![\w.-]){re.escape(n)}(?![\w.-])", text)}


def test_a_scoped_user_sees_only_their_vms_on_every_page_and_in_the_csv(
        behind_nginx: tuple[str, Served], browser: Browser) -> None:
    base, _served = behind_nginx
    everyone = requests.get(f"{base}/api/v1/vms", params={"limit": 1000}, auth=("finops", USERS["finops"]),
                            timeout=60).json()["items"]
    inside = {v["name"] for v in everyone if v["labels"].get("team") == "payments"}
    outside = {v["name"] for v in everyone} - inside
    assert inside and outside
    page = browser.new_page(http_credentials={"username": "ops-payments", "password": USERS["ops-payments"]})
    try:
        for path, ready in (("/", "#overview-spend-hour .js-plotly-plot"),
                            ("/vms", "#vms-table td[data-dash-column='name']"),
                            ("/recommendations", "#recs-table td[data-dash-column='name']"),
                            ("/backups", "#backups-table")):
            page.goto(base + path, timeout=60_000)
            page.wait_for_selector(ready, timeout=60_000)
            page.wait_for_load_state("networkidle")
            text = page.inner_text("body")
            assert not _named(outside, text), (path, _named(outside, text))
            if path == "/vms":
                assert page.inner_text("#vms-count").startswith(f"{len(inside)} VMs match")
                assert _named(inside, text)
        with page.expect_download() as info:
            page.goto(base + "/recommendations", timeout=60_000)
            page.wait_for_selector("#recs-table td[data-dash-column='name']", timeout=60_000)
            page.click("#recs-export")
        rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
        assert rows and {r["name"] for r in rows} <= inside, {r["name"] for r in rows} - inside
        stranger = sorted(outside)[0]
        page.goto(f"{base}/vm/{stranger}", timeout=60_000)
        page.wait_for_function("n => document.querySelector('#vm-header')"
                               " && document.querySelector('#vm-header').innerText.includes(n)", arg=stranger)
        assert f"No VM with UUID or name '{stranger}'" in page.inner_text("#vm-header")
    finally:
        page.context.close()
