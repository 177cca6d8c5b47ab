"""Benchmark of `fleetcompat collect` on a simulated loopback fleet.

Measurements (each client in its own process; CPU and peak RSS from wait4):

1. fleet: N simulated hosts (one asyncssh server process on loopback serving
   recorded probe outputs of real machines) collected by `fleetcompat collect`,
   against a bare asyncssh client that connects and runs `true` on the same hosts
   at the same concurrency;
2. hanging: the same with 10% of the hosts hung, in two ways: in their login
   (the probe never starts: ended by the start deadline) and in the middle of
   the probe (ended by the host deadline); the latter also as a second, nightly
   run over the same database, where the hosts that hung start first;
3. db: database size for 10,000 hosts drawn from 50 distinct machines, and what
   a second run over the unchanged fleet adds;

The comparison with `ansible all -m setup` is bench/ansible_bench.py.

    .venv/bin/python bench/collect_bench.py                 # 1,000 hosts
    .venv/bin/python bench/collect_bench.py --hosts 200     # quicker

Figures go to bench/results/collect.json. Benchmarks are never test assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PYTHON = sys.executable
FLEETCOMPAT = REPO / ".venv" / "bin" / "fleetcompat"
FIXTURES = Path(
    os.environ.get("FLEETCOMPAT_FIXTURES", REPO.parent / "shared" / "fixtures")
)
MACHINES = [
    "hwloc-2pa-pcidomain32bits",
    "ul-lscpu-x86_64-64cpu-linux6.2",
    "nfd-pci-rootfs-1",
    "hwloc-32em64t-2n8c+dax+nvme+mic+dimms",
]


# The simulated fleet: one asyncssh server process.


async def serve(port: int, key_path: str, outputs_dir: str, ready: str) -> None:
    """Serve recorded probe outputs; users `hang*`, `midhang*` stall; `true` exits."""
    import asyncssh

    outputs = [p.read_bytes() for p in sorted(Path(outputs_dir).glob("*.probe"))]

    class Server(asyncssh.SSHServer):  # type: ignore[misc]
        def begin_auth(self, username: str) -> bool:
            return True

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: Any) -> bool:
            return True

    async def handle(process: Any) -> None:
        user = process.get_extra_info("username") or ""
        if process.command == "true":
            process.exit(0)
            return
        await process.stdin.read()
        if user.startswith("hang"):  # hung in its login: the probe never starts
            await asyncio.sleep(3600)
        if user.startswith("midhang"):  # the probe starts, then hangs
            process.stdout.write(b"#fleetcompat-probe v1\n")
            await asyncio.sleep(3600)
        process.stdout.write(outputs[hash(user) % len(outputs)])
        process.exit(0)

    await asyncssh.listen(
        "127.0.0.1",
        port,
        server_host_keys=[key_path],
        server_factory=Server,
        process_factory=handle,
        encoding=None,
        backlog=4096,
    )
    Path(ready).write_text("ready")
    await asyncio.Event().wait()


async def bare(
    hosts: int,
    port: int,
    key: str,
    known: str,
    concurrency: int,
    user: str = "",
    addresses: str = "",
) -> None:
    """The baseline: connect and run `true` on every host, as plainly as can be."""
    import asyncssh

    keys = asyncssh.load_keypairs([key])
    known_hosts = asyncssh.read_known_hosts(known)
    slots = asyncio.Semaphore(concurrency)
    hosts_at = addresses.split(",") if addresses else ["127.0.0.1"]

    async def one(i: int) -> None:
        async with (
            slots,
            asyncssh.connect(
                hosts_at[i % len(hosts_at)],
                port,
                username=user or f"m{i % 4}",
                client_keys=keys,
                known_hosts=known_hosts,
                config=None,
                agent_path=None,
            ) as conn,
        ):
            await conn.run("true", check=True)

    await asyncio.gather(*(one(i) for i in range(hosts)))


# Measuring.


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command; its wall time, CPU time and peak RSS (from wait4)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": round(time.monotonic() - started, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "exit": proc.returncode,
        "stdout": out,
    }


def process_cpu(pid: int) -> float:
    """CPU seconds a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def record_outputs(target: Path) -> None:
    """Probe outputs of real machines (captured roots), as the server replays them."""
    import tarfile

    from fleetcompat.probe import run_local_probe

    target.mkdir(parents=True, exist_ok=True)
    (target / "local.probe").write_bytes(run_local_probe())
    for name in MACHINES:
        tarball = FIXTURES / "hosts" / f"{name}.tar.gz"
        if not tarball.exists():
            continue
        root = target / "roots" / name
        with tarfile.open(tarball) as archive:
            archive.extractall(root, filter="tar")
        (target / f"{name}.probe").write_bytes(run_local_probe(str(root)))


def fleet_inventory(
    path: Path, hosts: int, port: int, key: Path, hang: float, how: str = "hang"
) -> None:
    """An inventory of simulated hosts; a fraction `hang` of them stall, `how`."""
    lines = [
        "all:",
        "  vars:",
        "    ansible_host: 127.0.0.1",
        f"    ansible_port: {port}",
        f"    ansible_ssh_private_key_file: {key}",
        "  hosts:",
    ]
    every = int(1 / hang) if hang else 0
    for i in range(hosts):
        user = f"{how}{i}" if every and i % every == 0 else f"m{i % 4}"
        lines += [f"    sim{i:05d}:", f"      ansible_user: {user}"]
    path.write_text("\n".join(lines) + "\n")


def bench_fleet(
    work: Path, hosts: int, concurrency: int, timeout: float
) -> dict[str, Any]:
    """Measurements 1 and 2 against the simulated server."""
    import asyncssh

    outputs = work / "outputs"
    record_outputs(outputs)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    (work / "host_key").write_bytes(host_key.export_private_key())
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    (work / "id_ed25519").write_bytes(client_key.export_private_key())
    port = free_port()
    public = host_key.export_public_key().decode().split()[:2]
    known = work / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {' '.join(public)}\n")
    ready = work / "ready"

    server = subprocess.Popen(
        [
            PYTHON,
            __file__,
            "--serve",
            str(port),
            str(work / "host_key"),
            str(outputs),
            str(ready),
        ],
    )
    try:
        while not ready.exists():
            time.sleep(0.05)
        env = dict(os.environ, HOME=str(work), FLEETCOMPAT_KNOWN_HOSTS=str(known))
        env.pop("SSH_AUTH_SOCK", None)
        results: dict[str, Any] = {"hosts": hosts, "concurrency": concurrency}

        cpu0 = process_cpu(server.pid)
        base = measure(
            [
                PYTHON,
                __file__,
                "--bare",
                str(hosts),
                str(port),
                str(work / "id_ed25519"),
                str(known),
                str(concurrency),
            ],
            env,
        )
        base["server_cpu_s"] = round(process_cpu(server.pid) - cpu0, 2)
        base.pop("stdout")
        results["bare_asyncssh_true"] = base

        runs = (
            ("fleetcompat", 0.0, "hang", 1),
            ("fleetcompat_10pct_hung_in_login", 0.1, "hang", 1),
            ("fleetcompat_10pct_hung_mid_probe", 0.1, "midhang", 1),
            # a nightly run: the same fleet again, with the first run's history
            ("fleetcompat_10pct_hung_mid_probe_second_run", 0.1, "midhang", 2),
        )
        for label, hang, how, runs_on_db in runs:
            inventory = work / f"{label}.yaml"
            fleet_inventory(inventory, hosts, port, work / "id_ed25519", hang, how)
            db = work / f"{label}.db"
            command = [
                str(FLEETCOMPAT),
                "collect",
                "-i",
                str(inventory),
                "--db",
                str(db),
                "--concurrency",
                str(concurrency),
                "--timeout",
                str(timeout),
                "-o",
                "json",
                "-q",
            ]
            for _ in range(runs_on_db - 1):
                measure(command, env)
            cpu0 = process_cpu(server.pid)
            run = measure(command, env)
            run["server_cpu_s"] = round(process_cpu(server.pid) - cpu0, 2)
            summary = json.loads(run.pop("stdout"))
            run["counts"] = summary["counts"]
            run["db_mb"] = round(db.stat().st_size / 1e6, 2)
            if hang:
                bound = results["fleetcompat"]["wall_s"] + timeout
                run["bound_s"] = round(bound, 2)
            results[label] = run
            print(label, json.dumps(run), flush=True)

        per_host = results["fleetcompat"]["cpu_s"] / hosts * 1000
        base_per_host = base["cpu_s"] / hosts * 1000
        results["client_cpu_ms_per_host"] = {
            "fleetcompat": round(per_host, 2),
            "bare": round(base_per_host, 2),
            "ratio": round(per_host / base_per_host, 2),
        }
        return results
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()


def bench_db(work: Path, hosts: int = 10_000, distinct: int = 50) -> dict[str, Any]:
    """Database size for a large fleet of few distinct machines, two runs."""
    from fleetcompat.discovery import discover
    from fleetcompat.probe import parse_probe_output
    from fleetcompat.store import Host, Store

    outputs = sorted((work / "outputs").glob("*.probe"))
    base = [discover(parse_probe_output(p.read_bytes(), p.name)) for p in outputs]
    machines = []
    for i in range(distinct):
        features = base[i % len(base)].copy()
        features.attributes.setdefault("kernel.version", {})["full"] = f"6.1.{i}-fleet"
        machines.append(features)

    db = work / "db-bench.db"
    figures: dict[str, Any] = {"hosts": hosts, "distinct": distinct}
    with Store(db) as store:
        for run in (1, 2):
            started = time.monotonic()
            run_id = store.start_run("collect", {"bench": run})
            for i in range(hosts):
                store.save_snapshot(
                    Host(f"host{i:05d}.example.com", f"10.0.{i // 250}.{i % 250}:22"),
                    run_id=run_id,
                    source="ssh",
                    features=machines[i % distinct],
                    node_name=f"host{i:05d}.example.com",
                    duration_ms=900,
                )
            store.finish_run(run_id, "ok", {"ok": hosts})
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            figures[f"run{run}_s"] = round(time.monotonic() - started, 1)
            figures[f"after_run{run}_mb"] = round(db.stat().st_size / 1e6, 2)
    figures["second_run_adds_mb"] = round(
        figures["after_run2_mb"] - figures["after_run1_mb"], 2
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--bare", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        port, key, outputs, ready = args.serve
        asyncio.run(serve(int(port), key, outputs, ready))
        return
    if args.bare:
        hosts, port, key, known, concurrency, *user = args.bare
        asyncio.run(bare(int(hosts), int(port), key, known, int(concurrency), *user))
        return

    work = Path(tempfile.mkdtemp(prefix="fleetcompat-bench-"))
    try:
        out = REPO / "bench" / "results" / "collect.json"
        results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
        fleet = bench_fleet(work, args.hosts, args.concurrency, args.timeout)
        results["fleet"] = fleet
        print(json.dumps(fleet, indent=2), flush=True)
        results["db"] = bench_db(work)
        print(json.dumps(results["db"], indent=2), flush=True)
        for stale in ("ansible", "ansible_forks1"):
            results.pop(stale, None)  # now bench/results/ansible.json
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
