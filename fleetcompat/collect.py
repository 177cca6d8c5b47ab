"""The fleet collector: one probe run per host, over SSH or locally, into the store.

How a run goes:

- The inventory's hosts are selected (`--limit`), keys, known_hosts files and
  ~/.ssh/config are read once, and a run record is started.
- An event loop in a worker thread contacts the hosts, at most `concurrency` of
  them connecting and authenticating at a time (the costly part, and what an
  sshd's MaxStartups counts); a host whose probe is running holds only its open
  connection, so hung hosts do not starve the others (up to 20 times
  `concurrency` connections are open at once). Each host runs under its own
  deadline (`timeout`) and a deadline per phase:
  `connect` (TCP connect and SSH handshake, up to the host key check), `auth`
  (user authentication) and `probe` (running `sh -s` with the probe script on
  stdin and reading its bounded output). Transient failures (a connection reset
  or closed before authentication, as an sshd over its MaxStartups does) are
  retried with backoff inside the host's deadline; nothing else is.
- The calling thread turns each finished host's probe output into features (the
  same parser and discovery as `fleetcompat import` and `discover`) and saves the
  snapshot at once, in its own transaction. The event loop never waits on SQLite.
- Hosts behind a jump host share one connection to it, opened on first need, with
  its own limit on hosts tunnelled at once.

Every host ends with exactly one outcome from `OUTCOMES` and a reason a person can
act on. Ctrl-C stops starting hosts and lets those in flight finish (a second Ctrl-C
cancels them); the run is then recorded as interrupted.

asyncssh is used here and nowhere else. No password or passphrase is ever used or
stored: authentication is by keys (files or the agent); an encrypted key file with
no agent holding it cannot be used, since a nightly run cannot prompt.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import queue
import random
import shlex
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.public_key import load_default_keypairs

from fleetcompat.errors import CollectError, FeaturesError, FleetcompatError
from fleetcompat.features import Features
from fleetcompat.inventory import Endpoint, HostSpec, Inventory
from fleetcompat.sshconfig import SSHConfig
from fleetcompat.store import Host, Store

log = logging.getLogger(__name__)

OK = "ok"
UNREACHABLE = "unreachable"
REFUSED = "refused"
TIMEOUT = "timeout"
AUTH_FAILED = "auth-failed"
HOSTKEY_MISMATCH = "hostkey-mismatch"
HOSTKEY_UNKNOWN = "hostkey-unknown"
PROBE_FAILED = "probe-failed"
OUTPUT_INVALID = "output-invalid"
OUTPUT_OVERSIZED = "output-oversized"
OUTCOMES = (
    OK,
    UNREACHABLE,
    REFUSED,
    TIMEOUT,
    AUTH_FAILED,
    HOSTKEY_MISMATCH,
    HOSTKEY_UNKNOWN,
    PROBE_FAILED,
    OUTPUT_INVALID,
    OUTPUT_OVERSIZED,
)
"""Every outcome a host can end with; all but "ok" are failures."""

STRICT = "strict"
ACCEPT_NEW = "accept-new"
MAX_OUTPUT_BYTES = 32 * 1024 * 1024
STDERR_EXCERPT = 400
SOURCE_SSH = "ssh"
SOURCE_LOCAL = "local"


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds: per phase, and per host over all its phases."""

    connect: float = 10.0
    auth: float = 15.0
    probe: float = 60.0
    host: float = 90.0

    @classmethod
    def for_host(cls, seconds: float) -> Timeouts:
        """Phase deadlines that fit in one per-host deadline."""
        return cls(
            connect=min(10.0, seconds * 0.3),
            auth=min(15.0, seconds * 0.3),
            probe=seconds,
            host=seconds,
        )


@dataclass(frozen=True)
class CollectOptions:
    """How a run contacts hosts."""

    concurrency: int = 50
    timeouts: Timeouts = field(default_factory=Timeouts)
    known_hosts: str = STRICT
    known_hosts_file: Path | None = None
    ssh_config: Path | None = None
    max_output: int = MAX_OUTPUT_BYTES
    retries: int = 2
    jump_concurrency: int = 10


@dataclass(frozen=True)
class ProbeResult:
    """What contacting one host produced: raw probe output, or a failure."""

    host: HostSpec
    outcome: str
    reason: str = ""
    output: bytes | None = None
    duration_ms: int = 0
    attempts: int = 1


@dataclass(frozen=True)
class HostOutcome:
    """How one host ended, as saved."""

    name: str
    outcome: str
    reason: str
    duration_ms: int
    feature_set: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class Progress:
    """Counts while a run goes, for a live display."""

    total: int
    done: int
    failed: int
    in_flight: int
    elapsed: float
    last: HostOutcome | None = None

    @property
    def rate(self) -> float:
        """Hosts finished per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class CollectSummary:
    """A finished run: its record, counts per outcome, and every host's outcome."""

    run_id: int
    status: str
    selected: int
    counts: dict[str, int]
    hosts: tuple[HostOutcome, ...]
    skipped: tuple[tuple[str, str], ...]
    duration_s: float
    pruned: int = 0

    @property
    def failed(self) -> tuple[HostOutcome, ...]:
        """The hosts that did not end "ok"."""
        return tuple(h for h in self.hosts if h.outcome != OK)

    def to_json(self) -> dict[str, Any]:
        """The summary as one JSON-ready document."""
        return {
            "run": self.run_id,
            "status": self.status,
            "selected": self.selected,
            "counts": self.counts,
            "duration_s": round(self.duration_s, 3),
            "pruned": self.pruned,
            "hosts": [
                {
                    "name": h.name,
                    "outcome": h.outcome,
                    "reason": h.reason,
                    "duration_ms": h.duration_ms,
                    "feature_set": h.feature_set,
                    "attempts": h.attempts,
                }
                for h in self.hosts
            ],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
        }


ProgressCallback = Callable[[Progress], None]


def collect_fleet(
    inventory: Inventory,
    store: Store,
    *,
    limit: str | None = None,
    options: CollectOptions | None = None,
    retain: int | None = None,
    progress: ProgressCallback | None = None,
) -> CollectSummary:
    """Collect every selected host of an inventory into the store.

    Runs the event loop in a worker thread and saves from the calling thread,
    where `store` was opened. Raises InventoryError for a bad `limit` before
    anything is written. Ctrl-C (when called from the main thread) ends the run
    early with status "interrupted".
    """
    options = options or CollectOptions()
    selected = inventory.select(limit)
    skipped = tuple((h.name, h.skip) for h in selected if h.skip)
    hosts = [h for h in selected if not h.skip]
    settings = {
        "inventory": inventory.source,
        "limit": limit or "",
        "concurrency": options.concurrency,
        "timeouts": vars(options.timeouts),
        "known_hosts": options.known_hosts,
        "hosts": len(hosts),
        "skipped": len(skipped),
    }
    run_id = store.start_run("collect", settings)
    started = time.monotonic()

    saver = _Saver(store, run_id, len(hosts), progress, started)
    worker = _Worker(hosts, options)
    try:
        with _interrupts(worker):
            worker.start()
            saver.drain(worker)
    except BaseException:
        counts = dict(Counter(o.outcome for o in saver.outcomes))
        store.finish_run(run_id, "failed", counts)
        raise
    interrupted = worker.stopping.is_set()

    counts = dict(Counter(o.outcome for o in saver.outcomes))
    if interrupted:
        status = "interrupted"
    elif len(saver.outcomes) == len(hosts) and not saver.failed:
        status = "ok"
    else:
        status = "partial"
    store.finish_run(run_id, status, counts)
    pruned = store.prune(retain) if retain else 0
    return CollectSummary(
        run_id=run_id,
        status=status,
        selected=len(selected),
        counts=counts,
        hosts=tuple(sorted(saver.outcomes, key=lambda o: o.name)),
        skipped=skipped,
        duration_s=time.monotonic() - started,
        pruned=pruned,
    )


class _Worker(threading.Thread):
    """The thread that runs the event loop and hands results to a queue."""

    def __init__(self, hosts: list[HostSpec], options: CollectOptions) -> None:
        super().__init__(name="fleetcompat-collect", daemon=True)
        self.hosts = hosts
        self.options = options
        self.results: queue.Queue[ProbeResult | None] = queue.Queue()
        self.stopping = threading.Event()
        self.in_flight = 0
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to the calling thread, raised there
            self.error = exc
        finally:
            self.results.put(None)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self.stopping.is_set():
            self._stop_event.set()
        await probe_hosts(
            self.hosts, self.options, self._deliver, self._stop_event, self
        )

    def _deliver(self, result: ProbeResult) -> None:
        self.results.put(result)

    def request_stop(self) -> None:
        """Start no more hosts (safe from any thread)."""
        self.stopping.set()
        if self._loop is not None and self._stop_event is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)

    def cancel_in_flight(self) -> None:
        """Cancel the hosts in flight too (a second Ctrl-C)."""
        self.request_stop()
        if self._loop is not None:
            for task in list(self.tasks):
                self._loop.call_soon_threadsafe(task.cancel)


class _interrupts:
    """While active in the main thread: Ctrl-C stops the run instead of killing it."""

    def __init__(self, worker: _Worker) -> None:
        self.worker = worker
        self.previous: Any = None
        self.count = 0

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            log.warning(
                "interrupted: starting no more hosts; finishing those in flight"
            )
            self.worker.request_stop()
        else:
            log.warning("interrupted again: cancelling the hosts in flight")
            self.worker.cancel_in_flight()


class _Saver:
    """Turns probe results into features and snapshots, in the calling thread."""

    def __init__(
        self,
        store: Store,
        run_id: int,
        total: int,
        progress: ProgressCallback | None,
        started: float,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.total = total
        self.progress = progress
        self.started = started
        self.outcomes: list[HostOutcome] = []
        self.failed = 0
        self._parsed: dict[str, Features | FleetcompatError] = {}

    def drain(self, worker: _Worker) -> None:
        """Save results as they come until the worker is done."""
        self._report(worker, None)
        while True:
            try:
                result = worker.results.get(timeout=0.5)
            except queue.Empty:
                self._report(worker, None)
                continue
            if result is None:
                break
            outcome = self.save(result)
            self._report(worker, outcome)
        worker.join()
        if worker.error is not None:
            raise worker.error

    def save(self, result: ProbeResult) -> HostOutcome:
        """Save one host's snapshot (good or failed) in its own transaction."""
        spec = result.host
        outcome, reason = result.outcome, result.reason
        features = None
        if outcome == OK and result.output is not None:
            try:
                features = self._features(result.output, spec.name)
            except FleetcompatError as exc:
                outcome, reason = OUTPUT_INVALID, str(exc)

        host = Host(spec.name, _address(spec), spec.groups)
        snapshot = self.store.save_snapshot(
            host,
            run_id=self.run_id,
            source=SOURCE_LOCAL if spec.local else SOURCE_SSH,
            status=outcome,
            error=reason,
            features=features,
            node_name=spec.name if features is not None else "",
            duration_ms=result.duration_ms,
        )
        if outcome != OK:
            self.failed += 1
            log.info("host=%s outcome=%s reason=%s", spec.name, outcome, reason)
        else:
            log.debug("host=%s outcome=ok in %d ms", spec.name, result.duration_ms)
        done = HostOutcome(
            spec.name,
            outcome,
            reason,
            result.duration_ms,
            snapshot.feature_set,
            result.attempts,
        )
        self.outcomes.append(done)
        return done

    def _features(self, output: bytes, node_name: str) -> Features:
        """Features from probe output; equal outputs are parsed once per run."""
        from fleetcompat.discovery import discover
        from fleetcompat.probe import parse_probe_output

        key = hashlib.sha256(output).hexdigest()
        cached = self._parsed.get(key)
        if cached is None:
            try:
                cached = discover(parse_probe_output(output, node_name))
            except FleetcompatError as exc:
                cached = exc
            except Exception as exc:  # a discovery bug must not lose the run
                log.exception("host=%s: discovery failed", node_name)
                cached = FeaturesError(f"{node_name}: discovery failed: {exc!r}")
            self._parsed[key] = cached
        if isinstance(cached, FleetcompatError):
            raise cached
        return cached

    def _report(self, worker: _Worker, last: HostOutcome | None) -> None:
        """Tell the progress callback where the run is."""
        if self.progress is None:
            return
        self.progress(
            Progress(
                total=self.total,
                done=len(self.outcomes),
                failed=self.failed,
                in_flight=worker.in_flight,
                elapsed=time.monotonic() - self.started,
                last=last,
            )
        )


def _address(spec: HostSpec) -> str:
    """The address recorded for a host (no user, no key)."""
    if spec.local:
        return "local"
    return f"{spec.address}:{spec.port}" if spec.port else spec.address


async def probe_hosts(
    hosts: Iterable[HostSpec],
    options: CollectOptions,
    deliver: Callable[[ProbeResult], None],
    stop: asyncio.Event | None = None,
    counter: Any = None,
) -> None:
    """Probe every host and deliver each result as it finishes (the async core).

    Hosts not yet started when `stop` is set are left out. `counter`, when given,
    has its `in_flight` attribute kept up to date and its `tasks` list filled.
    """
    stop = stop or asyncio.Event()
    fleet = _Fleet(options)
    await fleet.prepare(hosts)
    handshakes = asyncio.Semaphore(max(1, options.concurrency))
    connections = asyncio.Semaphore(_connection_limit(options.concurrency))

    async def one(spec: HostSpec) -> None:
        async with fleet.jump_slot(spec), connections:
            await handshakes.acquire()  # before the host's deadline starts
            phase = _Phase(handshakes.release)
            try:
                if stop.is_set():
                    return
                if counter is not None:
                    counter.in_flight += 1
                try:
                    deliver(await fleet.probe(spec, phase))
                finally:
                    if counter is not None:
                        counter.in_flight -= 1
            finally:
                phase.release()

    tasks = [asyncio.create_task(one(spec), name=spec.name) for spec in hosts]
    if counter is not None:
        counter.tasks = tasks
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await fleet.close()


def _connection_limit(concurrency: int) -> int:
    """Most connections open at once: 20 per handshake slot, within the fd limit."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = soft - 64 if soft != resource.RLIM_INFINITY else 1_000_000
    return max(concurrency, min(concurrency * 20, room))


class _Fleet:
    """Per-run state shared by hosts: keys, known hosts, ssh config, bastions."""

    def __init__(self, options: CollectOptions) -> None:
        self.options = options
        self.ssh_config = SSHConfig.load(options.ssh_config)
        self.keys: dict[str, list[asyncssh.SSHKeyPair] | str] = {}
        self.default_keys: list[asyncssh.SSHKeyPair] = []
        self.agent_keys: list[asyncssh.SSHKeyPair] = []
        self.agent: Any = None
        self.known: asyncssh.SSHKnownHosts | None = None
        self.bastions: dict[tuple[Endpoint, ...], asyncio.Task[Any]] = {}
        self.bastion_slots: dict[tuple[Endpoint, ...], asyncio.Semaphore] = {}
        self.script = b""

    async def prepare(self, hosts: Iterable[HostSpec]) -> None:
        """Load the probe, keys, agent keys and known_hosts once for the run."""
        from fleetcompat.probe import probe_script

        self.script = probe_script()
        self.known = _read_known_hosts(self._known_hosts_files())
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

    async def probe(self, spec: HostSpec, phase: _Phase | None = None) -> ProbeResult:
        """Probe one host under its deadline; every failure becomes an outcome."""
        started = time.monotonic()
        attempts = 0
        deadline = spec.timeout or self.options.timeouts.host
        phase = phase or _Phase()
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

    async def _attempt(self, spec: HostSpec, phase: _Phase) -> bytes:
        """One attempt at one host: connect, authenticate, run the probe."""
        script = self._script_for(spec)
        if spec.local:
            phase.name = "probe"
            return await _run_local(script, self.options)

        target = self.resolve(spec)
        inherited = tuple(self._key_paths(spec))
        tunnel = await self.bastion(target.jump, inherited) if target.jump else None
        conn = await self.connect(target, phase, tunnel)
        try:
            phase.name = "probe"
            phase.release()  # waiting on a probe costs nothing; let others connect
            return await _run_remote(conn, script, self.options)
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
        )

    def jump_of(self, spec: HostSpec) -> tuple[Endpoint, ...]:
        """The jump chain in front of a host (empty for none)."""
        if spec.jump is not None:
            return spec.jump
        config = self.ssh_config.resolve(spec.address, spec.user)
        return _parse_jump(config.proxy_jump) or ()

    async def connect(
        self, target: _Target, phase: _Phase, tunnel: Any = None
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
                    preferred_auth="publickey",
                    password_auth=False,
                    kbdint_auth=False,
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
            raise _translate(exc, target, client, self.known) from None
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
            return await self.connect(target, _Phase(), tunnel)

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


class _Phase:
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
        fleet: _Fleet,
        target: _Target,
        phase: _Phase,
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
        self.phase.name = "auth"
        if self.deadline is not None:
            self.deadline.reschedule(self.loop.time() + self.auth_timeout)
        return list(self.target.keys) or None


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
) -> Exception:
    """An asyncssh or socket error as an outcome with a reason, or a _Transient."""
    where = f"{target.host}:{target.port}"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        key = client.offered_key
        fingerprint = key.get_fingerprint() if key is not None else "unknown"
        if _has_known_keys(known, target.host, "", target.port):
            return CollectError(
                HOSTKEY_MISMATCH,
                f"{where} offered host key {fingerprint}, which does not match "
                "the one in known_hosts: the host was reinstalled, or someone is "
                "in the middle; check it, then remove the old line",
            )
        return CollectError(
            HOSTKEY_UNKNOWN,
            f"{where} offered host key {fingerprint}, not in known_hosts; add it "
            "(ssh-keyscan) or collect once with --known-hosts accept-new",
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return CollectError(
            AUTH_FAILED,
            f"{target.user}@{where} refused every key offered "
            f"({len(target.keys)} key(s)); check ansible_user and the key",
        )
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


async def _run_remote(conn: Any, script: bytes, options: CollectOptions) -> bytes:
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

    return _probe_output(
        bytes(session.stdout),
        bytes(session.stderr),
        session.exit_status,
        session.exit_signal,
        session.oversized,
        limit,
        error,
    )


async def _run_local(script: bytes, options: CollectOptions) -> bytes:
    """Run the probe with the local /bin/sh; bounded, deadlined, same checks."""
    limit = options.max_output
    env = {k: v for k, v in os.environ.items() if k != "FLEETCOMPAT_ROOT"}
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-s",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdin and proc.stdout and proc.stderr
    stdout = bytearray()
    oversized = False

    async def read_stdout() -> None:
        nonlocal oversized
        assert proc.stdout
        while chunk := await proc.stdout.read(65536):
            if len(stdout) + len(chunk) > limit:
                oversized = True
                proc.kill()
                return
            stdout.extend(chunk)

    async def feed() -> None:
        assert proc.stdin
        proc.stdin.write(script)
        await proc.stdin.drain()
        proc.stdin.close()

    try:
        async with asyncio.timeout(options.timeouts.probe):
            _, _, stderr, status = await asyncio.gather(
                feed(), read_stdout(), proc.stderr.read(), proc.wait()
            )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CollectError(
            TIMEOUT,
            f"the probe did not finish within {options.timeouts.probe:g}s (probe)",
        ) from None
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        raise
    signal_name = f"SIG{signal.Signals(-status).name[3:]}" if status < 0 else None
    return _probe_output(
        bytes(stdout),
        stderr[-STDERR_EXCERPT * 4 :],
        status if status >= 0 else None,
        signal_name,
        oversized,
        limit,
        None,
    )


def _probe_output(
    stdout: bytes,
    stderr: bytes,
    status: int | None,
    signal_name: str | None,
    oversized: bool,
    limit: int,
    error: Exception | None,
) -> bytes:
    """The probe's stdout when it succeeded; otherwise the failure as an outcome."""
    if oversized:
        raise CollectError(
            OUTPUT_OVERSIZED,
            f"the probe wrote more than {limit} bytes; refused (not a probe?)",
        )
    excerpt = _excerpt(stderr)
    if status is None and signal_name is None:
        why = f": {error}" if error else ""
        raise CollectError(
            PROBE_FAILED,
            f"the connection closed before the probe finished{why}"
            + (f"; stderr: {excerpt}" if excerpt else ""),
        )
    if signal_name is not None:
        raise CollectError(
            PROBE_FAILED, f"the probe was killed by {signal_name}; stderr: {excerpt}"
        )
    if status != 0:
        raise CollectError(
            PROBE_FAILED, f"the probe exited with status {status}; stderr: {excerpt}"
        )
    return stdout


def _excerpt(stderr: bytes) -> str:
    """The end of stderr on one line, printable, bounded."""
    text = stderr.decode("utf-8", "replace").strip()
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text[-STDERR_EXCERPT:] if text else ""


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
