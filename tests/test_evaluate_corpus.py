"""Evaluation on real machines: the captures of the shared corpus as a fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcompat.discovery import discover
from fleetcompat.evaluate import ImageTarget, evaluate_targets, image_targets
from fleetcompat.hosttree import HostTree
from fleetcompat.oci import scan_layouts
from fleetcompat.store import Host, Store
from tests.discovery_support import capture_name, unpack
from tests.test_evaluate import EXAMPLE_LAYOUT, independent_verdicts, stored_verdicts

pytestmark = pytest.mark.corpus

# Specs that lean on what real captures have: matchName, device attribute
# combinations, numbers, regexes, absent features.
EXTRA_SPECS = {
    "infiniband": (
        "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: ib\n"
        "    matchFeatures:\n    - feature: pci.device\n      matchExpressions:\n"
        '        class: {op: In, value: ["0c06", "0207"]}\n'
    ),
    "many-cpus": (
        "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: sockets\n"
        "    matchFeatures:\n    - feature: cpu.topology\n"
        '      matchExpressions: {socket_count: {op: Gt, value: ["1"]}}\n'
    ),
    "any-avx512": (
        "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: avx512\n"
        "    matchFeatures:\n    - feature: cpu.cpuid\n"
        '      matchName: {op: InRegexp, value: ["^AVX512"]}\n'
    ),
    "intel-nic-sriov": (
        "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: nic\n"
        "    matchFeatures:\n    - feature: pci.device\n      matchExpressions:\n"
        '        vendor: {op: In, value: ["8086"]}\n'
        '        sriov_totalvfs: {op: Gt, value: ["0"]}\n'
    ),
}


@pytest.fixture(scope="module")
def fleet(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Every capture discovered and stored, three hosts each."""
    base = tmp_path_factory.mktemp("corpus-fleet")
    store = Store(base / "fleet.db")
    for tarball in sorted((corpus / "hosts").glob("*.tar.gz")):
        name = capture_name(tarball)
        features = discover(HostTree.from_root(unpack(tarball, base / name)))
        for n in range(3):
            store.save_snapshot(
                Host(f"{name}-{n}"),
                run_id=None,
                source="capture",
                features=features,
                node_name=f"{name}-{n}",
            )
    return store


def targets() -> list[ImageTarget]:
    """The example images and the extra specs, the latter for every platform."""
    found = image_targets(scan_layouts([EXAMPLE_LAYOUT]))
    for n, (name, text) in enumerate(EXTRA_SPECS.items()):
        found.append(ImageTarget(name, "", f"sha256:{n:064x}", text.encode()))
    return found


def test_verdicts_on_real_machines_agree_with_every_pair_validated(
    fleet: Store,
) -> None:
    chosen = targets()

    run = evaluate_targets(fleet, chosen)

    assert stored_verdicts(fleet, run.run_id) == independent_verdicts(fleet, chosen)
    assert run.evaluations < run.hosts * len(chosen) / 3


def test_architectures_of_real_machines(fleet: Store) -> None:
    run = evaluate_targets(fleet, targets())

    arches = {h.host.rsplit("-", 1)[0]: h.arch for h in fleet.eval_hosts(run.run_id)}
    assert arches["hwloc-128arm-2pa2n8cluster4co"] == "arm64"
    assert arches["ul-lscpu-arm-A510-A710-A715-X3"] == "arm64"
    assert arches["ul-lscpu-s390-lpar-drawer"] == "s390x"
    assert arches["ul-lscpu-x86_64-64cpu-linux6.2"] == "amd64"
    assert arches["ul-lscpu-rv64-milkvpioneer"] == ""
