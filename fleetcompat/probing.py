"""How one host is probed: options, deadlines, outcomes, and what a probe returns.

A probe run ends in exactly one of `OUTCOMES`. This module holds the settings a
run probes with, the record of one host's result, the check that turns a probe's
stdout, stderr and exit into output or a failure (the same for SSH and local
runs), and the local run itself: `/bin/sh -s` on this machine, bounded and
deadlined like a remote one. The SSH side lives in `fleetcompat.ssh`.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from fleetcompat.errors import CollectError, InputError
from fleetcompat.inventory import HostSpec

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

PHASES = ("connect", "auth", "start", "probe")
"""The phases of contacting a host, each under its own deadline, in order.

`start` lies inside `probe`: from running the probe to its first output. The
probe writes its first line before it reads anything, so a host that says
nothing for that long is hung in its login (a stuck PAM module, a hung home
directory mount), not slow, and need not hold the run for its whole deadline.
"""

STRICT = "strict"
ACCEPT_NEW = "accept-new"
MAX_OUTPUT_BYTES = 32 * 1024 * 1024
STDERR_EXCERPT = 400


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds: per phase, and per host over all its phases.

    `given` names the phases set explicitly; the others were derived from the
    host deadline, and are derived again for a host with a deadline of its own.
    """

    connect: float = 10.0
    auth: float = 15.0
    probe: float = 60.0
    host: float = 90.0
    start: float = 15.0
    given: tuple[str, ...] = ()

    @classmethod
    def for_host(
        cls,
        seconds: float,
        connect: float | None = None,
        auth: float | None = None,
        probe: float | None = None,
        start: float | None = None,
    ) -> Timeouts:
        """Phase deadlines inside one per-host deadline; those not given derived.

        connect, auth and start default to 30% of the host deadline (at most
        10 s, 15 s and 15 s), probe to the whole of it. Raises InputError for a
        phase deadline longer than the host deadline.
        """
        asked = {"connect": connect, "auth": auth, "probe": probe, "start": start}
        timeouts = cls(
            connect=min(10.0, seconds * 0.3) if connect is None else connect,
            auth=min(15.0, seconds * 0.3) if auth is None else auth,
            probe=seconds if probe is None else probe,
            host=seconds,
            start=min(15.0, seconds * 0.3) if start is None else start,
            given=tuple(p for p in PHASES if asked[p] is not None),
        )
        for phase in PHASES:
            limit = getattr(timeouts, phase)
            if limit > seconds:
                raise InputError(
                    f"the {phase} deadline ({limit:g}s) is longer than the host "
                    f"deadline ({seconds:g}s)"
                )
        return timeouts

    def for_one_host(self, seconds: float) -> Timeouts:
        """These deadlines for a host with a deadline of its own (its inventory's).

        The host's deadline stands for the run's: phases given explicitly keep
        their deadline (cut to the host's), the others are derived from it.
        """
        given = {p: min(getattr(self, p), seconds) for p in self.given}
        return Timeouts.for_host(seconds, **given)


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


async def run_local(script: bytes, options: CollectOptions) -> bytes:
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
    return probe_output(
        bytes(stdout),
        stderr[-STDERR_EXCERPT * 4 :],
        status if status >= 0 else None,
        signal_name,
        oversized,
        limit,
        None,
    )


def probe_output(
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
    text = printable(text)
    return text[-STDERR_EXCERPT:] if text else ""


def printable(text: str) -> str:
    """`text` safe for a terminal: each control or unprintable character is a ?."""
    return "".join(c if c.isprintable() else "?" for c in text)
