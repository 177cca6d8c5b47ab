"""Real and misbehaving SSH peers on loopback, for the collector's tests.

`start_sshd` runs Debian's /usr/sbin/sshd unprivileged-style: its own host key,
an authorized_keys file holding a generated client key, no PAM, a pid file and a
log in a temporary directory, listening on loopback addresses and ports the test
chooses. A `Match LocalPort` block per port can point the probe at a captured host
root (the server forces `FLEETCOMPAT_ROOT=<root> sh -s`), so one sshd serves
several "hosts".

The misbehaving peers are small servers of our own: asyncssh server subclasses
and raw sockets, each wrong in one way.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


def require_sshd() -> None:
    """Skip when OpenSSH's sshd is absent; under CI that is a failure."""
    if SSHD.exists() and os.access(SSHD, os.X_OK):
        return
    message = "OpenSSH server not installed (apt-get install openssh-server)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on `address` right now."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, kind: str = "ed25519") -> Path:
    """A new unencrypted key pair at `path` (and `path`.pub)."""
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", "fleetcompat-test", "-f", path],
        check=True,
    )
    return path


@dataclass
class Sshd:
    """A running sshd and what a client needs to reach it."""

    directory: Path
    endpoints: list[tuple[str, int]]
    host_key: Path
    client_key: Path
    process: subprocess.Popen[bytes]
    log: Path

    def known_hosts_lines(self) -> str:
        """known_hosts lines for every endpoint, with this server's host key."""
        key = " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])
        return "".join(f"[{a}]:{p} {key}\n" for a, p in self.endpoints)

    def accepted_logins(self) -> int:
        """How many connections authenticated so far (from the server's log)."""
        if not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count("Accepted publickey")

    def stop(self) -> None:
        """Stop the server (by its own pid)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_sshd(
    directory: Path,
    endpoints: list[tuple[str, int]],
    *,
    client_key: Path,
    roots: dict[int, Path] | None = None,
    extra: str = "",
) -> Sshd:
    """Start sshd on the given (address, port) pairs; wait until it answers."""
    require_sshd()
    directory.mkdir(parents=True, exist_ok=True)
    host_key = keygen(directory / "ssh_host_ed25519_key")
    authorized = directory / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    log = directory / "sshd.log"
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir

    lines = [f"ListenAddress {a}:{p}" for a, p in endpoints]
    lines += [
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}",
        f"PidFile {directory / 'sshd.pid'}",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AllowTcpForwarding yes",
        "MaxStartups 200:30:400",
        "MaxSessions 50",
        "LogLevel INFO",
        extra,
    ]
    for port, root in (roots or {}).items():
        lines += [
            f"Match LocalPort {port}",
            f"    ForceCommand env FLEETCOMPAT_ROOT={root} sh -s",
        ]
    config = directory / "sshd_config"
    config.write_text("\n".join(lines) + "\n")

    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config), "-E", str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Sshd(directory, endpoints, host_key, client_key, process, log)
    for address, port in endpoints:
        _wait_for_banner(address, port, server)
    return server


def _wait_for_banner(address: str, port: int, server: Sshd) -> None:
    """Wait until the server sends its SSH banner on (address, port)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            detail = server.log.read_text() if server.log.exists() else ""
            raise RuntimeError(f"sshd exited: {detail}")
        try:
            with socket.create_connection((address, port), timeout=1) as sock:
                if sock.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on {address}:{port}")


# Misbehaving peers of our own.


@dataclass
class Peer:
    """A small server of ours, listening on loopback."""

    address: str
    port: int
    close: Callable[[], Any]
    host_key: asyncssh.SSHKey | None = None
    connections: list[Any] = field(default_factory=list)
    """When each connection arrived (time.monotonic()), for SSH peers."""

    def known_hosts_line(self) -> str:
        """A known_hosts line for this peer's host key."""
        assert self.host_key is not None
        public = self.host_key.export_public_key().decode().split()[:2]
        return f"[{self.address}]:{self.port} {' '.join(public)}\n"


async def silent_tcp(address: str = "127.0.0.1") -> Peer:
    """A TCP port that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(hold, address, 0)
    port = server.sockets[0].getsockname()[1]

    def close() -> None:
        for writer in held:
            writer.close()
        server.close()

    return Peer(address, port, close)


Behaviour = Callable[[asyncssh.SSHServerProcess[bytes]], Any]


class _Server(asyncssh.SSHServer):  # type: ignore[misc]
    """Accepts any client key unless told to refuse every one; may drop some.

    Each connection's arrival time (monotonic) is appended to `arrivals`.
    """

    def __init__(
        self, refuse_keys: bool, drops: list[int], arrivals: list[Any]
    ) -> None:
        self.refuse_keys = refuse_keys
        self.drops = drops
        self.arrivals = arrivals

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.arrivals.append(time.monotonic())
        if self.drops and self.drops[0] > 0:
            self.drops[0] -= 1
            conn.abort()

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return not self.refuse_keys


async def ssh_peer(
    behaviour: Behaviour,
    *,
    address: str = "127.0.0.1",
    refuse_keys: bool = False,
    host_key: asyncssh.SSHKey | None = None,
    drop_first: int = 0,
) -> Peer:
    """An asyncssh server whose every session runs `behaviour`.

    `drop_first` connections are closed as soon as they are accepted, as an sshd
    over its MaxStartups does.
    """
    key = host_key or asyncssh.generate_private_key("ssh-ed25519")
    drops = [drop_first]
    arrivals: list[Any] = []
    server = await asyncssh.listen(
        address,
        0,
        server_host_keys=[key],
        server_factory=lambda: _Server(refuse_keys, drops, arrivals),
        process_factory=behaviour,
        encoding=None,
    )
    port = server.sockets[0].getsockname()[1]
    return Peer(address, port, server.close, key, arrivals)


def serve_output(output: bytes) -> Behaviour:
    """A session that reads its stdin and answers with a recorded probe output."""

    async def run(process: asyncssh.SSHServerProcess[bytes]) -> None:
        await process.stdin.read()
        process.stdout.write(output)
        process.exit(0)

    return run


def delayed(output: bytes, seconds: float) -> Behaviour:
    """A session that answers with a recorded probe output after a while."""

    async def run(process: asyncssh.SSHServerProcess[bytes]) -> None:
        await process.stdin.read()
        await asyncio.sleep(seconds)
        process.stdout.write(output)
        process.exit(0)

    return run


async def stall(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """A session that never answers (after a successful login)."""
    await asyncio.sleep(3600)


async def stall_midway(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """A session whose probe starts (its first line) and then hangs."""
    process.stdout.write(b"#fleetcompat-probe v1\n")
    await asyncio.sleep(3600)


def close_midway(output: bytes) -> Behaviour:
    """A session that writes part of the output, then drops the connection."""

    async def run(process: asyncssh.SSHServerProcess[bytes]) -> None:
        await process.stdin.read()
        process.stdout.write(output[: len(output) // 3])
        await asyncio.sleep(0.05)
        process.channel.get_connection().abort()

    return run


async def endless(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """A session that streams output without end."""
    chunk = b"F 1 /x\n" * 8192
    try:
        while True:
            process.stdout.write(chunk)
            await process.stdout.drain()
    except (asyncssh.Error, OSError, BrokenPipeError):
        return


def fail_with(status: int, stderr: bytes) -> Behaviour:
    """A session that exits with a status and a message on stderr."""

    async def run(process: asyncssh.SSHServerProcess[bytes]) -> None:
        await process.stdin.read()
        process.stderr.write(stderr)
        process.exit(status)

    return run


FLEETCOMPAT = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "fleetcompat"


def cli_env(home: Path, agent: str | None = None) -> dict[str, str]:
    """An environment that keeps the user's ~/.ssh and agent out of a test run."""
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    if agent is not None:
        env["SSH_AUTH_SOCK"] = agent
    env["HOME"] = str(home)
    env["FLEETCOMPAT_KNOWN_HOSTS"] = str(home / "known_hosts")
    env.pop("FLEETCOMPAT_DB", None)
    return env


def fleetcompat_command() -> list[str]:
    """How to run the CLI: the venv's script, else the module."""
    if FLEETCOMPAT.exists():
        return [str(FLEETCOMPAT)]
    import sys

    return [sys.executable, "-c", "from fleetcompat.cli.main import main; main()"]


async def collect_json(home: Path, inventory: Path) -> tuple[int, Any, str]:
    """Collect INVENTORY into HOME/f.db with `-o json`; (status, summary, stderr)."""
    status, out, err = await run_cli(
        home, "collect", "-i", str(inventory), "--db", str(home / "f.db"), "-o", "json"
    )
    return status, json.loads(out) if out.strip() else None, err


async def run_cli(
    home: Path, *args: str, timeout: float = 60, agent: str | None = None
) -> tuple[int, str, str]:
    """Run `fleetcompat ARGS` in a subprocess; (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *fleetcompat_command(),
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(home, agent),
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def peer_inventory(path: Path, key: Path, hosts: dict[str, tuple[str, int]]) -> Path:
    """An inventory file naming each host by address and port, logging in as root."""
    lines = [
        "all:",
        "  vars:",
        "    ansible_user: root",
        f"    ansible_ssh_private_key_file: {key}",
        "  hosts:",
    ]
    for name, (address, port) in hosts.items():
        lines += [
            f"    {name}:",
            f"      ansible_host: {address}",
            f"      ansible_port: {port}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path
