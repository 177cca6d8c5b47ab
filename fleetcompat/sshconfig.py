"""The part of an OpenSSH client config (~/.ssh/config) a collection run honours.

The file is read once per run into blocks; each host's settings are then resolved
from those blocks the way `ssh` (OpenSSH 9.x) does: blocks apply in file order, the
first value obtained for a keyword wins, and `IdentityFile` accumulates. Honoured
keywords: HostName, User, Port, IdentityFile, ProxyJump, and, for `Match`, Tag,
HostKeyAlias and CanonicalizeHostname. `Include` is followed, relative to ~/.ssh for
relative paths. Settings the inventory gives take precedence, as options on `ssh`'s
command line do.

`Host` patterns (`*`, `?`, `!neg`, lists) and every `Match` criterion of OpenSSH 9
are understood, each negatable with `!`:

- `all`, `host`, `originalhost`, `user`, `localuser`: as ssh matches them.
- `exec "command"`: the command, its %-tokens expanded as ssh expands them there
  (`%% %C %L %d %h %i %j %k %l %n %p %r %u`), runs with `$SHELL -c` (else
  `/bin/sh -c`) and matches when it exits 0. Unlike ssh, it is given
  `EXEC_TIMEOUT` seconds; one that runs longer, or is killed by a signal, is taken
  as not matching and logged. Its result is kept for the run per (command, host),
  so a host's many look-ups run it once. Like ssh, the expanded values are not
  shell-quoted: a config author who writes `%h` gets the name as is. Since the
  names come from the inventory, a command is never run with a host name (`%h %n
  %k`) or an inventory user name (`%r`) holding characters ssh refuses on its own
  command line (quotes, `$`, `;`, `&`, `|`, `<>`, `()`, `{}`, backslash, blanks, a
  leading `-`): that is an InventoryError naming the host, so an inventory value
  never reaches a shell other than as the config's author placed it.
- `localnetwork CIDR,...`: matches when an address of an up interface of this
  machine is in one of the networks (read with getifaddrs, as ssh does).
- `tagged PATTERN`: against the `Tag` set so far; none set is the empty tag.
- `canonical`, `final`: fleetcompat never rewrites a name through DNS. As ssh with
  `CanonicalizeHostname no` does, a config holding a `Match final` is read a
  second time for a host, with the name HostName resolved to (and it is read so
  when the config sets `CanonicalizeHostname yes|always`, as though the look-up
  had fallen back to the name as given). Both criteria match only in that second
  reading, which adds settings but never replaces those of the first.

A `Match` that ssh would refuse (an unknown criterion, a criterion without its
argument, `all` combined, a bad network, an unknown %-token in `exec`) is an
InventoryError naming the file and line when the file is loaded.
"""

from __future__ import annotations

import ctypes
import fnmatch
import getpass
import glob
import hashlib
import ipaddress
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fleetcompat.errors import InventoryError

log = logging.getLogger(__name__)

KEYWORDS = {"hostname", "user", "port", "identityfile", "proxyjump"}
MATCH_KEYWORDS = {"tag", "hostkeyalias", "canonicalizehostname"}
MAX_INCLUDE_DEPTH = 16
EXEC_TIMEOUT = 10.0
"""Seconds a `Match exec` command may run before it is taken as not matching."""

CRITERIA_WITH_ARGUMENT = {
    "host",
    "originalhost",
    "user",
    "localuser",
    "localnetwork",
    "tagged",
    "exec",
}
EXEC_TOKENS = set("CLdhijklnpru")
UNSAFE_HOST = set("'`\"$\\;&<>|(){}")
UNSAFE_USER = set("'`\";&<>|(){}")


@dataclass(frozen=True)
class HostConfig:
    """The settings ~/.ssh/config gives one host; None where it says nothing."""

    hostname: str | None = None
    user: str | None = None
    port: int | None = None
    identity_files: tuple[str, ...] = ()
    proxy_jump: str | None = None


@dataclass(frozen=True)
class _Criterion:
    """One `Match` criterion: its name, argument (if any) and negation."""

    name: str
    argument: str | None
    negate: bool


@dataclass
class _Block:
    """One `Host` or `Match` block and its settings, in file order."""

    kind: str
    criteria: list[str]
    settings: list[tuple[str, str]] = field(default_factory=list)
    where: str = ""
    match: list[_Criterion] = field(default_factory=list)


@dataclass
class _Pass:
    """One reading of the config for one host: what it has set so far."""

    host: str
    user: str | None
    port: int | None
    final: bool
    found: dict[str, str] = field(default_factory=dict)
    identities: list[str] = field(default_factory=list)

    def hostname(self) -> str:
        """The name ssh would connect to as things stand (HostName, %h expanded)."""
        if self.final or "hostname" not in self.found:
            return self.found.get("hostname", self.host)
        return _expand(self.found["hostname"], self.host, self.host)


class SSHConfig:
    """An OpenSSH client config, parsed once; `resolve` applies it to a host."""

    def __init__(
        self, blocks: list[_Block] | None = None, exec_timeout: float = EXEC_TIMEOUT
    ) -> None:
        self.blocks = blocks or []
        self.local_user = _local_user()
        self.exec_timeout = exec_timeout
        self.wants_final = any(c.name == "final" for b in self.blocks for c in b.match)
        self._exec_results: dict[tuple[str, str], bool] = {}
        self._resolved: dict[tuple[str, str | None, int | None], HostConfig] = {}
        self._local_addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
        self._local_addresses = []
        self._addresses_read = False

    @classmethod
    def load(
        cls, path: str | Path | None = None, exec_timeout: float = EXEC_TIMEOUT
    ) -> SSHConfig:
        """Read a config file (default ~/.ssh/config); an absent file is empty.

        Raises InventoryError naming the file and line for a line that cannot be
        split into words, and for a `Match` line ssh would refuse.
        """
        path = Path(path) if path else Path("~/.ssh/config").expanduser()
        if not path.is_file():
            return cls(exec_timeout=exec_timeout)
        blocks = [_Block("host", ["*"])]
        _parse(path, blocks, 0)
        return cls(blocks, exec_timeout)

    def resolve(
        self, host: str, user: str | None = None, port: int | None = None
    ) -> HostConfig:
        """The settings for `host` (the name as given to ssh).

        `user` and `port` are the inventory's, as `-l` and `-p` are to ssh: what
        `Match user` and the `%r` and `%p` of `Match exec` see. Raises
        InventoryError when a `Match exec` would put a host or user name that ssh
        refuses into a shell command. A host is resolved once per run (the
        collector asks several times: for its keys, its jump host, its target).
        """
        key = (host, user, port)
        if key not in self._resolved:
            self._resolved[key] = self._resolve(host, user, port)
        return self._resolved[key]

    def _resolve(self, host: str, user: str | None, port: int | None) -> HostConfig:
        """`resolve`, uncached: read the config for one host."""
        first = _Pass(host, user, port, final=False)
        self._read(first)

        found, identities = first.found, first.identities
        canonicalize = found.get("canonicalizehostname", "no").lower()
        if self.wants_final or canonicalize not in ("no", "false"):
            final = _Pass(host, user, port, final=True, identities=identities)
            final.found = dict(found, hostname=first.hostname())
            self._read(final)
            found = final.found
            if "hostname" not in first.found:
                del found["hostname"]  # the name as given: HostName said nothing

        hostname = (
            _expand(found["hostname"], host, host) if "hostname" in found else None
        )
        config_port = found.get("port")
        final_user = user or found.get("user") or self.local_user
        tokens = {
            "h": hostname or host,
            "n": host,
            "r": final_user,
            "u": self.local_user,
            "p": str(port or config_port or 22),
            "d": str(Path.home()),
        }
        return HostConfig(
            hostname=hostname,
            user=found.get("user"),
            port=int(config_port) if config_port and config_port.isdigit() else None,
            identity_files=tuple(
                str(Path(_tokens(i, tokens)).expanduser()) for i in identities
            ),
            proxy_jump=found.get("proxyjump"),
        )

    def _read(self, state: _Pass) -> None:
        """Apply every block that matches, in file order, to one reading."""
        for block in self.blocks:
            if not self._matches(block, state):
                continue
            for keyword, value in block.settings:
                if keyword != "identityfile":
                    state.found.setdefault(keyword, value)
                elif value not in state.identities:
                    state.identities.append(value)

    def _matches(self, block: _Block, state: _Pass) -> bool:
        """Whether a block applies to the host, given what is resolved so far."""
        if block.kind == "host":
            return _pattern_list_matches(block.criteria, state.host)

        result = True
        for criterion in block.match:
            if criterion.name == "all":
                return result and not criterion.negate
            if criterion.name == "exec" and not result:
                continue  # as ssh: no command runs once the block cannot match
            if self._criterion(criterion, state, block.where) == criterion.negate:
                result = False
        return result

    def _criterion(self, criterion: _Criterion, state: _Pass, where: str) -> bool:
        """Whether one criterion (before its negation) holds for this reading."""
        name, argument = criterion.name, criterion.argument or ""
        if name in ("canonical", "final"):
            return state.final
        if name == "host":
            return _pattern_list_matches([argument], state.hostname(), fold=True)
        if name == "originalhost":
            return _pattern_list_matches([argument], state.host, fold=True)
        if name == "user":
            ruser = state.user or state.found.get("user") or self.local_user
            return _pattern_list_matches([argument], ruser)
        if name == "localuser":
            return _pattern_list_matches([argument], self.local_user)
        if name == "localnetwork":
            return self._on_local_network(argument)
        if name == "tagged":
            return _pattern_list_matches([argument], state.found.get("tag", ""))
        if name == "exec":
            return self._exec(argument, state, where)
        return False  # a criterion of a later OpenSSH: see _match_criteria

    def _exec(self, command: str, state: _Pass, where: str) -> bool:
        """Whether a `Match exec` command exits 0; run once per command and host."""
        _check_names(command, state, where)
        expanded = _tokens(command, self._exec_tokens(state))
        key = (expanded, state.host)
        if key not in self._exec_results:
            self._exec_results[key] = self._run(expanded, state.host, where)
        return self._exec_results[key]

    def _exec_tokens(self, state: _Pass) -> dict[str, str]:
        """The %-tokens of `Match exec`, with the values ssh would give them."""
        host = state.hostname()
        port = str(state.port or state.found.get("port") or 22)
        ruser = state.user or state.found.get("user") or self.local_user
        jump = state.found.get("proxyjump", "")
        jump = "" if jump.lower() == "none" else _jump_host(jump)
        this = socket.gethostname()
        digest = hashlib.sha1(f"{this}{host}{port}{ruser}{jump}".encode())
        return {
            "C": digest.hexdigest(),
            "L": this.split(".")[0],
            "d": str(Path.home()),
            "h": host,
            "i": str(os.getuid()),
            "j": jump,
            "k": state.found.get("hostkeyalias", host),
            "l": this,
            "n": state.host,
            "p": port,
            "r": ruser,
            "u": self.local_user,
        }

    def _run(self, command: str, host: str, where: str) -> bool:
        """Run one expanded command in the user's shell; True when it exits 0."""
        shell = os.environ.get("SHELL") or "/bin/sh"
        if not os.access(shell, os.X_OK):
            raise InventoryError(f"{where}: Match exec: shell {shell} not executable")
        log.debug("host=%s %s: Match exec %s", host, where, command)

        process = subprocess.Popen(
            [shell, "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = process.communicate(timeout=self.exec_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            log.warning(
                "host=%s %s: Match exec %s did not finish within %gs; not matching",
                host,
                where,
                command,
                self.exec_timeout,
            )
            return False

        if stderr:
            text = stderr[:400].decode(errors="replace").strip()
            log.debug("host=%s %s: Match exec stderr: %s", host, where, text)
        if process.returncode < 0:
            log.warning(
                "host=%s %s: Match exec %s killed by signal %d; not matching",
                host,
                where,
                command,
                -process.returncode,
            )
        return process.returncode == 0

    def _on_local_network(self, networks: str) -> bool:
        """Whether an address of an up interface here is in one of the networks."""
        if not self._addresses_read:
            self._local_addresses = _interface_addresses()
            self._addresses_read = True
        parsed = [ipaddress.ip_network(n) for n in networks.split(",")]
        return any(a in n for a in self._local_addresses for n in parsed)


def _parse(path: Path, blocks: list[_Block], depth: int) -> None:
    """Add the blocks of one file (and of files it includes)."""
    if depth > MAX_INCLUDE_DEPTH:
        raise InventoryError(f"{path}: Include nested more than {MAX_INCLUDE_DEPTH}")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror or exc}") from None

    for number, line in enumerate(lines, 1):
        where = f"{path}: line {number}"
        words = _split(line, where)
        if not words:
            continue
        keyword, args = words[0].lower(), words[1:]
        if keyword == "host":
            blocks.append(_Block(keyword, args, where=where))
        elif keyword == "match":
            blocks.append(_Block(keyword, args, where=where))
            blocks[-1].match = _match_criteria(args, where)
        elif keyword == "include":
            for pattern in args:
                base = Path(pattern).expanduser()
                if not base.is_absolute():
                    base = Path("~/.ssh").expanduser() / base
                for name in sorted(glob.glob(str(base))):
                    _parse(Path(name), blocks, depth + 1)
        elif (keyword in KEYWORDS or keyword in MATCH_KEYWORDS) and args:
            blocks[-1].settings.append((keyword, args[0]))


def _split(line: str, where: str) -> list[str]:
    """A line's keyword and arguments; the keyword may be followed by `=`."""
    line = line.strip()
    if not line or line.startswith("#"):
        return []
    head = re.match(r"([^\s=]+)\s*(?:=\s*)?(.*)", line)
    assert head is not None  # a stripped, non-empty line has a first word
    try:
        return [head.group(1), *shlex.split(head.group(2))]
    except ValueError as exc:
        raise InventoryError(f"{where}: {exc}") from None


def _match_criteria(words: list[str], where: str) -> list[_Criterion]:
    """A `Match` line's criteria, checked as ssh checks them.

    `version`, `command` and `sessiontype` (OpenSSH 10) are kept as criteria that
    never hold, so a block using them does not apply (or, negated, does).
    """
    criteria: list[_Criterion] = []
    queue = list(words)
    while queue and not queue[0].startswith("#"):
        word = queue.pop(0)
        negate = word.startswith("!")
        name, equals, argument = word[negate:].partition("=")
        name = name.lower()
        if name == "all":
            if len(criteria) > 1 or (queue and not queue[0].startswith("#")):
                raise InventoryError(f"{where}: Match all cannot be combined")
            criteria.append(_Criterion(name, None, negate))
            break
        if name in ("canonical", "final"):
            criteria.append(_Criterion(name, None, negate))
            continue
        if name not in CRITERIA_WITH_ARGUMENT | {"version", "command", "sessiontype"}:
            raise InventoryError(f"{where}: unsupported Match criterion {name!r}")
        if not equals:
            argument = queue.pop(0) if queue else ""
        if not argument or argument.startswith("#"):
            raise InventoryError(f"{where}: Match {name} needs an argument")
        _check_argument(name, argument, where)
        criteria.append(_Criterion(name, argument, negate))
    if not criteria:
        raise InventoryError(f"{where}: Match needs at least one criterion")
    return criteria


def _check_argument(name: str, argument: str, where: str) -> None:
    """Refuse what ssh refuses when it reads a network list or an exec command."""
    if name == "localnetwork":
        for entry in argument.split(","):
            try:
                ipaddress.ip_network(entry)
            except ValueError:
                raise InventoryError(
                    f"{where}: Match localnetwork: bad network {entry!r}"
                ) from None
    if name == "exec":
        for token in re.findall(r"%(.?)", argument):
            if token != "%" and token not in EXEC_TOKENS:
                raise InventoryError(
                    f"{where}: Match exec: unknown token %{token} in {argument!r}"
                )


def _check_names(command: str, state: _Pass, where: str) -> None:
    """Refuse to put an inventory name ssh would refuse into a shell command."""
    tokens = set(re.findall(r"%(.)", command.replace("%%", "")))
    if tokens & set("hnk") and not _safe(state.host, UNSAFE_HOST):
        raise InventoryError(
            f"host {state.host!r}: {where}: Match exec would pass a host name with "
            "shell characters to the shell (ssh refuses such names)"
        )
    if "r" in tokens and state.user and not _safe(state.user, UNSAFE_USER):
        raise InventoryError(
            f"host {state.host!r}: {where}: Match exec would pass user "
            f"{state.user!r}, with shell characters, to the shell"
        )


def _safe(name: str, unsafe: set[str]) -> bool:
    """Whether a name passes ssh's own check of a command-line host or user."""
    if name.startswith("-") or any(c in unsafe for c in name):
        return False
    return not any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in name)


def _jump_host(jump: str) -> str:
    """The host of the last hop of a ProxyJump value, as ssh's %j gives it."""
    last = jump.split(",")[-1]
    host = last.rpartition("@")[2]
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.partition(":")[0]


def _pattern_list_matches(
    patterns: list[str], subject: str, fold: bool = False
) -> bool:
    """OpenSSH pattern lists: any positive match and no negated one."""
    if fold:
        subject = subject.lower()
    matched = False
    for item in ",".join(patterns).split(","):
        if fold:
            item = item.lower()
        if not item:
            continue
        if item.startswith("!"):
            if fnmatch.fnmatchcase(subject, item[1:]):
                return False
        elif fnmatch.fnmatchcase(subject, item):
            matched = True
    return matched


def _expand(value: str, host: str, original: str) -> str:
    """HostName's tokens: %h (the host as given) and %%."""
    return _tokens(value, {"h": host, "n": original})


def _tokens(value: str, tokens: dict[str, str]) -> str:
    """Expand %x tokens that are known; leave others as written."""
    out = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == "%" and i + 1 < len(value):
            key = value[i + 1]
            out.append("%" if key == "%" else tokens.get(key, "%" + key))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _local_user() -> str:
    """The local user name, as ssh defaults the remote one."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "root")


class _Ifaddrs(ctypes.Structure):
    """struct ifaddrs, as getifaddrs(3) returns it."""


_Ifaddrs._fields_ = [
    ("next", ctypes.POINTER(_Ifaddrs)),
    ("name", ctypes.c_char_p),
    ("flags", ctypes.c_uint),
    ("addr", ctypes.c_void_p),
    ("netmask", ctypes.c_void_p),
    ("broadaddr", ctypes.c_void_p),
    ("data", ctypes.c_void_p),
]
IFF_UP = 0x1


def _interface_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The IPv4 and IPv6 addresses of this machine's up interfaces.

    getifaddrs(3) through ctypes, the call ssh makes: it sees every address
    (secondary ones and IPv6 too). Where it cannot be called, there are none,
    as ssh has none where getifaddrs is missing.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        getifaddrs, freeifaddrs = libc.getifaddrs, libc.freeifaddrs
    except (OSError, AttributeError) as exc:
        log.debug("Match localnetwork: no getifaddrs here: %s", exc)
        return []
    head = ctypes.POINTER(_Ifaddrs)()
    if getifaddrs(ctypes.byref(head)) != 0:
        log.debug("Match localnetwork: getifaddrs: errno %d", ctypes.get_errno())
        return []

    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    try:
        entry = head
        while entry:
            item = entry.contents
            if item.addr and item.flags & IFF_UP:
                address = _sockaddr_address(item.addr)
                if address is not None:
                    addresses.append(address)
            entry = item.next
    finally:
        freeifaddrs(head)
    return addresses


def _sockaddr_address(
    pointer: int,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in a struct sockaddr, for IPv4 and IPv6; None for others."""
    head = ctypes.string_at(pointer, 2)
    if sys.platform.startswith("linux"):
        family = int.from_bytes(head, sys.byteorder)
    else:
        family = head[1]  # BSD and macOS: a length byte, then the family byte
    if family == socket.AF_INET:
        return ipaddress.IPv4Address(ctypes.string_at(pointer, 8)[4:8])
    if family == socket.AF_INET6:
        return ipaddress.IPv6Address(ctypes.string_at(pointer, 24)[8:24])
    return None
