"""Password logins: a real OpenSSH server with a password account, and a small
keyboard-interactive server of our own, through the real CLI.

OpenSSH here runs without PAM, so it offers no keyboard-interactive method; that
side is tested against an asyncssh server that asks its own prompts. Every run is
made with `-vv`, and the password is then looked for in everything the run left:
stdout, stderr and the database files.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from fleetcompat.probe import run_local_probe
from tests import sshd as peers
from tests.sshd import Peer, Sshd, free_port, keygen, run_cli, start_sshd
from tests.test_vault import ONE_LINE_11, VAULT_PASSWORD

pytestmark = pytest.mark.sshd

ACCOUNT = "fleetcompat-pw"
PASSWORD = "Setec Astronomy"  # what ONE_LINE_11, Ansible's own vector, decrypts to
WRONG = "Wrong-Horse-Battery-9"


@pytest.fixture(scope="module")
def account() -> str:
    """A local account whose password is PASSWORD (created once; root only)."""
    if os.geteuid() != 0:
        pytest.skip(f"creating the test account {ACCOUNT} with a password needs root")
    if shutil.which("useradd") is None or shutil.which("chpasswd") is None:
        pytest.skip("useradd/chpasswd not installed (Debian: passwd package)")
    try:
        pwd.getpwnam(ACCOUNT)
    except KeyError:
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/bin/sh", ACCOUNT], check=True
        )
    subprocess.run(["chpasswd"], input=f"{ACCOUNT}:{PASSWORD}\n".encode(), check=True)
    return ACCOUNT


@pytest.fixture(scope="module")
def server(account: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """sshd that takes passwords from the test account (and keys from everyone)."""
    base = tmp_path_factory.mktemp("pwsshd")
    key = keygen(base / "authorized_key")
    # The account reads its authorized_keys as itself: pytest's directories are
    # root's alone, so the file goes where the account can read it.
    readable = Path(tempfile.mkdtemp(prefix="fleetcompat-pw-"))
    readable.chmod(0o755)
    authorized = readable / "authorized_keys"
    authorized.write_text(key.with_suffix(".pub").read_text())
    authorized.chmod(0o644)
    extra = (
        f"Match User {account}\n"
        f"    AuthorizedKeysFile {authorized}\n"
        "    PasswordAuthentication yes\n"
        "    KbdInteractiveAuthentication yes"
    )
    started = start_sshd(
        base / "server", [("127.0.0.1", free_port())], client_key=key, extra=extra
    )
    yield started
    started.stop()
    shutil.rmtree(readable)


def inventory(path: Path, address: str, port: int, key: Path, password: str) -> Path:
    """One host `box` reached as the test account with a key and a password line."""
    path.write_text(
        "all:\n"
        "  hosts:\n"
        "    box:\n"
        f"      ansible_host: {address}\n"
        f"      ansible_port: {port}\n"
        f"      ansible_user: {ACCOUNT}\n"
        f"      ansible_ssh_private_key_file: {key}\n"
        f"      {password}\n"
    )
    return path


def vaulted_password() -> str:
    """`ansible_password: !vault |` with Ansible's vector for PASSWORD."""
    body = "".join(f"        {line}\n" for line in ONE_LINE_11.splitlines())
    return "ansible_password: !vault |\n" + body.rstrip("\n")


def left_behind(home: Path, *outputs: str) -> bytes:
    """Everything a run left: its outputs and every database file, as bytes."""
    found = b"".join(o.encode() for o in outputs)
    for path in sorted(home.glob("f.db*")):
        found += path.read_bytes()
    return found


async def collect(home: Path, inv: Path, *extra: str) -> tuple[int, dict, str, str]:  # type: ignore[type-arg]
    """`collect -vv -o json`; (status, summary, stdout, stderr)."""
    status, out, err = await run_cli(
        home,
        "collect",
        "-i",
        str(inv),
        "--db",
        str(home / "f.db"),
        "-o",
        "json",
        "-vv",
        *extra,
    )
    return status, json.loads(out), out, err


async def test_vaulted_password_logs_in_where_no_key_is_accepted(
    tmp_path: Path, server: Sshd
) -> None:
    (tmp_path / "known_hosts").write_text(server.known_hosts_lines())
    stranger = keygen(tmp_path / "not_authorized")
    address, port = server.endpoints[0]
    inv = inventory(tmp_path / "inv.yaml", address, port, stranger, vaulted_password())
    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text(VAULT_PASSWORD + "\n")

    status, summary, out, err = await collect(
        tmp_path, inv, "--vault-password-file", str(vault_pass)
    )

    assert status == 0, err
    assert summary["hosts"][0]["outcome"] == "ok"
    assert f"Accepted password for {ACCOUNT}" in server.log.read_text()
    assert PASSWORD.encode() not in left_behind(tmp_path, out, err)
    assert VAULT_PASSWORD.encode() not in left_behind(tmp_path, out, err)


async def test_wrong_password_is_auth_failed_with_what_to_check(
    tmp_path: Path, server: Sshd
) -> None:
    (tmp_path / "known_hosts").write_text(server.known_hosts_lines())
    stranger = keygen(tmp_path / "not_authorized")
    address, port = server.endpoints[0]
    line = f"ansible_password: {WRONG}"
    inv = inventory(tmp_path / "inv.yaml", address, port, stranger, line)

    status, summary, out, err = await collect(tmp_path, inv)

    host = summary["hosts"][0]
    assert status == 3, err
    assert host["outcome"] == "auth-failed"
    assert "refused every key offered (1 key) and the password" in host["reason"]
    assert "ansible_password" in host["reason"]
    assert WRONG.encode() not in left_behind(tmp_path, out, err)


async def test_a_key_file_that_cannot_be_read_still_lets_the_password_in(
    tmp_path: Path, server: Sshd
) -> None:
    (tmp_path / "known_hosts").write_text(server.known_hosts_lines())
    address, port = server.endpoints[0]
    missing = tmp_path / "no-such-key"
    right = inventory(
        tmp_path / "right.yaml", address, port, missing, f"ansible_password: {PASSWORD}"
    )
    wrong = inventory(
        tmp_path / "wrong.yaml", address, port, missing, f"ansible_password: {WRONG}"
    )

    status, summary, out, err = await collect(tmp_path, right)
    refused = await collect(tmp_path, wrong)

    assert status == 0, err
    assert summary["hosts"][0]["outcome"] == "ok"
    reason = refused[1]["hosts"][0]["reason"]
    assert refused[1]["hosts"][0]["outcome"] == "auth-failed"
    assert "and the password" in reason
    assert f"key file {missing} cannot be read" in reason


async def test_an_accepted_key_is_used_before_any_password(
    tmp_path: Path, server: Sshd
) -> None:
    (tmp_path / "known_hosts").write_text(server.known_hosts_lines())
    address, port = server.endpoints[0]
    line = f"ansible_password: {WRONG}"
    inv = inventory(tmp_path / "inv.yaml", address, port, server.client_key, line)
    before = server.log.read_text().count("Failed password")

    status, summary, _, err = await collect(tmp_path, inv)

    assert status == 0, err
    assert summary["hosts"][0]["outcome"] == "ok"
    assert server.log.read_text().count("Failed password") == before


class _KbdIntServer(asyncssh.SSHServer):  # type: ignore[misc]
    """Refuses keys and passwords; asks its one keyboard-interactive prompt."""

    def __init__(self, prompt: str, answers: list[list[str]]) -> None:
        self.prompt = prompt
        self.answers = answers

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return True

    def get_kbdint_challenge(
        self, username: str, lang: str, submethods: str
    ) -> tuple[str, str, str, list[tuple[str, bool]]]:
        return "", "", "", [(self.prompt, False)]

    def validate_kbdint_response(self, username: str, responses: list[str]) -> bool:
        self.answers.append(list(responses))
        return list(responses) == [PASSWORD]


async def kbdint_peer(prompt: str, answers: list[list[str]]) -> Peer:
    """An asyncssh server asking `prompt`, serving this machine's probe output."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    listener = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[key],
        server_factory=lambda: _KbdIntServer(prompt, answers),
        process_factory=peers.serve_output(run_local_probe()),
        encoding=None,
    )
    port = listener.sockets[0].getsockname()[1]
    return Peer("127.0.0.1", port, listener.close, key)


async def test_keyboard_interactive_password_prompt_is_answered(
    tmp_path: Path, started: list[Peer]
) -> None:
    answers: list[list[str]] = []
    peer = await kbdint_peer(f"Password for {ACCOUNT}@box: ", answers)
    started.append(peer)
    (tmp_path / "known_hosts").write_text(peer.known_hosts_line())
    key = keygen(tmp_path / "id")
    line = f"ansible_ssh_pass: {PASSWORD}"
    inv = inventory(tmp_path / "inv.yaml", peer.address, peer.port, key, line)

    status, summary, out, err = await collect(tmp_path, inv)

    assert status == 0, err
    assert summary["hosts"][0]["outcome"] == "ok"
    assert answers == [[PASSWORD]]
    assert PASSWORD.encode() not in left_behind(tmp_path, out, err)


async def test_keyboard_interactive_other_prompt_fails_cleanly_unanswered(
    tmp_path: Path, started: list[Peer]
) -> None:
    answers: list[list[str]] = []
    peer = await kbdint_peer("Verification code: ", answers)
    started.append(peer)
    (tmp_path / "known_hosts").write_text(peer.known_hosts_line())
    key = keygen(tmp_path / "id")
    line = f"ansible_password: {PASSWORD}"
    inv = inventory(tmp_path / "inv.yaml", peer.address, peer.port, key, line)

    status, summary, out, err = await collect(tmp_path, inv)

    host = summary["hosts"][0]
    assert status == 3, err
    assert host["outcome"] == "auth-failed"
    assert "asked 'Verification code:'" in host["reason"]
    assert answers == []
    assert PASSWORD.encode() not in left_behind(tmp_path, out, err)
