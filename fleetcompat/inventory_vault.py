"""Vaulted inventory variables, decrypted only where fleetcompat reads them.

The inventory reader hands each host's merged variables through a `HostVars`:
a variable fleetcompat uses (a connection variable, a `fleetcompat_` setting,
the SSH password of `PASSWORD_KEYS`) is decrypted when it is `!vault`; every
other variable, such as a database password in a group's vars, stays encrypted
and unread, so a vault password is only needed when a value that matters is
vaulted. An
envelope shared by many hosts (a group variable) is decrypted once.

A value that cannot be decrypted is an InventoryError naming the file, the
line, the host, the group (or host vars) that set it and the variable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from fleetcompat.errors import InventoryError
from fleetcompat.vault import Keyring, vaulted

PASSWORD_KEYS = ("ansible_ssh_password", "ansible_ssh_pass", "ansible_password")
"""The variables a host's SSH password comes from, the first one set winning.

Ansible's ssh plugin lists them the other way round and takes the last one set.
"""


class _Group(Protocol):
    """What HostVars needs of an inventory group: its own variables."""

    vars: dict[str, Any]


class HostVars:
    """One host's variables as fleetcompat reads them: vaulted ones opened on use."""

    def __init__(
        self,
        name: str,
        variables: Mapping[str, Any],
        keyring: Keyring,
        own: Mapping[str, Any],
        groups: Mapping[str, _Group],
        error: Callable[[str, int | None, str], InventoryError],
    ) -> None:
        self.name = name
        self.variables = variables
        self.keyring = keyring
        self.own = own
        self.groups = groups
        self.error = error

    def get(self, key: str) -> Any:
        """A variable's value, decrypted when vaulted; None when unset.

        Raises InventoryError (through `error`, which places it in the file)
        when a vaulted value cannot be decrypted.
        """
        raw = self.variables.get(key)
        sealed = vaulted(raw)
        if sealed is None:
            return raw
        try:
            return self.keyring.decrypt(sealed)
        except InventoryError as exc:
            where = self._origin(key, raw)
            message = f"set in {where}, vaulted: {exc}"
            raise self.error(key, sealed.line, message) from None

    def _origin(self, key: str, raw: Any) -> str:
        """Which group's vars (or the host's own) hold this very value."""
        if self.own.get(key) is raw:
            return f"the vars of host {self.name!r}"
        for name, group in self.groups.items():
            if group.vars.get(key) is raw:
                return f"group {name!r}"
        return f"the vars of host {self.name!r}"
