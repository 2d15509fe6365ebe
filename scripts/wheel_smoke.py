"""Install smoke test: build the wheel, install it into a fresh venv outside the checkout, run the demo.

    python3 scripts/wheel_smoke.py [--python PY] [--keep]

Builds sdist + wheel with ``PY -m build`` (default: the checkout's .venv, after scripts/fetch-plotly.sh), creates a
venv in a temporary directory, ``pip install``s the wheel, and from an empty folder there checks:
``rightsizer --version`` prints the package version; ``rightsizer doctor --demo`` exits 0; ``rightsizer serve
--demo`` answers findings on /api/v1/findings, rightsizer_vm_* series on /metrics, and every script the dashboard
page loads with 200 (the lean plotly.js bundle among them). Standard library only; exits 1 naming the failed step.
"""

from __future__ import annotations

import argparse
import glob
import html.parser
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class Failed(Exception):
    pass


class _Scripts(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        src = dict(attrs).get("src")
        if tag == "script" and src:
            self.srcs.append(src)


def step(text: str) -> None:
    print(f"wheel-smoke: {text}", flush=True)


def run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise Failed(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 30) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1 only
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failed(f"serve exited with {proc.returncode} before {url} answered")
        try:
            if get(url, timeout=5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise Failed(f"{url} did not answer within {timeout_s:.0f} s")


def build(python: str, out: Path) -> Path:
    started = time.monotonic()
    run(["bash", "scripts/fetch-plotly.sh", python], cwd=REPO)
    run([python, "-m", "build", "--outdir", str(out), "."], cwd=REPO)
    wheels = glob.glob(str(out / "rightsizer-*.whl"))
    if len(wheels) != 1 or not glob.glob(str(out / "rightsizer-*.tar.gz")):
        raise Failed(f"expected one wheel and one sdist in {out}, found {os.listdir(out)}")
    wheel = Path(wheels[0])
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    for needed in ("rightsizer/data/stackit_eu01_machine_types.csv", "dashboard/prometheus/rightsizer.rules.yml",
                   "dashboard/grafana/rightsizer.json", "dashboard/assets/graph-resize.js",
                   "rightsizer/examples/config.example.toml", "rightsizer/units/rightsizer-agent.service",
                   "api/routes.py"):
        if needed not in names:
            raise Failed(f"{wheel.name} lacks {needed}")
    if not any(n.startswith("dashboard/vendor/plotly-basic-") for n in names):
        raise Failed(f"{wheel.name} lacks the lean plotly.js bundle (dashboard/vendor/plotly-basic-*.min.js)")
    if any(n.startswith("data/") for n in names):
        raise Failed(f"{wheel.name} has a top-level data/ package")
    step(f"built {wheel.name} in {time.monotonic() - started:.0f} s: {len(names)} files, {wheel.stat().st_size} bytes")
    return wheel


def smoke(wheel: Path, work: Path) -> None:
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=work)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check"]
    t0 = time.monotonic()
    run([*pip, str(wheel)], cwd=work, timeout=900)
    step(f"installed into {venv} in {time.monotonic() - t0:.0f} s")
    empty = work / "empty"
    empty.mkdir()
    exe = str(venv / "bin" / "rightsizer")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIGHTSIZER_") and k != "PYTHONPATH"}
    version = run([exe, "--version"], cwd=empty, env=env).strip()
    expected = wheel.name.split("-")[1]
    if version != f"rightsizer {expected}":
        raise Failed(f"--version printed {version!r}, expected 'rightsizer {expected}'")
    step(version)
    data_dir = run([str(venv / "bin" / "python"), "-c", "from analytics.catalogue import DATA_DIR; print(DATA_DIR)"],
                   cwd=empty, env=env).strip()
    if not data_dir.startswith(str(venv)) or not data_dir.endswith("/rightsizer/data"):
        raise Failed(f"the installed package reads its prices from {data_dir!r}, not from its own rightsizer/data")
    step(f"price data from {data_dir}")
    metrics, dash = free_port(), free_port()
    listen = ["--metrics-listen", f"127.0.0.1:{metrics}", "--dashboard-listen", f"127.0.0.1:{dash}"]
    cfg = empty / "ports.toml"
    cfg.write_text(f'[exporter]\nlisten = "127.0.0.1:{metrics}"\n[dashboard]\nlisten = "127.0.0.1:{dash}"\n',
                   encoding="utf-8")
    doctor = run([exe, "doctor", "--demo", "--config", str(cfg)], cwd=empty, env=env)
    step("doctor --demo exit 0:\n" + doctor.rstrip())
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen([exe, "serve", "--demo", *listen], cwd=empty, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{dash}"
        wait_for(f"{base}/readyz", proc, 180)
        code, body = get(f"{base}/api/v1/findings?limit=1000")
        doc = json.loads(body) if code == 200 else {}
        if code != 200 or not doc.get("items"):
            raise Failed(f"/api/v1/findings answered {code} with {body[:300]!r}")
        step(f"/api/v1/findings: {doc['total']} findings")
        wait_for(f"http://127.0.0.1:{metrics}/metrics", proc, 60)
        code, body = get(f"http://127.0.0.1:{metrics}/metrics")
        series = [ln for ln in body.decode().splitlines() if ln.startswith("rightsizer_vm_")]
        if code != 200 or not series:
            raise Failed(f"/metrics answered {code} without rightsizer_vm_* series")
        step(f"/metrics: {len(series)} rightsizer_vm_* samples")
        code, page = get(f"{base}/")
        parser = _Scripts()
        parser.feed(page.decode())
        if code != 200 or not parser.srcs:
            raise Failed(f"the dashboard page answered {code} with no scripts")
        bad = []
        for src in parser.srcs:
            status, _ = get(src if src.startswith("http") else base + src)
            if status != 200:
                bad.append(f"{src} -> {status}")
        if bad:
            raise Failed("scripts the page loads do not answer 200: " + ", ".join(bad))
        if not any("plotly-basic-" in s for s in parser.srcs):
            raise Failed("the page does not load the lean plotly.js bundle: " + ", ".join(parser.srcs))
        step(f"dashboard page: {len(parser.srcs)} scripts, all 200 (lean plotly.js among them)")
    except Failed:
        log.flush()
        sys.stderr.write((work / "serve.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    if proc.returncode not in (0, -signal.SIGTERM):
        raise Failed(f"serve exited {proc.returncode} on SIGTERM")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"),
                        help="Python with 'build' and plotly installed (default: .venv/bin/python)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="rightsizer-wheel-smoke-"))
    try:
        wheel = build(args.python, work / "dist")
        smoke(wheel, work)
    except (Failed, subprocess.TimeoutExpired) as exc:
        print(f"wheel-smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            step(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    step(f"passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
