"""SSH for the collector: connections, keys, host keys, bastions, the remote probe.

asyncssh is used here and nowhere else. One `Fleet` per run holds what hosts
share: the keys (files and the agent's, loaded once), the known_hosts table (read
once), ~/.ssh/config (parsed once) and the connections to bastions (one per jump
chain, shared by every host behind it). `Fleet.probe` runs one host under its
deadlines and turns every failure into an outcome with a reason.

Authentication is by keys first (files, then the agent's): an encrypted key file
with no agent holding it cannot be used, since a nightly run cannot prompt. A host
whose inventory gives a password (`ansible_password`, often vaulted) is then
offered it, once, by keyboard-interactive authentication (answering only prompts
that ask for a password; any other prompt, such as a one-time code, fails the
authentication with that prompt named) or by password authentication. Only that
host gets it, never a jump host, and only after its host key was verified. The
password is held as a `Secret` until the one call that sends it, and appears in
no message, log line or repr.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import shlex
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.public_key import load_default_keypairs

from fleetcompat.errors import CollectError
from fleetcompat.inventory import Endpoint, HostSpec
from fleetcompat.probing import (
    ACCEPT_NEW,
    AUTH_FAILED,
    HOSTKEY_MISMATCH,
    HOSTKEY_UNKNOWN,
    OK,
    PROBE_FAILED,
    REFUSED,
    STDERR_EXCERPT,
    TIMEOUT,
    UNREACHABLE,
    CollectOptions,
    ProbeResult,
    probe_output,
    run_local,
)
from fleetcompat.sshconfig import SSHConfig
from fleetcompat.vault import Secret

log = logging.getLogger(__name__)


class Fleet:
    """Per-run state shared by hosts: keys, known hosts, ssh config, bastions."""

    def __init__(self, options: CollectOptions) -> None:
        self.options = options
        self.ssh_config = SSHConfig.load(options.ssh_config)
        self.keys: dict[str, list[asyncssh.SSHKeyPair] | str] = {}
        self.default_keys: list[asyncssh.SSHKeyPair] = []
        self.agent_keys: list[asyncssh.SSHKeyPair] = []
        self.agent: Any = None
        self.known: asyncssh.SSHKnownHosts | None = None
        self.known_files: list[str] = []
        self.bastions: dict[tuple[Endpoint, ...], asyncio.Task[Any]] = {}
        self.bastion_slots: dict[tuple[Endpoint, ...], asyncio.Semaphore] = {}
        self.script = b""

    async def prepare(self, hosts: Iterable[HostSpec]) -> None:
        """Load the probe, keys, agent keys and known_hosts once for the run."""
        from fleetcompat.probe import probe_script

        self.script = probe_script()
        self.known_files = self._known_hosts_files()
        self.known = _read_known_hosts(self.known_files)
        paths: set[str] = set()
        for spec in hosts:
            if spec.local:
                continue
            paths.update(self._key_paths(spec))
        for path in sorted(paths):
            self.keys[path] = _load_key(path)
        self.default_keys = list(load_default_keypairs())
        await self._load_agent()

    async def _load_agent(self) -> None:
        """The agent's keys, once; no agent (or an unusable one) means none."""
        if not os.environ.get("SSH_AUTH_SOCK"):
            return
        try:
            self.agent = await asyncio.wait_for(asyncssh.connect_agent(), 5)
            if self.agent is not None:
                self.agent_keys = list(await asyncio.wait_for(self.agent.get_keys(), 5))
        except (OSError, asyncssh.Error, TimeoutError, ValueError) as exc:
            log.warning("ssh agent not usable: %s", exc)
            self.agent_keys = []

    def _known_hosts_files(self) -> list[str]:
        """The known_hosts files trusted: the user's, the system's, and ours."""
        files = [
            Path("~/.ssh/known_hosts").expanduser(),
            Path("/etc/ssh/ssh_known_hosts"),
        ]
        if self.options.known_hosts_file is not None:
            files.append(self.options.known_hosts_file)
        return [str(f) for f in files if f.is_file()]

    def _key_paths(self, spec: HostSpec) -> list[str]:
        """Key files a host names, in order: the inventory's, then ssh config's."""
        config = self.ssh_config.resolve(spec.address, spec.user)
        paths = [str(Path(spec.key_file).expanduser())] if spec.key_file else []
        return paths + [p for p in config.identity_files if p not in paths]

    def client_keys(
        self, spec: HostSpec | Endpoint, inherited: tuple[str, ...] = ()
    ) -> list[asyncssh.SSHKeyPair]:
        """Keys offered to a host: its files, then the agent's, else the defaults.

        A bastion is offered its own ssh config keys and then `inherited`, the key
        files of the host that needs it (a fleet's key usually opens its bastion).
        """
        if isinstance(spec, HostSpec):
            paths = self._key_paths(spec)
        else:
            config = self.ssh_config.resolve(spec.host, spec.user)
            paths = list(dict.fromkeys(config.identity_files + inherited))
        keys: list[asyncssh.SSHKeyPair] = []
        for path in paths:
            loaded = self.keys.get(path)
            if loaded is None:
                loaded = self.keys[path] = _load_key(path)
            if isinstance(loaded, str):
                given = spec.key_file if isinstance(spec, HostSpec) else None
                if given and Path(given).expanduser() == Path(path):
                    raise CollectError(AUTH_FAILED, loaded)
                continue
            keys.extend(loaded)
        keys.extend(self.agent_keys)
        if not paths:
            keys.extend(self.default_keys)
        return keys

    async def probe(self, spec: HostSpec, phase: Phase | None = None) -> ProbeResult:
        """Probe one host under its deadline; every failure becomes an outcome."""
        started = time.monotonic()
        attempts = 0
        deadline = spec.timeout or self.options.timeouts.host
        phase = phase or Phase()
        try:
            async with asyncio.timeout(deadline):
                while True:
                    attempts += 1
                    try:
                        output = await self._attempt(spec, phase)
                        break
                    except _Transient as exc:
                        if attempts > self.options.retries:
                            raise CollectError(UNREACHABLE, str(exc)) from None
                        delay = 0.5 * 2 ** (attempts - 1) * (1 + random.random())
                        log.debug("host=%s retry in %.1fs: %s", spec.name, delay, exc)
                        await asyncio.sleep(delay)
            outcome, reason = OK, ""
        except TimeoutError:
            output = None
            outcome = TIMEOUT
            reason = f"not done within the host deadline of {deadline:g}s"
            reason += f" ({phase.name})"
        except CollectError as exc:
            output = None
            outcome, reason = exc.outcome, exc.reason
        except (OSError, asyncssh.Error, ValueError) as exc:
            # Whatever else a peer provokes still ends as an outcome of this host.
            log.debug("host=%s: unexpected %r", spec.name, exc, exc_info=True)
            output = None
            outcome, reason = UNREACHABLE, f"{type(exc).__name__}: {exc}"

        return ProbeResult(
            spec,
            outcome,
            reason,
            output,
            int((time.monotonic() - started) * 1000),
            attempts,
        )

    async def _attempt(self, spec: HostSpec, phase: Phase) -> bytes:
        """One attempt at one host: connect, authenticate, run the probe."""
        script = self._script_for(spec)
        if spec.local:
            phase.name = "probe"
            return await run_local(script, self.options)

        target = self.resolve(spec)
        inherited = tuple(self._key_paths(spec))
        tunnel = await self.bastion(target.jump, inherited) if target.jump else None
        conn = await self.connect(target, phase, tunnel)
        try:
            phase.name = "probe"
            phase.release()  # waiting on a probe costs nothing; let others connect
            return await run_remote(conn, script, self.options)
        finally:
            conn.close()

    def _script_for(self, spec: HostSpec) -> bytes:
        """The probe script, with the host's probe root set when it has one."""
        root = spec.settings.get("probe_root")
        if not root:
            return self.script
        prefix = f"FLEETCOMPAT_ROOT={shlex.quote(root)}\nexport FLEETCOMPAT_ROOT\n"
        return prefix.encode() + self.script

    def resolve(
        self, spec: HostSpec | Endpoint, inherited: tuple[str, ...] = ()
    ) -> _Target:
        """Where to connect, as the inventory and ~/.ssh/config say together."""
        if isinstance(spec, HostSpec):
            given, port, user, jump = spec.address, spec.port, spec.user, spec.jump
            name = spec.name
        else:
            given, port, user, jump = spec.host, spec.port, spec.user, None
            name = str(spec)
        config = self.ssh_config.resolve(given, user)
        if jump is None and isinstance(spec, HostSpec):
            jump = _parse_jump(config.proxy_jump)
        return _Target(
            name=name,
            host=config.hostname or given,
            port=port or config.port or 22,
            user=user or config.user or self.ssh_config.local_user,
            keys=self.client_keys(spec, inherited),
            jump=jump or (),
            password=spec.password if isinstance(spec, HostSpec) else None,
        )

    def jump_of(self, spec: HostSpec) -> tuple[Endpoint, ...]:
        """The jump chain in front of a host (empty for none)."""
        if spec.jump is not None:
            return spec.jump
        config = self.ssh_config.resolve(spec.address, spec.user)
        return _parse_jump(config.proxy_jump) or ()

    async def connect(
        self, target: _Target, phase: Phase, tunnel: Any = None
    ) -> asyncssh.SSHClientConnection:
        """An authenticated connection, each phase under its own deadline."""
        timeouts = self.options.timeouts
        phase.name = "connect"
        sock = None
        if tunnel is None:
            try:
                async with asyncio.timeout(timeouts.connect):
                    sock = await _tcp_connect(target.host, target.port)
            except TimeoutError:
                raise CollectError(
                    TIMEOUT,
                    f"TCP connect to {target.host}:{target.port} took longer than "
                    f"{timeouts.connect:g}s (connect)",
                ) from None

        loop = asyncio.get_running_loop()
        client = _Client(self, target, phase, loop, timeouts.auth)
        by_password = target.password is not None
        try:
            async with asyncio.timeout(timeouts.connect) as deadline:
                client.deadline = deadline
                conn, _ = await asyncssh.create_connection(
                    lambda: client,
                    target.host,
                    target.port,
                    tunnel=tunnel,
                    sock=sock,
                    username=target.user,
                    known_hosts=self.known,
                    client_keys=None,
                    agent_path=None,
                    agent_identities=None,
                    preferred_auth=(
                        "publickey,keyboard-interactive,password"
                        if by_password
                        else "publickey"
                    ),
                    password_auth=by_password,
                    kbdint_auth=by_password,
                    gss_host=None,
                    config=None,
                    login_timeout=timeouts.connect + timeouts.auth,
                    keepalive_interval=0,
                )
        except TimeoutError:
            if sock is not None:
                sock.close()
            limit = timeouts.auth if phase.name == "auth" else timeouts.connect
            raise CollectError(
                TIMEOUT,
                f"{target.host}:{target.port} did not finish the SSH "
                f"{'authentication' if phase.name == 'auth' else 'handshake'} "
                f"within {limit:g}s ({phase.name})",
            ) from None
        except (OSError, asyncssh.Error) as exc:
            if sock is not None:
                sock.close()
            raise _translate(
                exc, target, client, self.known, self.known_files
            ) from None
        return conn

    def jump_slot(self, spec: HostSpec) -> Any:
        """The bastion's slot a host behind it waits for (a no-op otherwise)."""
        if spec.local:
            return _NoSlot()
        jump = self.jump_of(spec)
        if not jump:
            return _NoSlot()
        limit = int(spec.settings.get("jump_concurrency") or 0)
        slot = self.bastion_slots.get(jump)
        if slot is None:
            slot = self.bastion_slots[jump] = asyncio.Semaphore(
                limit or self.options.jump_concurrency
            )
        return slot

    async def bastion(
        self, chain: tuple[Endpoint, ...], inherited: tuple[str, ...] = ()
    ) -> Any:
        """The shared connection to the last bastion of a chain, opened once."""
        task = self.bastions.get(chain)
        if (
            task is not None
            and task.done()
            and not task.exception()
            and task.result().is_closed()
        ):
            task = None  # the bastion went away; open it again
        if task is None:
            task = asyncio.create_task(self._open_bastion(chain, inherited))
            self.bastions[chain] = task
        try:
            return await asyncio.shield(task)
        except CollectError as exc:
            raise CollectError(
                exc.outcome, f"via jump host {chain[-1]}: {exc.reason}"
            ) from None

    async def _open_bastion(
        self, chain: tuple[Endpoint, ...], inherited: tuple[str, ...]
    ) -> Any:
        """Open the chain's last bastion, through the ones before it."""
        tunnel = await self.bastion(chain[:-1], inherited) if len(chain) > 1 else None
        target = self.resolve(chain[-1], inherited)
        async with asyncio.timeout(
            self.options.timeouts.connect + self.options.timeouts.auth + 1
        ):
            return await self.connect(target, Phase(), tunnel)

    async def close(self) -> None:
        """Close the bastions and the agent."""
        for task in self.bastions.values():
            if task.done() and not task.cancelled() and not task.exception():
                task.result().close()
            elif not task.done():
                task.cancel()
        if self.agent is not None:
            self.agent.close()

    def accept_new(self, target: _Target, key: asyncssh.SSHKey) -> None:
        """Record a new host key in fleetcompat's own known_hosts file."""
        path = self.options.known_hosts_file
        if path is None:
            return
        name = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
        algorithm, data = key.export_public_key("openssh").decode().split()[:2]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="ascii") as stream:
            stream.write(f"{name} {algorithm} {data}\n")
        log.info(
            "host=%s: recorded new host key %s", target.name, key.get_fingerprint()
        )


@dataclass(frozen=True)
class _Target:
    """A resolved SSH endpoint: where, as whom, with which keys, through what."""

    name: str
    host: str
    port: int
    user: str
    keys: list[asyncssh.SSHKeyPair]
    jump: tuple[Endpoint, ...]
    password: Secret | None = field(default=None, repr=False)


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


class _NoSlot:
    """An async context manager that does nothing."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Transient(Exception):
    """A failure worth another attempt (a connection reset before auth)."""


class _Client(asyncssh.SSHClient):
    """Checks host keys by policy and moves the deadline from connect to auth."""

    def __init__(
        self,
        fleet: Fleet,
        target: _Target,
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


def _translate(
    exc: BaseException,
    target: _Target,
    client: _Client,
    known: asyncssh.SSHKnownHosts | None,
    known_files: list[str],
) -> Exception:
    """An asyncssh or socket error as an outcome with a reason, or a _Transient."""
    where = f"{target.host}:{target.port}"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        key = client.offered_key
        fingerprint = key.get_fingerprint() if key is not None else "unknown"
        if _has_known_keys(known, target.host, "", target.port):
            lines = _known_lines(known_files, target.host, target.port)
            found = ", ".join(lines) if lines else "known_hosts"
            return CollectError(
                HOSTKEY_MISMATCH,
                f"{where} offered host key {fingerprint}, which does not match "
                f"the one in {found}: the host was reinstalled, or someone is in "
                "the middle; check it, then remove the old line "
                f"(ssh-keygen -R {_known_name(target.host, target.port)} -f FILE)",
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
            return _Transient(
                f"{where} closed the connection during {client.phase.name}"
            )
        return CollectError(UNREACHABLE, f"{where} closed the connection")
    if isinstance(exc, asyncssh.DisconnectError):
        return CollectError(UNREACHABLE, f"{where} disconnected: {exc.reason}")
    if isinstance(exc, OSError):
        return CollectError(UNREACHABLE, f"{where}: {exc.strerror or exc}")
    return CollectError(UNREACHABLE, f"{where}: {exc}")


def _auth_refusal(target: _Target, client: _Client) -> str:
    """Why authentication failed, in words that say what to check (no secret)."""
    login = f"{target.user}@{target.host}:{target.port}"
    keys = f"every key offered ({len(target.keys)} key(s))"
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


async def _tcp_connect(host: str, port: int) -> socket.socket:
    """A connected TCP socket; refused and unreachable become outcomes."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CollectError(
            UNREACHABLE, f"cannot resolve {host}: {exc.strerror}"
        ) from None

    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
        except BaseException:
            sock.close()
            raise
    if last is not None and last.errno == errno.ECONNREFUSED:
        raise CollectError(
            REFUSED, f"{host}:{port} refused the connection (no sshd on that port?)"
        )
    reason = last.strerror if last is not None and last.strerror else str(last)
    raise CollectError(UNREACHABLE, f"{host}:{port} unreachable: {reason}")


class _ProbeSession(asyncssh.SSHClientSession[bytes]):
    """Collects a probe's stdout (bounded) and stderr (an excerpt) and its exit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.oversized = False
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        self.done: asyncio.Future[Exception | None] = (
            asyncio.get_running_loop().create_future()
        )
        self.channel: Any = None

    def connection_made(self, chan: Any) -> None:
        self.channel = chan

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self.stderr += data
            del self.stderr[: -4 * STDERR_EXCERPT]
            return
        if len(self.stdout) + len(data) > self.limit:
            self.oversized = True
            self.channel.abort()
            return
        self.stdout += data

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def exit_signal_received(
        self, signal: str, core_dumped: bool, msg: str, lang: str
    ) -> None:
        self.exit_signal = signal

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(exc)


async def run_remote(conn: Any, script: bytes, options: CollectOptions) -> bytes:
    """Run the probe as `sh -s` with the script on stdin; bounded, deadlined."""
    limit = options.max_output
    try:
        async with asyncio.timeout(options.timeouts.probe):
            chan, session = await conn.create_session(
                lambda: _ProbeSession(limit), "sh -s", encoding=None
            )
            chan.write(script)
            chan.write_eof()
            error = await session.done
    except TimeoutError:
        raise CollectError(
            TIMEOUT,
            f"the probe did not finish within {options.timeouts.probe:g}s (probe)",
        ) from None
    except (OSError, asyncssh.Error) as exc:
        raise CollectError(PROBE_FAILED, f"could not start the probe: {exc}") from None

    return probe_output(
        bytes(session.stdout),
        bytes(session.stderr),
        session.exit_status,
        session.exit_signal,
        session.oversized,
        limit,
        error,
    )


def _load_key(path: str) -> list[asyncssh.SSHKeyPair] | str:
    """A key file's key pairs (with a certificate beside it), or why not."""
    try:
        return list(asyncssh.load_keypairs([path]))
    except asyncssh.KeyImportError as exc:
        if "passphrase" in str(exc).lower():
            return f"key file {path} is encrypted; load it into ssh-agent"
        return f"key file {path} cannot be used: {exc}"
    except OSError as exc:
        return f"key file {path} cannot be read: {exc.strerror or exc}"


def _known_lines(files: list[str], host: str, port: int | None) -> list[str]:
    """Where known_hosts holds keys for a host: "FILE line N" for each line."""
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
            host_keys, ca_keys, *_ = entry.match(host, "", port)
            if host_keys or ca_keys:
                found.append(f"{path} line {number}")
    return found


def _known_name(host: str, port: int | None) -> str:
    """A host as known_hosts names it: host, or [host]:port off port 22."""
    return host if port in (None, 22) else f"[{host}]:{port}"


def _read_known_hosts(files: list[str]) -> asyncssh.SSHKnownHosts | None:
    """All trusted known_hosts files as one table, read once."""
    known = asyncssh.SSHKnownHosts()
    for path in files:
        try:
            known.load(Path(path).read_text(encoding="utf-8", errors="replace"))
        except (OSError, ValueError) as exc:
            log.warning("known_hosts %s not usable: %s", path, exc)
    return known


def _parse_jump(text: str | None) -> tuple[Endpoint, ...] | None:
    """A ProxyJump value from ssh config as a chain ("none": no jump)."""
    if not text or text.strip().lower() == "none":
        return None
    hops = []
    for hop in text.split(","):
        user, _, rest = hop.strip().rpartition("@")
        host, _, port = rest.partition(":")
        hops.append(Endpoint(host, int(port) if port.isdigit() else None, user or None))
    return tuple(hops)
