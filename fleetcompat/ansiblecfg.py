"""The connection defaults an Ansible user keeps in ansible.cfg and the environment.

The file is found as Ansible finds it, the first that exists and is readable:
`$ANSIBLE_CONFIG` (a directory means its `ansible.cfg`), `./ansible.cfg` (not
when the current directory is world-writable, as Ansible refuses it there),
`~/.ansible.cfg`, `/etc/ansible/ansible.cfg`. Only these settings are read, and
each stands for the host variable Ansible would otherwise take it from:

=========================================  ======================================
setting (environment variable wins)          host variable it is the default of
=========================================  ======================================
`[defaults] remote_user`                     `ansible_user`
  (ANSIBLE_REMOTE_USER)
`[defaults] remote_port`                     `ansible_port`
  (ANSIBLE_REMOTE_PORT)
`[defaults] private_key_file`                `ansible_private_key_file`
  (ANSIBLE_PRIVATE_KEY_FILE)
`[ssh_connection] ssh_args`                  `ansible_ssh_args`
  (ANSIBLE_SSH_ARGS)
`[ssh_connection] ssh_common_args`           `ansible_ssh_common_args`
  (ANSIBLE_SSH_COMMON_ARGS)
`[ssh_connection] ssh_extra_args`            `ansible_ssh_extra_args`
  (ANSIBLE_SSH_EXTRA_ARGS)
=========================================  ======================================

Any inventory variable wins over them, as in Ansible. A relative
`private_key_file` is taken from the file's directory (from the current
directory when it comes from the environment); `~` and `$VARS` are expanded.

Where vault passwords come from by default is read here too (`vault_defaults`):
`[defaults] vault_identity_list` (ANSIBLE_VAULT_IDENTITY_LIST) and
`[defaults] vault_password_file` (ANSIBLE_VAULT_PASSWORD_FILE).

`host_key_checking = False` (or ANSIBLE_HOST_KEY_CHECKING) is not followed:
fleetcompat never connects to a host whose key it cannot check, so one warning
says the setting is ignored and how to record new hosts' keys instead.
"""

from __future__ import annotations

import configparser
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleetcompat.errors import InputError

log = logging.getLogger(__name__)

SYSTEM_CONFIG = Path("/etc/ansible/ansible.cfg")

SETTINGS = {
    ("defaults", "remote_user"): ("ANSIBLE_REMOTE_USER", "ansible_user"),
    ("defaults", "remote_port"): ("ANSIBLE_REMOTE_PORT", "ansible_port"),
    ("defaults", "private_key_file"): (
        "ANSIBLE_PRIVATE_KEY_FILE",
        "ansible_private_key_file",
    ),
    ("ssh_connection", "ssh_args"): ("ANSIBLE_SSH_ARGS", "ansible_ssh_args"),
    ("ssh_connection", "ssh_common_args"): (
        "ANSIBLE_SSH_COMMON_ARGS",
        "ansible_ssh_common_args",
    ),
    ("ssh_connection", "ssh_extra_args"): (
        "ANSIBLE_SSH_EXTRA_ARGS",
        "ansible_ssh_extra_args",
    ),
}
"""(section, key) -> (environment variable, host variable), for what is read.

A default stands in the variable's newer name (`ansible_user`, not
`ansible_ssh_user`): the inventory reader prefers the older name when both are
set, as Ansible does, so either name set in the inventory beats the default.
"""

HOST_KEY_CHECKING = (
    (("defaults", "host_key_checking"), "ANSIBLE_HOST_KEY_CHECKING"),
    (("ssh_connection", "host_key_checking"), "ANSIBLE_SSH_HOST_KEY_CHECKING"),
)
_TRUE = {"y", "yes", "on", "1", "true", "t"}


@dataclass(frozen=True)
class AnsibleConfig:
    """The connection defaults found: the file read, and the host variables set."""

    path: Path | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    host_key_checking_off: str = ""
    """The setting that turns host key checking off (`origin = value`), or empty."""


def find_config_file(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path | None:
    """The ansible.cfg Ansible would read, or None when there is none."""
    env = os.environ if environ is None else environ
    candidates: list[Path] = []
    configured = env.get("ANSIBLE_CONFIG")
    if configured is not None:
        path = Path(os.path.expanduser(os.path.expandvars(configured)))
        candidates.append(path / "ansible.cfg" if path.is_dir() else path)

    here = cwd if cwd is not None else _cwd()
    if here is not None:
        try:
            world_writable = bool(here.stat().st_mode & stat.S_IWOTH)
        except OSError:
            world_writable = True
        if not world_writable:
            candidates.append(here / "ansible.cfg")
        elif (here / "ansible.cfg").exists():
            log.warning(
                "%s is not read: the directory is world-writable (Ansible "
                "ignores it there too)",
                here / "ansible.cfg",
            )

    home = env.get("HOME")
    if home:
        candidates.append(Path(home) / ".ansible.cfg")
    candidates.append(SYSTEM_CONFIG)
    for path in candidates:
        if path.is_file() and os.access(path, os.R_OK):
            return path
    return None


def _cwd() -> Path | None:
    """The current directory, or None when it cannot be told."""
    try:
        return Path.cwd()
    except OSError:
        return None


def load_ansible_config(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> AnsibleConfig:
    """The connection defaults of the ansible.cfg Ansible would read, and the env.

    Logs which file is used (info), and warns once when host key checking is
    turned off there. Raises InputError naming the file when it cannot be read
    or parsed, has an extension Ansible refuses, or holds a bad remote_port.
    """
    env = os.environ if environ is None else environ
    path = find_config_file(env, cwd)
    parser = _read(path) if path is not None else None
    if path is not None:
        log.info("using ansible.cfg %s", path)

    variables: dict[str, str] = {}
    for (section, key), (env_name, variable) in SETTINGS.items():
        value, origin = _setting(parser, path, section, key, env, env_name)
        if value is None:
            continue
        if key == "private_key_file":
            value = _resolve(
                value, path.parent if path and origin != env_name else None
            )
        elif key == "remote_port":
            value = _port(value, origin)
        variables[variable] = value

    checking_off = ""
    for (section, key), env_name in HOST_KEY_CHECKING:
        value, origin = _setting(parser, path, section, key, env, env_name)
        if value is not None and value.strip().lower() not in _TRUE:
            checking_off = f"{origin} = {value}"
    if checking_off:
        log.warning(
            "%s is ignored: fleetcompat checks every host's key against "
            "known_hosts and never connects to a host it cannot verify (use "
            "--known-hosts accept-new to record new hosts' keys)",
            checking_off,
        )
    return AnsibleConfig(path, variables, checking_off)


@dataclass(frozen=True)
class VaultDefaults:
    """The vault password sources Ansible adds to those of its command line."""

    identity_list: tuple[str, ...] = ()
    password_file: str | None = None


def vault_defaults(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> VaultDefaults:
    """The vault identity list and password file of the environment or ansible.cfg.

    The environment wins, as in Ansible; a relative password file in ansible.cfg
    is taken from the file's directory. Raises InputError as load_ansible_config.
    """
    env = os.environ if environ is None else environ
    names = ("ANSIBLE_VAULT_IDENTITY_LIST", "ANSIBLE_VAULT_PASSWORD_FILE")
    path = None if all(n in env for n in names) else find_config_file(env, cwd)
    parser = _read(path) if path is not None else None
    listed, _ = _setting(parser, path, "defaults", "vault_identity_list", env, names[0])
    file, origin = _setting(
        parser, path, "defaults", "vault_password_file", env, names[1]
    )
    ids = tuple(item.strip() for item in (listed or "").split(",") if item.strip())
    if file and origin != names[1]:
        file = _resolve(file, path.parent if path else None)
    return VaultDefaults(ids, file or None)


def _read(path: Path) -> configparser.ConfigParser:
    """The file parsed as Ansible parses it (`;` starts an inline comment)."""
    if path.suffix not in (".cfg", ".ini"):
        raise InputError(
            f"{path}: Ansible reads only .cfg or .ini configuration files "
            "(ANSIBLE_CONFIG names this one)"
        )
    parser = configparser.ConfigParser(
        inline_comment_prefixes=(";",), interpolation=None
    )
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    try:
        parser.read_string(text, str(path))
    except configparser.Error as exc:
        message = " ".join(str(exc).split())
        raise InputError(f"{path}: {message}") from None
    return parser


def _setting(
    parser: configparser.ConfigParser | None,
    path: Path | None,
    section: str,
    key: str,
    env: Mapping[str, str],
    env_name: str,
) -> tuple[str | None, str]:
    """A setting's value and where it came from; the environment wins."""
    if env_name in env:
        return env[env_name], env_name
    if parser is None or not parser.has_option(section, key):
        return None, ""
    value = _unquote(parser.get(section, key, raw=True))
    return value, f"{path}: [{section}] {key}"


def _unquote(value: str) -> str:
    """A value without the one pair of quotes around it, as Ansible reads ini."""
    quoted = len(value) > 1 and value[0] == value[-1] and value[0] in "\"'"
    return value[1:-1] if quoted and value[-2] != "\\" else value


def _resolve(value: str, base: Path | None) -> str:
    """A path setting: variables and `~` expanded, relative to `base`."""
    path = Path(os.path.expanduser(os.path.expandvars(value)))
    if not path.is_absolute() and base is not None:
        path = base / path
    return os.path.normpath(path)


def _port(value: str, origin: str) -> str:
    """A remote_port checked to be a port number."""
    text = value.strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InputError(f"{origin}: bad port {value!r}")
    return str(int(text))
