"""~/.ssh/config `Match` criteria: real shell commands, real interfaces, and ssh -G.

Where OpenSSH's client is installed, resolutions are compared with what `ssh -G`
prints for the same file, so the tests check OpenSSH's behaviour, not our reading
of it.
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path

import pytest

from fleetcompat.errors import InventoryError
from fleetcompat.sshconfig import SSHConfig

SSH = shutil.which("ssh")


def config(tmp_path: Path, text: str, exec_timeout: float = 10.0) -> SSHConfig:
    """An SSHConfig read from `text` written to a file."""
    path = tmp_path / "config"
    path.write_text(text)
    return SSHConfig.load(path, exec_timeout=exec_timeout)


def ssh_g(path: Path, host: str, user: str | None = None) -> dict[str, str]:
    """What OpenSSH's `ssh -G` resolves for a host: hostname, user, port."""
    assert SSH is not None
    command = [SSH, "-F", str(path), "-G", host]
    if user:
        command[1:1] = ["-l", user]
    printed = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=30
    ).stdout
    pairs = (line.split(" ", 1) for line in printed.splitlines() if " " in line)
    return {k: v for k, v in pairs if k in ("hostname", "user", "port")}


def test_exec_matches_on_exit_status_zero_with_the_host_expanded(
    tmp_path: Path,
) -> None:
    ssh = config(
        tmp_path,
        'Match exec "test %h = web1"\n  User web\n'
        "Match exec false\n  Port 2200\n"
        "Match !exec false\n  ProxyJump gw\n",
    )

    web1, web2 = ssh.resolve("web1"), ssh.resolve("web2")

    assert web1.user == "web"
    assert web2.user is None
    assert web1.port is None and web2.port is None
    assert web1.proxy_jump == web2.proxy_jump == "gw"


def test_exec_runs_once_per_command_and_host_in_a_run(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    ssh = config(
        tmp_path,
        f'Match exec "echo %n >> {counter}"\n  User counted\n'
        "Match final\n  Port 2200\n",  # a second reading, which must not rerun it
    )

    results = [ssh.resolve(host) for host in ("web1", "web1", "web2", "web1")]

    assert counter.read_text().split() == ["web1", "web2"]
    assert {r.user for r in results} == {"counted"}


def test_exec_is_skipped_once_an_earlier_criterion_failed(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    ssh = config(tmp_path, f'Match host db* exec "touch {ran}"\n  User db\n')

    web = ssh.resolve("web1")

    assert web.user is None
    assert not ran.exists()


def test_exec_past_its_timeout_does_not_match_and_is_killed(tmp_path: Path) -> None:
    survived = tmp_path / "survived"
    ssh = config(
        tmp_path,
        f'Match exec "sleep 2; touch {survived}"\n  User slow\n'
        f'Match !exec "sleep 2; touch {survived}"\n  Port 2200\n',
        exec_timeout=0.3,
    )

    web = ssh.resolve("web1")

    assert web.user is None
    assert web.port == 2200  # negated: a command that timed out did not match
    subprocess.run(["sleep", "2.5"], check=True)
    assert not survived.exists()


@pytest.mark.parametrize("token", ["%h", "%n", "%k"])
@pytest.mark.parametrize("host", ["web1;touch x", "$(id)", "a b", "-oProxyCommand"])
def test_exec_refuses_a_host_name_with_shell_characters(
    tmp_path: Path, token: str, host: str
) -> None:
    ssh = config(tmp_path, f'Match exec "echo {token} >/dev/null"\n  User x\n')

    with pytest.raises(InventoryError, match="line 1: Match exec would pass a host"):
        ssh.resolve(host)


def test_exec_without_names_runs_for_any_host_and_user(tmp_path: Path) -> None:
    ssh = config(tmp_path, 'Match exec "test %u = %u"\n  Port 2200\n')

    resolved = ssh.resolve("odd;name", user="a;b")

    assert resolved.port == 2200


def test_exec_refuses_an_inventory_user_with_shell_characters(
    tmp_path: Path,
) -> None:
    ssh = config(tmp_path, 'Match exec "test %r = ops"\n  Port 2200\n')

    with pytest.raises(InventoryError, match="would pass user 'ops;id'"):
        ssh.resolve("web1", user="ops;id")


def test_exec_sees_the_given_port_and_user_before_the_config_s(
    tmp_path: Path,
) -> None:
    ssh = config(
        tmp_path,
        'Match exec "test %p:%r = 2222:ops"\n  HostName given.example\n'
        "Host *\n  Port 22\n  User other\n",
    )

    given, defaulted = ssh.resolve("web1", user="ops", port=2222), ssh.resolve("web1")

    assert given.hostname == "given.example"
    assert defaulted.hostname is None


@pytest.mark.skipif(SSH is None, reason="OpenSSH client not installed")
def test_exec_tokens_expand_as_openssh_expands_them(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    tokens = "%h %n %p %r %u %L %l %i %k %C %d %%"
    template = (
        "Host web1\n  HostName %h.internal\n  Port 2222\n"
        f"Match exec \"echo '{tokens}' > OUT\"\n  User matched\n"
    )
    (tmp_path / "theirs.cfg").write_text(template.replace("OUT", str(theirs)))
    ssh = config(tmp_path, template.replace("OUT", str(ours)))

    ssh.resolve("web1", user="ops")
    ssh_g(tmp_path / "theirs.cfg", "web1", user="ops")

    assert ours.read_text() == theirs.read_text()
    assert ours.read_text().startswith("web1.internal web1 2222 ops ")


RESOLUTIONS = {
    "final-pass-sees-hostname": (
        "Host web1\n  HostName %h.internal\n"
        "Match final host web1.internal\n  User finaluser\n"
        "Match canonical\n  Port 2200\n",
        "web1",
    ),
    "first-value-beats-final-pass": (
        "Match !final\n  User early\nMatch final\n  User late\n  Port 2201\n",
        "web1",
    ),
    "canonical-alone-never-matches": ("Match canonical\n  User canon\n", "web1"),
    "canonicalize-yes-rereads": (
        "CanonicalizeHostname yes\nCanonicalDomains example.invalid\n"
        "CanonicalizeFallbackLocal yes\nMatch canonical\n  User canon\n",
        "web1",
    ),
    "negated-host": (
        "Match !host db*\n  User notdb\nMatch host db*\n  User db\n",
        "db7",
    ),
    "originalhost-vs-host": (
        "Host alias\n  HostName real.example\n"
        "Match host alias\n  Port 2200\nMatch originalhost alias\n  User orig\n",
        "alias",
    ),
    "user-and-localuser": (
        f"Match user ops localuser {getpass.getuser()}\n  Port 2200\n"
        "Match !localuser nobody-at-all\n  HostName local.example\n",
        "web1",
    ),
    "all-negated": ("Match !all\n  User never\nMatch all\n  Port 2202\n", "web1"),
}


@pytest.mark.skipif(SSH is None, reason="OpenSSH client not installed")
@pytest.mark.parametrize("text,host", RESOLUTIONS.values(), ids=RESOLUTIONS.keys())
def test_resolution_agrees_with_ssh_g(tmp_path: Path, text: str, host: str) -> None:
    ssh = config(tmp_path, text)
    user = "ops" if "user ops" in text else None

    ours = ssh.resolve(host, user=user)
    theirs = ssh_g(tmp_path / "config", host, user=user)

    assert (ours.hostname or host) == theirs["hostname"]
    assert (user or ours.user or getpass.getuser()) == theirs["user"]
    assert str(ours.port or 22) == theirs["port"]


def test_localnetwork_matches_loopback_and_not_a_foreign_net(tmp_path: Path) -> None:
    ssh = config(
        tmp_path,
        "Match localnetwork 127.0.0.0/8\n  User here\n"
        "Match localnetwork 198.51.100.0/24\n  Port 2200\n"
        "Match !localnetwork 198.51.100.0/24,203.0.113.7\n  ProxyJump gw\n",
    )

    resolved = ssh.resolve("web1")

    assert resolved.user == "here"
    assert resolved.port is None
    assert resolved.proxy_jump == "gw"


def test_tagged_matches_the_tag_set_so_far(tmp_path: Path) -> None:
    ssh = config(
        tmp_path,
        "Host web*\n  Tag prod\n"
        "Match tagged prod\n  User produser\n"
        "Match !tagged prod\n  Port 2200\n"
        "Match tagged *\n  ProxyJump gw\n",
    )

    web, db = ssh.resolve("web1"), ssh.resolve("db1")

    assert (web.user, web.port, web.proxy_jump) == ("produser", None, "gw")
    assert (db.user, db.port, db.proxy_jump) == (None, 2200, "gw")  # "" matches *


def test_key_equals_value_forms_are_read(tmp_path: Path) -> None:
    ssh = config(
        tmp_path,
        'Host=web1\n  User = eq\nMatch host=web1 exec="test %h = web1"\n  Port=2200\n',
    )

    resolved = ssh.resolve("web1")

    assert (resolved.user, resolved.port) == ("eq", 2200)


@pytest.mark.parametrize(
    "line,message",
    [
        ("Match nosuch x", "unsupported Match criterion 'nosuch'"),
        ("Match host", "Match host needs an argument"),
        ("Match exec # a comment", "Match exec needs an argument"),
        ("Match all host web1", "Match all cannot be combined"),
        ("Match", "Match needs at least one criterion"),
        (
            "Match localnetwork 10.0.0.1/8",
            "Match localnetwork: bad network '10.0.0.1/8'",
        ),
        ("Match localnetwork 10.0.0.0/8,", "Match localnetwork: bad network ''"),
        ('Match exec "echo %z"', "Match exec: unknown token %z"),
    ],
)
def test_a_match_line_ssh_refuses_is_an_error_naming_the_line(
    tmp_path: Path, line: str, message: str
) -> None:
    with pytest.raises(InventoryError, match=f"config: line 2: {message}"):
        config(tmp_path, f"Host *\n{line}\n  User x\n")
