"""A host's files, as discovery reads them: a captured root on disk or probe output.

Discovery never touches the local filesystem directly; it asks a `HostTree` for
host-absolute paths ("/proc/cpuinfo"). Two kinds exist with the same interface:

- `RootTree` (from `HostTree.from_root`): a host tree captured on disk. Symlinks are
  followed inside the root only: an absolute target is taken relative to the root
  and `..` stops at the root, as if the root were `/`.
- `RecordTree` (built by `fleetcompat.probe.parse_probe_output`): the records a probe
  run wrote, one per path it visited.

A path is absent (None, False) or present; a present path that cannot be read
(permission denied, a special file, a directory where a file is expected, a path
behind a directory that cannot be searched, a gzip file that does not decompress
whole or decompresses past its bound) raises `Unreadable`, which discovery treats
the way NFD treats a read error that is not "no such file".
"""

from __future__ import annotations

import os
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

MAX_FILE_BYTES = 4 * 1024 * 1024
"""Largest file a root tree reads; a longer file reads as its first bytes."""

MAX_GZIP_TEXT_BYTES = MAX_FILE_BYTES
"""Most bytes a gzip file may decompress to; past it the file reads as TooLarge."""

MAX_SYMLINK_HOPS = 40
"""Most symlinks followed while resolving one path, as Linux allows."""


class Unreadable(Exception):
    """A path that exists but cannot be read (or listed) as asked."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class TooLarge(Unreadable):
    """A file larger than the reader's limit."""


class HostTree:
    """The files of one host, addressed by host-absolute paths."""

    def read_text(self, path: str, limit: int | None = None) -> str | None:
        """The file's text, or None if absent; raises Unreadable.

        With `limit`, a file of more than `limit` bytes raises TooLarge.
        """
        raise NotImplementedError

    def read_gzip_text(self, path: str) -> str | None:
        """A gzip file's decompressed text, or None if absent; raises Unreadable."""
        raise NotImplementedError

    def read_bytes(self, path: str) -> bytes | None:
        """A binary file's bytes, or None if absent; raises Unreadable."""
        raise NotImplementedError

    def list_dir(self, path: str) -> list[str] | None:
        """The sorted entry names of a directory, or None if absent."""
        raise NotImplementedError

    def read_link(self, path: str) -> str | None:
        """A symlink's target as written, or None if the path is not a symlink."""
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        """Whether the path exists (following symlinks); unreadable ones do."""
        raise NotImplementedError

    def is_dir(self, path: str) -> bool:
        """Whether the path is a directory (following symlinks)."""
        raise NotImplementedError

    def read_optional(self, path: str) -> str | None:
        """The file's text, or None if absent or unreadable."""
        try:
            return self.read_text(path)
        except Unreadable:
            return None

    @staticmethod
    def from_root(path: str | Path) -> RootTree:
        """A tree captured on disk under `path`, read as if `path` were `/`."""
        return RootTree(Path(path))


def _read_chunked(handle: BinaryIO, limit: int) -> bytes:
    """Up to `limit` bytes, read 64 KiB at a time.

    Small reads matter on a live /proc: some files there (sysctls such as
    /proc/sys/kernel/osrelease) answer ENOMEM to a read of several megabytes.
    """
    chunks = []
    left = limit
    while left > 0:
        chunk = handle.read(min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class RootTree(HostTree):
    """A host tree captured on disk; symlinks never lead out of the root."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _resolve(self, path: str) -> Path | None:
        """The on-disk path for a host path, or None when a component is missing.

        Raises Unreadable when a directory on the way cannot be searched (or a
        link on it cannot be read): the path may exist, but not for this reader.
        """
        try:
            return self._walk(path)
        except OSError as exc:
            raise Unreadable(path, exc.strerror or "cannot resolve") from None

    def _walk(self, path: str) -> Path | None:
        """The on-disk path for a host path, one name at a time; raises OSError."""
        pending = [p for p in PurePosixPath(path).parts if p not in ("/", ".")]
        current: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if current:
                    current.pop()
                continue
            candidate = self.root.joinpath(*current, part)
            if candidate.is_symlink():
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    return None
                target = os.readlink(candidate)
                if target.startswith("/"):
                    current = []
                pending = [
                    p for p in PurePosixPath(target).parts if p not in ("/", ".")
                ] + pending
                continue
            if not os.path.lexists(candidate):
                return None
            current.append(part)
        return self.root.joinpath(*current)

    def _regular(self, path: str) -> Path | None:
        """The on-disk regular file for a host path; raises Unreadable otherwise."""
        real = self._resolve(path)
        if real is None:
            return None
        try:
            mode = real.stat().st_mode
        except OSError as exc:
            raise Unreadable(path, exc.strerror or "cannot stat") from None
        if stat.S_ISDIR(mode):
            raise Unreadable(path, "is a directory")
        if not stat.S_ISREG(mode):
            raise Unreadable(path, "not a regular file")
        return real

    def _read_bytes(self, path: str, limit: int | None = None) -> bytes | None:
        """A regular file's first bytes, or None if absent; raises Unreadable."""
        real = self._regular(path)
        if real is None:
            return None
        if limit is not None and real.stat().st_size > limit:
            raise TooLarge(path, f"larger than {limit} bytes")
        try:
            with real.open("rb", buffering=0) as handle:
                return _read_chunked(handle, MAX_FILE_BYTES)
        except OSError as exc:
            raise Unreadable(path, exc.strerror or "cannot read") from None

    def read_bytes(self, path: str) -> bytes | None:
        """A binary file's bytes, or None if absent; raises Unreadable."""
        return self._read_bytes(path)

    def read_text(self, path: str, limit: int | None = None) -> str | None:
        """The file's text, or None if absent; raises Unreadable (TooLarge)."""
        data = self._read_bytes(path, limit)
        return None if data is None else data.decode("utf-8", "replace")

    def read_gzip_text(self, path: str) -> str | None:
        """A gzip file's decompressed text, or None if absent; raises Unreadable."""
        data = self._read_bytes(path)
        if data is None:
            return None
        try:
            raw = gunzip(data, MAX_GZIP_TEXT_BYTES)
        except zlib.error as exc:
            raise Unreadable(path, f"not gzip: {exc}") from None
        if raw is None:
            limit = MAX_GZIP_TEXT_BYTES
            raise TooLarge(path, f"decompresses to more than {limit} bytes")
        return raw.decode("utf-8", "replace")

    def list_dir(self, path: str) -> list[str] | None:
        """The sorted entry names of a directory, or None if absent."""
        real = self._resolve(path)
        if real is None:
            return None
        if not real.is_dir():
            raise Unreadable(path, "not a directory")
        try:
            return sorted(os.listdir(real))
        except OSError as exc:
            raise Unreadable(path, exc.strerror or "cannot list") from None

    def read_link(self, path: str) -> str | None:
        """A symlink's target as written, or None if the path is not a symlink."""
        try:
            parent = self._resolve(str(PurePosixPath(path).parent))
            if parent is None:
                return None
            return os.readlink(parent / PurePosixPath(path).name)
        except (Unreadable, OSError):
            return None

    def exists(self, path: str) -> bool:
        """Whether the path exists (following symlinks inside the root).

        A path behind a directory that cannot be searched counts as existing:
        like NFD, only "no such file" makes a path absent.
        """
        try:
            return self._resolve(path) is not None
        except Unreadable:
            return True

    def is_dir(self, path: str) -> bool:
        """Whether the path is a directory (following symlinks inside the root)."""
        try:
            real = self._resolve(path)
        except Unreadable:
            return False
        return real is not None and real.is_dir()


FILE = "file"
GZIP = "gzip"
HEX = "hex"
DIR = "dir"
LINK = "link"
EXISTS = "exists"
ABSENT = "absent"
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Record:
    """What a probe found at one path: its kind and payload."""

    kind: str
    text: str = ""
    entries: tuple[str, ...] = ()
    truncated: bool = False


@dataclass
class RecordTree(HostTree):
    """A host tree made of probe records, keyed by the host path the probe read.

    The probe reads through symlinks by their logical path, so lookups need no
    resolution. A path the probe did not visit reads as absent: the probe
    gathers everything discovery asks for, and nothing else.
    """

    records: dict[str, Record] = field(default_factory=dict)

    def _get(self, path: str) -> Record | None:
        """The record for a path in any spelling."""
        return self.records.get(_normal(path))

    def read_text(self, path: str, limit: int | None = None) -> str | None:
        """The file's text, or None if absent; raises Unreadable (TooLarge)."""
        record = self._get(path)
        if record is None or record.kind in (ABSENT, LINK):
            return None
        if record.kind == FILE:
            too_big = record.truncated or len(record.text.encode()) > (limit or 0)
            if limit is not None and too_big:
                raise TooLarge(path, f"larger than {limit} bytes")
            return record.text
        reason = "is a directory" if record.kind == DIR else "unreadable"
        raise Unreadable(path, reason)

    def read_gzip_text(self, path: str) -> str | None:
        """A gzip file's decompressed text, or None if absent; raises Unreadable."""
        record = self._get(path)
        if record is None or record.kind == ABSENT:
            return None
        if record.kind == GZIP:
            return record.text
        raise Unreadable(path, "could not be decompressed on the host")

    def read_bytes(self, path: str) -> bytes | None:
        """A binary file's bytes, or None if absent; raises Unreadable."""
        record = self._get(path)
        if record is None or record.kind in (ABSENT, LINK):
            return None
        if record.kind == HEX:
            try:
                return bytes.fromhex("".join(record.text.split()))
            except ValueError:
                raise Unreadable(path, "garbled hex dump") from None
        if record.kind == FILE:
            return record.text.encode()
        raise Unreadable(path, "unreadable")

    def list_dir(self, path: str) -> list[str] | None:
        """The sorted entry names of a directory, or None if absent."""
        record = self._get(path)
        if record is None or record.kind == ABSENT:
            return None
        if record.kind == DIR:
            return sorted(record.entries)
        raise Unreadable(path, "not a listable directory")

    def read_link(self, path: str) -> str | None:
        """A symlink's target as written, or None if not recorded as a symlink."""
        record = self.records.get(_normal(path) + "\0link")
        return record.text if record is not None else None

    def exists(self, path: str) -> bool:
        """Whether the probe found the path (readable or not)."""
        record = self._get(path)
        return record is not None and record.kind != ABSENT

    def is_dir(self, path: str) -> bool:
        """Whether the probe listed the path as a directory."""
        record = self._get(path)
        return record is not None and record.kind == DIR


def gunzip(data: bytes, limit: int) -> bytes | None:
    """Every member of a gzip stream decompressed, or None past `limit` bytes.

    Decompresses at most `limit` + 1 bytes, so a small bomb costs little. Raises
    zlib.error for data that is not gzip or ends early (an empty file included).
    """
    out = bytearray()
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits=31)
        out += inflater.decompress(rest, limit + 1 - len(out))
        if len(out) > limit:
            return None
        if not inflater.eof:
            raise zlib.error("compressed data ends early")
        rest = inflater.unused_data
        if not rest:
            return bytes(out)


def _normal(path: str) -> str:
    """A host path in one spelling: absolute, no doubled or trailing slashes."""
    parts = [p for p in path.split("/") if p and p != "."]
    return "/" + "/".join(parts)


def normal_path(path: str) -> str:
    """The spelling record trees key paths by."""
    return _normal(path)
