"""The project's own capture of a real machine (tests/data/hosts/this-machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fleetcompat.discovery import discover
from fleetcompat.hosttree import HostTree
from fleetcompat.probe import parse_probe_output, run_local_probe
from tests.discovery_support import assert_matches, load_expected

HOSTS = Path(__file__).parent / "data" / "hosts"
CAPTURE = HOSTS / "this-machine"


def test_captured_machine_matches_the_hand_checked_features() -> None:
    features = discover(HostTree.from_root(CAPTURE), "test-node")
    config = features.attributes.pop("kernel.config")

    assert_matches(features, load_expected("this-machine", HOSTS))
    assert len(config) == 1736
    assert config["LOCALVERSION"] == "-fc-v1147"
    assert config["HZ"] == "250"
    assert config["KVM"] == "y"


def test_probe_over_the_capture_gives_the_same_features() -> None:
    from_probe = discover(parse_probe_output(run_local_probe(str(CAPTURE)), "cap"))

    assert from_probe == discover(HostTree.from_root(CAPTURE))


def test_capture_script_reproduces_a_tree_with_the_same_features(
    tmp_path: Path,
) -> None:
    script = Path(__file__).parent / "data" / "capture_host.sh"
    dest = tmp_path / "capture"

    env = dict(os.environ, PYTHON=sys.executable)

    subprocess.run(
        ["sh", str(script), str(dest)], check=True, capture_output=True, env=env
    )

    live = discover(parse_probe_output(run_local_probe(), "live"))
    assert discover(HostTree.from_root(dest)) == live
