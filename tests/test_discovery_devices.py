"""memory, network, pci, usb, storage and local sources on odd input."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleetcompat.discovery import discover_host, local, memory
from fleetcompat.hosttree import HostTree
from fleetcompat.probe import parse_probe_output, run_local_probe
from tests.discovery_support import FIFO, make_root


def discovered(
    tmp_path: Path, files: dict[str, Any], now: datetime | None = None
) -> Any:
    """The features and notes of a tree made of `files`."""
    return discover_host(HostTree.from_root(make_root(tmp_path, files)), now=now)


@pytest.mark.parametrize(
    ("directory", "quantity"),
    [
        ("hugepages-2048kB", "2Mi"),
        ("hugepages-1048576kB", "1Gi"),
        ("hugepages-64kB", "64Ki"),
        ("hugepages-32768kB", "32Mi"),
        ("hugepages-16384kB", "16Mi"),
        ("hugepages-1536kB", "1536Ki"),
    ],
    ids=["2M", "1G", "64K", "32M", "16M", "odd"],
)
def test_hugepage_sizes_get_kubernetes_quantity_names(
    tmp_path: Path, directory: str, quantity: str
) -> None:
    files = {f"/sys/kernel/mm/hugepages/{directory}/nr_hugepages": "4\n"}

    features = discovered(tmp_path, files).features

    assert features.attributes["memory.hugepages"] == {
        "enabled": "true",
        f"hugepages-{quantity}": "4",
    }


def test_binary_quantity_of_zero_has_no_suffix() -> None:
    assert memory.binary_quantity(0) == "0"


def test_swap_is_enabled_with_more_than_the_header_line(tmp_path: Path) -> None:
    header = "Filename\tType\tSize\tUsed\tPriority\n"
    files = {"/proc/swaps": header + "/swap.img file 1024 0 -2\n\n"}

    features = discovered(tmp_path, files).features

    assert features.attributes["memory.swap"] == {"enabled": "true"}


def test_numa_counts_node_devices(tmp_path: Path) -> None:
    files = {f"/sys/bus/node/devices/node{n}/cpulist": "" for n in range(2)}

    features = discovered(tmp_path, files).features

    assert features.attributes["memory.numa"] == {"is_numa": "true", "node_count": "2"}


def test_nvdimm_instances_carry_devtype_and_mode(tmp_path: Path) -> None:
    files = {
        "/sys/bus/nd/devices/region0/devtype": "nd_pmem\n",
        "/sys/bus/nd/devices/namespace0.0/devtype": "nd_namespace_io\n",
        "/sys/bus/nd/devices/namespace0.0/mode": "fsdax\n",
    }

    features = discovered(tmp_path, files).features

    assert features.instances["memory.nv"] == [
        {"name": "namespace0.0", "devtype": "nd_namespace_io", "mode": "fsdax"},
        {"name": "region0", "devtype": "nd_pmem"},
    ]


NET = "/sys/class/net"


def test_network_splits_physical_and_virtual_and_skips_bad_attributes(
    tmp_path: Path,
) -> None:
    files: dict[str, Any] = {
        f"{NET}/bonding_masters": "bond0\n",
        "/sys/devices/pci0000:00/0000:00:03.0/sriov_numvfs": "0\n",
        "/sys/devices/pci0000:00/0000:00:03.0/sriov_totalvfs": "7\n",
        f"{NET}/eth0/device": ("link", "../../../devices/pci0000:00/0000:00:03.0"),
        f"{NET}/eth0/operstate": "up\n",
        f"{NET}/eth0/speed": FIFO,  # reading speed fails (EINVAL on a real host)
        f"{NET}/eth0/mtu": "9000\n",
        f"{NET}/lo/operstate": "unknown\n",
        f"{NET}/lo/mtu": "65536\n",
    }

    features = discovered(tmp_path / "root", files).features

    assert features.instances["network.device"] == [
        {
            "name": "eth0",
            "operstate": "up",
            "mtu": "9000",
            "sriov_numvfs": "0",
            "sriov_totalvfs": "7",
        }
    ]
    assert features.instances["network.virtual"] == [
        {"name": "lo", "operstate": "unknown", "mtu": "65536"}
    ]


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("/sys/class/net", FIFO),
        ("/sys/bus/pci/devices", "not a directory\n"),
        ("/sys/block", FIFO),
    ],
    ids=["network", "pci", "storage"],
)
def test_unreadable_device_directory_leaves_the_source_out_with_a_note(
    tmp_path: Path, path: str, content: Any
) -> None:
    result = discovered(tmp_path, {path: content})

    source = {
        "/sys/class/net": "network",
        "/sys/bus/pci/devices": "pci",
        "/sys/block": "storage",
    }[path]
    assert not any(n.startswith(source + ".") for n in result.features.names())
    assert any(note.startswith(source + ":") for note in result.notes)


PCI = "/sys/bus/pci/devices"


def test_pci_values_lose_0x_and_class_is_cut_to_four_digits(tmp_path: Path) -> None:
    device = f"{PCI}/0000:3b:00.0"
    files = {
        f"{device}/class": "0x0b4000\n",
        f"{device}/vendor": "0x8086\n",
        f"{device}/device": "0x37c8\n",
        f"{device}/subsystem_vendor": "0x8086\n",
        f"{device}/subsystem_device": "0x35cf\n",
        f"{device}/sriov_totalvfs": "16\n",
        f"{device}/iommu_group/type": "DMA\n",
        f"{PCI}/0000:00:1f.2/class": "0x058000\n",  # lacks vendor files: skipped
    }

    features = discovered(tmp_path, files).features

    assert features.instances["pci.device"] == [
        {
            "class": "0b40",
            "vendor": "8086",
            "device": "37c8",
            "subsystem_vendor": "8086",
            "subsystem_device": "35cf",
            "sriov_totalvfs": "16",
            "iommu_group/type": "DMA",
        }
    ]


USB = "/sys/bus/usb/devices"


def test_usb_device_of_class_00_becomes_one_instance_per_interface(
    tmp_path: Path,
) -> None:
    files = {
        f"{USB}/1-1/idProduct": "0a2b\n",
        f"{USB}/1-1/idVendor": "8087\n",
        f"{USB}/1-1/bDeviceClass": "00\n",
        f"{USB}/1-1/serial": "\n",
        f"{USB}/1-1/1-1:1.0/bInterfaceClass": "e0\n",
        f"{USB}/1-1/1-1:1.1/bInterfaceClass": "fe\n",
        f"{USB}/usb1/idProduct": "0002\n",
        f"{USB}/usb1/idVendor": "1d6b\n",
        f"{USB}/usb1/bDeviceClass": "09\n",
        f"{USB}/usb1/serial": "0000:00:14.0\n",
        f"{USB}/1-0:1.0/bInterfaceClass": "09\n",  # an interface: no idProduct
    }

    features = discovered(tmp_path, files).features
    probed = discover_host(parse_probe_output(run_local_probe(str(tmp_path)), "usb"))

    assert probed.features.instances["usb.device"] == features.instances["usb.device"]
    assert features.instances["usb.device"] == [
        {"class": "e0", "vendor": "8087", "device": "0a2b"},
        {"class": "fe", "vendor": "8087", "device": "0a2b"},
        {"class": "09", "vendor": "1d6b", "device": "0002", "serial": "0000:00:14.0"},
    ]


def test_block_devices_read_their_queue_attributes(tmp_path: Path) -> None:
    files = {
        "/sys/block/nvme0n1/queue/rotational": "0\n",
        "/sys/block/nvme0n1/queue/zoned": "none\n",
        "/sys/block/nvme0n1/queue/nr_zones": "0\n",
        "/sys/block/nvme0n1/queue/dax": FIFO,
    }

    features = discovered(tmp_path, files).features

    assert features.instances["storage.block"] == [
        {"name": "nvme0n1", "rotational": "0", "zoned": "none", "nr_zones": "0"}
    ]


FEATURES_D = "/etc/kubernetes/node-feature-discovery/features.d"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_feature_files_apply_their_directives(tmp_path: Path) -> None:
    files = {
        f"{FEATURES_D}/a-labels": (
            "# +no-feature\nlabel-only=value\n\nboth=yes\n# +no-label\nfeature-only\n"
        ),
        f"{FEATURES_D}/b-expiry": (
            "# +expiry-time=2030-01-01T00:00:00Z\nfresh=1\n"
            "# +expiry-time=2020-01-01T00:00:00Z\nstale=1\n"
            "# +expiry-time=2030-01-01T00:00:00X\nstill-stale=1\n"
            "# a plain comment\nafter-stale=1\n"
        ),
        f"{FEATURES_D}/c-override": "both=overridden\n  spaced = kept as is  \n",
        f"{FEATURES_D}/.hidden": "hidden=1\n",
        f"{FEATURES_D}/d-too-big": "big=1\n" + "x" * 70000,
        f"{FEATURES_D}/e-subdir/inner": "inner=1\n",
    }

    result = discovered(tmp_path, files, now=NOW)

    assert result.features.attributes["local.feature"] == {
        "both": "overridden",
        "feature-only": "true",
        "fresh": "1",
        "spaced ": " kept as is",
    }
    assert result.features.attributes["local.label"] == {
        "label-only": "value",
        "both": "overridden",
        "fresh": "1",
        "spaced ": " kept as is",
    }
    assert any("d-too-big" in note for note in result.notes)


def test_no_features_directory_gives_empty_local_features(tmp_path: Path) -> None:
    result = discovered(tmp_path, {"/etc/hostname": "x\n"})

    assert result.features.attributes["local.feature"] == {}
    assert result.features.attributes["local.label"] == {}


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2030-01-01T00:00:00Z", True),
        ("2030-01-01T00:00:00+02:00", True),
        ("2030-01-01T00:00:00.5Z", True),
        ("2030-01-01T00:00:00X", False),
        ("2030-01-01", False),
        ("2030-13-01T00:00:00Z", False),
    ],
    ids=["utc", "offset", "fraction", "bad-zone", "date-only", "bad-month"],
)
def test_expiry_times_parse_as_go_rfc3339(text: str, valid: bool) -> None:
    assert (local.parse_rfc3339(text) is not None) is valid
