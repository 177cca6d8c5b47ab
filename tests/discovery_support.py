"""Helpers shared by the discovery tests: unpacking captures, comparing features."""

from __future__ import annotations

import os
import posixpath
import tarfile
from pathlib import Path
from typing import Any

import yaml

from fleetcompat.features import Features

EXPECTED = Path(__file__).parent / "data" / "discovery"


def unpack(tarball: Path, dest: Path) -> Path:
    """Extract a capture safely (no absolute paths, no links out of `dest`)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(dest, filter=_inside_only)
    return dest


def _inside_only(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's "data" rules by path arithmetic alone (its own filter is slow).

    Refuses absolute or upward names, links that leave the tree, and device files;
    drops set-id bits.
    """
    if not _stays_inside(member.name):
        raise tarfile.OutsideDestinationError(member, member.name)
    if member.issym() and not _stays_inside(
        posixpath.join(posixpath.dirname(member.name), member.linkname)
    ):
        raise tarfile.LinkOutsideDestinationError(member, member.linkname)
    if member.islnk() and not _stays_inside(member.linkname):
        raise tarfile.LinkOutsideDestinationError(member, member.linkname)
    if member.ischr() or member.isblk() or member.isfifo():
        raise tarfile.SpecialFileError(member)
    return member.replace(mode=member.mode & 0o777, deep=False)


def _stays_inside(name: str) -> bool:
    """Whether a relative archive path stays below the extraction directory."""
    if name.startswith("/"):
        return False
    normal = posixpath.normpath(name)
    return normal != ".." and not normal.startswith("../")


def capture_name(tarball: Path) -> str:
    """The capture's name: its file name without .tar.gz."""
    return tarball.name.removesuffix(".tar.gz")


def load_expected(name: str, folder: Path = EXPECTED) -> dict[str, Any]:
    """The hand-written expectation for one capture."""
    data = yaml.safe_load((folder / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def assert_matches(features: Features, expected: dict[str, Any]) -> None:
    """Check features against an expectation file's flags/attributes/instances."""
    flags = expected.get("flags") or {}
    attributes = expected.get("attributes") or {}
    instances = expected.get("instances") or {}

    assert set(features.flags) == set(flags)
    for name, elements in flags.items():
        assert features.flags[name] == set(elements), name
    assert set(features.attributes) == set(attributes)
    for name, elements in attributes.items():
        assert all(isinstance(v, str) for v in elements.values()), name
        assert features.attributes[name] == elements, name
    assert set(features.instances) == set(instances)
    for name, wanted in instances.items():
        found = features.instances[name]
        if isinstance(wanted, dict):
            assert len(found) == wanted["count"], name
            for instance in wanted["include"]:
                assert instance in found, (name, instance)
        else:
            assert found == wanted, name
    for name in expected.get("absent") or []:
        assert name not in features.names(), name


FIFO = object()
"""Stands for a named pipe: a path that exists but is not a readable file."""


def make_root(root: Path, files: dict[str, Any]) -> Path:
    """A host tree under `root`: path -> text, FIFO, or ("link", target)."""
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if content is FIFO:
            os.mkfifo(target)
        elif isinstance(content, tuple):
            target.symlink_to(content[1])
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return root
