"""kernel and system sources on odd real-world input."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from fleetcompat.discovery import discover_host, kernel, system
from fleetcompat.hosttree import HostTree
from tests.discovery_support import FIFO, make_root


def discovered(tmp_path: Path, files: dict[str, Any]) -> Any:
    """Discover a tree made of `files`."""
    return discover_host(HostTree.from_root(make_root(tmp_path, files))).features


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        (
            "6.1.0-13-amd64",
            {"full": "6.1.0-13-amd64", "major": "6", "minor": "1", "revision": "0"},
        ),
        (
            "4.18.0-553.el8_10.x86_64",
            {
                "full": "4.18.0-553.el8_10.x86_64",
                "major": "4",
                "minor": "18",
                "revision": "0",
            },
        ),
        # "+" becomes "_", then trailing "_" is trimmed: the rest parses.
        ("6.1.0+", {"full": "6.1.0", "major": "6", "minor": "1", "revision": "0"}),
        (
            "6.2.0-rc1+",
            {"full": "6.2.0-rc1", "major": "6", "minor": "2", "revision": "0"},
        ),
        ("5.15", {"full": "5.15", "major": "5", "minor": "15", "revision": ""}),
        ("6", {"full": "6", "major": "6", "minor": "", "revision": ""}),
        ("4.18.0_x", {"full": "4.18.0_x"}),
        ("6.8.0 (custom)", {"full": "6.8.0__custom"}),
        ("-.weird.-", {"full": "weird"}),
    ],
    ids=[
        "debian",
        "el8",
        "plus",
        "rc-plus",
        "two-parts",
        "one-part",
        "underscore",
        "spaces",
        "trimmed",
    ],
)
def test_kernel_version_is_trimmed_and_split_as_nfd_does(
    release: str, expected: dict[str, str]
) -> None:
    assert kernel.parse_version(release) == expected


def test_kernel_version_comes_from_osrelease_with_whitespace_trimmed(
    tmp_path: Path,
) -> None:
    features = discovered(tmp_path, {"/proc/sys/kernel/osrelease": " 6.1.0+\n"})

    assert features.attributes["kernel.version"]["full"] == "6.1.0"


CONFIG = '# comment\nCONFIG_A=y\nCONFIG_B="quoted value"\n# CONFIG_C is not set\n'


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"/boot/config-6.1.0": CONFIG}, {"A": "y", "B": "quoted value"}),
        (
            {
                "/proc/config.gz": gzip.compress(b"CONFIG_GZ=m\n"),
                "/boot/config-6.1.0": CONFIG,
            },
            {"GZ": "m"},
        ),
        (
            {"/usr/src/linux/.config": "CONFIG_SRC=1\n", "/boot/config-6.1.0": CONFIG},
            {"SRC": "1"},
        ),
        (
            {
                "/proc/config.gz": b"not gzip",
                "/lib/modules/6.1.0/build/.config": "CONFIG_BUILD=y\n",
            },
            {"BUILD": "y"},
        ),
        (
            {"/usr/lib/modules/6.1.0/config": FIFO, "/boot/config-6.1.0": CONFIG},
            {"A": "y", "B": "quoted value"},
        ),
    ],
    ids=[
        "boot",
        "proc-config-gz-first",
        "usr-src-before-boot",
        "bad-gzip-skipped",
        "unreadable-skipped",
    ],
)
def test_kernel_config_is_the_first_readable_file_in_nfd_order(
    tmp_path: Path, files: dict[str, Any], expected: dict[str, str]
) -> None:
    files = {"/proc/sys/kernel/osrelease": "6.1.0\n", **files}

    features = discovered(tmp_path, files)

    assert features.attributes["kernel.config"] == expected


def test_kernel_config_without_a_release_only_looks_in_two_places(
    tmp_path: Path,
) -> None:
    features = discovered(tmp_path, {"/boot/config-6.1.0": CONFIG})

    assert "kernel.config" not in features.attributes


def test_modules_builtin_adds_to_loaded_modules(tmp_path: Path) -> None:
    files = {
        "/proc/sys/kernel/osrelease": "6.1.0\n",
        "/proc/modules": "kvm_intel 1 0 - Live 0x0\nkvm 2 1 kvm_intel, Live 0x0\n",
        "/lib/modules/6.1.0/modules.builtin": "kernel/fs/ext4/ext4.ko\nnot-a-module\n",
    }

    features = discovered(tmp_path, files)

    assert features.flags["kernel.loadedmodule"] == {"kvm_intel", "kvm"}
    assert features.flags["kernel.enabledmodule"] == {"kvm_intel", "kvm", "ext4"}


def test_unreadable_modules_builtin_leaves_enabledmodule_out(tmp_path: Path) -> None:
    files = {
        "/proc/sys/kernel/osrelease": "6.1.0\n",
        "/proc/modules": "kvm 2 0 - Live 0x0\n",
        "/lib/modules/6.1.0/modules.builtin": FIFO,
    }

    features = discovered(tmp_path, files)

    assert features.flags["kernel.loadedmodule"] == {"kvm"}
    assert "kernel.enabledmodule" not in features.flags


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"/sys/fs/selinux/enforce": "1\n"}, "true"),
        ({"/sys/fs/selinux/enforce": "0\n"}, "false"),
        ({"/sys/fs/cgroup/x": ""}, "false"),
        ({"/sys/fs/selinux/enforce": FIFO}, None),
        ({"/sys/kernel/x": ""}, None),
    ],
    ids=["enforcing", "permissive", "no-selinux", "unreadable", "no-sys-fs"],
)
def test_selinux_follows_nfd_on_missing_and_unreadable_files(
    tmp_path: Path, files: dict[str, Any], expected: str | None
) -> None:
    features = discovered(tmp_path, files)

    got = features.attributes.get("kernel.selinux")
    assert got == (None if expected is None else {"enabled": expected})


OS_RELEASE = """\
# a comment line
NAME="Example Linux"
ID=example
ID_LIKE='rhel fedora'
VERSION_ID="8.10.1"
EMPTY=
QUOTED_EMPTY=""
PRETTY_NAME="Example Linux 8.10" # trailing comment
  INDENTED=ignored
lower_key=kept\r
"""


def test_os_release_keeps_nfd_trimming_of_quotes_and_comments() -> None:
    assert system.parse_os_release(OS_RELEASE) == {
        "NAME": "Example Linux",
        "ID": "example",
        "ID_LIKE": "rhel fedora",
        "VERSION_ID": "8.10.1",
        "VERSION_ID.major": "8",
        "VERSION_ID.minor": "10",
        "QUOTED_EMPTY": "",
        "PRETTY_NAME": 'Example Linux 8.10" # trailing comment',
        "lower_key": "kept",
    }


@pytest.mark.parametrize(
    ("version_id", "expected"),
    [
        ("8", {"VERSION_ID.major": "8"}),
        ("22.04", {"VERSION_ID.major": "22", "VERSION_ID.minor": "04"}),
        ("2022.02", {"VERSION_ID.major": "2022", "VERSION_ID.minor": "02"}),
        ("rolling", {}),
        ("10-beta", {}),
    ],
    ids=["major-only", "ubuntu", "buildroot", "word", "suffix"],
)
def test_version_id_splits_into_major_and_minor(
    version_id: str, expected: dict[str, str]
) -> None:
    release = system.parse_os_release(f"VERSION_ID={version_id}\n")

    split = {k: v for k, v in release.items() if k.startswith("VERSION_ID.")}
    assert split == expected


@pytest.mark.parametrize(
    "link",
    ["../usr/lib/os-release", "/usr/lib/os-release"],
    ids=["relative", "absolute-stays-in-root"],
)
def test_symlinked_os_release_is_followed_inside_the_root(
    tmp_path: Path, link: str
) -> None:
    files = {"/usr/lib/os-release": "ID=inside\n", "/etc/os-release": ("link", link)}

    features = discovered(tmp_path / "root", files)

    assert features.attributes["system.osrelease"] == {"ID": "inside"}


def test_missing_os_release_leaves_osrelease_out(tmp_path: Path) -> None:
    features = discovered(tmp_path, {"/usr/lib/os-release": "ID=not-read\n"})

    assert "system.osrelease" not in features.attributes


def test_dmi_values_are_trimmed_and_the_feature_needs_one(tmp_path: Path) -> None:
    files = {
        "/sys/devices/virtual/dmi/id/product_name": "XA320 V2 \n",
        "/sys/devices/virtual/dmi/id/board_serial": "secret\n",
    }

    features = discovered(tmp_path, files)

    assert features.attributes["system.dmiid"] == {"product_name": "XA320 V2"}
    assert "system.dmiid" not in discovered(tmp_path / "empty", {"/x": ""}).attributes


def test_node_name_is_the_system_name(tmp_path: Path) -> None:
    tree = HostTree.from_root(make_root(tmp_path, {"/x": ""}))

    features = discover_host(tree, "worker-7").features

    assert features.attributes["system.name"] == {"nodename": "worker-7"}
