"""Ansible's INI inventory format (`/etc/ansible/hosts`), and telling formats apart.

An INI inventory is read into the mapping the YAML reader of
`fleetcompat.inventory` takes (groups with `hosts`, `vars` and `children`), so
both formats mean the same thing by construction. It is read as Ansible's `ini`
inventory plugin reads it:

- Lines before the first section are hosts of `ungrouped`. `[group]` holds host
  lines, `[group:vars]` one `key=value` a line, `[group:children]` one group
  name a line. A group named under `:children` or given `:vars` must be declared
  somewhere in the file (as `[group]` or `[group:children]`), before or after.
- A host line is `pattern key=value ...`, split as a shell would split it, with
  `#` starting a comment. The pattern may carry a port (`db1:2222`,
  `[2001:db8::1]:2222`) and ranges (`web[01:20].example.com`, `[a:f]`,
  `[0:10:2]`).
- Values, on host lines and in `:vars`, are read with Python's
  `ast.literal_eval` when they are a Python literal (`22` is a number, `True` a
  boolean, `"'quoted'"` a string), and kept as written otherwise. Ansible's
  documentation says `:vars` values stay strings; its code evaluates them too,
  and this follows the code. In `:vars` nothing after the `=` is a comment
  unless the value is a literal (`user=admin # x` is the value `admin # x`), as
  in Ansible.
- Lines starting with `#` or `;` are comments.

Where fleetcompat differs, on purpose: a host name containing `=` is refused
(Ansible makes it a host, which is always a variable written in the wrong
section), and a group made its own ancestor is refused at the line that does it.

`parse_inventory_data` decides the format by content, as Ansible tries its
plugins in turn: a YAML mapping or JSON object is YAML/JSON, anything else is
tried as INI. A whole file encrypted with Ansible Vault is decrypted first.
"""

from __future__ import annotations

import ast
import re
import shlex
import string
import warnings
from dataclasses import dataclass, field
from typing import Any

from fleetcompat.documents import MAX_DOCUMENT_BYTES, InventoryLoader, parse_text
from fleetcompat.errors import InputError, InventoryError
from fleetcompat.vault import HEADER, Keyring, Vaulted

MAX_RANGE_HOSTS = 100_000
"""Most hosts one range pattern may expand to."""

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_BRACKETED_PORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
_COMMENT = ("#", ";")


@dataclass
class _Section:
    """One group as the INI file declares it, in the YAML reader's terms."""

    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    declared: bool = False
    vars_line: int = 0


def parse_inventory_data(text: str | bytes, source: str, vault: Keyring) -> Any:
    """The parsed inventory: a YAML/JSON document as is, an INI one as a mapping.

    A whole-file vault is decrypted with `vault` first. Raises InventoryError
    naming `source` (and the line) when the text is none of the formats.
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise InventoryError(
            f"{source}: inventory is {len(text)} bytes, more than the "
            f"{MAX_DOCUMENT_BYTES} accepted"
        )
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Ansible's INI reader allows other encodings in comment lines.
            loose = raw.decode("utf-8", "surrogateescape")
            return _ini_or_raise(loose, source, f"{source}: not UTF-8 text")
    if text.lstrip().startswith(HEADER + ";"):
        text = _decrypt_file(text, source, vault)

    try:
        data = parse_text(text, source, InventoryLoader)
    except InventoryError:
        raise
    except InputError as exc:
        return _ini_or_raise(text, source, str(exc))
    if data is None or isinstance(data, dict):
        return data
    kind = "list" if isinstance(data, list) else type(data).__name__
    problem = f"an inventory must be a mapping of groups, not a {kind}"
    return _ini_or_raise(text, source, f"{source}: line {_first_line(text)}: {problem}")


def _first_line(text: str) -> int:
    """The number of the first line that is neither blank nor a comment."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and line.strip()[0] not in _COMMENT:
            return number
    return 1


def _decrypt_file(text: str, source: str, vault: Keyring) -> str:
    """The plaintext of a file encrypted whole with Ansible Vault."""
    try:
        return vault.decrypt(Vaulted(text.strip()))
    except InventoryError as exc:
        raise InventoryError(f"{source}: vaulted file: {exc}") from None


def _ini_or_raise(text: str, source: str, yaml_problem: str) -> dict[str, Any]:
    """The text read as INI; when that fails too, the error that fits it best."""
    try:
        return parse_ini(text, source)
    except InventoryError as exc:
        if _looks_like_ini(text):
            raise
        ini_problem = str(exc).removeprefix(f"{source}: ")
        raise InventoryError(f"{yaml_problem} (and as INI: {ini_problem})") from None


def _looks_like_ini(text: str) -> bool:
    """Whether the first line that is not a comment reads as INI, not YAML.

    A section header (`[web]`) or a host line with `key=value` and no `key: `.
    """
    for line in text.splitlines():
        line = line.strip()
        if line and line[0] not in _COMMENT:
            header = line.startswith("[") and "]" in line
            return header or ("=" in line and ": " not in line)
    return False


def parse_ini(text: str, source: str) -> dict[str, Any]:
    """An INI inventory as the mapping of groups the YAML reader takes.

    Raises InventoryError naming `source` and the line for anything Ansible's
    INI plugin refuses (and for the two things fleetcompat refuses besides).
    """
    return _IniReader(source).read(text)


class _IniReader:
    """One pass over an INI inventory's lines, as Ansible's plugin makes it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.line = 0
        self.sections: dict[str, _Section] = {
            "all": _Section(declared=True),
            "ungrouped": _Section(declared=True),
        }
        self.pending: dict[str, tuple[int, str]] = {}  # child -> (line, parent)

    def error(self, message: str) -> InventoryError:
        """An InventoryError at the current line."""
        return InventoryError(f"{self.source}: line {self.line}: {message}")

    def read(self, text: str) -> dict[str, Any]:
        """Every line, then the checks that need the whole file."""
        group, state = "ungrouped", "hosts"
        for self.line, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line[0] in _COMMENT:
                continue
            if any("\udc80" <= c <= "\udcff" for c in line):
                raise self.error("not UTF-8 text")
            section = _SECTION.match(line)
            if section:
                group, state = self._section(section)
            elif line.startswith("[") and line.endswith("]"):
                raise self.error(
                    f"bad section header {line!r} (no spaces; [group], "
                    "[group:vars] or [group:children])"
                )
            elif state == "hosts":
                self._host_line(group, line)
            elif state == "vars":
                self._vars_line(group, line)
            else:
                self._child_line(group, line)
        self._check_declarations()
        return self._mapping()

    def _section(self, match: re.Match[str]) -> tuple[str, str]:
        """A `[group]`, `[group:vars]` or `[group:children]` header."""
        name, state = match.group(1), match.group(2) or "hosts"
        if state not in ("hosts", "vars", "children"):
            raise self.error(
                f"section [{name}:{state}]: unknown kind {state!r} (vars or children)"
            )
        section = self.sections.setdefault(name, _Section())
        if state == "vars":
            section.vars_line = section.vars_line or self.line
        else:
            section.declared = True
            self.pending.pop(name, None)
        return name, state

    def _host_line(self, group: str, line: str) -> None:
        """`pattern key=value ...`: hosts added to `group`, with their vars."""
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise self.error(f"cannot split host line: {exc}") from None
        if not words or not words[0]:
            raise self.error("a host line needs a host name first")
        pattern, assignments = words[0], words[1:]

        variables: dict[str, Any] = {}
        for word in assignments:
            key, equals, value = word.partition("=")
            if not equals or not key:
                raise self.error(
                    f"expected key=value after host {pattern!r}, got {word!r}"
                )
            variables[key] = self._value(value)
        names, port = self._expand_pattern(pattern)

        section = self.sections[group]
        for name in names:
            host_vars = section.hosts.setdefault(name, {})
            if port is not None:
                host_vars["ansible_port"] = port
            host_vars.update(variables)

    def _vars_line(self, group: str, line: str) -> None:
        """`key=value` in a `[group:vars]` section; everything after `=` is value."""
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise self.error(f"expected key=value in [{group}:vars], got {line!r}")
        self.sections[group].vars[key.strip()] = self._value(value.strip())

    def _child_line(self, group: str, line: str) -> None:
        """A group name in a `[group:children]` section."""
        match = _GROUP_NAME.match(line)
        if not match:
            raise self.error(
                f"expected a group name in [{group}:children], got {line!r}"
            )
        child = match.group(1)
        if child == group or group in self._descendants(child):
            raise self.error(f"group {child!r} would contain itself (via {group!r})")
        if child not in self.sections[group].children:
            self.sections[group].children.append(child)
        child_section = self.sections.setdefault(child, _Section())
        if not child_section.declared:
            self.pending.setdefault(child, (self.line, group))

    def _descendants(self, name: str) -> set[str]:
        """Every group below `name`, as far as read so far."""
        found: set[str] = set()
        stack = [name]
        while stack:
            section = self.sections.get(stack.pop())
            for child in section.children if section else ():
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found

    def _check_declarations(self) -> None:
        """Refuse `:children` and `:vars` naming groups the file never declares."""
        for child, (line, parent) in self.pending.items():
            self.line = line
            raise self.error(
                f"[{parent}:children] names group {child!r}, which is never "
                f"declared (add a [{child}] section)"
            )
        for name, section in self.sections.items():
            if section.vars_line and not section.declared:
                self.line = section.vars_line
                raise self.error(
                    f"[{name}:vars] is for group {name!r}, which is never "
                    f"declared (add a [{name}] section)"
                )

    def _mapping(self) -> dict[str, Any]:
        """The groups as the YAML reader takes them; `ungrouped` as Ansible leaves it.

        A host listed before the first section and also in a group is not in
        `ungrouped`, as in Ansible (and `[ungrouped:vars]` do not reach it).
        """
        grouped = {
            host
            for name, section in self.sections.items()
            if name != "ungrouped"
            for host in section.hosts
        }
        ungrouped = self.sections["ungrouped"]
        ungrouped.hosts = {
            name: variables
            for name, variables in ungrouped.hosts.items()
            if name not in grouped
        }

        mapping: dict[str, Any] = {}
        for name, section in self.sections.items():
            body: dict[str, Any] = {}
            if section.hosts:
                body["hosts"] = {host: dict(v) for host, v in section.hosts.items()}
            if section.vars:
                body["vars"] = dict(section.vars)
            if section.children:
                body["children"] = {child: None for child in section.children}
            if body or name not in ("all", "ungrouped"):
                mapping[name] = body
        return mapping

    def _value(self, text: str) -> Any:
        """A value as Ansible reads it: a Python literal when it is one, else text."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)
                value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        except (TypeError, RecursionError, MemoryError) as exc:
            raise self.error(f"value {text[:60]!r} cannot be read: {exc}") from None
        if isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                raise self.error(f"value {text[:60]!r} is not UTF-8 text") from None
        return value

    def _expand_pattern(self, pattern: str) -> tuple[list[str], int | None]:
        """Host names and port of a host pattern, as Ansible's address parser."""
        host, port = pattern, None
        for regex in (_BRACKETED_PORT, _HOST_PORT):
            match = regex.match(host)
            if match:
                host, port = match.group(1), int(match.group(2))
        if pattern.endswith(":") and port is None:
            raise self.error(
                f"host {pattern!r} ends in ':' (it introduces a port number)"
            )
        if host.strip() == "---":
            raise self.error("host '---': this looks like a YAML file")
        if "=" in host:
            raise self.error(
                f"host name {host!r} contains '=': variables go after a host "
                "name, or in a [group:vars] section"
            )
        names = self._expand_ranges(host) if "[" in host else [host]
        if port is not None and not 0 < port < 65536:
            raise self.error(f"host {pattern!r}: bad port {port}")
        return names, port

    def _expand_ranges(self, pattern: str) -> list[str]:
        """`head[begin:end(:step)]tail`, expanded (ranges in the tail too)."""
        head, _, rest = pattern.partition("[")
        inside, closed, tail = rest.partition("]")
        bounds = inside.split(":")
        if not closed or len(bounds) not in (2, 3):
            raise self.error(
                f"host range in {pattern!r} must be [begin:end] or [begin:end:step]"
            )
        begin, end = bounds[0] or "0", bounds[1]
        step_text = bounds[2] if len(bounds) == 3 else "1"
        if not end:
            raise self.error(f"host range in {pattern!r} has no end")
        if not step_text.isdigit() or int(step_text) == 0:
            raise self.error(f"host range in {pattern!r}: bad step {step_text!r}")
        step = int(step_text)

        values = self._range_values(pattern, begin, end, step)
        if len(values) > MAX_RANGE_HOSTS:
            raise self.error(f"host range in {pattern!r} is too large")
        names: list[str] = []
        for value in values:
            name = f"{head}{value}{tail}"
            names.extend(self._expand_ranges(name) if "[" in name else [name])
            if len(names) > MAX_RANGE_HOSTS:
                raise self.error(f"host range in {pattern!r} is too large")
        return names

    def _range_values(self, pattern: str, begin: str, end: str, step: int) -> list[str]:
        """The values of one range: letters, or numbers (zero-padded as written)."""
        letters = string.ascii_letters
        if begin in letters and end in letters and len(begin) == len(end) == 1:
            first, last = letters.index(begin), letters.index(end)
            if first > last:
                raise self.error(f"host range in {pattern!r} runs backwards")
            return list(letters[first : last + 1 : step])
        if not (begin.isdigit() and end.isdigit()):
            raise self.error(
                f"host range in {pattern!r} must be numbers or single letters"
            )
        width = 0
        if begin.startswith("0") and len(begin) > 1:
            if len(begin) != len(end):
                raise self.error(
                    f"host range in {pattern!r}: begin and end need the same width"
                )
            width = len(begin)
        numbers = range(int(begin), int(end) + 1, step)
        if len(numbers) > MAX_RANGE_HOSTS:
            raise self.error(f"host range in {pattern!r} is too large")
        return [str(n).zfill(width) for n in numbers]
