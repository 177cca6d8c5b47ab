"""Content-addressed blobs of an OCI image layout, read without trusting them.

A layout directory is untrusted input. Everything here holds to these rules:

- A digest is validated before it becomes a path: only `sha256:` with 64 and
  `sha512:` with 128 lower-case hex digits, as the OCI image-spec registers them.
  Anything else (`../`, `/`, upper case, other algorithms) is refused.
- A blob is read only when it is a regular file whose size equals the descriptor's
  size, and only up to a limit given by the caller; it is hashed while it streams
  and refused when the hash differs from the digest.
- JSON is parsed exactly (no YAML fallback), with deep nesting refused.

Errors are `BlobError`, one line naming the layout and the digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetcompat.errors import LayoutError

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
LEGACY_ARTIFACT = "application/vnd.oci.artifact.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

NFD_ARTIFACT_TYPE = "application/vnd.nfd.image-compatibility.v1alpha1"
NFD_SPEC_MEDIA_TYPE = "application/vnd.nfd.image-compatibility.spec.v1alpha1+yaml"

CREATED = "org.opencontainers.image.created"
REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"

MANIFEST_TYPES = frozenset({MANIFEST, DOCKER_MANIFEST, LEGACY_ARTIFACT})
INDEX_TYPES = frozenset({INDEX, DOCKER_LIST})

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""Largest manifest or index blob read (the distribution-spec's own limit)."""

MAX_SPEC_BYTES = 1024 * 1024
"""Largest compatibility spec blob read."""

MAX_INDEX_JSON_BYTES = 16 * 1024 * 1024
"""Largest `index.json` read; a mirror of many images has a long one."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of JSON objects and arrays accepted in a manifest."""

_DIGEST = re.compile(r"(sha256):([0-9a-f]{64})|(sha512):([0-9a-f]{128})")


class BlobError(LayoutError):
    """A blob that is missing, too large, corrupt or not the JSON it should be."""


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor, validated: the digest is safe to use as a path."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, hash=False)
    artifact_type: str | None = None
    platform: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def ref_name(self) -> str | None:
        """The `org.opencontainers.image.ref.name` annotation, the layout's tag."""
        return self.annotations.get(REF_NAME)

    def to_json(self) -> dict[str, Any]:
        """This descriptor as OCI JSON, in the field order Go's encoder writes."""
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        if self.platform:
            data["platform"] = dict(self.platform)
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        return data


def check_digest(digest: object) -> str:
    """Return `digest` when it is a well-formed sha256/sha512 digest.

    Raises BlobError otherwise; the message quotes at most 80 characters of it.
    """
    if isinstance(digest, str) and _DIGEST.fullmatch(digest):
        return digest
    shown = repr(digest)[:80]
    raise BlobError(
        f"invalid digest {shown}: only sha256:<64 hex> and sha512:<128 hex> "
        "(lower case) are accepted"
    )


def parse_descriptor(data: object, where: str) -> Descriptor:
    """Validate a descriptor from untrusted JSON; `where` names it in errors."""
    if not isinstance(data, dict):
        raise BlobError(f"{where}: descriptor is not a JSON object")

    media_type = data.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise BlobError(f"{where}: descriptor has no mediaType")
    try:
        digest = check_digest(data.get("digest"))
    except BlobError as exc:
        raise BlobError(f"{where}: {exc}") from None
    size = data.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BlobError(f"{where}: descriptor size {size!r} is not a whole number")

    annotations = data.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise BlobError(f"{where}: annotations are not a map of strings")
    artifact_type = data.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise BlobError(f"{where}: artifactType is not a string")
    platform = data.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise BlobError(f"{where}: platform is not an object")

    return Descriptor(media_type, digest, size, annotations, artifact_type, platform)


def blob_path(layout: Path, digest: str) -> Path:
    """Where a blob lives in a layout; the digest is validated first."""
    algorithm, _, encoded = check_digest(digest).partition(":")
    return layout / "blobs" / algorithm / encoded


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """Read a regular file of at most `limit` bytes; `what` names it in errors.

    Refuses FIFOs, devices and directories before reading (a FIFO would block,
    a device could be endless). Raises BlobError, or FileNotFoundError when absent.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise BlobError(f"{what}: cannot open: {exc.strerror or exc}") from None

    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise BlobError(f"{what}: not a regular file")
        if info.st_size > limit:
            raise BlobError(
                f"{what}: {info.st_size} bytes, more than the {limit} accepted"
            )
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise BlobError(f"{what}: grew past the {limit} bytes accepted while read")
    return data


def read_blob(layout: Path, descriptor: Descriptor, limit: int) -> bytes:
    """Read a blob named by a descriptor, verified against its size and digest.

    Raises BlobError naming the layout and digest when the blob is missing,
    larger than `limit`, of another size than described, or hashes differently.
    """
    what = f"{layout}: blob {descriptor.digest}"
    if descriptor.size > limit:
        raise BlobError(
            f"{what}: described as {descriptor.size} bytes, more than the "
            f"{limit} accepted for {descriptor.media_type}"
        )
    path = blob_path(layout, descriptor.digest)

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BlobError(f"{what}: missing from the layout") from None
    except OSError as exc:
        raise BlobError(f"{what}: cannot stat: {exc.strerror or exc}") from None
    size = info.st_size
    if not stat.S_ISREG(info.st_mode):
        raise BlobError(f"{what}: not a regular file")
    if size != descriptor.size:
        raise BlobError(
            f"{what}: file is {size} bytes but its descriptor says {descriptor.size}"
        )

    try:
        data = read_bounded(path, limit, what)
    except FileNotFoundError:
        raise BlobError(f"{what}: missing from the layout") from None
    verify_digest(data, descriptor.digest, what)
    if len(data) != descriptor.size:
        raise BlobError(f"{what}: changed size while read")
    return data


def verify_digest(data: bytes, digest: str, what: str) -> None:
    """Raise BlobError unless `data` hashes to `digest`."""
    algorithm, _, encoded = check_digest(digest).partition(":")
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != encoded:
        raise BlobError(
            f"{what}: content hashes to {algorithm}:{actual[:12]}…, not the digest "
            "it is stored under (corrupt or tampered)"
        )


def digest_of(data: bytes) -> str:
    """The sha256 digest of some bytes, in OCI form."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_json(data: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object from untrusted bytes; raise BlobError saying why not."""
    try:
        text = data.decode("utf-8")
        document = json.loads(text)
    except UnicodeDecodeError:
        raise BlobError(f"{what}: not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise BlobError(
            f"{what}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise BlobError(f"{what}: JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise BlobError(f"{what}: not a JSON object")
    if _depth(document) > MAX_JSON_DEPTH:
        raise BlobError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def _depth(value: Any) -> int:
    """How deeply JSON objects and arrays nest in a parsed value."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest


def canonical_json(data: dict[str, Any]) -> bytes:
    """Compact JSON as Go's encoding/json writes it (HTML characters escaped)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def write_blob(layout: Path, data: bytes) -> str:
    """Store bytes as a sha256 blob (atomically, if absent); return the digest."""
    digest = digest_of(data)
    path = blob_path(layout, digest)
    if path.is_file() and path.stat().st_size == len(data):
        return digest
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data)
    return digest


def write_atomically(path: Path, data: bytes) -> None:
    """Replace a file with new content: temp file, fsync, rename, fsync dir."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temp.open("wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)

    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
