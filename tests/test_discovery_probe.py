"""The probe script and its output format: odd names, markers, bounds, busybox."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetcompat.discovery import discover_host
from fleetcompat.errors import FeaturesError
from fleetcompat.hosttree import MAX_GZIP_TEXT_BYTES, HostTree, TooLarge, Unreadable
from fleetcompat.probe import (
    MAX_OUTPUT_BYTES,
    is_probe_output,
    parse_probe_output,
    probe_script,
    run_local_probe,
)
from tests.discovery_support import FIFO, make_root

FEATURES_D = "/etc/kubernetes/node-feature-discovery/features.d"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"

ODD_TREE: dict[str, Any] = {
    "/proc/cpuinfo": "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
    "model\t\t: 85\nflags\t\t: fpu cx8 sep cmov mmx fxsr sse sse2 syscall\n",
    "/proc/sys/kernel/osrelease": "6.1.0+\n",
    "/proc/config.gz": gzip.compress(b"CONFIG_A=y\n# CONFIG_B is not set\n"),
    "/proc/swaps": FIFO,
    f"{FEATURES_D}/with space": "spaced=1\n",
    f"{FEATURES_D}/new\nline": "newline=1\n",
    f"{FEATURES_D}/back\\slash": "backslash=1\n",
    f"{FEATURES_D}/no-trailing-newline": "last=1",
    f"{FEATURES_D}/trailing-newline\n": "trailing=1\n",
    f"{FEATURES_D}/two-trailing-newlines\n\n": "trailing2=1\n",
    "/sys/class/net/eth 0/operstate": "up\n",
    "/sys/class/net/eth 0/mtu": "1500\n",
    "/sys/class/net/eth1": ("link", "../../devices/eth1\n"),
    "/sys/devices/eth1\n/mtu": "1400\n",
    "/etc/os-release": ("link", "../usr/lib/os-release"),
    "/usr/lib/os-release": 'ID="odd"\nVERSION_ID=1.2\nNAME="Débian 日本"\n',
}


LINKED_TREE: dict[str, Any] = {
    "/etc": ("link", "/capture/etc"),
    "/capture/etc/os-release": ("link", "../../usr/lib/os-release"),
    f"/capture{FEATURES_D}/linked": "linked=1\n",
    "/usr/lib": ("link", "/capture/lib"),
    "/capture/lib/os-release": 'ID=linked\nVERSION_ID="2.1"\n',
    "/lib": ("link", "usr/lib"),
    "/capture/lib/modules/6.1.0/modules.builtin": "kernel/fs/foo.ko\n",
    "/proc": ("link", "/capture/proc"),
    "/capture/proc/sys/kernel/osrelease": "6.1.0\n",
    "/capture/proc/config.gz": gzip.compress(b"CONFIG_LINKED=y\n"),
    "/sys/bus/pci/devices/0000:00:01.0": (
        "link",
        "/sys/devices/pci0000:00/0000:00:01.0",
    ),
    "/sys/devices/pci0000:00/0000:00:01.0/class": "0x030000\n",
    "/sys/devices/pci0000:00/0000:00:01.0/vendor": "0x8086\n",
    "/sys/devices/pci0000:00/0000:00:01.0/device": "0x1234\n",
    "/sys/devices/pci0000:00/0000:00:01.0/subsystem_vendor": "0x8086\n",
    "/sys/devices/pci0000:00/0000:00:01.0/subsystem_device": "0x0001\n",
    "/sys/devices/pci0000:00/0000:00:01.0/iommu_group": ("link", "/capture/g/1"),
    "/capture/g/1/type": "DMA\n",
    "/sys/class/net/eth0": ("link", "/sys/devices/pci0000:00/0000:00:01.0/net/eth0"),
    "/sys/devices/pci0000:00/0000:00:01.0/net/eth0/device": (
        "link",
        "/sys/devices/pci0000:00/0000:00:01.0",
    ),
    "/sys/devices/pci0000:00/0000:00:01.0/net/eth0/mtu": "9000\n",
    "/sys/devices/pci0000:00/0000:00:01.0/sriov_totalvfs": "8\n",
}
"""A captured root whose absolute symlinks sit in the middle of the paths read."""


def config_tree(config_gz: bytes) -> dict[str, Any]:
    """A tree whose /proc/config.gz is `config_gz`, with a plain config after it."""
    return {
        "/proc/sys/kernel/osrelease": "6.1.0\n",
        "/proc/config.gz": config_gz,
        "/boot/config-6.1.0": "CONFIG_FALLBACK=y\n",
    }


def probe(root: Path) -> bytes:
    """Probe output for a root, run under /bin/sh."""
    return run_local_probe(str(root))


def test_probe_script_is_a_posix_sh_script() -> None:
    script = probe_script()

    assert script.startswith(b"#!/bin/sh\n")
    assert b"python" not in script.lower()


def test_odd_file_names_survive_the_probe(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root", ODD_TREE)

    tree = parse_probe_output(probe(root), "odd")
    from_probe = discover_host(tree, "n")
    from_root = discover_host(HostTree.from_root(root), "n")

    assert tree.list_dir(FEATURES_D) == HostTree.from_root(root).list_dir(FEATURES_D)
    assert from_probe.features.to_nfd() == from_root.features.to_nfd()
    assert from_probe.features.attributes["local.feature"] == {
        "spaced": "1",
        "newline": "1",
        "backslash": "1",
        "last": "1",
        "trailing": "1",
        "trailing2": "1",
    }
    assert from_probe.features.instances["network.virtual"] == [
        {"name": "eth 0", "operstate": "up", "mtu": "1500"},
        {"name": "eth1", "mtu": "1400"},
    ]
    assert from_probe.features.attributes["kernel.config"] == {"A": "y"}
    assert from_probe.features.attributes["system.osrelease"]["ID"] == "odd"
    assert from_probe.features.attributes["system.osrelease"]["NAME"] == "Débian 日本"


def test_symlinks_in_the_middle_of_a_path_stay_inside_the_root(
    tmp_path: Path,
) -> None:
    root = make_root(tmp_path / "root", LINKED_TREE)

    from_probe = discover_host(parse_probe_output(probe(root), "linked"), "n")
    from_root = discover_host(HostTree.from_root(root), "n")

    assert from_probe.features == from_root.features
    assert from_probe.notes == from_root.notes
    found = from_probe.features
    assert found.attributes["system.osrelease"]["ID"] == "linked"
    assert found.attributes["local.feature"] == {"linked": "1"}
    assert found.attributes["kernel.config"] == {"LINKED": "y"}
    assert found.flags["kernel.enabledmodule"] == {"foo"}
    assert found.instances["pci.device"][0]["device"] == "1234"
    assert found.instances["pci.device"][0]["iommu_group/type"] == "DMA"
    assert found.instances["network.device"][0]["mtu"] == "9000"


@pytest.mark.parametrize(
    ("name", "target"),
    [("/a", "/a"), ("/a/b", "/a/b/c"), ("/a", "../a/./x")],
    ids=["self", "into-itself", "dotted-loop"],
)
def test_symlink_loops_read_as_absent_through_the_probe(
    tmp_path: Path, name: str, target: str
) -> None:
    files = {name: ("link", target), "/etc/os-release": ("link", f"{target}/x")}
    root = make_root(tmp_path / "root", files)

    tree = parse_probe_output(probe(root), "loop")

    assert tree.records["/etc/os-release"].kind == "absent"
    assert HostTree.from_root(root).read_text("/etc/os-release") is None


def test_special_file_is_marked_unreadable_not_absent(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root", ODD_TREE)

    tree = parse_probe_output(probe(root), "odd")

    assert tree.exists("/proc/swaps")
    with pytest.raises(Unreadable):
        tree.read_text("/proc/swaps")
    assert tree.read_text("/proc/no-such-file") is None


def test_unreadable_marker_leaves_the_feature_out_as_nfd_does() -> None:
    output = (
        b"#fleetcompat-probe v1\nU /proc/swaps\nU /sys/bus/pci/devices\n"
        b"F 7 /proc/modules\nkvm 1 0\n#end 0\n"
    )

    result = discover_host(parse_probe_output(output, "marked"))

    assert "memory.swap" not in result.features.names()
    assert "pci.device" not in result.features.names()
    assert result.features.flags["kernel.loadedmodule"] == {"kvm"}
    assert any(note.startswith("pci:") for note in result.notes)


def test_large_files_are_cut_and_marked(tmp_path: Path) -> None:
    big = "x=1\n" * 300_000
    files = {f"{FEATURES_D}/big": big, "/proc/cpuinfo": big}
    root = make_root(tmp_path / "root", files)

    tree = parse_probe_output(probe(root), "big")

    assert tree.records["/proc/cpuinfo"].truncated
    assert len(tree.records["/proc/cpuinfo"].text) == 1024 * 1024
    with pytest.raises(TooLarge):
        tree.read_text(f"{FEATURES_D}/big", limit=65536)
    assert discover_host(tree).features.attributes["local.feature"] == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello\n", "line 1: not fleetcompat probe output"),
        (b"#fleetcompat-probe v9\n#end 0\n", "line 1: unsupported probe format"),
        (b"#fleetcompat-probe v1\nF 2 /a\nx\n#end 0\n", "line 2: content of 2 bytes"),
        (b"#fleetcompat-probe v1\nF 1 /a\nx\n", "no '#end' line"),
        (b"#fleetcompat-probe v1\nQ /a\n#end 0\n", "line 2: unknown record"),
        (b"#fleetcompat-probe v1\nA relative\n#end 0\n", "line 2: path 'relative'"),
        (b"#fleetcompat-probe v1\nD 2 /d\none\n", "line 3: output ends inside"),
        (b"#fleetcompat-probe v1\nF 3 /a\na\nb\nA /b\nQ\n#end 0\n", "line 6: unknown"),
        (b"#fleetcompat-probe v1\n#end 0\nA /b\n", "line 3: data after"),
        (b"#fleetcompat-probe v1\nA /a", "ends in the middle of a line"),
    ],
    ids=[
        "not-probe",
        "version",
        "short-content",
        "no-end",
        "unknown-record",
        "relative-path",
        "cut-listing",
        "line-count-after-content",
        "after-end",
        "cut-line",
    ],
)
def test_malformed_output_names_the_source_and_line(data: bytes, message: str) -> None:
    with pytest.raises(FeaturesError) as raised:
        parse_probe_output(data, "host7.probe")

    assert str(raised.value).startswith("host7.probe: ")
    assert message in str(raised.value)


def test_oversized_output_is_refused() -> None:
    data = b"#fleetcompat-probe v1\n" + b"#" * MAX_OUTPUT_BYTES

    with pytest.raises(FeaturesError, match="exceeds"):
        parse_probe_output(data, "huge")


def test_is_probe_output_looks_at_the_first_line_only() -> None:
    assert is_probe_output(b"#fleetcompat-probe v1\n")
    assert is_probe_output(b"#fleetcompat-probe v2\n")
    assert not is_probe_output(b"apiVersion: v1\n#fleetcompat-probe v1\n")


def test_probe_runs_on_this_machine_and_parses() -> None:
    result = discover_host(parse_probe_output(run_local_probe(), "local"))

    assert "kernel.version" in result.features.attributes
    assert "cpu.topology" in result.features.attributes


@pytest.fixture(scope="module")
def busybox_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only busybox applet links, to use as PATH."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox is not installed")
    bin_dir = tmp_path_factory.mktemp("busybox-bin")
    applets = subprocess.run(
        [BUSYBOX, "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        (bin_dir / applet).symlink_to(BUSYBOX)
    return bin_dir


def run_probe(shell: list[str], root: Path, path: str) -> bytes:
    """The probe's output under a given shell and PATH."""
    env = {"PATH": path, "FLEETCOMPAT_ROOT": str(root), "HOME": "/"}
    done = subprocess.run(
        shell, input=probe_script(), capture_output=True, env=env, check=True
    )
    return done.stdout


@pytest.mark.parametrize(
    "files",
    [
        ODD_TREE,
        LINKED_TREE,
        config_tree(gzip.compress(bytes(MAX_GZIP_TEXT_BYTES + 1))),
        config_tree(gzip.compress(b"CONFIG_A=y\n") + gzip.compress(b"CONFIG_B=m\n")),
        config_tree(gzip.compress(b"CONFIG_A=y\n")[:-6]),
    ],
    ids=["odd-names", "linked-paths", "gzip-bomb", "gzip-two-members", "gzip-cut"],
)
def test_probe_under_busybox_alone_writes_what_dash_writes(
    tmp_path: Path, busybox_path: Path, files: dict[str, Any]
) -> None:
    root = make_root(tmp_path / "root", files)
    bin_dir = busybox_path

    under_busybox = run_probe([str(bin_dir / "sh"), "-s"], root, str(bin_dir))
    under_dash = run_probe(["/bin/sh", "-s"], root, os.environ["PATH"])

    assert under_busybox == under_dash
    assert parse_probe_output(under_busybox, "busybox").records


def test_probe_under_busybox_reads_a_real_capture_as_dash_does(
    busybox_path: Path,
) -> None:
    capture = Path(__file__).parent / "data" / "hosts" / "this-machine"
    bin_dir = busybox_path

    under_busybox = run_probe([str(bin_dir / "sh"), "-s"], capture, str(bin_dir))
    under_dash = run_probe(["/bin/sh", "-s"], capture, os.environ["PATH"])

    assert under_busybox == under_dash
    tree = parse_probe_output(under_busybox, "busybox")
    assert (
        discover_host(tree).features
        == discover_host(HostTree.from_root(capture)).features
    )


def test_probe_under_busybox_records_the_auxv_of_this_machine(
    busybox_path: Path,
) -> None:
    env = {"PATH": str(busybox_path), "HOME": "/"}
    done = subprocess.run(
        [str(busybox_path / "sh"), "-s"],
        input=probe_script(),
        capture_output=True,
        env=env,
        check=True,
    )

    tree = parse_probe_output(done.stdout, "busybox")

    assert tree.read_bytes("/proc/self/auxv")
    assert discover_host(tree).features.flags["cpu.cpuid"]


@pytest.fixture
def searchable_tmp() -> Iterator[Path]:
    """A temporary directory others may search (pytest's own is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="fleetcompat-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def probe_unprivileged(root: Path) -> bytes:
    """Probe output for a root, by an account that mode bits apply to.

    Run by root, the probe runs as `nobody` (setpriv), which needs every
    directory on the way to `root` to be searchable by others.
    """
    if os.geteuid() != 0:
        return probe(root)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to drop root")
    done = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-s"],
        input=probe_script(),
        env={"PATH": "/usr/bin:/bin", "FLEETCOMPAT_ROOT": str(root)},
        capture_output=True,
        check=True,
    )
    return done.stdout


def test_file_only_root_may_read_is_marked_unreadable(
    searchable_tmp: Path,
) -> None:
    root = make_root(searchable_tmp / "root", {"/proc/swaps": "Filename\n"})
    (root / "proc" / "swaps").chmod(0)

    tree = parse_probe_output(probe_unprivileged(root), "mode-000")

    assert tree.records["/proc/swaps"].kind == "unreadable"
    assert "memory.swap" not in discover_host(tree).features.names()
