"""ansible.cfg's connection defaults: which file, which settings, what wins."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fleetcompat.ansiblecfg import find_config_file, load_ansible_config
from fleetcompat.errors import InputError
from fleetcompat.inventory import Endpoint, load_inventory

ENV_NAMES = (
    "ANSIBLE_CONFIG",
    "ANSIBLE_REMOTE_USER",
    "ANSIBLE_REMOTE_PORT",
    "ANSIBLE_PRIVATE_KEY_FILE",
    "ANSIBLE_SSH_ARGS",
    "ANSIBLE_SSH_COMMON_ARGS",
    "ANSIBLE_SSH_EXTRA_ARGS",
    "ANSIBLE_HOST_KEY_CHECKING",
    "ANSIBLE_SSH_HOST_KEY_CHECKING",
)

SITE_CFG = """\
# the team's ansible.cfg
[defaults]
inventory = ./hosts
remote_user = "deploy"
private_key_file = keys/fleet_ed25519
forks = 20

[ssh_connection]
ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -o ProxyJump=jump.example.net
pipelining = True
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Ansible settings from the machine: own HOME, no ANSIBLE_* variables."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def site(tmp_path: Path, cfg: str = SITE_CFG) -> tuple[Path, Path]:
    """A project directory with ansible.cfg and an INI inventory; (cfg, inventory)."""
    project = tmp_path / "project"
    project.mkdir()
    config = project / "ansible.cfg"
    config.write_text(cfg)
    inventory = project / "hosts"
    inventory.write_text(
        "[web]\nw1\nw2 ansible_user=ops ansible_ssh_private_key_file=k\n"
    )
    return config, inventory


def test_ansible_config_names_the_file_and_its_defaults_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, inventory = site(tmp_path)
    monkeypatch.setenv("ANSIBLE_CONFIG", str(config))

    fleet = load_inventory(inventory)

    w1, w2 = fleet.host("w1"), fleet.host("w2")
    assert w1.user == "deploy"
    assert w1.key_file == str(config.parent / "keys" / "fleet_ed25519")
    assert w1.jump == (Endpoint("jump.example.net"),)
    assert (w2.user, w2.key_file) == ("ops", "k")  # host vars win


def test_environment_variables_override_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, inventory = site(tmp_path)
    monkeypatch.setenv("ANSIBLE_CONFIG", str(config.parent))  # a directory
    monkeypatch.setenv("ANSIBLE_REMOTE_USER", "from-env")
    monkeypatch.setenv("ANSIBLE_PRIVATE_KEY_FILE", "relative/key")
    monkeypatch.setenv("ANSIBLE_REMOTE_PORT", "2222")

    host = load_inventory(inventory).host("w1")

    assert (host.user, host.key_file, host.port) == ("from-env", "relative/key", 2222)


def test_search_order_env_then_cwd_then_home_then_etc(tmp_path: Path) -> None:
    home, cwd, env_file = tmp_path / "h", tmp_path / "c", tmp_path / "e.cfg"
    home.mkdir()
    cwd.mkdir()
    for path in (home / ".ansible.cfg", cwd / "ansible.cfg", env_file):
        path.write_text("[defaults]\n")
    environ = {"HOME": str(home)}

    found = [
        find_config_file({**environ, "ANSIBLE_CONFIG": str(env_file)}, cwd),
        find_config_file(
            {**environ, "ANSIBLE_CONFIG": str(tmp_path / "absent.cfg")}, cwd
        ),
        find_config_file(environ, home / "elsewhere"),
    ]

    assert found == [env_file, cwd / "ansible.cfg", home / ".ansible.cfg"]


def test_a_world_writable_directory_is_not_a_config_source(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "ansible.cfg").write_text("[defaults]\nremote_user = planted\n")

    with caplog.at_level(logging.WARNING):
        found = find_config_file({"HOME": str(tmp_path / "nohome")}, shared)

    assert found != shared / "ansible.cfg"
    assert "world-writable" in caplog.text


def test_host_key_checking_off_is_ignored_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config, _ = site(tmp_path, "[defaults]\nhost_key_checking = False\n")

    with caplog.at_level(logging.INFO):
        loaded = load_ansible_config({"ANSIBLE_CONFIG": str(config)})

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"using ansible.cfg {config}" in caplog.text
    assert len(warnings) == 1
    assert "host_key_checking = False is ignored" in warnings[0].getMessage()
    assert loaded.variables == {}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("ansible.conf", "[defaults]\n", "only .cfg or .ini"),
        ("ansible.cfg", "remote_user = x\n", "File contains no section headers"),
        (
            "ansible.cfg",
            "[defaults]\nremote_port = ssh\n",
            "[defaults] remote_port: bad port",
        ),
        (
            "ansible.cfg",
            "[defaults]\na = 1\na = 2\n",
            "option 'a' in section 'defaults'",
        ),
    ],
    ids=["extension", "no-section", "bad-port", "duplicate-option"],
)
def test_a_bad_ansible_cfg_is_an_input_error_naming_it(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    config = tmp_path / name
    config.write_text(text)

    with pytest.raises(InputError) as caught:
        load_ansible_config({"ANSIBLE_CONFIG": str(config)})

    assert str(caught.value).startswith(f"{config}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
