"""The host probe: the script that gathers a host's files, and a reader for its output.

`collectors/probe.sh` runs on the host (over SSH, locally, or by hand) and prints one
record per path it visited; its header comment describes the format. This module
hands out the script and turns its output into a `RecordTree` that discovery reads
exactly like a captured root.
"""

from __future__ import annotations

import os
import subprocess
from importlib.resources import files

from fleetcompat.errors import FeaturesError
from fleetcompat.hosttree import (
    ABSENT,
    DIR,
    EXISTS,
    FILE,
    GZIP,
    HEX,
    LINK,
    UNREADABLE,
    Record,
    RecordTree,
    normal_path,
)

MAGIC = b"#fleetcompat-probe v1"
"""The first line of every probe output this version reads."""

MAX_OUTPUT_BYTES = 64 * 1024 * 1024
"""Largest probe output accepted (the probe bounds itself at about 16 MiB)."""

MAX_RECORDS = 200_000
"""Most records accepted from one probe output."""

ROOT_ENV = "FLEETCOMPAT_ROOT"
"""The environment variable that points the probe at a captured root."""

_CONTENT_KINDS = {b"F": FILE, b"T": FILE, b"Z": GZIP, b"X": HEX}
_BARE_KINDS = {b"E": EXISTS, b"A": ABSENT, b"U": UNREADABLE}


def probe_script() -> bytes:
    """The probe's POSIX sh source, as shipped with the package."""
    return files("fleetcompat.collectors").joinpath("probe.sh").read_bytes()


def is_probe_output(data: bytes) -> bool:
    """Whether `data` starts like probe output (of any version)."""
    return data.startswith(b"#fleetcompat-probe ")


def run_local_probe(root: str | None = None, timeout: float = 120.0) -> bytes:
    """Run the probe on this machine with /bin/sh (under `root`, if given).

    Raises FeaturesError when the shell cannot run or the probe fails.
    """
    env = dict(os.environ)
    env.pop(ROOT_ENV, None)
    if root is not None:
        env[ROOT_ENV] = str(root)
    try:
        done = subprocess.run(
            ["/bin/sh", "-s"],
            input=probe_script(),
            capture_output=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FeaturesError(f"local probe: could not run /bin/sh: {exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = message[-1] if message else f"exit status {done.returncode}"
        raise FeaturesError(f"local probe: failed: {detail}")
    return done.stdout


def parse_probe_output(data: bytes, source: str) -> RecordTree:
    """The host tree a probe output describes; raises FeaturesError naming the line."""
    if len(data) > MAX_OUTPUT_BYTES:
        raise FeaturesError(
            f"{source}: probe output of {len(data)} bytes exceeds "
            f"{MAX_OUTPUT_BYTES} bytes"
        )
    if not is_probe_output(data):
        raise FeaturesError(f"{source}: line 1: not fleetcompat probe output")
    first = data.split(b"\n", 1)[0]
    if first != MAGIC:
        version = first.decode("utf-8", "replace")
        raise FeaturesError(f"{source}: line 1: unsupported probe format {version!r}")
    return _Reader(data, source).read()


class _Reader:
    """Walks probe output record by record, keeping count of lines for messages."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source
        self.pos = len(MAGIC) + 1
        self.line = 1
        self.records: dict[str, Record] = {}
        self.ended = False

    def fail(self, message: str) -> FeaturesError:
        """An error naming the source and the current line."""
        return FeaturesError(f"{self.source}: line {self.line}: {message}")

    def next_line(self) -> bytes | None:
        """The next line without its newline, or None at the end of the data."""
        if self.pos >= len(self.data):
            return None
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise self.fail("output ends in the middle of a line (cut short?)")
        line = self.data[self.pos : end]
        self.pos = end + 1
        self.line += 1
        return line

    def read(self) -> RecordTree:
        """Every record up to the '#end' line, as a tree."""
        while (line := self.next_line()) is not None:
            self.record(line)
            if len(self.records) > MAX_RECORDS:
                raise self.fail(f"more than {MAX_RECORDS} records")
        if not self.ended:
            raise self.fail("no '#end' line: the probe output is incomplete")
        return RecordTree(self.records)

    def record(self, line: bytes) -> None:
        """Read one record whose header is `line`."""
        if self.ended:
            raise self.fail("data after the '#end' line")
        if line.startswith(b"#"):
            self.ended = line.startswith(b"#end")
            return
        tag, _, rest = line.partition(b" ")
        if tag in _CONTENT_KINDS:
            self.content(tag, rest)
        elif tag in _BARE_KINDS:
            self.put(rest, Record(_BARE_KINDS[tag]))
        elif tag == b"D":
            count, path = self.counted(rest)
            names = [self.entry() for _ in range(count)]
            self.put(path, Record(DIR, entries=tuple(names)))
        elif tag == b"L":
            target = self.entry()
            self.records[self.path(rest) + "\0link"] = Record(LINK, text=target)
        else:
            raise self.fail(f"unknown record {line[:40]!r}")

    def content(self, tag: bytes, rest: bytes) -> None:
        """A file record: a byte count, then that many bytes and a newline."""
        size, path = self.counted(rest)
        end = self.pos + size
        if end >= len(self.data) or self.data[end : end + 1] != b"\n":
            raise self.fail(f"content of {size} bytes does not end where it should")
        raw = self.data[self.pos : end]
        self.line += raw.count(b"\n") + 1
        self.pos = end + 1
        text = raw.decode("utf-8", "replace")
        self.put(path, Record(_CONTENT_KINDS[tag], text=text, truncated=tag == b"T"))

    def counted(self, rest: bytes) -> tuple[int, bytes]:
        """The number and path of a `<tag> <n> <path>` header."""
        number, _, path = rest.partition(b" ")
        if not number.isdigit() or not path:
            raise self.fail("expected a count and a path")
        return int(number), path

    def entry(self) -> str:
        """One escaped line following a header (a name or a link target)."""
        line = self.next_line()
        if line is None:
            raise self.fail("output ends inside a record")
        return _unescape(line.decode("utf-8", "replace"))

    def path(self, raw: bytes) -> str:
        """A record's host path, checked and normalised."""
        path = _unescape(raw.decode("utf-8", "replace"))
        if not path.startswith("/"):
            raise self.fail(f"path {path[:60]!r} is not absolute")
        return normal_path(path)

    def put(self, raw: bytes, record: Record) -> None:
        """Keep a record under its path."""
        self.records[self.path(raw)] = record


def _unescape(text: str) -> str:
    """Undo the probe's escaping: \\\\ for a backslash, \\n for a newline."""
    if "\\" not in text:
        return text
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        following = next(chars, "")
        out.append("\n" if following == "n" else following)
    return "".join(out)
