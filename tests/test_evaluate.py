"""Evaluation of every host x image: verdicts, sharing, reuse, errors, explanations."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcompat.errors import RuleError
from fleetcompat.evaluate import (
    COMPATIBLE,
    ERROR,
    INCOMPATIBLE,
    NOT_EVALUATED,
    ImageTarget,
    choose_target,
    evaluate_fleet,
    evaluate_targets,
    holds,
    host_architecture,
    unmatched_reason,
)
from fleetcompat.features import Features
from fleetcompat.oci import scan_layouts
from fleetcompat.spec import load_spec, project_features
from fleetcompat.store import Host, Store
from fleetcompat.validate import validate
from tests.conftest import REPO

EXAMPLE_LAYOUT = REPO / "examples" / "oci-layout"


def machine(
    *,
    arch: str = "amd64",
    kernel: str = "6.8.0-45-generic",
    modules: tuple[str, ...] = (),
    gpu: bool = False,
    nics: int = 1,
    os_id: str = "ubuntu",
    version: str = "22.04",
    avx512: bool = False,
    hugepages: bool = False,
    pretty: str = "",
) -> Features:
    """A small host feature set in NFD's names, as discovery would report it."""
    if arch == "amd64":
        flags = {"SSE2", "SSE42", "POPCNT", "AVX2", "X86_64_V1", "X86_64_V2"}
        if avx512:
            flags |= {"AVX512F", "AVX512BW", "AVX512VNNI"}
    else:
        flags = {"FP", "ASIMD", "AES"}
    major, minor = kernel.split(".")[:2]
    devices = [{"class": "0200", "vendor": "8086", "sriov_totalvfs": "64"}] * nics
    devices = [dict(d) for d in devices] + [{"class": "0600", "vendor": "8086"}]
    if gpu:
        devices.append({"class": "0302", "vendor": "10de"})
    return Features(
        flags={"cpu.cpuid": flags, "kernel.loadedmodule": set(modules)},
        attributes={
            "cpu.model": {"vendor_id": "Intel" if arch == "amd64" else "ARM"},
            "kernel.version": {"full": kernel, "major": major, "minor": minor},
            "memory.hugepages": {"enabled": "true" if hugepages else "false"},
            "system.osrelease": {
                "ID": os_id,
                "VERSION_ID": version,
                "VERSION_ID.major": version.split(".")[0],
                "PRETTY_NAME": pretty or f"{os_id} {version}",
            },
        },
        instances={"pci.device": devices},
    )


MACHINES = {
    "gpu": machine(gpu=True, modules=("nvidia", "nvidia_uvm"), avx512=True),
    "gpu-nodriver": machine(gpu=True, modules=("nvidia",)),
    "dpdk": machine(modules=("vfio_pci",), hugepages=True, nics=3),
    "old": machine(kernel="5.4.0-150-generic", os_id="ubuntu", version="20.04"),
    "debian": machine(os_id="debian", version="12", kernel="6.1.0-18-amd64"),
    "arm": machine(arch="arm64", kernel="6.1.0-18-arm64", os_id="debian", version="12"),
}


def fill(store: Store, hosts_per_machine: int = 3) -> dict[str, str]:
    """Hosts named after their machine; returns host -> machine."""
    run = store.start_run("collect")
    owners = {}
    for kind, features in MACHINES.items():
        for n in range(hosts_per_machine):
            name = f"{kind}-{n}"
            store.save_snapshot(
                Host(name, groups=(kind,)),
                run_id=run,
                source="test",
                features=features,
                node_name=name,
            )
            owners[name] = kind
    return owners


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "fleet.db")


def independent_verdicts(store: Store, catalog_targets: list[ImageTarget]) -> dict:
    """Every host x image with validate() on the host's full features, one by one."""
    by_image: dict[str, list[ImageTarget]] = {}
    for target in catalog_targets:
        by_image.setdefault(target.image, []).append(target)
    verdicts = {}
    for status in store.hosts():
        for image, targets in by_image.items():
            snapshot = status.latest_good
            if snapshot is None:
                verdicts[(status.host.name, image)] = NOT_EVALUATED
                continue
            features = store.features(snapshot)
            target = choose_target(host_architecture(features), targets)
            if target is None or target.spec is None:
                verdicts[(status.host.name, image)] = NOT_EVALUATED
                continue
            spec = load_spec(target.spec.decode())
            try:
                results = validate(spec, features)
            except RuleError:
                verdicts[(status.host.name, image)] = ERROR
                continue
            letters = ["C" if r.is_match else "I" for r in results]
            ok = holds(letters, [c.weight for c in spec.compatibilities])
            verdicts[(status.host.name, image)] = COMPATIBLE if ok else INCOMPATIBLE
    return verdicts


def stored_verdicts(store: Store, run_id: int) -> dict:
    """Every host x image verdict of a stored run, through the report's view."""
    from fleetcompat.runview import host_row, load_run

    view = load_run(store, run_id)
    words = {"C": COMPATIBLE, "I": INCOMPATIBLE, "E": ERROR, "N": NOT_EVALUATED}
    found = {}
    for host in view.hosts:
        for image, letter in zip(view.images, host_row(view, host), strict=True):
            found[(host.host, image)] = words[letter]
    return found


@pytest.mark.parametrize(
    ("features", "arch"),
    [
        pytest.param(machine(), "amd64", id="x86-level-flags"),
        pytest.param(machine(arch="arm64"), "arm64", id="arm64-hwcaps"),
        pytest.param(
            Features(flags={"cpu.cpuid": {"ZARCH", "VX"}}), "s390x", id="s390x"
        ),
        pytest.param(
            Features(flags={"cpu.cpuid": {"PPC64", "VSX"}}), "ppc64le", id="ppc"
        ),
        pytest.param(
            Features(attributes={"kernel.version": {"full": "4.18.0-553.el8.aarch64"}}),
            "arm64",
            id="rhel-kernel-suffix",
        ),
        pytest.param(
            Features(attributes={"kernel.config": {"X86": "y", "NET": "y"}}),
            "amd64",
            id="nfd-example-kconfig-x86",
        ),
        pytest.param(
            Features(attributes={"kernel.config": {"X86": "y", "X86_32": "y"}}),
            "386",
            id="kconfig-32-bit-x86",
        ),
        pytest.param(
            Features(attributes={"kernel.config": {"ARM64": "y"}}),
            "arm64",
            id="kconfig-arm64",
        ),
        pytest.param(
            Features(attributes={"kernel.config": {"S390": "y", "64BIT": "y"}}),
            "s390x",
            id="kconfig-s390x",
        ),
        pytest.param(
            Features(
                attributes={"kernel.config": {"PPC64": "y", "CPU_LITTLE_ENDIAN": "y"}}
            ),
            "ppc64le",
            id="kconfig-ppc64le",
        ),
        pytest.param(
            Features(attributes={"kernel.config": {"PPC64": "y"}}),
            "",
            id="kconfig-big-endian-ppc64-untold",
        ),
        pytest.param(
            Features(attributes={"kernel.config": {"RISCV": "y", "64BIT": "y"}}),
            "riscv64",
            id="kconfig-riscv64",
        ),
        pytest.param(
            Features(attributes={"kernel.config": {"RISCV": "y"}}),
            "",
            id="kconfig-32-bit-riscv-untold",
        ),
        pytest.param(Features(), "", id="nothing-to-tell"),
    ],
)
def test_host_architecture_is_told_from_features(features: Features, arch: str) -> None:
    assert host_architecture(features) == arch


def test_platform_artifact_wins_and_index_artifact_covers_the_rest() -> None:
    amd = ImageTarget("img", "linux/amd64", "sha256:a", b"x")
    anywhere = ImageTarget("img", "", "sha256:b", b"y")

    assert choose_target("amd64", [amd, anywhere]) is amd
    assert choose_target("arm64", [amd, anywhere]) is anywhere
    assert choose_target("arm64", [amd]) is None
    assert unmatched_reason("arm64", [("linux/amd64", "ok")]) == (
        "platform mismatch: host arm64, image has linux/amd64"
    )
    assert unmatched_reason("", [("linux/amd64", "ok")]).endswith("unknown")
    assert unmatched_reason("amd64", [("", "missing")]) == "no artifact"


@pytest.mark.parametrize(
    ("letters", "weights", "expected"),
    [
        pytest.param("CC", [0, 0], True, id="all-required-hold"),
        pytest.param("CI", [0, 0], False, id="a-required-set-fails"),
        pytest.param("IC", [10, 1], True, id="fallback-holds"),
        pytest.param("II", [10, 1], False, id="no-preference-holds"),
        pytest.param("CI", [0, 5], False, id="required-holds-preferences-do-not"),
        pytest.param("", [], True, id="no-sets"),
    ],
)
def test_image_verdict_from_set_verdicts(
    letters: str, weights: list[int], expected: bool
) -> None:
    assert holds(list(letters), weights) is expected


def test_projection_keeps_a_present_feature_without_the_elements() -> None:
    features = machine(modules=("ext4",))
    spec = load_spec(
        "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: r\n"
        "    matchFeatures:\n    - feature: kernel.loadedmodule\n"
        "      matchExpressions: {vfio_pci: {op: DoesNotExist}}\n"
    )

    projected = project_features(features, spec.feature_references(), dedup=True)

    assert projected.flags == {"kernel.loadedmodule": set()}
    assert validate(spec, projected)[0].is_match
    assert validate(spec, features)[0].is_match


def test_projection_drops_duplicate_devices_when_no_template_reads_them() -> None:
    refs = {"pci.device": frozenset({"class"})}

    three = project_features(machine(nics=3), refs, dedup=True)
    one = project_features(machine(nics=1), refs, dedup=True)

    assert three.digest() == one.digest()
    assert (
        len(
            project_features(machine(nics=3), refs, dedup=False).instances["pci.device"]
        )
        == 4
    )


def test_fleet_verdicts_agree_with_validating_every_pair(store: Store) -> None:
    fill(store)
    catalog = scan_layouts([EXAMPLE_LAYOUT])

    run = evaluate_fleet(store, catalog)

    from fleetcompat.evaluate import image_targets

    expected = independent_verdicts(store, image_targets(catalog))
    assert stored_verdicts(store, run.run_id) == expected
    counts = {v: list(expected.values()).count(v) for v in set(expected.values())}
    assert {k: v for k, v in run.cells.items() if v} == counts
    assert expected[("gpu-0", "cuda-inference:12.4")] == COMPATIBLE
    assert expected[("gpu-nodriver-0", "cuda-inference:12.4")] == INCOMPATIBLE


def test_hosts_of_one_machine_share_one_evaluation(store: Store) -> None:
    fill(store, hosts_per_machine=20)

    run = evaluate_fleet(store, scan_layouts([EXAMPLE_LAYOUT]))

    cells = len(MACHINES) * 20 * run.images
    targets = store.db["eval_images"].count
    assert run.evaluations <= len(MACHINES) * targets
    assert store.db["eval_pairs"].count <= len(MACHINES) * targets
    assert store.db["eval_results"].count < cells / 10


def test_unchanged_fleet_and_mirror_reuse_every_result(store: Store) -> None:
    fill(store)
    catalog = scan_layouts([EXAMPLE_LAYOUT])
    first = evaluate_fleet(store, catalog)

    second = evaluate_fleet(store, catalog)

    assert first.computed == first.evaluations > 0
    assert second.computed == 0
    assert second.reused == first.evaluations
    assert second.cells == first.cells


def test_a_changed_host_is_evaluated_again_and_nothing_else(store: Store) -> None:
    fill(store, hosts_per_machine=1)
    catalog = scan_layouts([EXAMPLE_LAYOUT])
    evaluate_fleet(store, catalog)
    changed = machine(gpu=True, modules=("nvidia", "nvidia_uvm", "vfio_pci"))
    store.save_snapshot(
        Host("gpu-nodriver-0"), run_id=None, source="test", features=changed
    )

    run = evaluate_fleet(store, catalog)

    assert 0 < run.computed <= 5
    verdicts = stored_verdicts(store, run.run_id)
    assert verdicts[("gpu-nodriver-0", "cuda-inference:12.4")] == COMPATIBLE


SPEC_OK = (
    "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: kernel\n"
    "    matchFeatures:\n    - feature: kernel.version\n"
    '      matchExpressions: {full: {op: Ge, value: ["5.15"], type: version}}\n'
)
SPEC_BAD_YAML = "version: v1alpha1\ncompatibilities: [\n"
SPEC_BAD_REGEX = (
    "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: os\n"
    "    matchFeatures:\n    - feature: system.osrelease\n"
    '      matchExpressions: {ID: {op: InRegexp, value: ["(unclosed"]}}\n'
)


def test_a_broken_spec_marks_its_own_cells_and_the_run_goes_on(store: Store) -> None:
    fill(store, hosts_per_machine=2)
    targets = [
        ImageTarget("good", "", "sha256:1", SPEC_OK.encode()),
        ImageTarget("unparsable", "", "sha256:2", SPEC_BAD_YAML.encode()),
        ImageTarget("bad-regex", "", "sha256:3", SPEC_BAD_REGEX.encode()),
    ]

    run = evaluate_targets(store, targets)

    verdicts = stored_verdicts(store, run.run_id)
    hosts = [f"{kind}-{n}" for kind in MACHINES for n in range(2)]
    assert {verdicts[(h, "unparsable")] for h in hosts} == {ERROR}
    assert {verdicts[(h, "bad-regex")] for h in hosts} == {ERROR}
    assert verdicts[("old-0", "good")] == INCOMPATIBLE
    assert verdicts[("gpu-0", "good")] == COMPATIBLE
    assert run.images_failed == 1
    rows = {r.image: r for r in store.eval_images(run.run_id)}
    assert rows["unparsable"].status == ERROR and rows["unparsable"].reason


def test_hosts_without_snapshot_or_platform_are_not_evaluated(store: Store) -> None:
    fill(store, hosts_per_machine=1)
    store.save_snapshot(
        Host("down"), run_id=None, source="ssh", status="unreachable", error="refused"
    )
    targets = [ImageTarget("amd-only", "linux/amd64", "sha256:9", SPEC_OK.encode())]

    run = evaluate_targets(store, targets)

    from fleetcompat.runview import load_run

    view = load_run(store, run.run_id)
    assert run.hosts_not_evaluated == 1
    assert stored_verdicts(store, run.run_id)[("down", "amd-only")] == NOT_EVALUATED
    assert stored_verdicts(store, run.run_id)[("arm-0", "amd-only")] == NOT_EVALUATED
    assert "platform mismatch: host arm64, image has linux/amd64" in view.reasons
    down = next(h for h in view.hosts if h.host == "down")
    assert down.reason == "no snapshot: unreachable: refused"


def explanations(store: Store, run_id: int, host: str, image: str) -> list[str]:
    """The plain explanations stored for one cell."""
    from fleetcompat.runview import load_run

    view = load_run(store, run_id)
    record = next(h for h in view.hosts if h.host == host)
    column = view.images.index(image)
    result = view.results[int(view.cells[view.unit_of_host[record.idx], column])]
    whys = []
    for entry in result.detail["sets"]:
        for rule in entry["rules"]:
            whys += [i["why"] for i in rule["items"]]
            whys += [i["why"] for alt in rule["any"] for i in alt]
    return whys


def test_explanations_name_what_is_missing_with_the_hosts_values(store: Store) -> None:
    fill(store, hosts_per_machine=1)

    run = evaluate_fleet(store, scan_layouts([EXAMPLE_LAYOUT]))

    cuda = explanations(store, run.run_id, "dpdk-0", "cuda-inference:12.4")
    assert "no PCI device with vendor 10de, class one of 0300, 0302" in cuda
    assert "module nvidia not loaded" in cuda
    old = explanations(store, run.run_id, "old-0", "base-runtime:2.0")
    assert "kernel minor 4, needs >= 15" in old
    assert "OS ID ubuntu, needs debian" in old
    dpdk = explanations(store, run.run_id, "debian-0", "dpdk-forwarder:23.11")
    assert "module vfio_pci not loaded" in dpdk
    assert "hugepages enabled false, needs true" in dpdk


def test_hosts_one_change_away_are_grouped_by_that_change(store: Store) -> None:
    fill(store, hosts_per_machine=2)

    run = evaluate_fleet(store, scan_layouts([EXAMPLE_LAYOUT]))

    from fleetcompat.runview import load_run

    view = load_run(store, run.run_id)
    column = view.images.index("cuda-inference:12.4")
    blockers = {}
    for host in view.hosts:
        result = view.results[int(view.cells[view.unit_of_host[host.idx], column])]
        if result.blocker:
            blockers.setdefault(result.blocker, []).append(host.host)
    assert blockers == {
        "kernel.loadedmodule: nvidia_uvm": ["gpu-nodriver-0", "gpu-nodriver-1"]
    }


def test_a_spec_reading_the_node_name_is_evaluated_per_host(store: Store) -> None:
    fill(store, hosts_per_machine=2)
    spec = (
        "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: pinned\n"
        "    matchFeatures:\n    - feature: system.name\n"
        '      matchExpressions: {nodename: {op: In, value: ["gpu-1", "arm-0"]}}\n'
    )
    targets = [
        ImageTarget("pinned", "", "sha256:p", spec.encode()),
        ImageTarget("good", "", "sha256:1", SPEC_OK.encode()),
    ]

    run = evaluate_targets(store, targets)

    verdicts = stored_verdicts(store, run.run_id)
    pinned = sorted(
        h for (h, image), v in verdicts.items() if v == COMPATIBLE and image == "pinned"
    )
    assert pinned == ["arm-0", "gpu-1"]
    assert verdicts == independent_verdicts(store, targets)


def test_an_image_without_an_artifact_for_one_platform_has_not_failed(
    store: Store,
) -> None:
    fill(store, hosts_per_machine=1)
    targets = [
        ImageTarget("amd-spec", "linux/amd64", "sha256:1", SPEC_OK.encode()),
        ImageTarget("amd-spec", "linux/arm64", None, None, "no artifact"),
        ImageTarget("no-spec", "", None, None, "no compatibility artifact"),
    ]

    run = evaluate_targets(store, targets)

    assert run.images_failed == 1
    verdicts = stored_verdicts(store, run.run_id)
    assert verdicts[("arm-0", "amd-spec")] == NOT_EVALUATED
    assert verdicts[("gpu-0", "amd-spec")] == COMPATIBLE
    from fleetcompat.runview import load_run

    assert "no artifact" in load_run(store, run.run_id).reasons


TEMPLATE_ORDER_SPEC = b"""
version: v1alpha1
compatibilities:
- rules:
  - name: last-device
    varsTemplate: "{{range .pci.device}}last={{.vendor}}\\n{{end}}"
    matchFeatures:
    - feature: pci.device
      matchExpressions: {vendor: {op: Exists}}
  - name: last-is-nvidia
    matchFeatures:
    - feature: rule.matched
      matchExpressions: {last: {op: In, value: ["10de"]}}
"""


def test_hosts_listing_devices_in_another_order_do_not_share_a_result(
    store: Store,
) -> None:
    run = store.start_run("collect")
    orders = {
        "nvidia-last": [{"vendor": "8086"}, {"vendor": "10de"}],
        "nvidia-first": [{"vendor": "10de"}, {"vendor": "8086"}],
    }
    for name, devices in orders.items():
        features = Features(
            flags={"cpu.cpuid": {"X86_64_V1"}}, instances={"pci.device": devices}
        )
        store.save_snapshot(
            Host(name), run_id=run, source="test", features=features, node_name=name
        )
    target = ImageTarget("img", "", "sha256:" + "a" * 64, TEMPLATE_ORDER_SPEC)

    evaluation = evaluate_targets(store, [target])

    verdicts = stored_verdicts(store, evaluation.run_id)
    assert verdicts == {
        ("nvidia-first", "img"): INCOMPATIBLE,
        ("nvidia-last", "img"): COMPATIBLE,
    }
    assert verdicts == independent_verdicts(store, [target])


def test_error_cells_make_the_run_partial(store: Store) -> None:
    fill(store, hosts_per_machine=1)
    targets = [
        ImageTarget("good", "", "sha256:1", SPEC_OK.encode()),
        ImageTarget("bad-regex", "", "sha256:3", SPEC_BAD_REGEX.encode()),
    ]

    run = evaluate_targets(store, targets)

    assert run.images_failed == 0 and run.hosts_not_evaluated == 0
    assert run.partial
    assert run.problems() == [
        f"{len(MACHINES)} error cells (a spec or rule that fails to evaluate)"
    ]


def test_hosts_of_unknown_architecture_make_the_run_partial(store: Store) -> None:
    store.save_snapshot(
        Host("mystery"),
        run_id=None,
        source="test",
        features=Features(attributes={"kernel.version": {"full": "6.1.0"}}),
    )
    targets = [
        ImageTarget("amd-only", "linux/amd64", "sha256:9", SPEC_OK.encode()),
        ImageTarget("anywhere", "", "sha256:1", SPEC_OK.encode()),
    ]

    run = evaluate_targets(store, targets)

    assert run.unknown_arch_cells == 1
    assert run.problems() == ["1 cell not evaluated: host architecture unknown"]


def test_a_platform_mismatch_alone_is_an_answer_not_a_partial_run(
    store: Store,
) -> None:
    fill(store, hosts_per_machine=1)
    targets = [ImageTarget("amd-only", "linux/amd64", "sha256:9", SPEC_OK.encode())]

    run = evaluate_targets(store, targets)

    assert run.cells[NOT_EVALUATED] == 1  # the arm host
    assert not run.partial and run.problems() == []
