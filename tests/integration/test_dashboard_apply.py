"""The dashboard's apply control goes through the action module: token first, then audit and libvirt."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics.catalogue import load_catalogue
from collector.hypervisor.libvirt import LibvirtControl, LibvirtSource
from collector.hypervisor.testfleet import FleetDomain, domain_uuid, write_fleet
from collector.model import UsagePoint, VmState
from collector.sampler import Sampler
from collector.store.sqlite import SqliteStore
from core.settings import load_settings
from dashboard.data import DashboardData
from dashboard.viewmodel.recommendations import apply_choice, apply_choices
from rightsizer.service import make_apply_hook

pytestmark = pytest.mark.integration
GIB = 1024**3


def _quiet_history(store, uuid):
    """Five days of a mostly idle 4 vCPU / 16 GiB VM before the collected sample (the test driver has no usage)."""
    (vm,) = store.vms()
    end = vm.first_seen.replace(minute=0, second=0, microsecond=0)
    points = [UsagePoint(vm_uuid=uuid, ts=end - timedelta(hours=h), state=VmState.RUNNING, vcpus=4,
                         memory_bytes=16 * GIB, cpu_vcpus=0.3, memory_used_bytes=2 * GIB, interval_s=3600.0)
              for h in range(1, 5 * 24)]
    store.write_history([vm], points)


def _offered(data, uuid):
    from dashboard.data import Filters

    return next(names for u, _n, names in apply_choices(data, Filters()) if u == uuid)


@pytest.fixture
def rig(tmp_path):
    web = FleetDomain(name="rs-dash-web", uuid=domain_uuid("rs-dash-web"), vcpus=4, max_vcpus=4,
                      memory_bytes=16 * GIB, max_memory_bytes=16 * GIB, labels={"team": "web"})
    uri = write_fleet(tmp_path / "fleet.xml", [web])
    settings = load_settings(env={}, overrides={"actions": {"enabled": True, "token": "s3cret"},
                                                "store": {"path": str(tmp_path / "rs.db")}})
    store = SqliteStore(tmp_path / "rs.db")
    Sampler([LibvirtSource(uri)], store).poll_once()  # the VM enters the store through real collection
    _quiet_history(store, web.uuid)  # enough history for a downsize finding with options to offer
    catalogue = load_catalogue()
    data = DashboardData(settings, store, catalogue, data_mode="live")
    yield uri, store, data, make_apply_hook(settings, store, catalogue)
    data.wait_for_refresh()  # an apply schedules a background rebuild that reads the store
    store.close()


def test_wrong_token_applies_nothing(rig):
    _uri, store, data, hook = rig
    (vm,) = store.vms()
    message = apply_choice(data, hook, vm.uuid, "g1.2", "guess")
    assert "Wrong or missing token" in message
    assert store.audit() == []


def test_right_token_resizes_through_the_action_module(rig):
    uri, store, data, hook = rig
    (vm,) = store.vms()
    first, second = _offered(data, vm.uuid)[:2]
    message = apply_choice(data, hook, vm.uuid, first, "s3cret")
    assert message.startswith("rs-dash-web: applied"), message
    (entry,) = store.audit(vm.uuid)
    assert entry.result == "applied" and entry.actor == "dashboard"
    assert entry.after["machine_type"] == first
    assert entry.price_after_per_hour == pytest.approx(load_catalogue().get(first).price_per_hour)
    # a second apply right away is refused by the same pre-check the CLI has (resized recently)
    again = apply_choice(data, hook, vm.uuid, second, "s3cret")
    assert "skipped" in again or "recently" in again, again
    assert LibvirtControl(uri).host_capacity().cpus > 0


@pytest.fixture
def served(rig):
    """The dashboard app with the apply control, served on a free loopback port."""
    import threading

    from werkzeug.serving import make_server

    from dashboard.app import create_app

    _uri, store, data, hook = rig
    app = create_app(data.settings, store, load_catalogue(), data_mode="live", actions=hook, warm=False)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", store
    finally:
        server.shutdown()
        server.server_close()
        from dashboard.app import dashboard_data

        dashboard_data(app).wait_for_refresh()


def _post_apply(url, vm_uuid, machine_type, token, opener=None):
    """A hand-made Dash callback request, as a script would send it, bypassing the page's dropdowns; through
    ``opener`` (e.g. one holding a session cookie) when given."""
    import json
    import urllib.request

    body = {
        "output": "recs-apply-result.children",
        "outputs": {"id": "recs-apply-result", "property": "children"},
        "inputs": [{"id": "recs-apply-button", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["recs-apply-button.n_clicks"],
        "state": [{"id": "recs-apply-vm", "property": "value", "value": vm_uuid},
                  {"id": "recs-apply-type", "property": "value", "value": machine_type},
                  {"id": "recs-apply-token", "property": "value", "value": token}],
    }
    request = urllib.request.Request(url + "/_dash-update-component", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "Origin": url}, method="POST")
    with (opener or urllib.request.build_opener()).open(request, timeout=120) as response:
        assert response.status == 200
        return json.loads(response.read())["response"]["recs-apply-result"]["children"]


@pytest.mark.parametrize("machine_type", ["m1.amphora", "t1.1", "g1.2x", ["g1.1"]],
                         ids=["appliance", "too-small-for-16GiB", "unknown", "list"])
def test_crafted_post_with_a_type_not_offered_is_refused(served, machine_type):
    url, store = served
    (vm,) = store.vms()
    text = _post_apply(url, vm.uuid, machine_type, "s3cret")
    assert ("is not among the options offered" in text or "Choose a VM and a machine type" in text), text
    assert store.audit() == []


@pytest.mark.parametrize("token", [["s3cret"], {"t": "s3cret"}, 12345, None], ids=["list", "dict", "int", "null"])
def test_token_of_the_wrong_json_type_is_a_refusal_not_http_500(served, token):
    url, store = served
    (vm,) = store.vms()
    text = _post_apply(url, vm.uuid, "g1.1", token)
    assert "Wrong or missing token" in text
    assert store.audit() == []


@pytest.fixture
def signed_in(rig, tmp_path):
    """The dashboard with users (sign-in) and the apply control, served on a free loopback port."""
    import threading

    import bcrypt
    from werkzeug.serving import make_server

    from dashboard.app import create_app, dashboard_data
    from dashboard.signin import mount_signin

    _uri, store, data, hook = rig
    password = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    settings = load_settings(env={}, overrides={
        "actions": {"enabled": True, "token": "s3cret"}, "store": {"path": str(tmp_path / "rs.db")},
        "auth": {"users": [
            {"name": "ops-web", "role": "operator", "password_hash": password, "scope": ["team=web"]},
            {"name": "ops-payments", "role": "operator", "password_hash": password, "scope": ["team=payments"]},
            {"name": "finops", "role": "viewer", "password_hash": password}]}})
    app = create_app(settings, store, load_catalogue(), data_mode="live", actions=hook, warm=False)
    mount_signin(app.server, settings.auth)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", store, data
    finally:
        server.shutdown()
        server.server_close()
        dashboard_data(app).wait_for_refresh()


def _as_user(url, name):
    """An opener holding the session cookie of ``name`` (signed in with the password form)."""
    import http.cookiejar
    import urllib.parse
    import urllib.request

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = urllib.parse.urlencode({"name": name, "password": "pw", "next": "/"}).encode()
    with opener.open(urllib.request.Request(url + "/signin", data=form, method="POST"), timeout=60):
        pass
    assert any(c.name == "rightsizer_session" for c in jar), name
    return opener


def test_a_signed_in_operator_applies_without_a_token_and_is_the_audited_actor(signed_in):
    url, store, data = signed_in
    (vm,) = store.vms()
    target = _offered(data, vm.uuid)[0]
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as anonymous:  # no session: the callback is not run
        urllib.request.urlopen(urllib.request.Request(url + "/_dash-update-component", data=b"{}", method="POST",
                                                      headers={"Content-Type": "application/json"}), timeout=60)
    anonymous.value.close()
    assert anonymous.value.code == 401
    viewer = _post_apply(url, vm.uuid, target, None, _as_user(url, "finops"))
    assert "only an operator or admin" in viewer, viewer
    outside = _post_apply(url, vm.uuid, target, None, _as_user(url, "ops-payments"))  # the VM is team=web
    assert "not in the store" in outside, outside
    assert store.audit() == []
    applied = _post_apply(url, vm.uuid, target, None, _as_user(url, "ops-web"))
    assert "rs-dash-web: applied" in applied, applied
    (entry,) = store.audit(vm.uuid)
    assert entry.actor == "ops-web" and entry.after["machine_type"] == target
