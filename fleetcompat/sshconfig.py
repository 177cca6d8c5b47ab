"""The part of an OpenSSH client config (~/.ssh/config) a collection run honours.

The file is read once per run into blocks; each host's settings are then resolved
from those blocks the way `ssh` does: blocks apply in file order, the first value
obtained for a keyword wins, and `IdentityFile` accumulates. Honoured keywords:
HostName, User, Port, IdentityFile, ProxyJump. `Host` patterns (`*`, `?`, `!neg`,
lists) and `Match all | host | originalhost | user | localuser` are understood;
a `Match` on anything else (exec, localnetwork, canonical, final, tagged) is taken as
not matching, so its settings are not applied. `Include` is followed, relative to
~/.ssh for relative paths. Settings the inventory gives take precedence, as
options on `ssh`'s command line do.
"""

from __future__ import annotations

import fnmatch
import getpass
import glob
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from fleetcompat.errors import InventoryError

KEYWORDS = {"hostname", "user", "port", "identityfile", "proxyjump"}
MAX_INCLUDE_DEPTH = 16


@dataclass(frozen=True)
class HostConfig:
    """The settings ~/.ssh/config gives one host; None where it says nothing."""

    hostname: str | None = None
    user: str | None = None
    port: int | None = None
    identity_files: tuple[str, ...] = ()
    proxy_jump: str | None = None


@dataclass
class _Block:
    """One `Host` or `Match` block and its settings, in file order."""

    kind: str
    criteria: list[str]
    settings: list[tuple[str, str]] = field(default_factory=list)


class SSHConfig:
    """An OpenSSH client config, parsed once; `resolve` applies it to a host."""

    def __init__(self, blocks: list[_Block] | None = None) -> None:
        self.blocks = blocks or []
        self.local_user = _local_user()

    @classmethod
    def load(cls, path: str | Path | None = None) -> SSHConfig:
        """Read a config file (default ~/.ssh/config); an absent file is empty.

        Raises InventoryError naming the file and line for a line that cannot be
        split into words.
        """
        path = Path(path) if path else Path("~/.ssh/config").expanduser()
        if not path.is_file():
            return cls()
        blocks = [_Block("host", ["*"])]
        _parse(path, blocks, 0)
        return cls(blocks)

    def resolve(self, host: str, user: str | None = None) -> HostConfig:
        """The settings for `host` (the name as given to ssh)."""
        found: dict[str, str] = {}
        identities: list[str] = []
        for block in self.blocks:
            if not self._matches(block, host, found, user):
                continue
            for keyword, value in block.settings:
                if keyword == "identityfile":
                    identities.append(value)
                else:
                    found.setdefault(keyword, value)

        hostname = (
            _expand(found["hostname"], host, host) if "hostname" in found else None
        )
        port = found.get("port")
        final_user = user or found.get("user") or self.local_user
        tokens = {
            "h": hostname or host,
            "n": host,
            "r": final_user,
            "u": self.local_user,
            "p": port or "22",
            "d": str(Path.home()),
        }
        return HostConfig(
            hostname=hostname,
            user=found.get("user"),
            port=int(port) if port and port.isdigit() else None,
            identity_files=tuple(
                str(Path(_tokens(i, tokens)).expanduser()) for i in identities
            ),
            proxy_jump=found.get("proxyjump"),
        )

    def _matches(
        self, block: _Block, host: str, found: dict[str, str], user: str | None
    ) -> bool:
        """Whether a block applies to the host, given what is resolved so far."""
        if block.kind == "host":
            return _pattern_list_matches(block.criteria, host)

        words = list(block.criteria)
        while words:
            criterion = words.pop(0).lower()
            negate = criterion.startswith("!")
            criterion = criterion.lstrip("!")
            if criterion == "all":
                result = True
            elif criterion in ("host", "originalhost", "user", "localuser") and words:
                patterns = words.pop(0).split(",")
                subject = {
                    "host": found.get("hostname", host),
                    "originalhost": host,
                    "user": user or found.get("user") or self.local_user,
                    "localuser": self.local_user,
                }[criterion]
                result = _pattern_list_matches(patterns, subject)
            else:
                return False
            if result == negate:
                return False
        return True


def _parse(path: Path, blocks: list[_Block], depth: int) -> None:
    """Add the blocks of one file (and of files it includes)."""
    if depth > MAX_INCLUDE_DEPTH:
        raise InventoryError(f"{path}: Include nested more than {MAX_INCLUDE_DEPTH}")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror or exc}") from None

    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line.replace("=", " ", 1) if "=" in line else line)
        except ValueError as exc:
            raise InventoryError(f"{path}: line {number}: {exc}") from None
        if not words:
            continue
        keyword, args = words[0].lower(), words[1:]
        if keyword in ("host", "match"):
            blocks.append(_Block(keyword, args))
        elif keyword == "include":
            for pattern in args:
                base = Path(pattern).expanduser()
                if not base.is_absolute():
                    base = Path("~/.ssh").expanduser() / base
                for name in sorted(glob.glob(str(base))):
                    _parse(Path(name), blocks, depth + 1)
        elif keyword in KEYWORDS and args:
            blocks[-1].settings.append((keyword, args[0]))


def _pattern_list_matches(patterns: list[str], subject: str) -> bool:
    """OpenSSH pattern lists: any positive match and no negated one."""
    matched = False
    for item in ",".join(patterns).split(","):
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
