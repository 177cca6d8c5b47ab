"""Collection from a real OpenSSH server on loopback, through the real CLI.

One sshd listens on several loopback addresses and ports; each port forces the
probe onto a different captured host root from the real-machine corpus, so each
endpoint is a different "machine". A second sshd is a bastion in front of them.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetcompat.store import Store
from tests.sshd import Sshd, collect_json, free_port, keygen, run_cli, start_sshd

pytestmark = [pytest.mark.sshd, pytest.mark.corpus]

MACHINES = {
    "kvm-guest": "hwloc-2pa-pcidomain32bits",
    "laptop": "ul-lscpu-x86_64-64cpu-linux6.2",
    "xeon-pci": "nfd-pci-rootfs-1",
}
ADDRESSES = {"kvm-guest": "127.0.0.2", "laptop": "127.0.0.3", "xeon-pci": "127.0.0.1"}


@pytest.fixture(scope="module")
def roots(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The captured roots, unpacked once."""
    base = tmp_path_factory.mktemp("roots")
    unpacked = {}
    for name, tarball in MACHINES.items():
        target = base / name
        with tarfile.open(corpus / "hosts" / f"{tarball}.tar.gz") as archive:
            archive.extractall(target, filter="tar")
        unpacked[name] = target
    return unpacked


@pytest.fixture(scope="module")
def fleet(
    roots: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sshd, dict[str, int]]]:
    """One sshd serving each machine on its own address and port."""
    base = tmp_path_factory.mktemp("sshd")
    key = keygen(base / "id_ed25519")
    ports = {name: free_port(ADDRESSES[name]) for name in MACHINES}
    server = start_sshd(
        base / "server",
        [(ADDRESSES[n], p) for n, p in ports.items()],
        client_key=key,
        roots={p: roots[n] for n, p in ports.items()},
    )
    yield server, ports
    server.stop()


@pytest.fixture(scope="module")
def plain(
    fleet: tuple[Sshd, dict[str, int]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sshd]:
    """A second sshd with no forced command, on two ports: bastions, or a host."""
    server, _ = fleet
    base = tmp_path_factory.mktemp("plain")
    endpoints = [("127.0.0.1", free_port()), ("127.0.0.1", free_port())]
    started = start_sshd(base, endpoints, client_key=server.client_key)
    yield started
    started.stop()


def write_inventory(
    path: Path, server: Sshd, ports: dict[str, int], extra: str = ""
) -> Path:
    """An inventory of the fleet's machines (and `extra` YAML under all.hosts)."""
    lines = [
        "all:",
        "  vars:",
        "    ansible_user: root",
        f"    ansible_ssh_private_key_file: {server.client_key}",
        "  hosts:",
    ]
    for name, port in ports.items():
        lines += [
            f"    {name}:",
            f"      ansible_host: {ADDRESSES[name]}",
            f"      ansible_port: {port}",
        ]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


async def test_collects_each_machine_from_real_sshd_and_records_the_unreachable(
    tmp_path: Path, fleet: tuple[Sshd, dict[str, int]]
) -> None:
    server, ports = fleet
    (tmp_path / "known_hosts").write_text(server.known_hosts_lines())
    unreachable = (
        f"    down:\n      ansible_host: 127.0.0.1\n      ansible_port: {free_port()}\n"
    )
    inv = write_inventory(tmp_path / "inv.yaml", server, ports, unreachable)
    db = tmp_path / "fleet.db"

    status, out, err = await run_cli(
        tmp_path, "collect", "-i", str(inv), "--db", str(db), "-o", "json"
    )

    summary = json.loads(out)
    outcomes = {h["name"]: h["outcome"] for h in summary["hosts"]}
    assert status == 3, err
    assert outcomes == {
        "kvm-guest": "ok",
        "laptop": "ok",
        "xeon-pci": "ok",
        "down": "refused",
    }
    with Store(db) as store:
        snapshots = {s.host: s for s in store.latest_good_snapshots()}
        models = {
            name: store.features(snapshots[name]).attributes.get("cpu.model", {})
            for name in MACHINES
        }
        failed = store.snapshots("down")[0]
    assert models["kvm-guest"]["hypervisor"] == "kvm"
    assert models["laptop"]["id"] == "140"
    assert len({s.feature_set for s in snapshots.values()}) == 3
    assert "refused" in failed.error and failed.feature_set is None


async def test_hosts_behind_a_bastion_share_one_connection_to_it(
    tmp_path: Path, fleet: tuple[Sshd, dict[str, int]]
) -> None:
    server, ports = fleet
    bastion_port = free_port()
    bastion = start_sshd(
        tmp_path / "bastion",
        [("127.0.0.1", bastion_port)],
        client_key=server.client_key,
    )
    try:
        known = server.known_hosts_lines() + bastion.known_hosts_lines()
        (tmp_path / "known_hosts").write_text(known)
        jump = (
            "  children:\n    behind:\n      vars:\n        ansible_ssh_common_args: "
            f"-o ProxyJump=root@127.0.0.1:{bastion_port}\n      hosts:\n"
        )
        hosts = "".join(
            f"        via-{n}:\n          ansible_host: {ADDRESSES[n]}\n"
            f"          ansible_port: {p}\n"
            for n, p in ports.items()
        )
        inv = write_inventory(tmp_path / "inv.yaml", server, {}, jump + hosts)

        status, summary, err = await collect_json(tmp_path, inv)
    finally:
        bastion.stop()

    outcomes = {h["name"]: h["outcome"] for h in summary["hosts"]}
    assert status == 0, err
    assert set(outcomes.values()) == {"ok"} and len(outcomes) == 3
    assert bastion.accepted_logins() == 1


async def test_a_key_the_server_does_not_know_is_auth_failed(
    tmp_path: Path, fleet: tuple[Sshd, dict[str, int]]
) -> None:
    server, ports = fleet
    (tmp_path / "known_hosts").write_text(server.known_hosts_lines())
    stranger = keygen(tmp_path / "stranger")
    inv = write_inventory(tmp_path / "inv.yaml", server, {"laptop": ports["laptop"]})
    inv.write_text(inv.read_text().replace(str(server.client_key), str(stranger)))

    status, summary, _ = await collect_json(tmp_path, inv)

    host = summary["hosts"][0]
    assert status == 3
    assert host["outcome"] == "auth-failed"
    assert "root@127.0.0.3" in host["reason"]


async def test_bad_inventory_exits_2_naming_the_line_and_writes_nothing(
    tmp_path: Path,
) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("all:\n  hosts:\n    web1:\n      ansible_port: [22\n")
    db = tmp_path / "fleet.db"

    status, out, err = await run_cli(
        tmp_path, "collect", "-i", str(inv), "--db", str(db)
    )

    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and f"{inv}: line " in err
    assert not db.exists()


async def test_sigkill_mid_run_leaves_a_sound_database_with_every_finished_host(
    tmp_path: Path, fleet: tuple[Sshd, dict[str, int]]
) -> None:
    import asyncio

    from tests.sshd import cli_env, fleetcompat_command

    server, ports = fleet
    (tmp_path / "known_hosts").write_text(server.known_hosts_lines())
    many = "".join(
        f"    copy{i:02d}:\n      ansible_host: {ADDRESSES[n]}\n"
        f"      ansible_port: {ports[n]}\n"
        for i in range(30)
        for n in [list(MACHINES)[i % 3]]
    )
    inv = write_inventory(tmp_path / "inv.yaml", server, {}, many)
    db = tmp_path / "fleet.db"
    proc = await asyncio.create_subprocess_exec(
        *fleetcompat_command(),
        "collect",
        "-i",
        str(inv),
        "--db",
        str(db),
        "--concurrency",
        "2",
        "-q",
        env=cli_env(tmp_path),
    )

    finished_before_kill = 0
    for _ in range(600):
        await asyncio.sleep(0.05)
        finished_before_kill = _count_snapshots(db)
        if finished_before_kill >= 4:
            break
    proc.send_signal(signal.SIGKILL)
    await proc.wait()

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute(
            "select s.status, s.feature_set, f.digest from snapshots s "
            "left join feature_sets f on f.digest = s.feature_set"
        ).fetchall()
        run = conn.execute("select status, settings from runs").fetchone()
    listed = await run_cli(tmp_path, "hosts", "--db", str(db))
    with sqlite3.connect(db) as conn:
        after = conn.execute("select status, finished_at from runs").fetchone()
    assert finished_before_kill >= 4
    assert len(rows) >= finished_before_kill
    assert all(status == "ok" and digest is not None for status, _, digest in rows)
    assert run[0] == "running"
    assert json.loads(run[1])["pid"] == proc.pid
    assert listed[0] == 0, listed[2]
    assert after[0] == "killed" and after[1] is not None


async def test_ctrl_c_finishes_hosts_in_flight_and_marks_the_run_interrupted(
    tmp_path: Path, fleet: tuple[Sshd, dict[str, int]]
) -> None:
    import asyncio

    from tests.sshd import cli_env, fleetcompat_command

    server, ports = fleet
    (tmp_path / "known_hosts").write_text(server.known_hosts_lines())
    many = "".join(
        f"    copy{i:02d}:\n      ansible_host: 127.0.0.3\n"
        f"      ansible_port: {ports['laptop']}\n"
        for i in range(40)
    )
    inv = write_inventory(tmp_path / "inv.yaml", server, {}, many)
    db = tmp_path / "fleet.db"
    proc = await asyncio.create_subprocess_exec(
        *fleetcompat_command(),
        "collect",
        "-i",
        str(inv),
        "--db",
        str(db),
        "--concurrency",
        "2",
        "-o",
        "json",
        "-q",
        stdout=asyncio.subprocess.PIPE,
        env=cli_env(tmp_path),
    )
    for _ in range(600):
        await asyncio.sleep(0.05)
        if _count_snapshots(db) >= 2:
            break

    proc.send_signal(signal.SIGINT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)

    summary = json.loads(out)
    assert proc.returncode == 130
    assert summary["status"] == "interrupted"
    assert 2 <= len(summary["hosts"]) < 40
    assert all(h["outcome"] == "ok" for h in summary["hosts"])
    assert _count_snapshots(db) == len(summary["hosts"])


def _count_snapshots(db: Path) -> int:
    """Snapshots committed so far (0 while the database does not exist yet)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("select count(*) from snapshots").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


async def test_probe_root_setting_points_the_probe_at_a_captured_tree(
    tmp_path: Path,
    fleet: tuple[Sshd, dict[str, int]],
    plain: Sshd,
    roots: dict[str, Path],
) -> None:
    server, _ = fleet
    (tmp_path / "known_hosts").write_text(plain.known_hosts_lines())
    address, port = plain.endpoints[0]
    host = (
        f"    captured:\n      ansible_host: {address}\n      ansible_port: {port}\n"
        f"      fleetcompat_probe_root: {roots['laptop']}\n"
    )
    inv = write_inventory(tmp_path / "inv.yaml", server, {}, host)
    db = tmp_path / "f.db"

    status, _, err = await run_cli(tmp_path, "collect", "-i", str(inv), "--db", str(db))

    assert status == 0, err
    with Store(db) as store:
        features = store.features(store.snapshots("captured")[0])
    assert features.attributes["cpu.model"]["id"] == "140"


async def test_a_chain_of_two_bastions_reaches_the_hosts_behind_them(
    tmp_path: Path, fleet: tuple[Sshd, dict[str, int]], plain: Sshd
) -> None:
    server, ports = fleet
    known = server.known_hosts_lines() + plain.known_hosts_lines()
    (tmp_path / "known_hosts").write_text(known)
    (first, p1), (second, p2) = plain.endpoints
    before = plain.accepted_logins()
    chain = f"root@{first}:{p1},root@{second}:{p2}"
    hosts = "".join(
        f"    far-{n}:\n      ansible_host: {ADDRESSES[n]}\n"
        f"      ansible_port: {p}\n      fleetcompat_jump: {chain}\n"
        for n, p in ports.items()
    )
    inv = write_inventory(tmp_path / "inv.yaml", server, {}, hosts)

    status, summary, err = await collect_json(tmp_path, inv)

    outcomes = {h["name"]: h["outcome"] for h in summary["hosts"]}
    assert status == 0, err
    assert outcomes == {f"far-{n}": "ok" for n in ports}
    assert plain.accepted_logins() - before == 2  # one login per hop, not per host


async def test_inventory_values_never_reach_the_remote_shell_unquoted(
    tmp_path: Path, fleet: tuple[Sshd, dict[str, int]], plain: Sshd
) -> None:
    server, _ = fleet
    (tmp_path / "known_hosts").write_text(plain.known_hosts_lines())
    address, port = plain.endpoints[0]
    marker = tmp_path / "pwned"
    hostile = f"/nonexistent'; touch {marker}; echo '$(touch {marker})"
    host = (
        f"    hostile:\n      ansible_host: {address}\n      ansible_port: {port}\n"
        f"      fleetcompat_probe_root: {json.dumps(hostile)}\n"
    )
    inv = write_inventory(tmp_path / "inv.yaml", server, {}, host)

    await run_cli(tmp_path, "collect", "-i", str(inv), "--db", str(tmp_path / "f.db"))

    assert not marker.exists()
