"""Every real-machine capture, discovered from disk and through the probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcompat.discovery import discover, discover_host
from fleetcompat.hosttree import HostTree
from fleetcompat.probe import parse_probe_output, run_local_probe
from tests.discovery_support import (
    EXPECTED,
    assert_matches,
    capture_name,
    load_expected,
    unpack,
)

pytestmark = pytest.mark.corpus

CAPTURES = sorted(p.stem for p in EXPECTED.glob("*.yaml"))


@pytest.fixture(scope="module")
def captures(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All host tarballs unpacked once, one directory per capture."""
    base = tmp_path_factory.mktemp("captures")
    for tarball in sorted((corpus / "hosts").glob("*.tar.gz")):
        unpack(tarball, base / capture_name(tarball))
    return base


@pytest.fixture(scope="module")
def probe_outputs(captures: Path) -> dict[str, bytes]:
    """The probe's output for each capture, run once with the root prefix."""
    return {name: run_local_probe(str(captures / name)) for name in CAPTURES}


def test_every_capture_has_a_hand_written_expectation(corpus: Path) -> None:
    names = {capture_name(t) for t in (corpus / "hosts").glob("*.tar.gz")}

    assert names == set(CAPTURES)


@pytest.mark.parametrize("name", CAPTURES)
def test_root_discovery_matches_the_hand_read_features(
    captures: Path, name: str
) -> None:
    features = discover(HostTree.from_root(captures / name), node_name="test-node")

    assert_matches(features, load_expected(name))


@pytest.mark.parametrize("name", CAPTURES)
def test_probe_run_on_the_capture_gives_the_same_features(
    captures: Path, probe_outputs: dict[str, bytes], name: str
) -> None:
    tree = parse_probe_output(probe_outputs[name], name)

    from_probe = discover_host(tree, "test-node")
    from_root = discover_host(HostTree.from_root(captures / name), "test-node")

    assert from_probe.features.to_nfd() == from_root.features.to_nfd()
    assert from_probe.notes == from_root.notes


@pytest.mark.parametrize("name", CAPTURES)
def test_probe_output_stays_small(probe_outputs: dict[str, bytes], name: str) -> None:
    assert len(probe_outputs[name]) < 256 * 1024
