"""cpu.cpuid from the auxiliary vector's HWCAP bits, as NFD reads them."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from fleetcompat.discovery import discover_host
from fleetcompat.hosttree import HostTree
from fleetcompat.probe import parse_probe_output, run_local_probe
from tests.discovery_support import make_root

ARM64_CPUINFO = (
    "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n"
    "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd0c\nCPU revision\t: 1\n"
)
PPC_CPUINFO = "processor\t: 0\ncpu\t\t: POWER9 (raw), altivec supported\n"
S390_CPUINFO = "vendor_id       : IBM/S390\nfeatures\t: esan3\n"
ARM_CPUINFO = "processor\t: 0\nFeatures\t: half\nCPU implementer\t: 0x41\n"
ARM_CPUINFO += "CPU architecture: 7\n"


def auxv(pairs: list[tuple[int, int]], fmt: str) -> bytes:
    """An auxiliary vector of (type, value) pairs ending in AT_NULL."""
    return b"".join(struct.pack(fmt, key, value) for key, value in [*pairs, (0, 0)])


@pytest.mark.parametrize(
    ("cpuinfo", "vector", "expected"),
    [
        (
            ARM64_CPUINFO,
            auxv(
                [(6, 4096), (16, 0b1 | 1 << 11 | 1 << 22), (26, 1 << 1 | 1 << 36)],
                "<QQ",
            ),
            {"FP", "CPUID", "SVE", "SVE2"},  # HWCAP2 bit 36 (SVE2P1) is not NFD's
        ),
        (
            PPC_CPUINFO,
            auxv([(16, 0x40000000 | 0x10000000 | 0x80 | 0x1), (26, 0x00800000)], "<QQ"),
            {"PPC64", "ALTIVEC", "VSX", "PPCLE", "ARCH_3_00"},
        ),
        (
            S390_CPUINFO,
            auxv([(16, 1 | 2 | 128 | 2048 | 1 << 22)], ">QQ"),
            {"ESAN3", "ZARCH", "EDAT", "VX", "SIE"},
        ),
        (
            ARM_CPUINFO,
            auxv([(16, 1 << 1 | 1 << 4 | 1 << 12), (26, 1 << 0)], "<II"),
            {"HALF", "FASTMUL", "NEON", "AES"},
        ),
    ],
    ids=["arm64", "ppc64le", "s390x-big-endian", "arm32"],
)
def test_hwcap_bits_become_nfd_flag_names(
    tmp_path: Path, cpuinfo: str, vector: bytes, expected: set[str]
) -> None:
    files = {"/proc/cpuinfo": cpuinfo, "/proc/self/auxv": vector}

    features = discover_host(HostTree.from_root(make_root(tmp_path, files))).features

    assert features.flags["cpu.cpuid"] == expected


def test_ppc64le_without_auxv_leaves_cpuid_out_with_a_note(tmp_path: Path) -> None:
    tree = HostTree.from_root(make_root(tmp_path, {"/proc/cpuinfo": PPC_CPUINFO}))

    result = discover_host(tree)

    assert "cpu.cpuid" not in result.features.flags
    assert any("ppc64le" in note for note in result.notes)


def test_probe_records_its_auxv_as_hex() -> None:
    tree = parse_probe_output(run_local_probe(), "local")

    vector = tree.read_bytes("/proc/self/auxv")

    assert vector is not None
    assert len(vector) % 16 == 0
    keys = {struct.unpack_from("<Q", vector, i)[0] for i in range(0, len(vector), 16)}
    assert 16 in keys  # AT_HWCAP


def test_probe_skips_auxv_under_a_root_prefix(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"/proc/cpuinfo": ARM64_CPUINFO})

    tree = parse_probe_output(run_local_probe(str(root)), "prefixed")

    assert tree.read_bytes("/proc/self/auxv") is None
