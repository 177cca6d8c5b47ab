"""The run's shared SSH state and the path of one host through it.

One `Fleet` per run holds what hosts share: the keys (files and the agent's,
loaded once), the known_hosts table (read once), ~/.ssh/config (parsed once)
and the connections to bastions (one per jump chain, shared by every host
behind it). `Fleet.probe` runs one host under its deadlines and turns every
failure into an outcome with a reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shlex
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.public_key import load_default_keypairs

from fleetcompat.errors import CollectError
from fleetcompat.inventory import Endpoint, HostSpec
from fleetcompat.probing import (
    AUTH_FAILED,
    OK,
    TIMEOUT,
    UNREACHABLE,
    CollectOptions,
    ProbeResult,
    Timeouts,
    run_local,
)
from fleetcompat.ssh.handshake import (
    Client,
    Phase,
    Target,
    Transient,
    load_key,
    read_known_hosts,
    translate,
)
from fleetcompat.ssh.session import run_remote, tcp_connect
from fleetcompat.sshconfig import SSHConfig

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
        self.known = read_known_hosts(self.known_files)
        paths: set[str] = set()
        for spec in hosts:
            if spec.local:
                continue
            paths.update(self._key_paths(spec))
        for path in sorted(paths):
            self.keys[path] = load_key(path)
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
                loaded = self.keys[path] = load_key(path)
            if isinstance(loaded, str):
                given = spec.key_file if isinstance(spec, HostSpec) else None
                if given and Path(given).expanduser() == Path(path):
                    # As ssh with a bad -i: go on with the agent and the
                    # password, if there are any; the reason will name the file.
                    password = isinstance(spec, HostSpec) and spec.password
                    if not (self.agent_keys or password):
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
        timeouts = self.options.timeouts
        if spec.timeout:
            timeouts = timeouts.for_one_host(spec.timeout)
        deadline = timeouts.host
        phase = phase or Phase()
        try:
            async with asyncio.timeout(deadline):
                while True:
                    attempts += 1
                    try:
                        output = await self._attempt(spec, phase, timeouts)
                        break
                    except Transient as exc:
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

    async def _attempt(self, spec: HostSpec, phase: Phase, timeouts: Timeouts) -> bytes:
        """One attempt at one host: connect, authenticate, run the probe."""
        script = self._script_for(spec)
        if spec.local:
            phase.name = "probe"
            return await run_local(script, self.options)

        target = self.resolve(spec)
        inherited = tuple(self._key_paths(spec))
        tunnel = await self.bastion(target.jump, inherited) if target.jump else None
        conn = await self.connect(target, phase, tunnel, timeouts)
        try:
            phase.release()  # waiting on a probe costs nothing; let others connect
            return await run_remote(
                conn, script, timeouts, self.options.max_output, phase
            )
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
        self,
        spec: HostSpec | Endpoint,
        inherited: tuple[str, ...] = (),
        *,
        with_keys: bool = True,
    ) -> Target:
        """Where to connect, as the inventory and ~/.ssh/config say together.

        `with_keys=False` leaves the keys out (none is loaded).
        """
        if isinstance(spec, HostSpec):
            given, port, user, jump = spec.address, spec.port, spec.user, spec.jump
            name = spec.name
        else:
            given, port, user, jump = spec.host, spec.port, spec.user, None
            name = str(spec)
        config = self.ssh_config.resolve(given, user)
        if jump is None and isinstance(spec, HostSpec):
            jump = _parse_jump(config.proxy_jump)
        return Target(
            name=name,
            host=config.hostname or given,
            port=port or config.port or 22,
            user=user or config.user or self.ssh_config.local_user,
            keys=self.client_keys(spec, inherited) if with_keys else [],
            jump=jump or (),
            password=spec.password if isinstance(spec, HostSpec) else None,
            key_problem=self._given_key_problem(spec),
        )

    def _given_key_problem(self, spec: HostSpec | Endpoint) -> str:
        """Why the key file the inventory names cannot be used ("" if it can)."""
        if not isinstance(spec, HostSpec) or not spec.key_file:
            return ""
        loaded = self.keys.get(str(Path(spec.key_file).expanduser()))
        return loaded if isinstance(loaded, str) else ""

    def plan(self, spec: HostSpec) -> dict[str, Any]:
        """How a host would be contacted, as the inventory and ssh config say.

        Reads ~/.ssh/config only; no key is loaded and nothing is contacted. The
        password, if any, shows only as being set.
        """
        if spec.local:
            return {"host": spec.name, "connection": "local"}
        target = self.resolve(spec, with_keys=False)
        return {
            "host": spec.name,
            "connection": "ssh",
            "address": target.host,
            "port": target.port,
            "user": target.user,
            "key_files": self._key_paths(spec),
            "jump": [str(hop) for hop in target.jump],
            "password": spec.password is not None,
            "timeout": spec.timeout or self.options.timeouts.host,
        }

    def jump_of(self, spec: HostSpec) -> tuple[Endpoint, ...]:
        """The jump chain in front of a host (empty for none)."""
        if spec.jump is not None:
            return spec.jump
        config = self.ssh_config.resolve(spec.address, spec.user)
        return _parse_jump(config.proxy_jump) or ()

    async def connect(
        self,
        target: Target,
        phase: Phase,
        tunnel: Any = None,
        timeouts: Timeouts | None = None,
    ) -> asyncssh.SSHClientConnection:
        """An authenticated connection, each phase under its own deadline."""
        timeouts = timeouts or self.options.timeouts
        phase.name = "connect"
        sock = None
        if tunnel is None:
            try:
                async with asyncio.timeout(timeouts.connect):
                    sock = await tcp_connect(target.host, target.port)
            except TimeoutError:
                raise CollectError(
                    TIMEOUT,
                    f"TCP connect to {target.host}:{target.port} took longer than "
                    f"{timeouts.connect:g}s (connect)",
                ) from None

        loop = asyncio.get_running_loop()
        client = Client(self, target, phase, loop, timeouts.auth)
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
            raise translate(exc, target, client, self.known, self.known_files) from None
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

    def accept_new(self, target: Target, key: asyncssh.SSHKey) -> None:
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


class _NoSlot:
    """An async context manager that does nothing."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


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
