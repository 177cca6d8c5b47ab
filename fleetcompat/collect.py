"""The fleet collector: one probe run per host, over SSH or locally, into the store.

How a run goes:

- The inventory's hosts are selected (`--limit`), keys, known_hosts files and
  ~/.ssh/config are read once, and a run record is started. Hosts start in
  inventory order, except that those which timed out in their last attempt start
  first, so their deadlines overlap the rest of the run rather than extend it.
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

The SSH side (asyncssh's one home) is `fleetcompat.ssh`; options, outcomes and the
local run are in `fleetcompat.probing`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fleetcompat.errors import FeaturesError, FleetcompatError, InputError
from fleetcompat.features import Features
from fleetcompat.inventory import HostSpec, Inventory
from fleetcompat.probing import (
    ACCEPT_NEW,
    MAX_OUTPUT_BYTES,
    OK,
    OUTCOMES,
    OUTPUT_INVALID,
    STRICT,
    TIMEOUT,
    CollectOptions,
    ProbeResult,
    Timeouts,
)
from fleetcompat.ssh import Fleet, Phase
from fleetcompat.store import Host, HostStatus, Store

__all__ = [
    "ACCEPT_NEW",
    "MAX_OUTPUT_BYTES",
    "OUTCOMES",
    "STRICT",
    "CollectOptions",
    "CollectSummary",
    "HostOutcome",
    "Progress",
    "ProbeResult",
    "Timeouts",
    "collect_fleet",
    "fleet_status",
    "mark_killed_runs",
    "probe_hosts",
]

log = logging.getLogger(__name__)

SOURCE_SSH = "ssh"
SOURCE_LOCAL = "local"


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
    early with status "interrupted". A run with skipped hosts, or with no host
    to collect, is "partial": those hosts were not collected.
    """
    options = options or CollectOptions()
    selected = inventory.select(limit)
    check_known_hosts_file(options)
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
        "pid": os.getpid(),
        "machine": socket.gethostname(),
    }
    mark_killed_runs(store)
    run_id = store.start_run("collect", settings)
    started = time.monotonic()

    saver = _Saver(store, run_id, len(hosts), progress, started)
    worker = _Worker(slow_first(hosts, store), options)
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
    complete = len(saver.outcomes) == len(hosts) and not saver.failed
    if interrupted:
        status = "interrupted"
    elif hosts and complete and not skipped:
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


def plan_fleet(
    inventory: Inventory,
    limit: str | None = None,
    options: CollectOptions | None = None,
) -> list[dict[str, Any]]:
    """How each selected host would be contacted, contacting none (`--list-hosts`).

    Skipped hosts are listed with the reason. Raises InventoryError for a bad
    `limit`, as `collect_fleet` does.
    """
    fleet = Fleet(options or CollectOptions())
    plans = []
    for spec in inventory.select(limit):
        if spec.skip:
            plans.append({"host": spec.name, "skip": spec.skip})
        else:
            plans.append(fleet.plan(spec))
    return plans


def check_known_hosts_file(options: CollectOptions) -> None:
    """With accept-new, our known_hosts file must take new keys: else InputError.

    Found before any host is contacted, so that a file that cannot be written
    is said once, naming it, rather than as every new host failing.
    """
    path = options.known_hosts_file
    if options.known_hosts != ACCEPT_NEW or path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="ascii"):
            pass
    except OSError as exc:
        raise InputError(
            f"{path}: --known-hosts accept-new cannot record new host keys in it: "
            f"{exc.strerror or exc}"
        ) from None


def slow_first(hosts: list[HostSpec], store: Store) -> list[HostSpec]:
    """The hosts in inventory order, those that timed out last time first.

    A host that hung in the previous run will likely hang again: started first,
    its deadline runs while the rest of the fleet is collected, instead of
    after it, so known-bad hosts do not lengthen a nightly run.
    """
    timed_out = {
        status.host.name
        for status in store.hosts()
        if status.latest is not None and status.latest.status == TIMEOUT
    }
    if not timed_out:
        return hosts
    return sorted(hosts, key=lambda spec: spec.name not in timed_out)


def mark_killed_runs(store: Store) -> list[int]:
    """Mark as "killed" the running runs whose process on this machine is gone.

    A run records its process id and this machine's name when it starts; a run
    still "running" whose process no longer exists was killed (SIGKILL, a crash,
    a reboot). Runs started on other machines, or by a live process, are left
    alone. A process id reused by an unrelated process keeps its old run
    "running" until that process ends. A killed run's counts are those of the
    hosts it saved. Returns the ids of the runs marked.
    """
    machine = socket.gethostname()
    marked = []
    for run in store.runs():
        pid = run.settings.get("pid")
        if run.status != "running" or run.settings.get("machine") != machine:
            continue
        if not isinstance(pid, int) or pid <= 0 or _process_exists(pid):
            continue
        store.finish_run(run.id, "killed", run.counts or store.run_outcomes(run.id))
        log.info("run=%d: its process %d is gone; marked killed", run.id, pid)
        marked.append(run.id)
    return marked


def fleet_status(store: Store) -> list[HostStatus]:
    """Every host with its latest and latest good snapshot, after marking dead runs.

    A store opened read-only (read-only storage) is listed as it is.
    """
    if not store.readonly:
        mark_killed_runs(store)
    return store.hosts()


def _process_exists(pid: int) -> bool:
    """Whether a process with this id exists on this machine (any owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        from fleetcompat.discovery import check_host_root, discover
        from fleetcompat.probe import parse_probe_output

        key = hashlib.sha256(output).hexdigest()
        cached = self._parsed.get(key)
        if cached is None:
            try:
                tree = parse_probe_output(output, node_name)
                check_host_root(tree, node_name)
                cached = discover(tree)
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
    hosts = list(hosts)
    stop = stop or asyncio.Event()
    fleet = Fleet(options)
    await fleet.prepare(hosts)
    handshakes = asyncio.Semaphore(max(1, options.concurrency))
    connections = asyncio.Semaphore(_connection_limit(options.concurrency))

    async def one(spec: HostSpec) -> None:
        async with fleet.jump_slot(spec), connections:
            await handshakes.acquire()  # before the host's deadline starts
            phase = Phase(handshakes.release)
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
