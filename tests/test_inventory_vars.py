"""group_vars/ and host_vars/ beside an inventory, merged in Ansible's precedence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetcompat.errors import InventoryError
from fleetcompat.inventory import load_inventory
from fleetcompat.vault import Keyring
from tests.vault_files import encrypt, keyring_for


@pytest.fixture(autouse=True)
def no_ansible_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty ansible.cfg, so the machine's own cannot change what is read."""
    empty = tmp_path / "empty.cfg"
    empty.write_text("")
    monkeypatch.setenv("ANSIBLE_CONFIG", str(empty))
    for name in (
        "ANSIBLE_REMOTE_USER",
        "ANSIBLE_PRIVATE_KEY_FILE",
        "ANSIBLE_REMOTE_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    yield


def write(path: Path, text: str) -> Path:
    """Write `text` to `path`, making its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def five_levels(base: Path) -> Path:
    """An inventory where level N sets the markers N..5 to its own number.

    Each marker is a variable fleetcompat shows in a HostSpec; the value it
    ends with names the highest level that set it, which is its own number
    exactly when every level beats the ones below.
    """
    markers = [
        "ansible_host",
        "ansible_user",
        "ansible_ssh_private_key_file",
        "fleetcompat_probe_root",
        "ansible_port",
    ]

    def level(number: int, sep: str = ": ") -> str:
        lines = []
        for key in markers[number - 1 :]:
            value = 2200 + number if key == "ansible_port" else f"L{number}"
            lines.append(f"{key}{sep}{value}\n")
        return "".join(lines)

    inventory = write(
        base / "inventory" / "hosts",
        "[web]\nw1 "
        + level(4, sep="=").replace("\n", " ")
        + "\n[web:vars]\n"
        + level(1, sep="="),
    )
    write(base / "inventory" / "group_vars" / "all.yml", level(2))
    write(base / "inventory" / "group_vars" / "web.yaml", level(3))
    write(base / "inventory" / "host_vars" / "w1", level(5))
    return inventory


def test_five_levels_merge_in_ansibles_order(tmp_path: Path) -> None:
    host = load_inventory(five_levels(tmp_path)).host("w1")

    assert host.address == "L1"
    assert host.user == "L2"
    assert host.key_file == "L3"
    assert host.settings["probe_root"] == "L4"
    assert host.port == 2205


def test_group_vars_all_beats_any_group_of_the_inventory_file(tmp_path: Path) -> None:
    inventory = write(
        tmp_path / "hosts",
        "[dc:children]\nweb\n[dc:vars]\nansible_user=dc-file\n"
        "[web]\nw1\n[web:vars]\nansible_port=2201\n",
    )
    write(
        tmp_path / "group_vars" / "all.yml",
        "ansible_user: all-dir\nansible_port: 2200\n",
    )
    write(tmp_path / "group_vars" / "dc.yml", "ansible_host: dc-dir\n")
    write(tmp_path / "group_vars" / "web.yml", "ansible_host: web-dir\n")

    host = load_inventory(inventory).host("w1")

    assert host.user == "all-dir"  # group_vars/all over the file's [dc:vars]
    assert host.port == 2200  # ... and over the file's deeper [web:vars]
    assert host.address == "web-dir"  # the deeper group's file wins


def test_a_group_vars_directory_merges_its_files_in_lexical_order(
    tmp_path: Path,
) -> None:
    inventory = write(tmp_path / "hosts.yml", "all:\n  hosts:\n    h1:\n")
    folder = tmp_path / "group_vars" / "all"
    write(folder / "10-base.yml", "ansible_user: base\nansible_host: base\n")
    write(folder / "20-site.yaml", "ansible_user: site\n")
    write(folder / "sub" / "30.json", '{"ansible_port": 2230}')
    write(folder / ".hidden.yml", "ansible_user: hidden\n")
    write(folder / "40-old.yml~", "ansible_user: backup\n")
    write(folder / "50-notes.txt", "ansible_user: notes\n")
    write(folder / "60-empty.yml", "")

    host = load_inventory(inventory).host("h1")

    assert (host.user, host.address, host.port) == ("site", "base", 2230)


def test_a_file_without_extension_is_read_before_and_instead_of_yml(
    tmp_path: Path,
) -> None:
    inventory = write(tmp_path / "hosts", "[db]\nd1\n")
    write(tmp_path / "group_vars" / "db", "ansible_user: plain\n")
    write(tmp_path / "group_vars" / "db.yml", "ansible_user: yml\nansible_port: 1\n")

    host = load_inventory(inventory).host("d1")

    assert (host.user, host.port) == ("plain", None)


def test_group_vars_ungrouped_reach_hosts_in_no_group(tmp_path: Path) -> None:
    inventory = write(tmp_path / "hosts", "loner\n[web]\nw1\n")
    write(tmp_path / "group_vars" / "ungrouped.yml", "ansible_user: solo\n")

    inventory_read = load_inventory(inventory)

    assert inventory_read.host("loner").user == "solo"
    assert inventory_read.host("w1").user is None


def test_a_vars_file_that_is_not_a_mapping_is_named(tmp_path: Path) -> None:
    inventory = write(tmp_path / "hosts", "[web]\nw1\n")
    bad = write(tmp_path / "group_vars" / "web.yml", "- ansible_user: x\n")

    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory)

    assert str(caught.value).startswith(f"{bad}: a vars file must be a mapping")


def test_a_vars_file_with_bad_yaml_is_named_with_its_line(tmp_path: Path) -> None:
    inventory = write(tmp_path / "hosts", "[web]\nw1\n")
    bad = write(tmp_path / "host_vars" / "w1.yml", "ansible_user: x\nport: [22\n")

    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory)

    assert str(caught.value).startswith(f"{bad}: line ")


def test_a_whole_file_vaulted_group_vars_file_is_decrypted(tmp_path: Path) -> None:
    inventory = write(tmp_path / "hosts", "[web]\nw1\n")
    secret = encrypt("ansible_user: from-vault\n", "s3cret")
    write(tmp_path / "group_vars" / "web" / "vault.yml", secret)
    write(tmp_path / "group_vars" / "web" / "vars.yml", "ansible_port: 2222\n")

    host = load_inventory(inventory, keyring_for(tmp_path, "s3cret")).host("w1")

    assert (host.user, host.port) == ("from-vault", 2222)


def test_a_vaulted_file_without_password_fails_only_the_hosts_that_need_it(
    tmp_path: Path,
) -> None:
    inventory = write(tmp_path / "hosts", "[web]\nw1\n[db]\nd1\n")
    vaulted = write(
        tmp_path / "group_vars" / "db.yml", encrypt("ansible_user: dba\n", "s3cret")
    )

    fleet = load_inventory(inventory, Keyring())

    assert [h.name for h in fleet.select("web")] == ["w1"]
    with pytest.raises(InventoryError) as caught:
        fleet.select("db")
    assert str(caught.value).startswith(f"{vaulted}: vaulted file: no vault password")


def counting_keyring(directory: Path, password: str) -> tuple[Keyring, Path]:
    """A keyring whose one password a script gives, adding a line to `runs` each run."""
    runs = directory / "runs"
    script = write(
        directory / "vault-pass.sh", f"#!/bin/sh\necho run >> {runs}\necho {password}\n"
    )
    script.chmod(0o755)
    return Keyring.from_options(password_files=[str(script)], environ={}), runs


@pytest.mark.parametrize(
    "vaulted",
    ["host_vars/d1.yml", "group_vars/db.yml", "group_vars/db/vault.yml"],
    ids=["host-vars", "group-vars", "group-vars-directory"],
)
def test_a_vaulted_vars_file_is_opened_only_when_a_host_needing_it_is_selected(
    tmp_path: Path, vaulted: str
) -> None:
    inventory = write(tmp_path / "hosts", "[web]\nw1\n[db]\nd1\n")
    write(tmp_path / vaulted, encrypt("ansible_user: dba\n", "s3cret"))
    keyring, runs = counting_keyring(tmp_path, "s3cret")

    fleet = load_inventory(inventory, keyring)
    web = fleet.select("web")
    ran_for_web = runs.exists()
    db = fleet.select("db") + fleet.select("d1") + [fleet.host("d1")]

    assert [h.name for h in web] == ["w1"]
    assert not ran_for_web
    assert [h.user for h in db] == ["dba"] * 3
    assert runs.read_text() == "run\n"


def test_a_vaulted_host_vars_file_not_opened_skips_its_host_unless_limit_picks_it(
    tmp_path: Path,
) -> None:
    inventory = write(tmp_path / "hosts", "[web]\nw1\nw2\n")
    vaulted = write(
        tmp_path / "host_vars" / "w1.yml", encrypt("ansible_port: 2201\n", "s3cret")
    )

    fleet = load_inventory(inventory, keyring_for(tmp_path, "wrong"))
    hosts = fleet.select(None)

    assert [(h.name, bool(h.skip)) for h in hosts] == [("w1", True), ("w2", False)]
    assert hosts[0].skip.startswith(f"{vaulted}: vaulted file: ")
    assert "wrong password" in hosts[0].skip
    assert [h.name for h in fleet.select("w2")] == ["w2"]
    with pytest.raises(InventoryError) as caught:
        fleet.select("w*")
    assert str(caught.value) == hosts[0].skip


def test_a_vault_value_in_group_vars_is_decrypted_where_it_is_read(
    tmp_path: Path,
) -> None:
    inventory = write(tmp_path / "hosts", "[web]\nw1\n")
    envelope = encrypt("deploy", "s3cret")
    indented = "".join(f"  {line}\n" for line in envelope.splitlines())
    write(
        tmp_path / "group_vars" / "web.yml",
        f"db_password: !vault |\n{indented}ansible_user: !vault |\n{indented}",
    )

    host = load_inventory(inventory, keyring_for(tmp_path, "s3cret")).host("w1")

    assert host.user == "deploy"


def test_a_vault_value_in_group_vars_that_fails_names_that_file_and_line(
    tmp_path: Path,
) -> None:
    inventory = write(tmp_path / "hosts", "[web]\nw1\n")
    indented = "".join(f"  {line}\n" for line in encrypt("x", "s3cret").splitlines())
    vars_file = write(
        tmp_path / "group_vars" / "web.yml",
        f"ansible_port: 22\nansible_user: !vault |\n{indented}",
    )

    fleet = load_inventory(inventory, keyring_for(tmp_path, "wrong"))

    with pytest.raises(InventoryError) as caught:
        fleet.select(None)
    message = str(caught.value)
    assert message.startswith(f"{vars_file}: line 2: host 'w1': ansible_user: vaulted:")
    assert "wrong password" in message
