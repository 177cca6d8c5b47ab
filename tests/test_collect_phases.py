"""Phase deadlines from the command line: --connect-, --auth-, --probe-timeout.

Misbehaving peers of our own stall in one phase; the outcome's reason must name
that phase and the deadline given for it, not the one --timeout would derive.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetcompat.errors import InputError
from fleetcompat.probing import Timeouts
from tests import sshd as peers
from tests.sshd import Peer, keygen, run_cli


def one_host(tmp_path: Path, peer: Peer, *extra: str) -> Path:
    """An inventory of one host, `h`, at the peer; `extra` lines are its vars."""
    key = keygen(tmp_path / "id_ed25519")
    lines = [
        "all:",
        "  hosts:",
        "    h:",
        f"      ansible_host: {peer.address}",
        f"      ansible_port: {peer.port}",
        "      ansible_user: root",
        f"      ansible_ssh_private_key_file: {key}",
        *(f"      {line}" for line in extra),
    ]
    path = tmp_path / "inv.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def collect_one(tmp_path: Path, inventory: Path, *options: str) -> dict[str, str]:
    """Collect the one host with these options; its outcome and reason."""
    status, out, err = await run_cli(
        tmp_path,
        "collect",
        "-i",
        str(inventory),
        "--db",
        str(tmp_path / "f.db"),
        "-o",
        "json",
        *options,
    )
    assert status == 3, err
    host: dict[str, str] = json.loads(out)["hosts"][0]
    return host


@pytest.mark.sshd
async def test_connect_timeout_bounds_a_peer_that_never_speaks(
    tmp_path: Path, started: list[Peer]
) -> None:
    silent = await peers.silent_tcp()
    started.append(silent)
    inventory = one_host(tmp_path, silent)

    host = await collect_one(
        tmp_path, inventory, "--timeout", "60", "--connect-timeout", "0.5"
    )

    assert host["outcome"] == "timeout"
    assert host["reason"].endswith("within 0.5s (connect)"), host


@pytest.mark.sshd
async def test_probe_timeout_bounds_a_probe_that_never_ends(
    tmp_path: Path, started: list[Peer]
) -> None:
    stalled = await peers.ssh_peer(peers.stall_midway)
    started.append(stalled)
    (tmp_path / "known_hosts").write_text(stalled.known_hosts_line())
    inventory = one_host(tmp_path, stalled)

    host = await collect_one(
        tmp_path, inventory, "--timeout", "60", "--probe-timeout", "0.5"
    )

    assert host["outcome"] == "timeout"
    assert host["reason"] == "the probe did not finish within 0.5s (probe)"


@pytest.mark.sshd
async def test_start_timeout_ends_a_host_whose_probe_never_starts(
    tmp_path: Path, started: list[Peer]
) -> None:
    stalled = await peers.ssh_peer(peers.stall)
    started.append(stalled)
    (tmp_path / "known_hosts").write_text(stalled.known_hosts_line())
    inventory = one_host(tmp_path, stalled)

    host = await collect_one(
        tmp_path, inventory, "--timeout", "60", "--start-timeout", "0.5"
    )

    assert host["outcome"] == "timeout"
    assert host["reason"].startswith(
        "the probe said nothing within 0.5s of starting (start)"
    )


@pytest.mark.sshd
async def test_a_host_s_own_deadline_still_ends_it_inside_a_longer_phase(
    tmp_path: Path, started: list[Peer]
) -> None:
    stalled = await peers.ssh_peer(peers.stall_midway)
    started.append(stalled)
    (tmp_path / "known_hosts").write_text(stalled.known_hosts_line())
    inventory = one_host(tmp_path, stalled, "fleetcompat_timeout: 1")

    host = await collect_one(
        tmp_path, inventory, "--timeout", "60", "--probe-timeout", "50"
    )

    assert host["outcome"] == "timeout"
    assert host["reason"] == "not done within the host deadline of 1s (probe)"


@pytest.mark.sshd
async def test_a_host_s_own_longer_deadline_gives_its_probe_the_time(
    tmp_path: Path, started: list[Peer]
) -> None:
    from fleetcompat.probe import run_local_probe

    slow = await peers.ssh_peer(peers.delayed(run_local_probe(), 2.0))
    started.append(slow)
    (tmp_path / "known_hosts").write_text(slow.known_hosts_line())
    inventory = one_host(tmp_path, slow, "fleetcompat_timeout: 20")

    status, out, err = await run_cli(
        tmp_path,
        "collect",
        "-i",
        str(inventory),
        "--db",
        str(tmp_path / "f.db"),
        "-o",
        "json",
        "--timeout",
        "1",
    )

    assert status == 0, err
    assert json.loads(out)["hosts"][0]["outcome"] == "ok"


def test_a_host_s_own_deadline_derives_the_phases_not_given() -> None:
    run = Timeouts.for_host(90)
    pinned = Timeouts.for_host(90, probe=30, start=2)

    assert run.for_one_host(300) == Timeouts(10, 15, 300, 300, 15)
    assert run.for_one_host(5) == Timeouts(1.5, 1.5, 5, 5, 1.5)
    assert pinned.for_one_host(300) == Timeouts(10, 15, 30, 300, 2, ("start", "probe"))
    assert pinned.for_one_host(20) == Timeouts(6, 6, 20, 20, 2, ("start", "probe"))


@pytest.mark.parametrize("command", ["collect", "audit"])
@pytest.mark.parametrize("phase", ["connect", "auth", "start", "probe"])
async def test_a_phase_longer_than_the_host_deadline_is_a_usage_error(
    tmp_path: Path, command: str, phase: str
) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("all:\n  hosts:\n    h:\n")
    layout = tmp_path / "layout"
    layout.mkdir()
    extra = ["--oci-layout", str(layout), "--out", str(tmp_path / "r")]

    status, out, err = await run_cli(
        tmp_path,
        command,
        "-i",
        str(inventory),
        "--db",
        str(tmp_path / "f.db"),
        "--timeout",
        "5",
        f"--{phase}-timeout",
        "7.5",
        *(extra if command == "audit" else []),
    )

    assert status == 2
    assert f"--{phase}-timeout 7.5 is longer than the host deadline, --timeout 5" in err
    assert not (tmp_path / "f.db").exists()


def test_phases_not_given_are_derived_from_the_host_deadline() -> None:
    derived = Timeouts.for_host(20)
    long = Timeouts.for_host(200, auth=30)

    assert derived == Timeouts(connect=6, auth=6, probe=20, host=20, start=6)
    assert long == Timeouts(10, 30, 200, 200, 15, given=("auth",))


def test_a_phase_longer_than_the_host_deadline_is_refused_from_python() -> None:
    with pytest.raises(InputError, match=r"probe deadline \(21s\) .* \(20s\)"):
        Timeouts.for_host(20, probe=21)
