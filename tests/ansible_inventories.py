"""Realistic Ansible inventories, written to disk, for the tests against Ansible.

Each builder writes one inventory (with its group_vars/, host_vars/,
ansible.cfg and vault password file, as it needs) under a directory and says
where the pieces are. tests/test_inventory_ansible.py gives each to Ansible
and to fleetcompat and compares what they make of every host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.vault_files import encrypt

VAULT_PASSWORD = "fleet-vault-password"


@dataclass(frozen=True)
class Case:
    """One inventory as written to disk: the file, its ansible.cfg, its vault."""

    inventory: Path
    config: Path
    vault_password_file: Path | None = None
    environment: tuple[tuple[str, str], ...] = ()
    """ANSIBLE_ variables set for Ansible and for fleetcompat alike."""


def write(path: Path, text: str) -> Path:
    """Write `text` to `path`, making its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def empty_config(base: Path) -> Path:
    """An ansible.cfg that sets nothing, so the machine's own stays out."""
    return write(base / "config" / "ansible.cfg", "[defaults]\n")


def vault_block(plaintext: str, indent: int) -> str:
    """`!vault |` with `plaintext` encrypted, its lines indented for YAML."""
    pad = " " * indent
    lines = encrypt(plaintext, VAULT_PASSWORD).splitlines()
    return "!vault |\n" + "".join(f"{pad}{line}\n" for line in lines)


def ini_fleet(base: Path) -> Case:
    """INI: ungrouped hosts, ranges, host:port, children, vars, old names."""
    inventory = write(
        base / "hosts",
        """\
# hosts before the first section are in `ungrouped`
bastion.example.net ansible_user=ops ansible_port=2201
lab-box ansible_ssh_host=192.0.2.50 ansible_ssh_port=2222 ansible_ssh_user=labops
web01.example.net   # listed under [web] too, so not ungrouped

[web]
web[01:04].example.net
web-canary.example.net:2222 fleetcompat_skip=True
web01.example.net ansible_host=10.0.10.1

[db]
db[1:5:2].example.net ansible_ssh_private_key_file=/k/db ansible_private_key_file=/k/pg
db2.example.net:5022 ansible_host=10.0.20.12 ansible_user=pg ansible_ssh_user=pgadmin

[edge]
edge-[a:c] ansible_host=edge.example.net

[edge:vars]
ansible_ssh_extra_args=-J jump@edge-gw.example.net:2022
ansible_user=edge-user

[monitoring]
edge-a ansible_ssh_common_args="-o ServerAliveInterval=30 -o ProxyJump=mon@gw"

[monitoring:vars]
ansible_user=admin # a note, which Ansible keeps in the value
fleetcompat_timeout=30.5

[v6]
[2001:db8::7]:2222 ansible_user='007'

[datacenter:children]
web
db

[datacenter:vars]
ansible_user=deploy
ansible_ssh_common_args='-o ProxyJump=ops@bastion.example.net:2201'
fleetcompat_timeout=60

[web:vars]
ansible_private_key_file=~/.ssh/id_web
fleetcompat_timeout=45

[all:vars]
ansible_port=22
fleetcompat_timeout=90
""",
    )
    return Case(inventory, empty_config(base))


def yaml_nested(base: Path) -> Case:
    """YAML: children three deep, ansible_group_priority, ranges, ports, old names."""
    inventory = write(
        base / "inventory.yaml",
        """\
all:
  vars:
    ansible_user: admin
    fleetcompat_timeout: 120
  hosts:
    mgmt.example.org:
      ansible_host: 198.51.100.10
    args-only.example.org:
      ansible_ssh_extra_args: -p 2525 -o ProxyJump=jump@gw.example.org
  children:
    europe:
      vars:
        ansible_user: eu-admin
        fleetcompat_jump_concurrency: 4
      children:
        paris:
          vars:
            ansible_port: 2210
            fleetcompat_timeout: 30
          hosts:
            par-node-[a:c].example.org:
            par-gpu01.example.org:2022:
              ansible_ssh_private_key_file: /keys/gpu
        berlin:
          hosts:
            ber-node[1:3].example.org:
    gpu:
      vars:
        ansible_user: gpu-ops
        ansible_group_priority: 10
        fleetcompat_timeout: 300
      hosts:
        par-gpu01.example.org:
        ber-node2.example.org:
    storage:
      vars:
        ansible_user: storage-ops
        ansible_port: 2400
      hosts:
        ber-node2.example.org:
    legacy:
      vars:
        ansible_ssh_user: legacy-root
        ansible_ssh_port: 2600
        ansible_ssh_host: 10.0.3.3
      hosts:
        ber-node3.example.org:
          ansible_port: 22
          ansible_host: ber-node3.mgmt.example.org
""",
    )
    return Case(inventory, empty_config(base))


def vars_directories(base: Path) -> Case:
    """INI beside group_vars/ and host_vars/: files, directories, extensions."""
    inventory = write(
        base / "hosts.ini",
        """\
orphan.internal

[app]
app1.internal
app2.internal ansible_user=inline-user
app3.internal

[cache]
cache1.internal
cache2.internal fleetcompat_timeout=7

[app:vars]
ansible_user=from-inventory-group
fleetcompat_timeout=10
""",
    )
    write(
        base / "group_vars" / "all.yml",
        "ansible_port: 2200\nfleetcompat_timeout: 20\n"
        "ansible_ssh_common_args: -o ProxyJump=gw.internal\n",
    )
    app = base / "group_vars" / "app"
    write(app / "10-conn.yml", "ansible_user: from-group-dir\n")
    write(app / "20-more.yaml", "fleetcompat_timeout: 30\n")
    write(app / "sub" / "30-nested.yml", "ansible_port: 2300\n")
    write(app / "notes.txt", "ansible_port: 9999\n")
    write(app / "40-backup.yml~", "ansible_port: 9998\n")
    write(app / ".hidden.yml", "ansible_port: 9997\n")
    write(
        base / "group_vars" / "cache.json",
        '{"ansible_user": "redis", "ansible_ssh_private_key_file": "/keys/cache"}\n',
    )
    write(base / "group_vars" / "ungrouped.yml", "ansible_user: lonely\n")
    write(base / "host_vars" / "app1.internal.yml", "ansible_host: 10.9.0.1\n")
    write(base / "host_vars" / "app3.internal", "ansible_ssh_port: 2333\n")
    cache1 = base / "host_vars" / "cache1.internal"
    write(cache1 / "a.yml", "ansible_private_key_file: /keys/cache1\n")
    write(cache1 / "b.yml", "fleetcompat_timeout: 5\nansible_ssh_user: valkey\n")
    return Case(inventory, empty_config(base))


def ansible_cfg(base: Path) -> Case:
    """ansible.cfg's connection defaults, and the inventory variables that beat them."""
    config = write(
        base / "config" / "ansible.cfg",
        """\
[defaults]
remote_user = cfg-deploy
remote_port = 2022
private_key_file = keys/fleet_ed25519

[ssh_connection]
ssh_common_args = -o ProxyJump=jump@gw.example.com
""",
    )
    inventory = write(
        base / "inventory.yml",
        """\
all:
  hosts:
    plain.example.com:
    old-user.example.com:
      ansible_ssh_user: legacy
    key-alias.example.com:
      ansible_private_key_file: /keys/alias
    own-port.example.com:
      ansible_port: 22
    own-jump.example.com:
      ansible_ssh_common_args: -J other@gw2.example.com
    args-only.example.com:
      ansible_ssh_extra_args: -l args-user -p 2525
  children:
    ops:
      vars:
        ansible_user: ops-user
      hosts:
        ops1.example.com:
""",
    )
    return Case(inventory, config, environment=(("ANSIBLE_REMOTE_PORT", "2023"),))


def vaulted(base: Path) -> Case:
    """`!vault` values in the inventory and in vars files, and a vaulted file."""
    inventory = write(
        base / "inventory.yml",
        f"""\
all:
  children:
    secure:
      vars:
        ansible_user: {vault_block("vault-deploy", 10)}
      hosts:
        sec1.example.com:
          ansible_host: {vault_block("203.0.113.7", 12)}
        sec2.example.com:
        sec3.example.com:
          ansible_ssh_private_key_file: {vault_block("/keys/sec3", 12)}
""",
    )
    write(
        base / "group_vars" / "secure.yml",
        encrypt("ansible_port: 2444\nfleetcompat_timeout: 15\n", VAULT_PASSWORD),
    )
    write(
        base / "host_vars" / "sec2.example.com.yml",
        f"ansible_ssh_user: {vault_block('sec2-admin', 2)}",
    )
    password = write(base / "vault-pass", VAULT_PASSWORD + "\n")
    return Case(inventory, empty_config(base), password)


def yaml_vars_directories(base: Path) -> Case:
    """YAML beside a group_vars/all/ directory with a vaulted file, `ungrouped`."""
    inventory = write(
        base / "inventory" / "fleet.yml",
        """\
all:
  hosts:
    solo.example.com:
    shared.example.com:
      ansible_ssh_private_key_file: keys/shared
  children:
    ungrouped:
      hosts:
        loose.example.com:
          ansible_user: loose
    k8s:
      children:
        control:
          hosts:
            cp[1:3].k8s.example.com:
        workers:
          hosts:
            shared.example.com:
            wk-[a:b].k8s.example.com:
""",
    )
    all_dir = base / "inventory" / "group_vars" / "all"
    write(all_dir / "main.yml", "ansible_user: k8s-admin\nansible_port: 2201\n")
    write(
        all_dir / "vault.yml",
        encrypt("ansible_ssh_common_args: -J bastion@gw.k8s\n", VAULT_PASSWORD),
    )
    write(
        base / "inventory" / "group_vars" / "ungrouped.yaml",
        "ansible_user: stray\nfleetcompat_skip: true\n",
    )
    write(base / "inventory" / "group_vars" / "control.yml", "ansible_port: 2202\n")
    write(
        base / "inventory" / "host_vars" / "cp2.k8s.example.com.yml",
        "ansible_ssh_host: 10.20.0.2\n",
    )
    password = write(base / "vault-pass", VAULT_PASSWORD + "\n")
    return Case(inventory, empty_config(base), password)


CASES: dict[str, Callable[[Path], Case]] = {
    "ini-fleet": ini_fleet,
    "yaml-nested": yaml_nested,
    "vars-directories": vars_directories,
    "ansible-cfg": ansible_cfg,
    "vaulted": vaulted,
    "yaml-vars-directories": yaml_vars_directories,
}
