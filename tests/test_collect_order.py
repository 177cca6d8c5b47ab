"""The order a run starts hosts in: hosts that hung last time go first."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcompat.collect import slow_first
from fleetcompat.features import Features
from fleetcompat.inventory import HostSpec
from fleetcompat.probe import run_local_probe
from fleetcompat.store import Host, Store
from tests import sshd as peers
from tests.sshd import Peer, keygen, peer_inventory, run_cli

pytestmark = pytest.mark.sshd


async def test_a_host_that_timed_out_is_started_first_next_run(
    tmp_path: Path, started: list[Peer]
) -> None:
    output = run_local_probe()
    key = keygen(tmp_path / "id_ed25519")
    first = await peers.ssh_peer(peers.serve_output(output))
    second = await peers.ssh_peer(peers.serve_output(output))
    hung = await peers.ssh_peer(peers.stall)
    started.extend([first, second, hung])
    (tmp_path / "known_hosts").write_text(
        "".join(p.known_hosts_line() for p in started)
    )
    hosts = {"a": first, "b": second, "z": hung}
    inv = peer_inventory(
        tmp_path / "inv.yaml", key, {n: (p.address, p.port) for n, p in hosts.items()}
    )
    db = str(tmp_path / "f.db")
    args = ("collect", "-i", str(inv), "--db", db, "--concurrency", "1")

    await run_cli(tmp_path, *args, "--timeout", "2")
    assert hung.connections[0] > second.connections[0] > first.connections[0]
    await run_cli(tmp_path, *args, "--timeout", "2")

    assert hung.connections[-1] < first.connections[-1] < second.connections[-1]


def test_slow_first_keeps_inventory_order_otherwise(tmp_path: Path) -> None:
    features = Features.from_nfd({"flags": {"kernel.loadedmodule": {"elements": {}}}})
    store = Store(tmp_path / "f.db")
    run = store.start_run("collect")
    for name, status in (("a", "timeout"), ("b", "timeout"), ("c", "refused")):
        store.save_snapshot(Host(name), run_id=run, source="ssh", status=status)
    # a's newest attempt succeeded: it is no longer a hung host.
    store.save_snapshot(Host("a"), run_id=run, source="ssh", features=features)
    hosts = [HostSpec(n, n) for n in ("a", "b", "c", "d")]

    assert [h.name for h in slow_first(hosts, store)] == ["b", "a", "c", "d"]
