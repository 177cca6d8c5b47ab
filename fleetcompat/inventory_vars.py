"""`group_vars/` and `host_vars/` beside an inventory, and the order variables merge in.

Ansible reads variables for a group from `group_vars/<group>` beside the
inventory file, and for a host from `host_vars/<host>`: the first of `<name>`,
`<name>.yml`, `<name>.yaml`, `<name>.json` that exists, where a directory of
that name means every file in it and its subdirectories (in lexical order,
leaving out hidden files, backups ending in `~`, and files with another
extension), merged in that order. Empty files are skipped. A file encrypted
whole with Ansible Vault is decrypted only when a host that needs it is read
(`vaulted_files` lists those a host needs, decrypting none); `!vault`
values in a file are decrypted only when fleetcompat reads them (a connection
variable, a `fleetcompat_` setting, the SSH password), as in the inventory
itself. The directories beside
a playbook, which Ansible also reads, are not: fleetcompat has no playbook.

A host's variables are merged, later winning, in Ansible's order of precedence
for inventory variables:

0. the connection defaults of ansible.cfg and the environment (below all);
1. the inventory file's group variables: `all`, then the other groups from
   the shallowest to the deepest (by `ansible_group_priority`, then name);
2. `group_vars/all`;
3. `group_vars/<group>`, for the host's other groups in that same order
   (`ungrouped` for a host in no group);
4. the inventory file's host variables;
5. `host_vars/<host>`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetcompat.documents import MAX_DOCUMENT_BYTES, InventoryLoader, parse_text
from fleetcompat.errors import InputError, InventoryError
from fleetcompat.vault import HEADER, Keyring, Vaulted

log = logging.getLogger(__name__)

EXTENSIONS = (".yml", ".yaml", ".json")
"""The extensions a vars file may have (or none), as Ansible's defaults."""


class VaultedFileError(InventoryError):
    """A vars file encrypted whole that could not be decrypted."""


@dataclass(frozen=True, repr=False)
class FileVaulted(Vaulted):
    """A `!vault` value of a vars file, which knows the file it is written in."""

    path: str = ""


class VarsDirectories:
    """The `group_vars/` and `host_vars/` of one directory; each file read once."""

    def __init__(self, base: Path, vault: Keyring) -> None:
        self.base = base
        self.vault = vault
        self._merged: dict[tuple[str, str], dict[str, Any] | InventoryError] = {}
        self._present: dict[str, bool] = {}
        self._texts: dict[Path, str] = {}
        self.failed: dict[str, InventoryError] = {}
        """Vaulted values that could not be decrypted, by envelope (tried once)."""

    def group(self, name: str) -> dict[str, Any]:
        """The variables `group_vars/<name>` gives (empty when none)."""
        return self._entity("group_vars", name)

    def host(self, name: str) -> dict[str, Any]:
        """The variables `host_vars/<name>` gives (empty when none)."""
        return self._entity("host_vars", name)

    def _entity(self, subdir: str, name: str) -> dict[str, Any]:
        """One group's or host's files, merged in order; cached.

        Raises InventoryError when a file cannot be read; a `VaultedFileError`
        when the failure is a whole-file vault that could not be decrypted.
        """
        key = (subdir, name)
        if key not in self._merged:
            merged: dict[str, Any] = {}
            try:
                for path in self.files(subdir, name):
                    merged.update(self._load(path))
            except VaultedFileError as exc:
                self._merged[key] = exc
                raise
            self._merged[key] = merged
        found = self._merged[key]
        if isinstance(found, InventoryError):
            raise found
        return found

    def files(self, subdir: str, name: str) -> list[Path]:
        """The files Ansible reads for `name` in `subdir`, in merge order."""
        if not name or name.startswith(os.sep) or not self._has(subdir):
            return []
        stem = self.base / subdir / name
        for candidate in [stem, *(stem.parent / (stem.name + e) for e in EXTENSIONS)]:
            if candidate.is_dir():
                return _directory_files(candidate)
            if candidate.exists():
                return [candidate]
        return []

    def _has(self, subdir: str) -> bool:
        """Whether `subdir` is a directory beside the inventory (warned once if not)."""
        if subdir not in self._present:
            path = self.base / subdir
            self._present[subdir] = path.is_dir()
            if path.exists() and not path.is_dir():
                log.warning("%s is not a directory; its variables are not read", path)
        return self._present[subdir]

    def is_vaulted(self, path: Path) -> bool:
        """Whether a vars file is encrypted whole (it is read, not decrypted)."""
        return self._text(path).lstrip().startswith(HEADER + ";")

    def _text(self, path: Path) -> str:
        """A vars file's text as stored; read once.

        Raises InventoryError naming the file when it cannot be read as UTF-8.
        """
        if path not in self._texts:
            try:
                with path.open("rb") as stream:
                    raw = stream.read(MAX_DOCUMENT_BYTES + 1)
            except OSError as exc:
                raise InventoryError(
                    f"{path}: cannot read: {exc.strerror or exc}"
                ) from None
            try:
                self._texts[path] = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InventoryError(f"{path}: not UTF-8 text ({exc.reason})") from None
        return self._texts[path]

    def _load(self, path: Path) -> dict[str, Any]:
        """One vars file's mapping (decrypted when vaulted whole); {} when empty.

        Raises InventoryError naming the file (and the line) when it cannot be
        read, decrypted or parsed, or is not a mapping of variables.
        """
        text = self._text(path)
        if self.is_vaulted(path):
            try:
                text = self.vault.decrypt(Vaulted(text.strip()))
            except InventoryError as exc:
                raise VaultedFileError(f"{path}: vaulted file: {exc}") from None

        try:
            data = parse_text(text, str(path), InventoryLoader)
        except InventoryError:
            raise
        except InputError as exc:
            raise InventoryError(str(exc)) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise InventoryError(
                f"{path}: a vars file must be a mapping of variable names to "
                f"values, not a {type(data).__name__}"
            )
        return {str(k): _sourced(v, path) for k, v in data.items()}


def _directory_files(directory: Path) -> list[Path]:
    """A vars directory's files, depth first in lexical order, as Ansible lists them."""
    found: list[Path] = []
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        if entry.is_dir() and not entry.suffix:
            found.extend(_directory_files(entry))
        elif entry.is_file() and (not entry.suffix or entry.suffix in EXTENSIONS):
            found.append(entry)
    return found


def _sourced(value: Any, path: Path) -> Any:
    """A `!vault` value marked with its file, so an error can name it."""
    if type(value) is Vaulted:
        return FileVaulted(value.envelope, value.line, str(path))
    return value


Seal = Callable[[str, InventoryError], InventoryError]
"""Records that a host's vaulted value could not be decrypted; returns the error."""


class HostVariables(dict[str, Any]):
    """One host's merged variables; vaulted values of vars files decrypted on read.

    `get` and `[]` return the plaintext of a `!vault` value that came from a
    group_vars/host_vars file, and raise InventoryError naming that file, its
    line, the host and the variable (through `seal`) when it cannot be
    decrypted. Iterating leaves such values encrypted.
    """

    def __init__(self, host: str, directories: VarsDirectories, seal: Seal) -> None:
        super().__init__()
        self.host = host
        self.directories = directories
        self.seal = seal

    def get(self, key: str, default: Any = None) -> Any:
        """The value of `key` (decrypted when a vars file vaulted it), or default."""
        if key not in self:
            return default
        return self[key]

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if not isinstance(value, FileVaulted):
            return value
        problem = self.directories.failed.get(value.envelope)
        if problem is None:
            try:
                return self.directories.vault.decrypt(value)
            except InventoryError as exc:
                problem = self.directories.failed[value.envelope] = exc
        line = f"line {value.line}: " if value.line else ""
        error = InventoryError(
            f"{value.path}: {line}host {self.host!r}: {key}: vaulted: {problem}"
        )
        raise self.seal(self.host, error)


@dataclass(frozen=True)
class VariableLayers:
    """What a host's variables are merged from besides the inventory file itself."""

    defaults: Mapping[str, Any] = field(default_factory=dict)
    directories: VarsDirectories | None = None


def merge_host_variables(
    host: str,
    groups: Sequence[tuple[str, Mapping[str, Any]]],
    own: Mapping[str, Any],
    layers: VariableLayers | None,
    seal: Seal,
) -> dict[str, Any]:
    """A host's variables, merged in Ansible's order (see the module docstring).

    `groups` are the host's groups with their inventory-file variables, in
    precedence order (`all` first); `own` is the host's inventory-file vars.
    Without `layers` only the inventory file's variables are merged. Raises
    InventoryError when a vars file cannot be read; `VaultedFileError` when it
    is a file vaulted whole that cannot be decrypted (only this host is lost).
    `seal` is called when a `!vault` value of a vars file is read and cannot be.
    """
    merged: dict[str, Any] = {}
    directories = layers.directories if layers is not None else None
    if directories is not None:
        merged = HostVariables(host, directories, seal)
    if layers is not None:
        merged.update(layers.defaults)
    for _, variables in groups:
        merged.update(variables)
    if directories is not None:
        for name in _group_files(groups):
            merged.update(directories.group(name))
    merged.update(own)
    if directories is not None:
        merged.update(directories.host(host))
    return merged


def vaulted_files(
    host: str,
    groups: Sequence[tuple[str, Mapping[str, Any]]],
    layers: VariableLayers | None,
) -> list[Path]:
    """The vars files vaulted whole that a host's variables merge from.

    Nothing is decrypted: a host that needs none of them can be read at once,
    and one that does only when it is selected. Raises InventoryError when one
    of the host's vars files cannot be read.
    """
    directories = layers.directories if layers is not None else None
    if directories is None:
        return []
    files = [
        path
        for name in _group_files(groups)
        for path in directories.files("group_vars", name)
    ]
    files.extend(directories.files("host_vars", host))
    return [path for path in files if directories.is_vaulted(path)]


def _group_files(groups: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The group_vars names a host reads, in merge order (`all` first)."""
    names = [name for name, _ in groups if name != "all"] or ["ungrouped"]
    return ["all", *names]
