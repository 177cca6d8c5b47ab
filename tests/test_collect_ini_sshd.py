"""An Ansible user's own files, as they are, collected from a real sshd via the CLI.

The inventory is INI (Ansible's default format), the login user and key come
from `group_vars/all.yml` beside it, and `~/.ansible.cfg` is the one Ansible
users keep: nothing is written for fleetcompat.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import Sshd, collect_json, free_port, keygen, start_sshd

pytestmark = [pytest.mark.sshd]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """One sshd on loopback; the probe reads this machine."""
    base = tmp_path_factory.mktemp("sshd-ini")
    key = keygen(base / "id_ed25519")
    started = start_sshd(base / "server", [("127.0.0.1", free_port())], client_key=key)
    yield started
    started.stop()


def ansible_project(home: Path, server: Sshd) -> Path:
    """An INI inventory with group_vars/all.yml, as an Ansible user keeps them."""
    address, port = server.endpoints[0]
    project = home / "infra"
    (project / "group_vars").mkdir(parents=True)
    inventory = project / "hosts"
    inventory.write_text(
        "# lab machines\n"
        "[lab]\n"
        f"lab-1 ansible_host={address} ansible_port={port}\n"
        "\n"
        "[lab:vars]\n"
        "ansible_python_interpreter=/usr/bin/python3\n"
    )
    (project / "group_vars" / "all.yml").write_text(
        f"---\nansible_user: root\nansible_ssh_private_key_file: {server.client_key}\n"
    )
    return inventory


async def test_an_ini_inventory_with_group_vars_collects_with_no_extra_setup(
    tmp_path: Path, server: Sshd
) -> None:
    (tmp_path / "known_hosts").write_text(server.known_hosts_lines())
    inventory = ansible_project(tmp_path, server)

    status, summary, err = await collect_json(tmp_path, inventory)

    assert status == 0, err
    host = summary["hosts"][0]
    assert (host["name"], host["outcome"]) == ("lab-1", "ok")


async def test_host_key_checking_off_in_ansible_cfg_does_not_weaken_the_check(
    tmp_path: Path, server: Sshd
) -> None:
    (tmp_path / "known_hosts").write_text("")
    (tmp_path / ".ansible.cfg").write_text("[defaults]\nhost_key_checking = False\n")
    inventory = ansible_project(tmp_path, server)

    status, summary, err = await collect_json(tmp_path, inventory)

    assert status == 3
    assert summary["hosts"][0]["outcome"] == "hostkey-unknown"
    assert "host_key_checking = False is ignored" in err
    assert err.count("is ignored") == 1
