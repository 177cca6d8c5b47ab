"""The client's side of an SSH handshake: host keys, authentication, failures.

`Client` checks the host key by the run's policy (known_hosts, or accept-new
recording into fleetcompat's own file), offers the run's keys and then, for a host
with a password, the password once, and moves the host's deadline from the
connect phase to the auth phase as authentication starts. `translate` turns what
asyncssh or the socket raised into an outcome with a reason a person can act on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from fleetcompat.errors import CollectError
from fleetcompat.inventory import Endpoint
from fleetcompat.probing import (
    ACCEPT_NEW,
    AUTH_FAILED,
    HOSTKEY_MISMATCH,
    HOSTKEY_UNKNOWN,
    REFUSED,
    UNREACHABLE,
)
from fleetcompat.vault import Secret

if TYPE_CHECKING:
    from fleetcompat.ssh.fleet import Fleet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A resolved SSH endpoint: where, as whom, with which keys, through what."""

    name: str
    host: str
    port: int
    user: str
    keys: list[asyncssh.SSHKeyPair]
    jump: tuple[Endpoint, ...]
    password: Secret | None = field(default=None, repr=False)
    key_problem: str = ""
    """Why the key file the inventory names could not be used, if it could not."""


class Phase:
    """The phase a host is in (for messages), and its handshake slot."""

    def __init__(self, release: Callable[[], None] | None = None) -> None:
        self.name = "connect"
        self._release = release

    def release(self) -> None:
        """Give the handshake slot back (once; later calls do nothing)."""
        if self._release is not None:
            self._release()
            self._release = None


class Transient(Exception):
    """A failure worth another attempt (a connection reset before auth)."""


class Client(asyncssh.SSHClient):
    """Checks host keys by policy and moves the deadline from connect to auth."""

    def __init__(
        self,
        fleet: Fleet,
        target: Target,
        phase: Phase,
        loop: asyncio.AbstractEventLoop,
        auth_timeout: float,
    ) -> None:
        self.fleet = fleet
        self.target = target
        self.phase = phase
        self.loop = loop
        self.auth_timeout = auth_timeout
        self.deadline: asyncio.Timeout | None = None
        self.offered_key: asyncssh.SSHKey | None = None
        self.keys_given = False
        self.auth_started = False
        self.password_sent = False
        self.kbdint_tried = False
        self.declined_prompt: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        """Called for a key known_hosts does not trust: accept-new may take it."""
        self.offered_key = key
        if self.fleet.options.known_hosts != ACCEPT_NEW:
            return False
        if _has_known_keys(self.fleet.known, host, addr, port):
            return False
        self.fleet.accept_new(self.target, key)
        return True

    def public_key_auth_requested(self) -> Any:
        """Authentication starts: offer the run's keys once, on the auth deadline."""
        if self.keys_given:
            return None
        self.keys_given = True
        self._start_auth()
        return list(self.target.keys) or None

    def password_auth_requested(self) -> str | None:
        """The host's password, once in all (keys were tried first)."""
        return self._password_once()

    def kbdint_auth_requested(self) -> str | None:
        """Keyboard-interactive once, and only while the password is unsent."""
        if self.target.password is None or self.password_sent or self.kbdint_tried:
            return None
        self.kbdint_tried = True
        self._start_auth()
        return ""

    def kbdint_challenge_received(
        self, name: str, instructions: str, lang: str, prompts: Any
    ) -> list[str] | None:
        """Answer prompts that ask for a password; refuse any other (a code...)."""
        texts = [str(text) for text, _echo in prompts]
        if not texts:
            return []  # a message only, no question
        declined = [text for text in texts if not _asks_password(text)]
        if declined:
            self.declined_prompt = declined[0].strip()[:80]
            return None
        password = self._password_once()
        return None if password is None else [password] * len(texts)

    def _password_once(self) -> str | None:
        """The password to send, the first time only (no retries to lock out)."""
        if self.target.password is None or self.password_sent:
            return None
        self._start_auth()
        self.password_sent = True
        return self.target.password.reveal()

    def _start_auth(self) -> None:
        """Move into the auth phase and onto its deadline (once)."""
        if self.auth_started:
            return
        self.auth_started = True
        self.phase.name = "auth"
        if self.deadline is not None:
            self.deadline.reschedule(self.loop.time() + self.auth_timeout)


def _asks_password(prompt: str) -> bool:
    """Whether a keyboard-interactive prompt asks for the account's password."""
    return "password" in prompt.lower()


def _has_known_keys(
    known: asyncssh.SSHKnownHosts | None, host: str, addr: str, port: int | None
) -> bool:
    """Whether known_hosts holds any key or CA for this host."""
    if known is None:
        return False
    port = None if port == 22 else port
    host_keys, ca_keys, *_ = known.match(host, addr or "", port)
    return bool(host_keys or ca_keys)


def translate(
    exc: BaseException,
    target: Target,
    client: Client,
    known: asyncssh.SSHKnownHosts | None,
    known_files: list[str],
) -> Exception:
    """An asyncssh or socket error as an outcome with a reason, or a Transient."""
    where = f"{target.host}:{target.port}"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        key = client.offered_key
        fingerprint = key.get_fingerprint() if key is not None else "unknown"
        revoked = _known_lines(known_files, target.host, target.port, revoked=True)
        if revoked and key is None:
            return CollectError(
                HOSTKEY_MISMATCH,
                f"{where} offered a host key that known_hosts marks as revoked "
                f"(@revoked, {', '.join(revoked)}): the key was withdrawn; check "
                "the host, and give it a new key",
            )
        if _has_known_keys(known, target.host, "", target.port):
            lines = _known_lines(known_files, target.host, target.port)
            found = ", ".join(lines) if lines else "known_hosts"
            file = lines[0].rsplit(" line ", 1)[0] if lines else "FILE"
            return CollectError(
                HOSTKEY_MISMATCH,
                f"{where} offered host key {fingerprint}, which does not match "
                f"the one in {found}: the host was reinstalled, or someone is in "
                "the middle; check it, then remove the old line "
                f"(ssh-keygen -R '{_known_name(target.host, target.port)}' "
                f"-f {file})",
            )
        return CollectError(
            HOSTKEY_UNKNOWN,
            f"{where} offered host key {fingerprint}, not in known_hosts; add it "
            "(ssh-keyscan) or collect once with --known-hosts accept-new",
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return CollectError(AUTH_FAILED, _auth_refusal(target, client))
    if isinstance(exc, asyncssh.ChannelOpenError):
        text = exc.reason or "channel open failed"
        outcome = REFUSED if "refused" in text.lower() else UNREACHABLE
        return CollectError(outcome, f"jump host could not reach {where}: {text}")
    if isinstance(exc, asyncssh.ConnectionLost | ConnectionResetError):
        if client.phase.name in ("connect", "auth"):
            return Transient(
                f"{where} closed the connection during {client.phase.name}"
            )
        return CollectError(UNREACHABLE, f"{where} closed the connection")
    if isinstance(exc, asyncssh.DisconnectError):
        return CollectError(UNREACHABLE, f"{where} disconnected: {exc.reason}")
    if isinstance(exc, OSError):
        return CollectError(UNREACHABLE, f"{where}: {exc.strerror or exc}")
    return CollectError(UNREACHABLE, f"{where}: {exc}")


def _auth_refusal(target: Target, client: Client) -> str:
    """Why authentication failed, in words that say what to check (no secret)."""
    reason = _auth_refusal_reason(target, client)
    return f"{reason}; and {target.key_problem}" if target.key_problem else reason


def _auth_refusal_reason(target: Target, client: Client) -> str:
    """The reason of `_auth_refusal`, before the unusable key file is added."""
    login = f"{target.user}@{target.host}:{target.port}"
    if not target.keys and target.password is None:
        return (
            f"{login} was offered no key: none was found (give "
            "ansible_ssh_private_key_file, an IdentityFile in ~/.ssh/config, a "
            "default ~/.ssh/id_* key, or load the key into ssh-agent)"
        )
    count = len(target.keys)
    keys = f"every key offered ({count} key{'' if count == 1 else 's'})"
    if not count:
        keys = "no key (none usable was offered)"
    if client.password_sent:
        return (
            f"{login} refused {keys} and the password; check ansible_user, "
            "the key and ansible_password"
        )
    if client.declined_prompt is not None:
        return (
            f"{login} refused {keys}, and its keyboard-interactive login asked "
            f"{client.declined_prompt!r}, which fleetcompat does not answer (only "
            "password prompts); use a key for this host"
        )
    if target.password is not None:
        return (
            f"{login} refused {keys} and accepts no password "
            "(PasswordAuthentication and KbdInteractiveAuthentication off?); "
            "check ansible_user and the key"
        )
    return f"{login} refused {keys}; check ansible_user and the key"


def load_key(path: str) -> list[asyncssh.SSHKeyPair] | str:
    """A key file's key pairs (with a certificate beside it), or why not."""
    try:
        return list(asyncssh.load_keypairs([path]))
    except asyncssh.KeyImportError as exc:
        if "passphrase" in str(exc).lower():
            return f"key file {path} is encrypted; load it into ssh-agent"
        return f"key file {path} cannot be used: {exc}"
    except OSError as exc:
        return f"key file {path} cannot be read: {exc.strerror or exc}"


def _known_lines(
    files: list[str], host: str, port: int | None, *, revoked: bool = False
) -> list[str]:
    """Where known_hosts holds keys for a host: "FILE line N" for each line.

    With `revoked`, the `@revoked` lines that name the host instead.
    """
    port = None if port == 22 else port
    found = []
    for path in files:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                entry = asyncssh.import_known_hosts(line)
            except (ValueError, asyncssh.Error):
                continue
            if revoked:
                # asyncssh looks again without the port when no key is trusted
                # for host:port, and then forgets the revocations it found.
                hit = entry.match(_known_name(host, port), "", None)[2]
            else:
                host_keys, ca_keys, *_ = entry.match(host, "", port)
                hit = host_keys or ca_keys
            if hit:
                found.append(f"{path} line {number}")
    return found


def _known_name(host: str, port: int | None) -> str:
    """A host as known_hosts names it: host, or [host]:port off port 22."""
    return host if port in (None, 22) else f"[{host}]:{port}"


def read_known_hosts(files: list[str]) -> asyncssh.SSHKnownHosts | None:
    """All trusted known_hosts files as one table, read once."""
    known = asyncssh.SSHKnownHosts()
    for path in files:
        try:
            known.load(Path(path).read_text(encoding="utf-8", errors="replace"))
        except (OSError, ValueError) as exc:
            log.warning("known_hosts %s not usable: %s", path, exc)
    return known
