"""The shared os-release files and kernel configs, read as NFD reads them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleetcompat.discovery import discover_host
from fleetcompat.hosttree import HostTree
from fleetcompat.probe import parse_probe_output, run_local_probe

pytestmark = pytest.mark.corpus

# distro: (ID, VERSION_ID or None, number of osrelease elements), read with grep.
OS_RELEASES = {
    "almalinux10": ("almalinux", "10.0", 22),
    "altlinux10": ("altlinux", "10.1", 12),
    "amazon2023": ("amzn", "2023", 13),
    "armbian": ("debian", "10", 10),
    "buildroot": ("buildroot", "2022.02", 7),
    "centosstream10": ("centos", "10", 15),
    "centosstream9": ("centos", "9", 15),
    "coreos": ("coreos", "899.15.0", 11),
    "debian13": ("debian", "13", 11),
    "debiantesting": ("debian", None, 7),
    "fedora19": ("fedora", "19", 8),
    "fedora30": ("fedora", "30", 20),
    "gentoo": ("gentoo", None, 7),
    "kali": ("kali", "2017.1", 12),
    "linuxmint17": ("ubuntu", "14.04", 11),
    "manjaro1512": ("manjaro", None, 7),
    "opensuse15": ("opensuse-leap", "15.2", 12),
    "oracle7": ("ol", "7.5", 15),
    "raspbian8": ("raspbian", "8", 10),
    "rhel7": ("rhel", "7.0", 16),
    "rocky": ("rocky", "8.4", 15),
    "rocky9": ("rocky", "9.3", 19),
    "slackware14": ("slackware", "14.1", 12),
    "ubuntu14": ("ubuntu", "14.04", 11),
    "ubuntu24": ("ubuntu", "24.04", 15),
    "ubuntu2510": ("ubuntu", "25.10", 15),
}


def copy_release_tree(source: Path, dest: Path) -> Path:
    """Copy a distro's files, turning a flattened symlink back into a symlink.

    The shared copy stores a relative `etc/os-release` symlink as a small file that
    holds the link's target; on the real host it is a symlink.
    """
    shutil.copytree(source, dest)
    for path in dest.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    release = dest / "etc" / "os-release"
    text = release.read_text()
    if text.startswith("../") and "=" not in text:
        release.unlink()
        release.symlink_to(text.strip())
    return dest


def test_every_os_release_is_covered(corpus: Path) -> None:
    assert {p.name for p in (corpus / "os-release").iterdir()} == set(OS_RELEASES)


@pytest.mark.parametrize("distro", sorted(OS_RELEASES))
def test_os_release_gives_id_and_split_version(
    corpus: Path, tmp_path: Path, distro: str
) -> None:
    root = copy_release_tree(corpus / "os-release" / distro, tmp_path / distro)
    ident, version, count = OS_RELEASES[distro]

    from_root = discover_host(HostTree.from_root(root)).features
    from_probe = discover_host(parse_probe_output(run_local_probe(str(root)), distro))

    release = from_root.attributes["system.osrelease"]
    assert release["ID"] == ident
    assert release.get("VERSION_ID") == version
    if version is not None:
        major, _, rest = version.partition(".")
        assert release["VERSION_ID.major"] == major
        assert release.get("VERSION_ID.minor") == (rest.split(".")[0] or None)
    assert len(release) == count
    assert from_probe.features.attributes["system.osrelease"] == release


# config file: (release from its header, CONFIG_ lines, values checked by hand)
KERNEL_CONFIGS = {
    "Alma_Linux_10_x86_64.config": (
        "6.12.0-55.40.1.el10_0.x86_64",
        4983,
        {
            "CC_VERSION_TEXT": "gcc (GCC) 14.2.1 20250110 (Red Hat 14.2.1-7)",
            "LOCALVERSION": "",
            "HZ": "1000",
            "KVM": "m",
            "NO_HZ": "y",
            "X86_64": "y",
        },
    ),
    "Azure_Linux_x86_64.config": (
        "6.6.104.2",
        3380,
        {"BUILD_SALT": "", "HZ": "250", "KVM": "m", "X86_64": "y"},
    ),
    "CentOS_10_Stream_aarch64.config": (
        "6.12.0-144.el10.aarch64",
        4555,
        {"HZ": "100", "KVM": "y", "ARM64": "y", "DEFAULT_HOSTNAME": "(none)"},
    ),
    "Debian_10_Buster_aarch64.config": (
        "4.19.249",
        4972,
        {"BUILD_SALT": "4.19.0-21-arm64", "HZ": "250", "KVM": "y", "ARM64": "y"},
    ),
}


@pytest.mark.parametrize("name", sorted(KERNEL_CONFIGS))
def test_kernel_config_under_boot_is_read_whole(
    corpus: Path, tmp_path: Path, name: str
) -> None:
    release, count, values = KERNEL_CONFIGS[name]
    (tmp_path / "boot").mkdir()
    shutil.copyfile(
        corpus / "kernel-config" / name, tmp_path / "boot" / f"config-{release}"
    )
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "kernel" / "osrelease").write_text(release + "\n")

    features = discover_host(HostTree.from_root(tmp_path)).features
    probed = discover_host(parse_probe_output(run_local_probe(str(tmp_path)), name))

    config = features.attributes["kernel.config"]
    assert len(config) == count
    assert {key: config[key] for key in values} == values
    assert "COMPILE_TEST" not in config
    assert probed.features.attributes["kernel.config"] == config
