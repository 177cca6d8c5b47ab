"""The collector against misbehaving peers of our own, through the real CLI.

Each peer is wrong in one way; every host must end with exactly one outcome and a
reason that says what happened, and the run must end within the per-host deadline.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import asyncssh
import pytest

from fleetcompat.probe import run_local_probe
from tests import sshd as peers
from tests.sshd import Peer, collect_json, keygen, run_cli
from tests.sshd import peer_inventory as inventory

pytestmark = pytest.mark.sshd


@pytest.fixture(scope="module")
def recorded_output() -> bytes:
    """A real probe output: this machine's, as a host would send it."""
    return run_local_probe()


async def test_each_misbehaving_peer_ends_with_its_own_outcome(
    tmp_path: Path, recorded_output: bytes, started: list[Peer]
) -> None:
    key = keygen(tmp_path / "id_ed25519")
    made = {
        "good": await peers.ssh_peer(peers.serve_output(recorded_output)),
        "silent": await peers.silent_tcp(),
        "stalls": await peers.ssh_peer(peers.stall),
        "hangs": await peers.ssh_peer(peers.stall_midway),
        "closes": await peers.ssh_peer(peers.close_midway(recorded_output)),
        "endless": await peers.ssh_peer(peers.endless),
        "rejects": await peers.ssh_peer(
            peers.serve_output(recorded_output), refuse_keys=True
        ),
        "fails": await peers.ssh_peer(peers.fail_with(3, b"probe: disk on fire\n")),
        "garbage": await peers.ssh_peer(peers.serve_output(b"hello, world\n")),
        "unknown": await peers.ssh_peer(peers.serve_output(recorded_output)),
        "changed": await peers.ssh_peer(peers.serve_output(recorded_output)),
    }
    started.extend(made.values())
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    known = "".join(
        p.known_hosts_line() for n, p in made.items() if n not in ("silent", "unknown")
    )
    known = known.replace(
        made["changed"].known_hosts_line(),
        Peer(
            "127.0.0.1", made["changed"].port, lambda: None, impostor
        ).known_hosts_line(),
    )
    (tmp_path / "known_hosts").write_text(known)
    hosts = {name: (p.address, p.port) for name, p in made.items()}
    hosts["closed"] = ("127.0.0.1", peers.free_port())
    inv = inventory(tmp_path / "inv.yaml", key, hosts)

    status, out, err = await run_cli(
        tmp_path,
        "collect",
        "-i",
        str(inv),
        "--db",
        str(tmp_path / "f.db"),
        "--timeout",
        "3",
        "-o",
        "json",
    )

    summary = json.loads(out)
    outcomes = {h["name"]: (h["outcome"], h["reason"]) for h in summary["hosts"]}
    expected = {
        "good": ("ok", ""),
        "silent": ("timeout", "(connect)"),
        "stalls": ("timeout", "said nothing within 0.9s of starting (start)"),
        "hangs": ("timeout", "not done within the host deadline of 3s (probe)"),
        "closes": ("probe-failed", "connection closed before the probe finished"),
        "endless": ("output-oversized", "more than"),
        "rejects": ("auth-failed", "refused every key"),
        "fails": ("probe-failed", "status 3; stderr: probe: disk on fire"),
        "garbage": ("output-invalid", "not fleetcompat probe output"),
        "unknown": ("hostkey-unknown", "not in known_hosts"),
        "changed": ("hostkey-mismatch", "does not match"),
        "closed": ("refused", "refused the connection"),
    }
    assert status == 3, err
    for name, (outcome, reason) in expected.items():
        assert outcomes[name][0] == outcome, (name, outcomes[name])
        assert reason in outcomes[name][1], (name, outcomes[name])
    assert summary["status"] == "partial"


async def test_accept_new_records_unknown_keys_but_never_a_changed_one(
    tmp_path: Path, recorded_output: bytes, started: list[Peer]
) -> None:
    key = keygen(tmp_path / "id_ed25519")
    fresh = await peers.ssh_peer(peers.serve_output(recorded_output))
    changed = await peers.ssh_peer(peers.serve_output(recorded_output))
    started.extend([fresh, changed])
    impostor = Peer(
        "127.0.0.1",
        changed.port,
        lambda: None,
        asyncssh.generate_private_key("ssh-ed25519"),
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(impostor.known_hosts_line())
    inv = inventory(
        tmp_path / "inv.yaml",
        key,
        {
            "fresh": (fresh.address, fresh.port),
            "changed": (changed.address, changed.port),
        },
    )
    db = str(tmp_path / "f.db")

    first = await run_cli(
        tmp_path,
        "collect",
        "-i",
        str(inv),
        "--db",
        db,
        "--known-hosts",
        "accept-new",
        "-o",
        "json",
    )
    second = await run_cli(
        tmp_path,
        "collect",
        "-i",
        str(inv),
        "--db",
        db,
        "--limit",
        "fresh",
        "-o",
        "json",
    )

    outcomes = {h["name"]: h["outcome"] for h in json.loads(first[1])["hosts"]}
    assert outcomes == {"fresh": "ok", "changed": "hostkey-mismatch"}
    assert fresh.known_hosts_line() in known_hosts.read_text()
    assert second[0] == 0, second[2]


async def test_a_changed_host_key_names_the_known_hosts_file_and_line(
    tmp_path: Path, recorded_output: bytes, started: list[Peer]
) -> None:
    key = keygen(tmp_path / "id_ed25519")
    changed = await peers.ssh_peer(peers.serve_output(recorded_output))
    started.append(changed)
    impostor = Peer(
        "127.0.0.1",
        changed.port,
        lambda: None,
        asyncssh.generate_private_key("ssh-ed25519"),
    )
    known_hosts = tmp_path / "known_hosts"
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key()
    known_hosts.write_text(
        "# fleet keys\n"
        f"other.example.com {other.decode().strip()}\n" + impostor.known_hosts_line()
    )
    inv = inventory(
        tmp_path / "inv.yaml", key, {"changed": ("127.0.0.1", changed.port)}
    )

    status, summary, err = await collect_json(tmp_path, inv)

    host = summary["hosts"][0]
    assert status == 3, err
    assert host["outcome"] == "hostkey-mismatch"
    assert f"{known_hosts} line 3" in host["reason"]
    assert (
        f"ssh-keygen -R '[127.0.0.1]:{changed.port}' -f {known_hosts}" in host["reason"]
    )


async def test_a_revoked_host_key_is_refused_and_said_to_be_revoked(
    tmp_path: Path, recorded_output: bytes, started: list[Peer]
) -> None:
    key = keygen(tmp_path / "id_ed25519")
    revoked = await peers.ssh_peer(peers.serve_output(recorded_output))
    started.append(revoked)
    line = revoked.known_hosts_line()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(line + "@revoked " + line)
    inv = inventory(
        tmp_path / "inv.yaml", key, {"withdrawn": ("127.0.0.1", revoked.port)}
    )

    status, summary, err = await collect_json(tmp_path, inv)

    host = summary["hosts"][0]
    assert status == 3, err
    assert host["outcome"] == "hostkey-mismatch"
    assert "marks as revoked" in host["reason"]
    assert f"{known_hosts} line 2" in host["reason"]


async def test_transient_drops_are_retried_and_counted(
    tmp_path: Path, recorded_output: bytes, started: list[Peer]
) -> None:
    key = keygen(tmp_path / "id_ed25519")
    flaky = await peers.ssh_peer(peers.serve_output(recorded_output), drop_first=2)
    started.append(flaky)
    (tmp_path / "known_hosts").write_text(flaky.known_hosts_line())
    inv = inventory(tmp_path / "inv.yaml", key, {"flaky": (flaky.address, flaky.port)})

    status, summary, err = await collect_json(tmp_path, inv)

    host = summary["hosts"][0]
    assert status == 0, err
    assert (host["outcome"], host["attempts"]) == ("ok", 3)


async def test_failed_run_keeps_the_earlier_good_snapshot(
    tmp_path: Path, recorded_output: bytes, started: list[Peer]
) -> None:
    key = keygen(tmp_path / "id_ed25519")
    good = await peers.ssh_peer(peers.serve_output(recorded_output))
    started.append(good)
    (tmp_path / "known_hosts").write_text(good.known_hosts_line())
    inv = inventory(tmp_path / "inv.yaml", key, {"h": (good.address, good.port)})
    db = tmp_path / "f.db"
    await run_cli(tmp_path, "collect", "-i", str(inv), "--db", str(db))
    good.close()

    status, _, err = await run_cli(tmp_path, "collect", "-i", str(inv), "--db", str(db))
    hosts = await run_cli(tmp_path, "hosts", "--db", str(db), "-o", "json")

    row = json.loads(hosts[1])[0]
    assert status == 3
    assert row["outcome"] == "refused"
    assert row["last_ok_at"] is not None and row["feature_set"] is not None
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from feature_sets").fetchone() == (1,)


async def test_ssh_config_supplies_hostname_port_user_and_key(
    tmp_path: Path, recorded_output: bytes, started: list[Peer]
) -> None:
    key = keygen(tmp_path / "id_ed25519")
    peer = await peers.ssh_peer(peers.serve_output(recorded_output))
    started.append(peer)
    (tmp_path / "known_hosts").write_text(peer.known_hosts_line())
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(
        f"Host box-*\n  HostName 127.0.0.1\n  Port {peer.port}\n  User root\n"
        f"  IdentityFile {key}\n"
    )
    inv = tmp_path / "inv.yaml"
    inv.write_text("all:\n  hosts:\n    box-1:\n")

    status, out, err = await run_cli(
        tmp_path, "collect", "-i", str(inv), "--db", str(tmp_path / "f.db")
    )

    assert status == 0, err + out


async def test_demo_inventory_collects_this_machine_and_marks_the_offline_host(
    tmp_path: Path,
) -> None:
    from tests.conftest import REPO

    db = tmp_path / "f.db"

    status, out, err = await run_cli(
        tmp_path,
        "collect",
        "-i",
        str(REPO / "examples" / "inventory.yaml"),
        "--db",
        str(db),
    )
    listing = await run_cli(tmp_path, "hosts", "--db", str(db), "-o", "json")

    rows = {row["name"]: row for row in json.loads(listing[1])}
    assert status == 3, err
    assert "offline-demo" in out and "refused" in out
    assert rows["localhost"]["outcome"] == "ok"
    assert rows["localhost"]["source"] == "local"
    assert rows["offline-demo"]["outcome"] == "refused"
    assert rows["offline-demo"]["last_ok_at"] is None


async def test_unchanged_host_keeps_one_snapshot_and_every_run(
    tmp_path: Path, recorded_output: bytes, started: list[Peer]
) -> None:
    key = keygen(tmp_path / "id_ed25519")
    good = await peers.ssh_peer(peers.serve_output(recorded_output))
    started.append(good)
    (tmp_path / "known_hosts").write_text(good.known_hosts_line())
    inv = inventory(tmp_path / "inv.yaml", key, {"h": (good.address, good.port)})
    db = tmp_path / "f.db"
    for _ in range(3):
        await run_cli(tmp_path, "collect", "-i", str(inv), "--db", str(db))

    status, out, _ = await run_cli(
        tmp_path,
        "collect",
        "-i",
        str(inv),
        "--db",
        str(db),
        "--retain",
        "2",
        "-o",
        "json",
    )

    assert status == 0
    assert json.loads(out)["pruned"] == 0  # one snapshot, confirmed by each run
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from snapshots").fetchone() == (1,)
        first_run, last_run = conn.execute(
            "select first_run_id, run_id from snapshots"
        ).fetchone()
    assert (first_run, last_run) == (1, 4)
    with sqlite3.connect(db) as conn:
        runs = conn.execute("select status, counts, settings from runs").fetchall()
    assert [r[0] for r in runs] == ["ok"] * 4
    assert json.loads(runs[-1][1]) == {"ok": 1}
    assert str(key) not in runs[-1][2]


async def test_keys_held_by_the_ssh_agent_authenticate(
    tmp_path: Path, recorded_output: bytes, started: list[Peer]
) -> None:
    import asyncio
    import subprocess

    key = keygen(tmp_path / "agent_key")
    peer = await peers.ssh_peer(peers.serve_output(recorded_output))
    started.append(peer)
    (tmp_path / "known_hosts").write_text(peer.known_hosts_line())
    socket_path = str(tmp_path / "agent.sock")
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", socket_path], stdout=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            if Path(socket_path).exists():
                break
            await asyncio.sleep(0.02)
        subprocess.run(
            ["ssh-add", "-q", str(key)], check=True, env={"SSH_AUTH_SOCK": socket_path}
        )
        key.unlink()  # only the agent has it now
        inv = tmp_path / "inv.yaml"
        inv.write_text(
            f"all:\n  hosts:\n    h:\n      ansible_host: 127.0.0.1\n"
            f"      ansible_port: {peer.port}\n      ansible_user: root\n"
        )

        status, out, err = await run_cli(
            tmp_path,
            "collect",
            "-i",
            str(inv),
            "--db",
            str(tmp_path / "f.db"),
            agent=socket_path,
        )
    finally:
        agent.terminate()
        agent.wait()

    assert status == 0, err + out


async def test_async_core_delivers_each_host_once_as_it_finishes(
    tmp_path: Path,
    recorded_output: bytes,
    started: list[Peer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fleetcompat.collect import CollectOptions, ProbeResult, Timeouts, probe_hosts
    from fleetcompat.inventory import HostSpec

    key = keygen(tmp_path / "id_ed25519")
    slow = await peers.ssh_peer(peers.delayed(recorded_output, 0.5))
    fast = await peers.ssh_peer(peers.serve_output(recorded_output))
    started.extend([slow, fast])
    known = tmp_path / "known_hosts"
    known.write_text(slow.known_hosts_line() + fast.known_hosts_line())
    hosts = [
        HostSpec("slow", "127.0.0.1", slow.port, "root", str(key)),
        HostSpec("fast", "127.0.0.1", fast.port, "root", str(key)),
        HostSpec("here", "here", local=True),
    ]
    options = CollectOptions(timeouts=Timeouts.for_host(10), known_hosts_file=known)
    delivered: list[ProbeResult] = []
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh of the user running tests
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)

    await probe_hosts(hosts, options, delivered.append)

    assert [r.host.name for r in delivered][-1] == "slow"
    assert sorted(r.host.name for r in delivered) == ["fast", "here", "slow"]
    assert all(r.outcome == "ok" and r.output for r in delivered)


async def test_accept_new_with_a_known_hosts_file_that_cannot_be_written_exits_2(
    tmp_path: Path,
) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("all:\n  hosts:\n    h:\n      ansible_host: 127.0.0.1\n")
    (tmp_path / "plain").write_text("a file, not a directory\n")
    known = tmp_path / "plain" / "known_hosts"
    db = tmp_path / "f.db"

    status, _, err = await run_cli(
        tmp_path,
        "collect",
        "-i",
        str(inv),
        "--db",
        str(db),
        "--known-hosts",
        "accept-new",
        "--known-hosts-file",
        str(known),
    )

    assert status == 2
    assert f"{known}: --known-hosts accept-new cannot record new host keys" in err
    assert not db.exists()


async def test_a_host_with_no_key_to_offer_is_told_where_keys_come_from(
    tmp_path: Path, recorded_output: bytes, started: list[Peer]
) -> None:
    peer = await peers.ssh_peer(peers.serve_output(recorded_output))
    started.append(peer)
    (tmp_path / "known_hosts").write_text(peer.known_hosts_line())
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        "all:\n  hosts:\n    keyless:\n"
        f"      ansible_host: {peer.address}\n      ansible_port: {peer.port}\n"
    )

    status, summary, err = await collect_json(tmp_path, inv)

    host = summary["hosts"][0]
    assert status == 3, err
    assert host["outcome"] == "auth-failed"
    assert "was offered no key: none was found" in host["reason"]
