"""The probe's run on a host: the TCP connection and the `sh -s` session."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import asyncssh

from fleetcompat.errors import CollectError
from fleetcompat.probing import (
    PROBE_FAILED,
    REFUSED,
    STDERR_EXCERPT,
    TIMEOUT,
    UNREACHABLE,
    Timeouts,
    probe_output,
)
from fleetcompat.ssh.handshake import Phase


async def tcp_connect(host: str, port: int) -> socket.socket:
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
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[Exception | None] = loop.create_future()
        self.started: asyncio.Future[None] = loop.create_future()
        self.channel: Any = None

    def connection_made(self, chan: Any) -> None:
        self.channel = chan

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if not self.started.done():
            self.started.set_result(None)
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
        if not self.started.done():
            self.started.set_result(None)
        if not self.done.done():
            self.done.set_result(exc)


async def run_remote(
    conn: Any, script: bytes, timeouts: Timeouts, limit: int, phase: Phase
) -> bytes:
    """Run the probe as `sh -s` with the script on stdin; bounded, deadlined.

    The probe must say something within the start deadline (it writes its first
    line at once), and finish within the probe deadline.
    """
    try:
        async with asyncio.timeout(timeouts.probe):
            phase.name = "start"
            chan, session = await conn.create_session(
                lambda: _ProbeSession(limit), "sh -s", encoding=None
            )
            chan.write(script)
            chan.write_eof()
            await _started(session, timeouts.start)
            phase.name = "probe"
            error = await session.done
    except TimeoutError:
        raise CollectError(
            TIMEOUT,
            f"the probe did not finish within {timeouts.probe:g}s (probe)",
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


async def _started(session: _ProbeSession, limit: float) -> None:
    """Wait for the probe's first output (or its end) within the start deadline."""
    try:
        async with asyncio.timeout(limit):
            await session.started
    except TimeoutError:
        raise CollectError(
            TIMEOUT,
            f"the probe said nothing within {limit:g}s of starting (start): the "
            "host is hung in its login (PAM, home directory, shell start-up)",
        ) from None
