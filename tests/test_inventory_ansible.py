"""Inventories read by fleetcompat and by Ansible itself must name the same hosts.

Each inventory of tests/ansible_inventories.py (INI, YAML, group_vars/ and
host_vars/, ansible.cfg, vault) is given to real Ansible (`FLEETCOMPAT_ANSIBLE`,
a venv with ansible-core, which scripts/test.sh makes) twice:

- `ansible-inventory --list`: the hosts, the groups each is in, and the merged
  variables (for the `fleetcompat_` settings);
- `ansible all -m ping` with a stand-in `ssh` that prints the arguments it was
  given and fails: what Ansible's ssh plugin would connect to, as whom, on
  which port, with which key and through which jump host. This is where
  ansible.cfg's `remote_user`, `remote_port` and `private_key_file` show, which
  `ansible-inventory` never applies to host variables (they are the connection
  plugin's defaults), and where the plugin's choice between a variable's two
  names (`ansible_user` and `ansible_ssh_user`) is made.

fleetcompat's `HostSpec` for every host must agree with both, read from the
inventory file and from Ansible's `--list` output of it. The `-t` (tree)
option that collects the ping results is deprecated in ansible-core 2.19 and
goes in 2.23; scripts/test.sh installs a version below 2.20.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetcompat.inventory import HostSpec, Inventory, load_inventory
from fleetcompat.vault import Keyring
from tests.ansible_inventories import CASES, Case, write

FAKE_SSH = """\
#!{python}
import json, sys
sys.stderr.write("FAKE-SSH " + json.dumps(sys.argv[1:]) + "\\n")
sys.exit(255)
"""
"""An `ssh` that tells what it was asked to do, and fails as if unreachable."""


@dataclass(frozen=True)
class Connection:
    """What Ansible's ssh plugin handed to `ssh` for one host."""

    address: str
    port: int | None
    user: str | None
    key_file: str | None
    jump: str | None


@dataclass(frozen=True)
class AnsibleView:
    """What Ansible says of one inventory."""

    case: Case
    groups: dict[str, set[str]]
    """Each host's groups (but `all` and `ungrouped`), from `--list`."""
    hostvars: dict[str, dict[str, Any]]
    connections: dict[str, Connection]
    listing: Path
    """`ansible-inventory --list` output, saved where no vars directory is."""


@pytest.fixture(scope="module")
def ansible_inventory() -> Path:
    """Ansible's `ansible-inventory`; skipped when absent, a failure under CI."""
    venv = os.environ.get("FLEETCOMPAT_ANSIBLE")
    program = Path(venv) / "bin" / "ansible-inventory" if venv else None
    if program is None or not os.access(program, os.X_OK):
        message = (
            "Ansible not found: set FLEETCOMPAT_ANSIBLE to a venv with "
            "ansible-core (scripts/test.sh makes .venv-ansible)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return program


@pytest.fixture(scope="module")
def views(
    ansible_inventory: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, AnsibleView]:
    """Every case written out and read by Ansible, the cases side by side."""
    root = tmp_path_factory.mktemp("ansible")
    fake_ssh = write(root / "bin" / "ssh", FAKE_SSH.format(python=sys.executable))
    fake_ssh.chmod(0o755)
    cases = {name: build(root / name) for name, build in CASES.items()}
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        futures = {
            name: pool.submit(ask_ansible, ansible_inventory, case, fake_ssh)
            for name, case in cases.items()
        }
        return {name: future.result() for name, future in futures.items()}


def ansible_env(case: Case, fake_ssh: Path) -> dict[str, str]:
    """An environment in which only the case's files speak to Ansible."""
    home = case.inventory.parent / "home"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C.UTF-8",
        "HOME": str(home),
        "ANSIBLE_CONFIG": str(case.config),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_SSH_EXECUTABLE": str(fake_ssh),
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_NOCOLOR": "1",
        **dict(case.environment),
    }


def run(
    program: Path, args: list[str], case: Case, fake_ssh: Path, status: int = 0
) -> str:
    """One Ansible command on the case's inventory; its stdout.

    Fails the test, with Ansible's stderr, when it exits with another status.
    """
    vault = ["--vault-password-file", str(case.vault_password_file)]
    command = [str(program), "-i", str(case.inventory), *args]
    if case.vault_password_file is not None:
        command += vault
    done = subprocess.run(
        command,
        env=ansible_env(case, fake_ssh),
        cwd=case.inventory.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == status, f"{command}: {done.stderr}"
    return done.stdout


def ask_ansible(program: Path, case: Case, fake_ssh: Path) -> AnsibleView:
    """`ansible-inventory --list` and a ping through the stand-in ssh, read."""
    listed = run(program, ["--list"], case, fake_ssh)
    data = json.loads(listed)
    listing = write(case.inventory.parent / "listing" / "inventory.json", listed)

    tree = case.inventory.parent / "ping-results"
    ansible = program.with_name("ansible")
    ping = ["all", "-m", "ansible.builtin.ping", "-f", "20", "-t", str(tree)]
    run(ansible, ping, case, fake_ssh, status=4)  # 4: every host unreachable
    connections = {
        path.name: connection_of(json.loads(path.read_text())["msg"])
        for path in tree.iterdir()
    }
    return AnsibleView(
        case, groups_of(data), data["_meta"]["hostvars"], connections, listing
    )


def groups_of(listing: dict[str, Any]) -> dict[str, set[str]]:
    """Each host's groups, every ancestor included, from `--list` output."""

    def members(group: str) -> set[str]:
        body = listing.get(group, {})
        found = set(body.get("hosts", []))
        for child in body.get("children", []):
            found |= members(child)
        return found

    groups: dict[str, set[str]] = {host: set() for host in members("all")}
    groups.update({h: set() for h in listing["_meta"]["hostvars"]})
    for group in listing:
        if group in ("_meta", "all", "ungrouped"):
            continue
        for host in members(group):
            groups[host].add(group)
    return groups


SSH_FLAGS = {"-p": "port", "-l": "user", "-i": "identityfile", "-J": "proxyjump"}
"""ssh's own flags for what `-o` also sets."""


def connection_of(message: str) -> Connection:
    """The host, port, user, key and jump host of the ssh command in `message`.

    As ssh reads its command line: the first value given for each wins, by `-o`
    or by its own flag.
    """
    argv = json.loads(message.split("FAKE-SSH ", 1)[1].splitlines()[0])
    options: dict[str, str] = {}
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag == "-o":
            key, _, text = value.partition("=")
            options.setdefault(key.lower(), text.strip('"'))
        elif flag in SSH_FLAGS:
            options.setdefault(SSH_FLAGS[flag], value)
    port = options.get("port")
    return Connection(
        address=argv[-2],
        port=int(port) if port else None,
        user=options.get("user"),
        key_file=options.get("identityfile"),
        jump=options.get("proxyjump"),
    )


@pytest.fixture
def case_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[[Case], Keyring]:
    """Sets this process up as Ansible was for a case; gives the case's keyring."""
    for name in list(os.environ):
        if name.startswith("ANSIBLE_"):
            monkeypatch.delenv(name)

    def enter(case: Case) -> Keyring:
        monkeypatch.setenv("ANSIBLE_CONFIG", str(case.config))
        monkeypatch.setenv("HOME", str(case.inventory.parent / "home"))
        monkeypatch.chdir(tmp_path)
        for name, value in case.environment:
            monkeypatch.setenv(name, value)
        files = [str(case.vault_password_file)] if case.vault_password_file else []
        return Keyring.from_options(password_files=files, environ={})

    return enter


def as_fleetcompat_connects(spec: HostSpec) -> Connection:
    """A HostSpec in the terms of the ssh command line Ansible writes."""
    jump = ",".join(str(hop) for hop in spec.jump) if spec.jump else None
    key = os.path.expanduser(spec.key_file) if spec.key_file else None
    return Connection(spec.address, spec.port, spec.user, key, jump)


def settings_of(hostvars: dict[str, Any]) -> dict[str, str]:
    """The `fleetcompat_` variables Ansible merged for a host, as HostSpec has them."""
    return {
        key.removeprefix("fleetcompat_"): str(value)
        for key, value in hostvars.items()
        if key.startswith("fleetcompat_")
    }


def disagreements(inventory: Inventory, view: AnsibleView) -> list[str]:
    """Where fleetcompat's hosts differ from Ansible's, one line a difference."""
    found = []
    names = {spec.name for spec in inventory.hosts}
    if names != set(view.groups):
        found.append(f"hosts: {sorted(names)} != {sorted(view.groups)}")
    for spec in inventory.hosts:
        ours = {
            "groups": set(spec.groups),
            "connection": as_fleetcompat_connects(spec),
            "settings": dict(spec.settings),
        }
        theirs = {
            "groups": view.groups.get(spec.name),
            "connection": view.connections.get(spec.name),
            "settings": settings_of(view.hostvars.get(spec.name, {})),
        }
        for key, value in ours.items():
            if value != theirs[key]:
                found.append(f"{spec.name} {key}: {value} != {theirs[key]}")
    return found


@pytest.fixture(params=sorted(CASES))
def view(request: pytest.FixtureRequest, views: dict[str, AnsibleView]) -> AnsibleView:
    """One case as Ansible read it."""
    return views[request.param]


def test_every_host_is_read_as_ansible_reads_the_inventory_file(
    view: AnsibleView, case_environment: Callable[[Case], Keyring]
) -> None:
    keyring = case_environment(view.case)

    inventory = load_inventory(view.case.inventory, keyring)

    assert disagreements(inventory, view) == []


def test_every_host_is_read_as_ansible_reads_its_own_listing(
    view: AnsibleView, case_environment: Callable[[Case], Keyring]
) -> None:
    keyring = case_environment(view.case)

    inventory = load_inventory(view.listing, keyring)

    assert disagreements(inventory, view) == []


def test_the_cases_reach_every_host_through_ssh(views: dict[str, AnsibleView]) -> None:
    for name, view in views.items():
        assert set(view.connections) == set(view.groups), name
