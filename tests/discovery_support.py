"""Helpers shared by the discovery tests: unpacking captures, comparing features."""

from __future__ import annotations

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
        archive.extractall(dest, filter="data")
    return dest


def capture_name(tarball: Path) -> str:
    """The capture's name: its file name without .tar.gz."""
    return tarball.name.removesuffix(".tar.gz")


def load_expected(name: str) -> dict[str, Any]:
    """The hand-written expectation for one capture."""
    data = yaml.safe_load((EXPECTED / f"{name}.yaml").read_text())
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
