"""Ansible inventories: shapes, precedence, connection settings, limits, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetcompat.errors import InventoryError
from fleetcompat.inventory import Endpoint, load_inventory, parse_inventory
from fleetcompat.sshconfig import SSHConfig
from fleetcompat.vault import Keyring
from tests.conftest import REPO

NESTED = """\
all:
  vars:
    ansible_user: fromall
    ansible_port: 2200
  hosts:
    solo:
  children:
    web:
      vars:
        ansible_user: fromweb
      hosts:
        web[01:03].example.com:
        special:2222:
          ansible_user: fromhost
      children:
        webprod:
          vars:
            ansible_user: fromwebprod
          hosts:
            web01.example.com:
    db:
      hosts:
        db1:
          ansible_host: 10.0.0.5
          ansible_ssh_private_key_file: ~/.ssh/db
"""


def test_example_inventory_loads_with_every_feature(tmp_path: Path) -> None:
    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text("test-vault-password\n")  # the example's, as it says
    vault = Keyring.from_options(password_files=[str(vault_pass)], environ={})

    inventory = load_inventory(REPO / "inventory.example.yaml", vault)

    names = [h.name for h in inventory.hosts]
    assert "localhost" in names and inventory.host("localhost").local
    assert {"web01.example.com", "web04.example.com", "gpu-c.example.com"} <= set(names)
    assert inventory.host("web-canary.example.com").skip
    assert inventory.host("db1.example.com").address == "10.20.0.11"
    assert inventory.host("db2.example.com").port == 22022
    assert inventory.host("gpu-l4-01.example.com").jump == (
        Endpoint("bastion2.example.com", None, "ops"),
    )
    assert len(inventory.host("edge-7.example.com").jump or ()) == 2
    assert inventory.host("lab-box").jump == ()
    appliance = inventory.host("appliance-3.example.com")
    assert appliance.password is not None
    assert appliance.password.reveal() == "Setec Astronomy"


def test_demo_inventory_has_this_machine_and_an_unreachable_host() -> None:
    inventory = load_inventory(REPO / "examples" / "inventory.yaml")

    local = [h for h in inventory.hosts if h.local]
    remote = [h for h in inventory.hosts if not h.local]
    assert len(local) == 1
    assert all(h.address.startswith("127.") for h in remote)


def test_deeper_group_vars_win_and_host_vars_win_over_all() -> None:
    inventory = parse_inventory(NESTED, "inv.yaml")

    assert inventory.host("solo").user == "fromall"
    assert inventory.host("web02.example.com").user == "fromweb"
    assert inventory.host("web01.example.com").user == "fromwebprod"
    assert inventory.host("special").user == "fromhost"


def test_both_spellings_of_the_key_variable_are_read_the_ssh_one_winning() -> None:
    text = """\
all:
  vars:
    ansible_private_key_file: ~/.ssh/newer
  hosts:
    plain:
    both:
      ansible_ssh_private_key_file: ~/.ssh/older
"""
    inventory = parse_inventory(text, "inv.yaml")

    assert inventory.host("plain").key_file == "~/.ssh/newer"
    assert inventory.host("both").key_file == "~/.ssh/older"


def test_port_after_the_host_name_beats_group_port() -> None:
    inventory = parse_inventory(NESTED, "inv.yaml")

    assert inventory.host("special").port == 2222
    assert inventory.host("web02.example.com").port == 2200


def test_ranges_expand_with_their_zero_padding() -> None:
    inventory = parse_inventory(NESTED, "inv.yaml")

    assert [h.name for h in inventory.hosts if h.name.startswith("web")] == [
        "web01.example.com",
        "web02.example.com",
        "web03.example.com",
    ]


def test_host_groups_include_ancestors_but_not_all() -> None:
    inventory = parse_inventory(NESTED, "inv.yaml")

    assert inventory.host("web01.example.com").groups == ("web", "webprod")
    assert inventory.host("solo").groups == ()


def test_group_priority_breaks_ties_between_groups_of_equal_depth() -> None:
    text = """\
a_group:
  vars: {ansible_user: a, ansible_group_priority: 5}
  hosts: {h: }
b_group:
  vars: {ansible_user: b}
  hosts: {h: }
"""
    assert parse_inventory(text, "inv.yaml").host("h").user == "a"


def test_ansible_inventory_list_json_is_read_with_its_hostvars() -> None:
    listing = {
        "_meta": {
            "hostvars": {
                "h1": {"ansible_host": "192.0.2.1", "ansible_user": "ops"},
                "h2": {"ansible_port": 2022, "secret": {"__ansible_vault": "x"}},
            }
        },
        "all": {"children": ["ungrouped", "web"]},
        "web": {"hosts": ["h1", "h2"], "vars": {"ansible_user": "webuser"}},
        "ungrouped": {},
    }

    inventory = parse_inventory(json.dumps(listing), "list.json")

    assert inventory.host("h1").address == "192.0.2.1"
    assert inventory.host("h1").user == "ops"
    assert inventory.host("h2").user == "webuser"
    assert inventory.host("h2").port == 2022
    assert inventory.groups["web"] == ("h1", "h2")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("-o ProxyJump=j@bastion:2200", (Endpoint("bastion", 2200, "j"),)),
        ("-o 'ProxyJump j@bastion'", (Endpoint("bastion", None, "j"),)),
        ("-J a,b:2", (Endpoint("a"), Endpoint("b", 2))),
        ("-oProxyJump=[::1]:22", (Endpoint("::1", 22),)),
        (
            "'-o ProxyCommand=ssh -W %h:%p -p 2201 ops@gw'",
            (Endpoint("gw", 2201, "ops"),),
        ),
        ("-o StrictHostKeyChecking=no", None),
    ],
    ids=[
        "proxyjump-equals",
        "proxyjump-space",
        "dash-j-chain",
        "ipv6",
        "proxycommand",
        "other-options-ignored",
    ],
)
def test_jump_hosts_are_read_from_ssh_common_args(args: str, expected: object) -> None:
    text = (
        f"all:\n  hosts:\n    h:\n      ansible_ssh_common_args: {json.dumps(args)}\n"
    )

    assert parse_inventory(text, "inv.yaml").host("h").jump == expected


def test_unsupported_proxy_command_skips_the_host_with_a_reason() -> None:
    text = (
        "all:\n  hosts:\n    h:\n      ansible_ssh_common_args: "
        "'-o ProxyCommand=\"nc -X 5 -x proxy:1080 %h %p\"'\n"
    )

    assert "ProxyCommand" in parse_inventory(text, "inv.yaml").host("h").skip


def test_unsupported_connection_skips_the_host_with_a_reason() -> None:
    text = "all:\n  hosts:\n    win:\n      ansible_connection: winrm\n"

    assert "winrm" in parse_inventory(text, "inv.yaml").host("win").skip


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (
            "all",
            [
                "solo",
                "web01.example.com",
                "web02.example.com",
                "web03.example.com",
                "special",
                "db1",
            ],
        ),
        (
            "web",
            ["web01.example.com", "web02.example.com", "web03.example.com", "special"],
        ),
        (
            "web*.example.com",
            ["web01.example.com", "web02.example.com", "web03.example.com"],
        ),
        ("web,!webprod", ["web02.example.com", "web03.example.com", "special"]),
        ("web:&webprod", ["web01.example.com"]),
        ("!web", ["solo", "db1"]),
        ("db1,solo", ["solo", "db1"]),
        ("~web0[12].*", ["web01.example.com", "web02.example.com"]),
        ("ungrouped", ["solo"]),
    ],
    ids=[
        "all",
        "group",
        "glob",
        "exclude",
        "intersect",
        "only-exclude",
        "list",
        "regex",
        "ungrouped",
    ],
)
def test_limit_selects_like_ansible(pattern: str, expected: list[str]) -> None:
    inventory = parse_inventory(NESTED, "inv.yaml")

    assert [h.name for h in inventory.select(pattern)] == expected


def test_limit_term_that_matches_nothing_is_an_error() -> None:
    inventory = parse_inventory(NESTED, "inv.yaml")

    with pytest.raises(InventoryError, match="'nosuch' matches no host"):
        inventory.select("web,nosuch")


@pytest.mark.parametrize(
    "pattern", ["!web,!solo,!db1", "webprod:&db"], ids=["exclude-all", "disjoint"]
)
def test_limit_that_selects_no_host_is_an_error_naming_the_pattern(
    pattern: str,
) -> None:
    inventory = parse_inventory(NESTED, "inv.yaml")

    with pytest.raises(InventoryError, match=f"--limit {pattern}: selects no host"):
        inventory.select(pattern)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("all:\n  hosts:\n    a: [1\n", "inv.yaml: line"),
        ("all:\n  host:\n    a:\n", "inv.yaml: line 2: group 'all': unknown key"),
        ("all:\n  hosts:\n    a:\n      ansible_port: 99999\n", "line 4: host 'a'"),
        ("all:\n  hosts:\n    a:\n      ansible_host: '{{ x }}'\n", "line 4: host 'a'"),
        ("all:\n  hosts:\n    a:\n      fleetcompat_nope: 1\n", "line 4: host 'a'"),
        ("all:\n  vars: [1, 2]\n", "line 2: group 'all': vars must be a mapping"),
        ("", "inv.yaml: the inventory is empty"),
        ("all:\n  vars: {x: 1}\n", "inv.yaml: the inventory names no hosts"),
        ("- a\n- b\n", "inv.yaml: line 1: an inventory must be a mapping"),
        ("all:\n  hosts: [a, b]\n", "line 2: group 'all': hosts must be a mapping"),
        ("web:\n  hosts: a\n", "line 2: group 'web': hosts must be a mapping"),
    ],
    ids=[
        "yaml-syntax",
        "unknown-key",
        "bad-port",
        "template",
        "unknown-setting",
        "vars-not-mapping",
        "empty",
        "no-hosts",
        "not-mapping",
        "hosts-list",
        "hosts-string",
    ],
)
def test_bad_inventory_names_file_and_line(text: str, message: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "inv.yaml")

    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_group_key_written_twice_is_an_error_not_lost_hosts() -> None:
    text = "all:\n  hosts:\n    a:\n  hosts:\n    b:\n"

    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "inv.yaml")

    message = str(caught.value)
    assert message.startswith("inv.yaml: line 4: ")
    assert "'hosts'" in message and "\n" not in message


def test_missing_inventory_file_is_an_inventory_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(tmp_path / "absent.yaml")


def test_ssh_config_resolves_like_openssh(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        "Host web*\n  HostName %h.internal\n  User webops\n  IdentityFile ~/k1\n"
        "Host web2 !web3\n  Port 2202\n  User ignored\n"
        "Match originalhost db*\n  ProxyJump gw\n"
        "Match exec true\n  User never\n"
        "Host *\n  IdentityFile ~/k2\n  User everyone\n"
    )

    ssh = SSHConfig.load(config)
    web2 = ssh.resolve("web2")
    db = ssh.resolve("db9")

    assert web2.hostname == "web2.internal"
    assert web2.user == "webops"
    assert web2.port == 2202
    assert [Path(p).name for p in web2.identity_files] == ["k1", "k2"]
    assert db.proxy_jump == "gw"
    assert db.user == "never"  # `Match exec true` runs `true`, which matches
