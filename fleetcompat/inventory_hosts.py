"""The hosts an inventory yields, and picking some of them with `--limit`.

`fleetcompat.inventory` reads an inventory file into an `Inventory`: each host's
connection settings as a `HostSpec`, the groups that name the hosts, and the
hosts whose vaulted values could not be decrypted. A host whose variables need
a vars file vaulted whole is read only when it is selected (or listed), so that
file is decrypted, and a password script run, only for a host that is used.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fleetcompat.errors import InventoryError
from fleetcompat.vault import Secret


@dataclass(frozen=True)
class Endpoint:
    """One SSH endpoint of a jump chain: `[user@]host[:port]`."""

    host: str
    port: int | None = None
    user: str | None = None

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"


@dataclass(frozen=True)
class HostSpec:
    """One host of the inventory, with its resolved connection settings.

    `address` is `ansible_host` or the name; `port`, `user` and `key_file` are None
    when the inventory leaves them to ~/.ssh/config and SSH's defaults. `skip` says
    why the host is left out of collection, or is empty. `password`, when set, is
    tried after the keys (it never prints, and is left out of comparisons).
    """

    name: str
    address: str
    port: int | None = None
    user: str | None = None
    key_file: str | None = None
    jump: tuple[Endpoint, ...] | None = None
    local: bool = False
    groups: tuple[str, ...] = ()
    timeout: float | None = None
    skip: str = ""
    settings: Mapping[str, str] = field(default_factory=dict)
    password: Secret | None = field(default=None, repr=False, compare=False)


HostReading = Callable[[], HostSpec]
"""Reads one host's spec when it is first needed."""


@dataclass(frozen=True)
class Inventory:
    """The hosts of an inventory file and the groups that name them.

    `specs` holds each host, in inventory order: its spec, or how to read it
    when a vars file it needs is vaulted whole, so that the file is decrypted
    (and a password script run) only when the host is selected or listed.
    `sealed` holds the hosts whose vaulted values could not be decrypted, with
    the error: such a host is listed as skipped, and selecting it is an error.
    `locked` holds those whose vars file vaulted whole could not be: listed as
    skipped, and an error only when a `--limit` selects it. Both fill as hosts
    are read.
    """

    source: str
    specs: dict[str, HostSpec | HostReading]
    groups: Mapping[str, tuple[str, ...]]
    sealed: Mapping[str, str] = field(default_factory=dict)
    locked: Mapping[str, str] = field(default_factory=dict)

    @property
    def hosts(self) -> tuple[HostSpec, ...]:
        """Every host's spec, in inventory order (every vaulted vars file opened)."""
        return tuple(self._read(name) for name in self.specs)

    def host(self, name: str) -> HostSpec:
        """One host by name; KeyError when absent."""
        if name not in self.specs:
            raise KeyError(name)
        return self._read(name)

    def _read(self, name: str) -> HostSpec:
        """A host's spec, read now when it was left until needed."""
        entry = self.specs[name]
        if not isinstance(entry, HostSpec):
            entry = self.specs[name] = entry()
        return entry

    def select(self, pattern: str | None) -> list[HostSpec]:
        """The hosts an Ansible-like `--limit` pattern picks, in inventory order.

        Terms are separated by commas (or colons); each names a host or a group,
        may use shell globs, `~regex`, and a leading `!` (exclude) or `&`
        (intersect). Only the hosts selected are read (see `specs`). Raises
        InventoryError when a term, or the whole pattern, matches nothing, when
        a host selected has a vaulted value that could not be decrypted, or
        when the pattern picks a host whose vaulted vars file could not be.
        """
        if not pattern or pattern.strip() in ("all", "*"):
            return self._opened(list(self.specs), limited=False)

        chosen: set[str] = set()
        include = [t for t in _terms(pattern) if t[0] not in "!&"]
        if not include:
            chosen = set(self.specs)
        for term in include:
            chosen |= self._match(term, pattern)
        for term in _terms(pattern):
            if term[0] == "&":
                chosen &= self._match(term[1:], pattern)
            elif term[0] == "!":
                chosen -= self._match(term[1:], pattern)
        if not chosen:
            raise InventoryError(f"--limit {pattern}: selects no host of {self.source}")
        return self._opened([n for n in self.specs if n in chosen], limited=True)

    def _opened(self, names: list[str], limited: bool) -> list[HostSpec]:
        """The hosts read, unless one holds a vaulted value not decrypted (the error).

        A host whose vaulted vars file could not be decrypted is an error only
        when `limited` (a `--limit` picked it); otherwise it stays, skipped.
        """
        hosts = [self._read(name) for name in names]
        for spec in hosts:
            if spec.name in self.sealed:
                raise InventoryError(self.sealed[spec.name])
            if limited and spec.name in self.locked:
                raise InventoryError(self.locked[spec.name])
        return hosts

    def _match(self, term: str, pattern: str) -> set[str]:
        """Host names one term matches, by host name or group name."""
        regex = None
        if term.startswith("~"):
            try:
                regex = re.compile(term[1:])
            except re.error as exc:
                raise InventoryError(f"--limit {pattern}: {term}: {exc}") from None

        def hit(name: str) -> bool:
            if regex is not None:
                return regex.match(name) is not None
            return fnmatch.fnmatchcase(name, term)

        found = {name for name in self.specs if hit(name)}
        for group, members in self.groups.items():
            if hit(group):
                found.update(members)
        if not found:
            raise InventoryError(
                f"--limit {pattern}: {term!r} matches no host or group of {self.source}"
            )
        return found


def _terms(pattern: str) -> list[str]:
    """The terms of a limit pattern; colons separate only when not an IPv6 address."""
    terms: list[str] = []
    for part in pattern.split(","):
        part = part.strip()
        pieces = part.split(":") if part.count(":") == 1 else [part]
        terms.extend(p.strip() for p in pieces if p.strip())
    return terms
