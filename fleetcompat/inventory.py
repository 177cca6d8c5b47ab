"""Ansible inventories, read into the hosts a collection run contacts.

Two shapes are read, by one parser: the YAML inventory Ansible users write (`all`,
groups with `hosts`, `vars` and `children`, nested to any depth, host ranges such as
`web[01:20].example.com`) and the JSON that `ansible-inventory --list` or a dynamic
inventory script prints (groups with host lists and `_meta.hostvars`). An INI
inventory is turned into the same shape first (`fleetcompat.inventory_ini`).

Variables follow Ansible's precedence: `all`'s vars, then other groups' vars from the
shallowest to the deepest group (by `ansible_group_priority`, then name, on a tie),
then host vars; `load_inventory` adds ansible.cfg's defaults below them and the
`group_vars/` and `host_vars/` beside the file in between
(`fleetcompat.inventory_vars`). Of Ansible's connection variables these are
honoured: `ansible_host`, `ansible_port`, `ansible_user`,
`ansible_private_key_file`, each also by its older name (`ansible_ssh_host`,
`ansible_ssh_port`, `ansible_ssh_user`, `ansible_ssh_private_key_file`), which
wins whenever both are set, wherever each was set (Ansible's ssh plugin takes
the last name of its list that has a value, whatever the precedence of the
places the two came from); `ansible_connection` (`ssh` or `local`), and in
`ansible_ssh_args`, `ansible_ssh_common_args` and `ansible_ssh_extra_args` the
options `-o ProxyJump=`, `-J`, `-p`, `-l`, `-i`, `-o Port/User/IdentityFile=` and
a `ProxyCommand` of the form `ssh -W %h:%p bastion`.
Our own settings carry a `fleetcompat_` prefix (see `SETTINGS`). What is read
comes out as an `Inventory` of `HostSpec`s (`fleetcompat.inventory_hosts`).

The SSH password comes from `ansible_password` (or `ansible_ssh_pass`) and is
held as a `Secret`, which never prints. `!vault` values (and the
`{"__ansible_vault": ...}` of `ansible-inventory --list`) are decrypted only in the
variables fleetcompat reads, with the vault passwords of a `Keyring`; see
`fleetcompat.inventory_vault`. Jinja templates in values are not evaluated: a
template in a connection variable makes the inventory invalid, so a host is never
contacted at a half-rendered address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetcompat.ansiblecfg import load_ansible_config
from fleetcompat.documents import MAX_DOCUMENT_BYTES
from fleetcompat.errors import InventoryError
from fleetcompat.inventory_hosts import Endpoint as Endpoint
from fleetcompat.inventory_hosts import HostReading
from fleetcompat.inventory_hosts import HostSpec as HostSpec
from fleetcompat.inventory_hosts import Inventory as Inventory
from fleetcompat.inventory_ini import parse_inventory_data
from fleetcompat.inventory_syntax import expand_hosts, ssh_args
from fleetcompat.inventory_vars import (
    VariableLayers,
    VarsDirectories,
    VaultedFileError,
    merge_host_variables,
    vaulted_files,
)
from fleetcompat.inventory_vault import PASSWORD_KEYS, HostVars
from fleetcompat.vault import Keyring, Secret, vaulted

SETTINGS = {
    "fleetcompat_jump": "jump host chain, [user@]host[:port][,...]; 'none' for none",
    "fleetcompat_timeout": "per-host deadline in seconds (connect, auth and probe)",
    "fleetcompat_skip": "true to leave the host out of collection",
    "fleetcompat_jump_concurrency": "most hosts tunnelled at once through a bastion",
    "fleetcompat_probe_root": "directory on the host the probe reads instead of /",
}
"""Our own host variables and what each means."""

GROUP_KEYS = {"hosts", "vars", "children"}
CONNECTIONS = {"ssh", "smart", "paramiko", "local"}


@dataclass
class _Group:
    """A group while the inventory is read."""

    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: set[str] = field(default_factory=set)


class _Reader:
    """Reads one parsed inventory document into groups and host variables."""

    def __init__(
        self, data: Any, source: str, text: str | bytes, vault: Keyring
    ) -> None:
        self.source = source
        self.text = text
        self.vault = vault
        self.groups: dict[str, _Group] = {"all": _Group("all")}
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.sealed: dict[str, str] = {}
        # `ansible-inventory --list` JSON (it always has _meta) lists a group's
        # hosts; Ansible's YAML inventory refuses a list there.
        self.listing = isinstance(data, dict) and "_meta" in data
        self._read(data)

    def seal(self, host: str, error: InventoryError) -> InventoryError:
        """Record that a host's vaulted value could not be decrypted; the error."""
        self.sealed[host] = str(error)
        return error

    def error(self, path: Iterable[str | int], message: str) -> InventoryError:
        """An InventoryError naming the file and, when found, the line of `path`."""
        line = _line_of(self.text, list(path))
        where = f"line {line}: " if line else ""
        return InventoryError(f"{self.source}: {where}{message}")

    def _read(self, data: Any) -> None:
        """Every top-level group (and `_meta.hostvars` of ansible-inventory JSON)."""
        if data is None:
            raise self.error([], "the inventory is empty")
        if not isinstance(data, dict):
            raise self.error([], "an inventory must be a mapping of groups")

        meta = data.get("_meta") or {}
        for name, body in data.items():
            if name == "_meta":
                continue
            self._group(str(name), body, None, [name])
        hostvars = meta.get("hostvars") if isinstance(meta, dict) else None
        for host, variables in (hostvars or {}).items():
            if not isinstance(variables, dict):
                raise self.error(["_meta", "hostvars", host], "hostvars must be maps")
            self._add_host(str(host), variables, ["_meta", "hostvars", host])
        for group in self.groups.values():
            if group.name != "all" and not group.parents:
                self._link("all", group.name)

    def _group(self, name: str, body: Any, parent: str | None, path: list[Any]) -> None:
        """One group body: hosts, vars and children (nested or by name)."""
        group = self.groups.setdefault(name, _Group(name))
        if parent is not None:
            self._link(parent, name)
        if body is None:
            return
        if isinstance(body, list):  # a dynamic inventory script's short form
            body = {"hosts": body}
        if not isinstance(body, dict):
            raise self.error(path, f"group {name!r} must be a mapping")
        unknown = set(body) - GROUP_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise self.error(
                path + [key],
                f"group {name!r}: unknown key {key!r} (expected hosts, vars, children)",
            )

        variables = body.get("vars") or {}
        if not isinstance(variables, dict):
            raise self.error(path + ["vars"], f"group {name!r}: vars must be a mapping")
        group.vars.update(variables)
        self._hosts(group, body.get("hosts"), path + ["hosts"])
        self._children(name, body.get("children"), path + ["children"])

    def _hosts(self, group: _Group, hosts: Any, path: list[Any]) -> None:
        """A group's hosts: a mapping of host pattern to vars, or a list of names."""
        if hosts is None:
            return
        if isinstance(hosts, list) and self.listing:
            hosts = {str(h): None for h in hosts}
        if not isinstance(hosts, dict):
            raise self.error(
                path,
                f"group {group.name!r}: hosts must be a mapping of host names "
                f"(write each host as `name:` on its own line), not a "
                f"{_kind(hosts)}",
            )
        for pattern, variables in hosts.items():
            where = path + [pattern]
            if variables is not None and not isinstance(variables, dict):
                raise self.error(where, f"host {pattern!r}: vars must be a mapping")
            for name, port in expand_hosts(
                str(pattern), lambda m, w=where: self.error(w, m)
            ):
                extra = {"ansible_port": port} if port else {}
                self._add_host(name, {**extra, **(variables or {})}, where)
                if name not in group.hosts:
                    group.hosts.append(name)

    def _children(self, parent: str, children: Any, path: list[Any]) -> None:
        """A group's children: nested group bodies, or a list of group names."""
        if children is None:
            return
        if isinstance(children, list):
            children = {str(c): None for c in children}
        if not isinstance(children, dict):
            raise self.error(path, f"group {parent!r}: children must be a mapping")
        for name, body in children.items():
            if str(name) == parent:
                raise self.error(path + [name], f"group {parent!r} contains itself")
            self._group(str(name), body, parent, path + [name])

    def _add_host(self, name: str, variables: dict[str, Any], path: list[Any]) -> None:
        """Record a host (first sight fixes its order) and merge its vars."""
        if not name:
            raise self.error(path, "a host needs a name")
        if name not in self.host_vars:
            self.host_vars[name] = {}
            self.order.append(name)
        self.host_vars[name].update(variables)

    def _link(self, parent: str, child: str) -> None:
        """Make `child` a child group of `parent`."""
        self.groups.setdefault(parent, _Group(parent))
        if child not in self.groups[parent].children:
            self.groups[parent].children.append(child)
        self.groups.setdefault(child, _Group(child)).parents.add(parent)

    def depth(self, name: str, seen: frozenset[str] = frozenset()) -> int:
        """A group's depth below `all` (its longest path), refusing cycles."""
        if name == "all":
            return 0
        if name in seen:
            raise self.error([], f"group {name!r} is its own ancestor")
        parents = self.groups[name].parents
        return 1 + max((self.depth(p, seen | {name}) for p in parents), default=0)

    def members(self, name: str, seen: frozenset[str] = frozenset()) -> list[str]:
        """Hosts of a group and of its descendants."""
        if name in seen:
            raise self.error([], f"group {name!r} is its own ancestor")
        group = self.groups[name]
        found = list(group.hosts)
        for child in group.children:
            found.extend(self.members(child, seen | {name}))
        return found


def load_inventory(path: str | Path, vault: Keyring | None = None) -> Inventory:
    """Read an inventory file (YAML, INI, `ansible-inventory --list` JSON).

    With its group_vars/ and host_vars/, and ansible.cfg's defaults. `vault`
    holds the vault passwords; by default those the environment names
    (ANSIBLE_VAULT_PASSWORD_FILE). Raises InventoryError naming the file, and
    the line where it can be found, when the file cannot be read, is in no
    inventory format, or holds a bad group or value, or a vaulted value
    fleetcompat reads that cannot be decrypted; InputError for a bad ansible.cfg.
    """
    path = Path(path)
    try:
        with path.open("rb") as stream:
            text = stream.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    keyring = vault or Keyring.from_options()
    layers = VariableLayers(
        load_ansible_config().variables, VarsDirectories(path.parent, keyring)
    )
    return parse_inventory(text, str(path), keyring, layers=layers)


def parse_inventory(
    text: str | bytes,
    source: str,
    vault: Keyring | None = None,
    *,
    layers: VariableLayers | None = None,
) -> Inventory:
    """Read an inventory from its text; `source` names it in errors.

    `layers` adds what a host's variables merge from besides the text (group_vars,
    host_vars, ansible.cfg); without it only the text's own variables count.
    """
    keyring = vault or Keyring.from_options()
    data = parse_inventory_data(text, source, keyring)
    reader = _Reader(data, source, text, keyring)
    members = {name: reader.members(name) for name in reader.groups}
    host_groups: dict[str, list[str]] = {name: [] for name in reader.order}
    for group_name, member_names in members.items():
        for member in member_names:
            host_groups[member].append(group_name)

    specs: dict[str, HostSpec | HostReading] = {}
    locked: dict[str, str] = {}
    vaulted_groups = {g.name for g in reader.groups.values() if _holds_vaulted(g.vars)}
    ungrouped: list[str] = []
    for name in reader.order:
        ordered = sorted(
            (reader.groups[g] for g in set(host_groups[name])),
            key=lambda g: (reader.depth(g.name), _priority(g), g.name),
        )
        names = tuple(g.name for g in ordered if g.name not in ("all", "ungrouped"))
        group_vars = [(g.name, g.vars) for g in ordered]
        reading = _HostReading(name, names, group_vars, reader, layers, locked)
        later = (
            vaulted_files(name, group_vars, layers)
            or any(group in vaulted_groups for group, _ in group_vars)
            or _holds_vaulted(reader.host_vars[name])
        )
        specs[name] = reading if later else reading()
        if not names:
            ungrouped.append(name)

    if not specs:
        raise InventoryError(f"{source}: the inventory names no hosts")
    groups = {
        name: tuple(dict.fromkeys(m)) for name, m in members.items() if name != "all"
    }
    groups["ungrouped"] = tuple(
        dict.fromkeys(groups.get("ungrouped", ()) + tuple(ungrouped))
    )
    return Inventory(source, specs, groups, reader.sealed, locked)


@dataclass(frozen=True)
class _HostReading:
    """What reading one host's spec takes; called once, when it is needed."""

    name: str
    groups: tuple[str, ...]
    group_vars: list[tuple[str, dict[str, Any]]]
    reader: _Reader
    layers: VariableLayers | None
    locked: dict[str, str]

    def __call__(self) -> HostSpec:
        """The host's spec; skipped, with why, when a vaulted value or file is shut.

        Raises InventoryError when its variables are bad in any other way.
        """
        reader, name = self.reader, self.name
        try:
            variables = merge_host_variables(
                name, self.group_vars, reader.host_vars[name], self.layers, reader.seal
            )
            return _host_spec(name, variables, self.groups, reader)
        except VaultedFileError as exc:
            self.locked[name] = str(exc)
            return HostSpec(name, name, groups=self.groups, skip=str(exc))
        except InventoryError as exc:
            if name not in reader.sealed:
                raise
            return HostSpec(name, name, groups=self.groups, skip=str(exc))


def _holds_vaulted(variables: dict[str, Any]) -> bool:
    """Whether any of these variables is vaulted: its hosts are read when needed.

    So a host that `--limit` leaves out costs no decryption, and runs no password
    script.
    """
    return any(vaulted(value) for value in variables.values())


def _priority(group: _Group) -> int:
    """A group's `ansible_group_priority` (1 unless set)."""
    try:
        return int(group.vars.get("ansible_group_priority", 1))
    except (TypeError, ValueError):
        return 1


def _host_spec(
    name: str, variables: dict[str, Any], groups: tuple[str, ...], reader: _Reader
) -> HostSpec:
    """One host's spec from its merged variables."""
    opened = HostVars(
        name,
        variables,
        reader.vault,
        reader.host_vars[name],
        reader.groups,
        lambda key, line, message: reader.seal(
            name, _host_error(reader, name, key, message, line)
        ),
    )

    def value(*keys: str) -> str | None:
        for key in keys:
            raw = opened.get(key)
            if raw is None or isinstance(raw, dict):
                continue
            text = str(raw)
            if "{{" in text or "{%" in text:
                raise _host_error(
                    reader, name, key, "Jinja templates are not supported"
                )
            return text
        return None

    settings = {
        key.removeprefix("fleetcompat_"): str(opened.get(key))
        for key, v in variables.items()
        if key.startswith("fleetcompat_") and v is not None
    }
    for key in set(variables) - set(SETTINGS):
        if key.startswith("fleetcompat_"):
            raise _host_error(reader, name, key, "unknown fleetcompat setting")

    keys = ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args")
    args = " ".join(filter(None, (value(key) for key in keys)))
    try:
        options, skip = ssh_args(args)
    except ValueError as exc:
        raise _host_error(reader, name, "ansible_ssh_common_args", str(exc)) from None
    connection = (value("ansible_connection") or "ssh").lower()
    if connection not in CONNECTIONS:
        skip = f"ansible_connection {connection!r} is not supported (ssh or local)"
    if _truthy(settings.get("skip", "false")):
        skip = "fleetcompat_skip is set"

    port_text = value("ansible_ssh_port", "ansible_port") or options.get("port")
    jump_text = settings.get("jump", options.get("jump"))
    password = value(*PASSWORD_KEYS)
    return HostSpec(
        name=name,
        address=value("ansible_ssh_host", "ansible_host") or name,
        port=_port(port_text, name, reader) if port_text else None,
        user=value("ansible_ssh_user", "ansible_user") or options.get("user"),
        key_file=value("ansible_ssh_private_key_file", "ansible_private_key_file")
        or options.get("key"),
        jump=_jump_chain(jump_text, name, reader),
        local=connection == "local",
        groups=groups,
        timeout=_timeout(settings.get("timeout"), name, reader),
        skip=skip,
        settings=settings,
        password=Secret(password) if password else None,
    )


def _jump_chain(
    text: str | None, host: str, reader: _Reader
) -> tuple[Endpoint, ...] | None:
    """A jump chain from `[user@]host[:port][,...]`; None means "as ssh config says"."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    hops = []
    for hop in text.split(","):
        user, _, rest = hop.strip().rpartition("@")
        address, port = rest, None
        match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:]+)(?::(\d+))?", rest)
        if not match:
            raise _host_error(
                reader, host, "fleetcompat_jump", f"bad jump host {hop!r}"
            )
        address = match.group(1) or match.group(3)
        port_text = match.group(2) or match.group(4)
        port = _port(port_text, host, reader) if port_text else None
        hops.append(Endpoint(address, port, user or None))
    return tuple(hops)


def _port(text: str, host: str, reader: _Reader) -> int:
    """A TCP port number, checked."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise _host_error(reader, host, "ansible_port", f"bad port {text!r}")
    return port


def _timeout(text: str | None, host: str, reader: _Reader) -> float | None:
    """A positive number of seconds, checked."""
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0
    if not seconds > 0:
        raise _host_error(reader, host, "fleetcompat_timeout", f"bad timeout {text!r}")
    return seconds


def _truthy(text: str) -> bool:
    """Ansible's notion of a true string."""
    return text.strip().lower() in ("1", "true", "yes", "on", "y")


def _host_error(
    reader: _Reader, host: str, key: str, message: str, line: int | None = None
) -> InventoryError:
    """An error about one host's variable, at the line defining it when found."""
    line = line or _find_key_line(reader.text, key)
    where = f"line {line}: " if line else ""
    return InventoryError(f"{reader.source}: {where}host {host!r}: {key}: {message}")


def _kind(value: Any) -> str:
    """What a YAML value is, in a user's words."""
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _line_of(text: str | bytes, path: list[Any]) -> int | None:
    """The 1-based line of the node at `path` in a YAML/JSON text, when found."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return line
        for key_node, value_node in node.value:
            if str(key_node.value) == str(key):
                line = key_node.start_mark.line + 1
                node = value_node
                break
        else:
            return line
    return line


def _find_key_line(text: str | bytes, key: str) -> int | None:
    """The first line on which `key` appears as a mapping key, when found."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    pattern = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*[:=]""")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.search(line):
            return number
    return None
