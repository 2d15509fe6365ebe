"""A real nginx (Debian's) with its own basic authentication in front of ``serve``, naming the user in a header.

nginx connects to serve from 127.0.0.2 (``proxy_bind``), the only address in ``[auth] trusted_proxies``; the
test's own requests come from 127.0.0.1, so a header they forge is ignored. Chromium signs in through nginx
and sees the dashboard; the scoped operator reads only its team's VMs through the API.
"""

from __future__ import annotations

import base64
import hashlib
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
USERS = {"finops": "finops-pass-1", "ops-payments": "ops-pass-2"}


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
    config.write_text('[auth]\nproxy_header = "X-Forwarded-User"\ntrusted_proxies = ["127.0.0.2"]\n\n'
                      '[[auth.users]]\nname = "finops"\nrole = "viewer"\n\n'
                      '[[auth.users]]\nname = "ops-payments"\nrole = "operator"\nscope = ["team=payments"]\n',
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
    assert requests.get(f"{base}/", auth=("ops-payments", USERS["ops-payments"]), timeout=60).status_code == 403


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
