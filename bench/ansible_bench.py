"""Benchmark: `fleetcompat collect` against `ansible all -m setup`, side by side.

One real OpenSSH server on loopback serves N hosts, each its own address
(127.0.1.1, 127.0.1.2, ...), so that each host is a host to both tools (Ansible's
ControlMaster keeps one master per address, as with real machines). Both tools
read the same YAML inventory and log in as the same account with the same key,
at the same concurrency; each run is measured by wall time and by CPU time of
whole process trees, counted by cgroup (`cpuacct`, or `cpu.stat` on cgroup v2):

- client CPU: the tool and everything it starts (Ansible's forks and ssh
  processes, including ControlPersist masters that outlive it);
- remote CPU: the sshd and everything it starts (logins, shells, the probe or
  Python's setup module).

The targets log in as a dedicated account, `fleetcompat-bench`, created on
first use (bash as its shell, a stock /etc/skel home, no password), so that a
login costs what it costs on a server. The account running the benchmark is
often a developer's root, whose shell start-up files (pyenv, cargo, ...) would
add their cost to every command of both tools.

Runs, in order, each round:

1. fleetcompat: `fleetcompat collect -i INVENTORY --concurrency F -o json`;
2. ansible (defaults): `ansible all -m setup -f F`, with Ansible's defaults as
   a user gets them (ControlMaster=auto, ControlPersist=60s, no pipelining,
   Python interpreter discovery), only the known_hosts file given;
3. ansible (tuned): the same with pipelining on and the interpreter given,
   Ansible's best case;
4. floor: a bare asyncssh client connecting and running `true` on every host.

    sudo .venv/bin/python bench/ansible_bench.py --ansible /tmp/ansible-venv
    .venv/bin/python bench/ansible_bench.py --ansible VENV --hosts 100 --forks 10

Needs root (the account, the cgroups, addresses in 127/8) and ansible-core in a
venv of its own (`python3 -m venv /tmp/ansible-venv && /tmp/ansible-venv/bin/pip
install ansible-core`). Figures go to bench/results/ansible.json (`--out`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FLEETCOMPAT = REPO / ".venv" / "bin" / "fleetcompat"
ACCOUNT = "fleetcompat-bench"
ACCOUNT_HOME = Path("/var/tmp/fleetcompat-bench")


class CpuGroup:
    """A cgroup that counts the CPU time of every process placed in it."""

    def __init__(self, name: str) -> None:
        v1 = Path("/sys/fs/cgroup/cpuacct")
        v2 = Path("/sys/fs/cgroup")
        if (v1 / "cpuacct.usage").exists():
            self.path, self.v2 = v1 / name, False
        elif (v2 / "cgroup.controllers").exists():
            self.path, self.v2 = v2 / name, True
        else:
            sys.exit("ansible_bench: no cpuacct cgroup (v1) or cgroup v2 found")
        self.path.mkdir(exist_ok=True)

    def add(self, pid: int) -> None:
        """Move a process (and so its future children) into the group."""
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def seconds(self) -> float:
        """CPU seconds used by the group's processes, living and gone."""
        if self.v2:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                name, value = line.split()
                if name == "usage_usec":
                    return int(value) / 1e6
            return 0.0
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def pids(self) -> list[int]:
        """Processes still in the group."""
        text = (self.path / "cgroup.procs").read_text()
        return [int(p) for p in text.split()]

    def remove(self) -> None:
        """Kill what is left in the group and delete it."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        self.path.rmdir()


def ensure_account() -> pwd.struct_passwd:
    """The benchmark's login account, created with a stock home when missing."""
    try:
        return pwd.getpwnam(ACCOUNT)
    except KeyError:
        pass
    subprocess.run(
        [
            "useradd",
            "--create-home",
            "--home-dir",
            str(ACCOUNT_HOME),
            "--shell",
            "/bin/bash",
            "--comment",
            "fleetcompat benchmark target",
            ACCOUNT,
        ],
        check=True,
    )
    # Unlocked, with no usable password: sshd refuses a locked account.
    subprocess.run(["usermod", "-p", "*", ACCOUNT], check=True)
    return pwd.getpwnam(ACCOUNT)


def write_inventory(path: Path, addresses: list[str], port: int, key: Path) -> None:
    """The YAML inventory both tools read: one host per loopback address."""
    lines = [
        "all:",
        "  vars:",
        f"    ansible_port: {port}",
        f"    ansible_user: {ACCOUNT}",
        f"    ansible_ssh_private_key_file: {key}",
        "  hosts:",
    ]
    for i, address in enumerate(addresses):
        lines += [f"    host{i:04d}:", f"      ansible_host: {address}"]
    path.write_text("\n".join(lines) + "\n")


def run_measured(
    command: list[str], env: dict[str, str], group: CpuGroup
) -> dict[str, Any]:
    """Run a command inside `group`; its wall time, exit status and stdout."""
    procs = group.path / "cgroup.procs"

    def enter_group() -> None:
        procs.write_text(f"{os.getpid()}\n")

    started = time.monotonic()
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        preexec_fn=enter_group,
        check=False,
    )
    return {
        "wall_s": round(time.monotonic() - started, 2),
        "exit": done.returncode,
        "stdout": done.stdout.decode(errors="replace"),
        "stderr": done.stderr.decode(errors="replace")[-2000:],
    }


def one_run(
    label: str, command: list[str], env: dict[str, str], server: CpuGroup
) -> dict[str, Any]:
    """One measured run of one tool: wall, client, remote and total CPU."""
    client = CpuGroup(f"fleetcompat-bench-{label}-{os.getpid()}")
    try:
        remote0 = server.seconds()
        run = run_measured(command, env, client)
        run["client_cpu_s"] = round(client.seconds(), 2)
        run["remote_cpu_s"] = round(server.seconds() - remote0, 2)
    finally:
        client.remove()
    run["total_cpu_s"] = round(run["client_cpu_s"] + run["remote_cpu_s"], 2)
    return run


def hosts_ok(label: str, run: dict[str, Any]) -> int:
    """How many hosts the run reports as done."""
    if label == "fleetcompat":
        try:
            summary = json.loads(run["stdout"])
        except ValueError:
            return 0
        return int(summary.get("counts", {}).get("ok", 0))
    return run["stdout"].count("| SUCCESS")


def main() -> None:
    """Set up the fleet, run every tool `--rounds` times, write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ansible", required=True, help="venv with ansible-core")
    parser.add_argument("--hosts", type=int, default=40)
    parser.add_argument("--forks", type=int, default=10, help="both tools' concurrency")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--out", default="ansible.json", help="file name under bench/results"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("ansible_bench: run as root (account, cgroups, 127/8 addresses)")
    ansible = Path(args.ansible) / "bin" / "ansible"
    if not ansible.exists():
        sys.exit(f"ansible_bench: {ansible} not found")

    from tests.sshd import free_port, keygen, start_sshd

    ensure_account()
    work = Path(tempfile.mkdtemp(prefix="fleetcompat-ansible-bench-"))
    work.chmod(0o755)
    server_group = CpuGroup(f"fleetcompat-bench-sshd-{os.getpid()}")
    servers: list[Any] = []
    try:
        key = keygen(work / "id_ed25519")
        port = free_port("127.0.1.1")
        addresses = [f"127.0.1.{i + 1}" for i in range(args.hosts)]
        # sshd listens on at most 16 addresses: one server per 16 hosts.
        for first in range(0, len(addresses), 16):
            server = start_sshd(
                work / f"sshd{first // 16}",
                [(a, port) for a in addresses[first : first + 16]],
                client_key=key,
                extra="MaxStartups 400:30:800",
            )
            servers.append(server)
            server_group.add(server.process.pid)
        known = work / "known_hosts"
        known.write_text("".join(s.known_hosts_lines() for s in servers))
        inventory = work / "inventory.yaml"
        write_inventory(inventory, addresses, port, key)

        home = work / "home"
        home.mkdir()
        base = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
        }
        fleet_env = dict(base, FLEETCOMPAT_KNOWN_HOSTS=str(known))
        defaults_env = dict(
            base,
            ANSIBLE_SSH_EXTRA_ARGS=f"-o UserKnownHostsFile={known}",
            ANSIBLE_STDOUT_CALLBACK="oneline",
        )
        tuned_env = dict(
            defaults_env,
            ANSIBLE_PIPELINING="True",
            ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
        )
        setup = [str(ansible), "all", "-i", str(inventory), "-m", "setup"]
        setup += ["-f", str(args.forks)]
        runs = {
            "fleetcompat": (
                [str(FLEETCOMPAT), "collect", "-i", str(inventory), "-o", "json"]
                + ["--db", str(work / "fleet.db"), "--concurrency", str(args.forks)],
                fleet_env,
            ),
            "ansible_defaults": (setup, defaults_env),
            "ansible_tuned": (setup, tuned_env),
            "floor_asyncssh_true": (
                [sys.executable, str(Path(__file__).with_name("collect_bench.py"))]
                + ["--bare", str(args.hosts), str(port), str(key), str(known)]
                + [str(args.forks), ACCOUNT, ",".join(addresses)],
                dict(base),
            ),
        }
        rounds: dict[str, list[dict[str, Any]]] = {label: [] for label in runs}
        for round_no in range(args.rounds):
            for label, (command, env) in runs.items():
                run = one_run(label, command, env, server_group)
                run["hosts_ok"] = (
                    hosts_ok(label, run) if label != "floor_asyncssh_true" else None
                )
                if run["exit"] not in (0,) and label != "floor_asyncssh_true":
                    print(f"{label}: exit {run['exit']}\n{run['stderr']}", flush=True)
                del run["stdout"]
                if run["exit"] == 0:
                    del run["stderr"]
                rounds[label].append(run)
                print(f"round {round_no + 1} {label}: {json.dumps(run)}", flush=True)
                # Ansible's ControlPersist masters are gone with its group; its
                # control sockets go too, so each round starts cold alike.
                shutil.rmtree(home / ".ansible", ignore_errors=True)

        figures = summarize(rounds, args)
        out = REPO / "bench" / "results" / args.out
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures["median"], indent=2))
        print(json.dumps(figures["speedup"], indent=2))
        print(f"written to {out}")
    finally:
        for server in servers:
            server.stop()
        server_group.remove()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def summarize(
    rounds: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> dict[str, Any]:
    """Medians per tool over the rounds, and ansible's cost over fleetcompat's."""
    keys = ("wall_s", "client_cpu_s", "remote_cpu_s", "total_cpu_s")
    median = {
        label: {k: round(statistics.median(r[k] for r in runs), 2) for k in keys}
        for label, runs in rounds.items()
    }
    fleet = median["fleetcompat"]
    speedup = {
        label: {k: round(median[label][k] / fleet[k], 1) for k in keys if fleet[k]}
        for label in ("ansible_defaults", "ansible_tuned")
    }
    with open("/proc/loadavg") as load:
        loadavg = load.read().split()[:3]
    return {
        "hosts": args.hosts,
        "concurrency": args.forks,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "loadavg_after": loadavg,
        "median": median,
        "speedup": speedup,
        "runs": rounds,
    }


if __name__ == "__main__":
    main()
