"""`collect --list-hosts`: how each host would be contacted, contacting none."""

from __future__ import annotations

import json
from pathlib import Path

from tests.sshd import run_cli

SSH_CONFIG = """\
Host db-*
    HostName %h.internal.example
    User postgres
    Port 2222
    IdentityFile ~/.ssh/db_key
    ProxyJump ops@bastion.example:2200
"""

INVENTORY = """\
[web]
web1 ansible_host=10.0.0.1 ansible_user=deploy
web2 ansible_port=2201 ansible_ssh_private_key_file=/keys/web
[db]
db-a
[local]
here ansible_connection=local
[other]
win1 ansible_connection=winrm
"""


async def test_list_hosts_resolves_inventory_and_ssh_config_and_writes_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(SSH_CONFIG)
    inventory = tmp_path / "hosts"
    inventory.write_text(INVENTORY)
    db = tmp_path / "f.db"

    status, out, err = await run_cli(
        tmp_path,
        "collect",
        "-i",
        str(inventory),
        "--db",
        str(db),
        "--list-hosts",
        "-o",
        "json",
        "--timeout",
        "30",
    )

    assert status == 0, err
    plans = {plan["host"]: plan for plan in json.loads(out)["hosts"]}
    assert plans["web1"]["address"] == "10.0.0.1"
    assert plans["web1"]["user"] == "deploy"
    assert plans["web2"]["port"] == 2201
    assert plans["web2"]["key_files"][0] == "/keys/web"
    assert plans["db-a"] | {"key_files": None} == {
        "host": "db-a",
        "connection": "ssh",
        "address": "db-a.internal.example",
        "port": 2222,
        "user": "postgres",
        "key_files": None,
        "jump": ["ops@bastion.example:2200"],
        "password": False,
        "timeout": 30.0,
    }
    assert plans["db-a"]["key_files"] == [str(tmp_path / ".ssh" / "db_key")]
    assert plans["here"] == {"host": "here", "connection": "local"}
    assert "winrm" in plans["win1"]["skip"]
    assert not db.exists()
