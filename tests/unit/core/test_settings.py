from __future__ import annotations

import pytest

from collector.errors import ConfigError
from core.settings import load_settings


def test_defaults_are_loopback_and_documented_ports():
    s = load_settings(env={})
    assert s.exporter.listen == "127.0.0.1:9178"
    assert s.dashboard.listen == "127.0.0.1:8050"
    assert s.store.raw_retention_days == 35 and s.store.rollup_retention_days == 400


def test_file_then_env_then_flags(tmp_path):
    cfg = tmp_path / "rs.toml"
    cfg.write_text('[collector]\ninterval_s = 30\nuris = ["qemu:///system"]\n[costs]\ncatalogue = "x.csv"\n')
    s = load_settings(cfg, env={"RIGHTSIZER_COLLECTOR__INTERVAL_S": "15",
                                "RIGHTSIZER_COLLECTOR__URIS": "qemu:///system, qemu+ssh://h2/system"})
    assert s.collector.interval_s == 15
    assert s.collector.uris == ["qemu:///system", "qemu+ssh://h2/system"]
    assert s.costs.catalogue == "x.csv"
    s = load_settings(cfg, env={"RIGHTSIZER_COLLECTOR__INTERVAL_S": "15"}, overrides={"collector": {"interval_s": 5}})
    assert s.collector.interval_s == 5


@pytest.mark.parametrize(("text", "fragment"), [
    ("[collector]\ninterval_s = 0\n", "collector.interval_s = 0"),
    ("[collector]\nuris = ['nocolon']\n", "collector.uris"),
    ("[exporter]\nlisten = 'localhost'\n", "expected HOST:PORT"),
    ("[nonsense]\nx = 1\n", "nonsense"),
    ("[collector\n", "not valid TOML"),
    ("[costs]\nstopped_vm_billing = 'half'\n", "costs.stopped_vm_billing = 'half'"),
])
def test_bad_config_names_key_and_value(tmp_path, text, fragment):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert fragment in str(err.value)
    assert str(cfg) in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", env={})


def test_bad_environment_override_names_the_variable():
    with pytest.raises(ConfigError, match="RIGHTSIZER_BOGUS"):
        load_settings(env={"RIGHTSIZER_BOGUS": "1"})
    with pytest.raises(ConfigError, match="environment"):
        load_settings(env={"RIGHTSIZER_COLLECTOR__INTERVAL_S": "fast"})


def test_shipped_example_config_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[3] / "docs" / "config.example.toml"
    s = load_settings(example, env={})
    assert s.collector.interval_s == 60 and s.actions.enabled is False


def test_the_rigs_own_variables_are_not_taken_for_settings() -> None:
    env = {"RIGHTSIZER_SHARED_DIR": "/srv/shared", "RIGHTSIZER_GUEST_KERNEL": "/boot/vmlinuz"}
    assert load_settings(env=env) == load_settings(env={})
    with pytest.raises(ConfigError, match="RIGHTSIZER_SHARED"):
        load_settings(env={"RIGHTSIZER_SHARED": "x"})


@pytest.mark.parametrize("text", [
    '[actions]\ntokne = "hunter2"\n',  # a misspelt key
    '[nonsense]\npassword = "hunter2"\n',  # an unknown section
    '[actions]\ntoken = ["hunter2"]\n',  # a secret of the wrong type
    '[actions.tokne]\nx = "hunter2"\n',
])
def test_config_errors_never_echo_a_secret_or_a_misspelt_keys_value(tmp_path, text):
    """Issue 24 L8: the line for a misspelt key held its value, which may be a secret."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    message = str(err.value)
    assert "hunter2" not in message and "\n" not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_a_misspelt_key_is_named_with_the_keys_of_its_section(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[actions]\ntokne = "hunter2"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'actions.tokne' \(its value is not shown\); known keys "
                                          r"there: .*lock_dir.*token"):
        load_settings(cfg, env={})
    with pytest.raises(ConfigError) as err:
        load_settings(env={"RIGHTSIZER_ACTIONS__TOKNE": "hunter2"})
    assert "RIGHTSIZER_ACTIONS__TOKNE" in str(err.value) and "hunter2" not in str(err.value)
