"""INI inventories read as Ansible reads them, and telling the formats apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcompat.errors import InventoryError
from fleetcompat.inventory import Endpoint, parse_inventory
from fleetcompat.vault import Keyring
from tests.vault_files import encrypt, keyring_for

# An /etc/ansible/hosts of the shape Ansible's documentation teaches: ungrouped
# hosts first, groups, ranges, a port shorthand, :vars and :children.
FARM_INI = """\
# Build farm inventory
bastion.example.net ansible_user=ops

[web]
web[01:03].example.net
web-canary.example.net:2222 fleetcompat_skip=True   # not probed this week

[db]
db1.example.net ansible_host=10.0.20.11 ansible_port=5022
db2.example.net ansible_host=10.0.20.12

[gpu]
gpu-[a:c].lab.example.net ansible_ssh_common_args='-o ProxyJump=ops@bastion:2200'

; everything in the datacenter logs in as deploy
[datacenter:children]
web
db

[datacenter:vars]
ansible_user=deploy
ansible_ssh_private_key_file=~/.ssh/fleet_ed25519
fleetcompat_timeout=45

[all:vars]
ansible_python_interpreter=/usr/bin/python3
"""

# The same inventory as Ansible's YAML format writes it.
FARM_YAML = """\
all:
  vars:
    ansible_python_interpreter: /usr/bin/python3
  hosts:
    bastion.example.net:
      ansible_user: ops
  children:
    datacenter:
      vars:
        ansible_user: deploy
        ansible_ssh_private_key_file: ~/.ssh/fleet_ed25519
        fleetcompat_timeout: 45
      children:
        web:
          hosts:
            web[01:03].example.net:
            web-canary.example.net:2222:
              fleetcompat_skip: true
        db:
          hosts:
            db1.example.net:
              ansible_host: 10.0.20.11
              ansible_port: 5022
            db2.example.net:
              ansible_host: 10.0.20.12
    gpu:
      hosts:
        gpu-[a:c].lab.example.net:
          ansible_ssh_common_args: -o ProxyJump=ops@bastion:2200
"""


def test_an_ini_inventory_and_its_yaml_equivalent_yield_identical_hosts() -> None:
    ini = parse_inventory(FARM_INI, "hosts")
    yaml = parse_inventory(FARM_YAML, "hosts.yaml")

    assert ini.hosts == yaml.hosts
    assert ini.groups == yaml.groups
    assert [h.name for h in ini.hosts][:5] == [
        "bastion.example.net",
        "web01.example.net",
        "web02.example.net",
        "web03.example.net",
        "web-canary.example.net",
    ]


def test_an_ini_inventory_resolves_groups_ports_and_jump_hosts() -> None:
    inventory = parse_inventory(FARM_INI, "hosts")

    canary = inventory.host("web-canary.example.net")
    db1 = inventory.host("db1.example.net")
    gpu = inventory.host("gpu-b.lab.example.net")
    assert canary.port == 2222 and canary.skip == "fleetcompat_skip is set"
    assert canary.groups == ("datacenter", "web")
    assert (db1.address, db1.port, db1.user) == ("10.0.20.11", 5022, "deploy")
    assert db1.timeout == 45.0
    assert gpu.jump == (Endpoint("bastion", 2200, "ops"),)
    assert gpu.user is None
    assert inventory.groups["ungrouped"] == ("bastion.example.net",)


@pytest.mark.parametrize(
    ("text", "attribute", "expected"),
    [
        ("h ansible_port=2222\n", "port", 2222),
        ("h ansible_user=\"'007'\"\n", "user", "007"),
        ("h ansible_user=admin # the admin\n", "user", "admin"),
        (
            'h ansible_ssh_common_args="-o ProxyJump=j1:2201"\n',
            "jump",
            (Endpoint("j1", 2201),),
        ),
        ("h fleetcompat_timeout=1e1\n", "timeout", 10.0),
        ("h\n[all:vars]\nansible_port=2222 # alternate port\n", "port", 2222),
        (
            "h\n[all:vars]\nansible_user=admin # the admin\n",
            "user",
            "admin # the admin",
        ),
        ("h\n[all:vars]\nansible_user = 'ops team'\n", "user", "ops team"),
        (
            "h\n[all:vars]\nansible_ssh_common_args=-o ProxyJump=j2\n",
            "jump",
            (Endpoint("j2"),),
        ),
        ("h:2200\n", "port", 2200),
    ],
    ids=[
        "host-line-number",
        "host-line-quoted-literal",
        "host-line-comment-dropped",
        "host-line-shell-quoting",
        "host-line-float",
        "vars-literal-comment-dropped",
        "vars-text-comment-kept-as-ansible",
        "vars-quoted-string",
        "vars-rest-of-line",
        "port-shorthand",
    ],
)
def test_values_are_read_as_ansible_reads_them(
    text: str, attribute: str, expected: object
) -> None:
    host = parse_inventory(text, "hosts").host("h")

    assert getattr(host, attribute) == expected


def test_ranges_steps_padding_and_bracketed_ipv6_with_a_port() -> None:
    text = "node[0:6:2]\nrack[08:10]\n[2001:db8::7]:2201\n"

    inventory = parse_inventory(text, "hosts")

    names = [h.name for h in inventory.hosts]
    assert names == [
        "node0",
        "node2",
        "node4",
        "node6",
        "rack08",
        "rack09",
        "rack10",
        "2001:db8::7",
    ]
    assert inventory.host("2001:db8::7").port == 2201


def test_a_child_group_may_be_declared_after_the_parent_names_it() -> None:
    text = "[prod:children]\nweb\n[prod:vars]\nansible_user=p\n[web]\nw1\n"

    host = parse_inventory(text, "hosts").host("w1")

    assert host.groups == ("prod", "web") and host.user == "p"


def test_a_host_listed_before_any_section_and_in_a_group_is_not_ungrouped() -> None:
    text = "h1\nh2\n[web]\nh1\n"

    inventory = parse_inventory(text, "hosts")

    assert inventory.groups["ungrouped"] == ("h2",)
    assert inventory.host("h1").groups == ("web",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[web:children]\nmissing\n",
            "hosts: line 2: [web:children] names group 'missing'",
        ),
        (
            "[nope:vars]\nx=1\n[a]\nh\n",
            "hosts: line 1: [nope:vars] is for group 'nope'",
        ),
        ("[web]\nh1 port\n", "hosts: line 2: expected key=value after host 'h1'"),
        ("[web:hosts2]\nh\n", "hosts: line 1: section [web:hosts2]: unknown kind"),
        ("[web ]\nh\n", "hosts: line 1: bad section header"),
        (
            "[a]\nh\n[b:children]\na\n[a:children]\nb\n",
            "hosts: line 6: group 'b' would contain",
        ),
        (
            "[web]\nansible_user=ops\n",
            "hosts: line 2: host name 'ansible_user=ops' contains '='",
        ),
        ("[web]\nh x='open\n", "hosts: line 2: cannot split host line"),
        ("[web]\nr[1:3:0]\n", "hosts: line 2: host range in 'r[1:3:0]': bad step"),
        (
            "[web]\nr[01:100]\n",
            "hosts: line 2: host range in 'r[01:100]': begin and end",
        ),
        ("[web]\nh:\n", "hosts: line 2: host 'h:' ends in ':'"),
        (
            "[all:vars]\nnot a pair\n[a]\nh\n",
            "hosts: line 2: expected key=value in [all:vars]",
        ),
    ],
    ids=[
        "undeclared-child",
        "vars-for-undeclared-group",
        "bare-word-after-host",
        "unknown-section-kind",
        "space-in-header",
        "group-cycle",
        "variable-in-hosts-section",
        "unbalanced-quote",
        "zero-step",
        "unequal-padding",
        "trailing-colon",
        "vars-line-without-equals",
    ],
)
def test_a_bad_ini_inventory_names_file_and_line(text: str, message: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "hosts")

    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_broken_yaml_inventory_reports_the_yaml_error_first() -> None:
    text = "all:\n  hosts:\n    web1: {ansible_port: [22\n"

    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "inv.yaml")

    message = str(caught.value)
    assert message.startswith("inv.yaml: line ")
    assert "(and as INI: line 1: " in message


def test_non_utf8_bytes_in_an_ini_comment_are_tolerated_as_by_ansible() -> None:
    text = b"# caf\xe9 servers\n[web]\nw1\n"

    inventory = parse_inventory(text, "hosts")

    assert [h.name for h in inventory.hosts] == ["w1"]


def test_a_whole_file_vaulted_ini_inventory_is_decrypted(tmp_path: Path) -> None:
    envelope = encrypt("[web]\nw1 ansible_user=ops\n", "correct horse")
    ring = keyring_for(tmp_path, "correct horse")

    host = parse_inventory(envelope, "hosts", ring).host("w1")

    assert host.user == "ops" and host.groups == ("web",)


def test_a_vaulted_inventory_without_a_password_is_a_clear_error() -> None:
    envelope = encrypt("[web]\nw1\n", "correct horse")

    with pytest.raises(InventoryError) as caught:
        parse_inventory(envelope, "hosts", Keyring())

    assert str(caught.value).startswith("hosts: vaulted file: no vault password")
