"""cpu source: flag names, levels, vendors and the sysfs-backed features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleetcompat.discovery import cpu, discover_host
from fleetcompat.discovery.x86flags import klauspost_flags, x64_level
from fleetcompat.hosttree import HostTree
from tests.discovery_support import FIFO, make_root

V1 = "fpu cx8 cmov mmx fxsr sse sse2 syscall"
V2 = V1 + " cx16 lahf_lm popcnt pni sse4_1 sse4_2 ssse3"
V3 = V2 + " xsave avx avx2 bmi1 bmi2 f16c fma abm movbe"
V4 = V3 + " avx512f avx512bw avx512cd avx512dq avx512vl"


def x86_cpuinfo(flags: str, vendor: str = "GenuineIntel", extra: str = "") -> str:
    """A two-processor x86 /proc/cpuinfo with these flags."""
    block = (
        f"processor\t: {{n}}\nvendor_id\t: {vendor}\ncpu family\t: 6\nmodel\t\t: 85\n"
        f"model name\t: Test CPU\nsiblings\t: 2\ncpu cores\t: 2\n{extra}"
        f"flags\t\t: {flags}\n\n"
    )
    return block.format(n=0) + block.format(n=1)


def discovered(tmp_path: Path, files: dict[str, Any]) -> Any:
    """The features and notes of a tree made of `files`."""
    return discover_host(HostTree.from_root(make_root(tmp_path, files)))


@pytest.mark.parametrize(
    ("flags", "level"),
    [
        ("", 0),
        (V1, 1),
        (V2, 2),
        (V3, 3),
        (V4, 4),
        (V4.replace("syscall", ""), 0),
        (V3.replace("xsave", ""), 2),
        (V4.replace("avx512vl", ""), 3),
    ],
    ids=[
        "none",
        "v1",
        "v2",
        "v3",
        "v4",
        "no-syscall-or-sep",
        "avx-without-xsave",
        "v4-missing-vl",
    ],
)
def test_microarchitecture_levels_follow_klauspost(flags: str, level: int) -> None:
    names = klauspost_flags(set(flags.split()), "Intel", 6, 85, 1)

    assert x64_level(names) == level
    assert {n for n in names if n.startswith("X86_64_V")} == {
        f"X86_64_V{i}" for i in range(1, level + 1)
    }


@pytest.mark.parametrize(
    ("linux", "expected"),
    [
        ("pni", {"SSE3"}),
        ("sse4_1 sse4_2", {"SSE4", "SSE42"}),
        ("pclmulqdq aes sha_ni", {"CLMUL", "AESNI", "SHA"}),
        ("avx512_vnni avx512f", {"AVX512VNNI", "AVX512F"}),
        ("avx512_vnni", set()),
        ("avx2", set()),
        ("xsave avx avx2", {"XSAVE", "OSXSAVE", "AVX", "AVX2"}),
        ("abm", {"LZCNT", "POPCNT"}),
        ("sep fpu cx8", {"SYSEE", "X87", "CMPXCHG8"}),
        ("lahf_lm", {"LAHF"}),
        ("svm npt", {"SVM", "SVMNP"}),
        ("npt", set()),
        ("ibt user_shstk", {"CETIBT", "CETSS"}),
        ("lm constant_tsc pdpe1gb", set()),
    ],
    ids=[
        "sse3",
        "sse4",
        "crypto",
        "avx512-vnni",
        "avx512-without-state",
        "avx2-without-avx",
        "avx-with-xsave",
        "abm",
        "old-names",
        "lahf",
        "svm-sub",
        "svm-sub-without-svm",
        "cet",
        "unmapped",
    ],
)
def test_linux_flags_map_to_klauspost_names(linux: str, expected: set[str]) -> None:
    names = klauspost_flags(set(linux.split()), "Intel", 6, 85, 1)

    assert names == expected


@pytest.mark.parametrize(
    ("vendor", "family", "threads", "linux", "present", "missing"),
    [
        ("Intel", 6, 2, "ht", {"HTT"}, set()),
        ("Intel", 6, 1, "ht", set(), {"HTT"}),
        ("AMD", 21, 2, "ht", set(), {"HTT"}),
        ("AMD", 25, 2, "ht", {"HTT"}, set()),
        ("Intel", 6, 1, "ssbd ibrs", {"SPEC_CTRL_SSBD"}, {"IBRS"}),
        ("AMD", 25, 1, "ssbd ibrs amd_ssbd", {"IBRS", "SPEC_CTRL_SSBD"}, set()),
        ("AMD", 21, 1, "ssbd", {"TSA_L1_NO", "TSA_SQ_NO"}, {"SPEC_CTRL_SSBD"}),
        ("Hygon", 24, 1, "sev sme", set(), {"SEV", "SME"}),
        ("AMD", 25, 1, "sev sme", {"SEV", "SME"}, set()),
    ],
    ids=[
        "intel-smt",
        "intel-no-smt",
        "amd-bulldozer",
        "amd-zen",
        "intel-spec",
        "amd-spec",
        "amd-old-ssbd",
        "hygon-no-sev",
        "amd-sev",
    ],
)
def test_vendor_dependent_flags(
    vendor: str,
    family: int,
    threads: int,
    linux: str,
    present: set[str],
    missing: set[str],
) -> None:
    names = klauspost_flags(set(linux.split()), vendor, family, 1, threads)

    assert present <= names
    assert not missing & names


@pytest.mark.parametrize(
    ("vendor_id", "expected"),
    [
        ("GenuineIntel", "Intel"),
        ("AuthenticAMD", "AMD"),
        ("HygonGenuine", "Hygon"),
        ("CentaurHauls", "VIA"),
        ("  Shanghai  ", "VendorUnknown"),
    ],
    ids=["intel", "amd", "hygon", "via", "zhaoxin"],
)
def test_x86_vendor_names_are_klauspost_names(
    tmp_path: Path, vendor_id: str, expected: str
) -> None:
    result = discovered(tmp_path, {"/proc/cpuinfo": x86_cpuinfo(V1, vendor_id)})

    assert result.features.attributes["cpu.model"]["vendor_id"] == expected


def test_arm64_model_comes_from_the_midr_fields(tmp_path: Path) -> None:
    cpuinfo = (
        "processor\t: 0\nFeatures\t: fp asimd cpuid sve2p1 sve\nCPU implementer\t: "
        "0xc0\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xac3\n"
        "CPU revision\t: 2\n"
    )

    features = discovered(tmp_path, {"/proc/cpuinfo": cpuinfo}).features

    assert features.flags["cpu.cpuid"] == {"FP", "ASIMD", "CPUID", "SVE"}
    assert features.attributes["cpu.model"] == {
        "vendor_id": "Ampere",
        "family": str(0x3F),
        "id": str(0xAC32),
        "hypervisor": "none",
    }
    assert "cpu.cpuid" not in features.attributes


def test_arm64_without_cpuid_hwcap_has_an_unknown_model(tmp_path: Path) -> None:
    cpuinfo = "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n"
    cpuinfo += "CPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd0c\n"

    features = discovered(tmp_path, {"/proc/cpuinfo": cpuinfo}).features

    assert features.attributes["cpu.model"]["vendor_id"] == "VendorUnknown"
    assert features.attributes["cpu.model"]["family"] == "0"


@pytest.mark.parametrize(
    ("dmi", "expected"),
    [
        ({"sys_vendor": "VMware, Inc."}, "vmware"),
        (
            {"sys_vendor": "Microsoft Corporation", "product_name": "Virtual Machine"},
            "msvm",
        ),
        (
            {"sys_vendor": "QEMU", "product_name": "Standard PC (Q35 + ICH9, 2009)"},
            "kvm",
        ),
        ({"sys_vendor": "Amazon EC2"}, "kvm"),
    ],
    ids=["vmware", "hyper-v", "qemu-kvm", "ec2"],
)
def test_hypervisor_vendor_is_told_from_dmi(
    tmp_path: Path, dmi: dict[str, str], expected: str
) -> None:
    files: dict[str, Any] = {"/proc/cpuinfo": x86_cpuinfo(V1 + " hypervisor")}
    files |= {f"/sys/devices/virtual/dmi/id/{k}": v + "\n" for k, v in dmi.items()}

    model = discovered(tmp_path, files).features.attributes["cpu.model"]

    assert model["hypervisor"] == expected


def test_unrecognised_hypervisor_is_left_out_with_a_note(tmp_path: Path) -> None:
    result = discovered(tmp_path, {"/proc/cpuinfo": x86_cpuinfo(V1 + " hypervisor")})

    assert "hypervisor" not in result.features.attributes["cpu.model"]
    assert any("hypervisor" in note for note in result.notes)


def test_bare_metal_hypervisor_is_none(tmp_path: Path) -> None:
    result = discovered(tmp_path, {"/proc/cpuinfo": x86_cpuinfo(V1)})

    assert result.features.attributes["cpu.model"]["hypervisor"] == "none"


TOPOLOGY = "/sys/bus/cpu/devices"


def test_offline_cpu0_without_topology_empties_cpu_topology(tmp_path: Path) -> None:
    files = {
        f"{TOPOLOGY}/cpu0/online": "0\n",
        f"{TOPOLOGY}/cpu1/topology/thread_siblings_list": "1\n",
        f"{TOPOLOGY}/cpu1/topology/physical_package_id": "0\n",
    }

    features = discovered(tmp_path, files).features

    assert features.attributes["cpu.topology"] == {}


def test_topology_counts_packages_and_threads(tmp_path: Path) -> None:
    files = {}
    for n, (siblings, package) in enumerate([("0,2", "0"), ("1-3", "1"), ("2", "0")]):
        files[f"{TOPOLOGY}/cpu{n}/topology/thread_siblings_list"] = siblings + "\n"
        files[f"{TOPOLOGY}/cpu{n}/topology/physical_package_id"] = package + "\n"

    features = discovered(tmp_path, files).features

    assert features.attributes["cpu.topology"] == {
        "hardware_multithreading": "true",
        "socket_count": "2",
    }


CPU = "/sys/devices/system/cpu"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({f"{CPU}/online": "0\n"}, {}),
        ({f"{CPU}/cpuidle/current_driver": "acpi_idle\n"}, {}),
        (
            {
                f"{CPU}/cpuidle/current_driver": "intel_idle\n",
                "/sys/module/intel_idle/parameters/max_cstate": "9\n",
            },
            {"enabled": "true"},
        ),
        (
            {
                f"{CPU}/cpuidle/current_driver": "intel_idle\n",
                "/sys/module/intel_idle/parameters/max_cstate": "0\n",
            },
            {"enabled": "false"},
        ),
        ({f"{CPU}/cpuidle/current_driver": "intel_idle\n"}, None),
        ({f"{CPU}/cpuidle/current_driver": FIFO}, None),
    ],
    ids=[
        "no-cpuidle",
        "other-driver",
        "enabled",
        "disabled",
        "no-max-cstate",
        "unreadable-driver",
    ],
)
def test_cstate_follows_nfd(
    tmp_path: Path, files: dict[str, Any], expected: dict[str, str] | None
) -> None:
    files = {"/proc/cpuinfo": x86_cpuinfo(V1), **files}

    features = discovered(tmp_path, files).features

    assert features.attributes.get("cpu.cstate") == expected


def test_pstate_reports_a_governor_only_when_all_policies_agree(
    tmp_path: Path,
) -> None:
    files: dict[str, Any] = {
        "/proc/cpuinfo": x86_cpuinfo(V1),
        f"{CPU}/intel_pstate/status": "active\n",
        f"{CPU}/intel_pstate/no_turbo": "1\n",
        f"{CPU}/cpufreq/policy0/affected_cpus": "0\n",
        f"{CPU}/cpufreq/policy0/scaling_governor": "performance\n",
        f"{CPU}/cpufreq/policy1/affected_cpus": "\n",
        f"{CPU}/cpufreq/policy1/scaling_governor": "powersave\n",
    }

    features = discovered(tmp_path, files).features

    assert features.attributes["cpu.pstate"] == {
        "status": "active",
        "turbo": "false",
        "scaling_governor": "performance",
    }


def test_rdt_comes_from_the_rdt_flags_on_intel(tmp_path: Path) -> None:
    flags = V1 + " cqm cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local rdt_a"
    flags += " cat_l3 mba"
    files = {
        "/proc/cpuinfo": x86_cpuinfo(flags),
        "/sys/fs/resctrl/info/L3/num_closids": "16\n",
    }

    features = discovered(tmp_path, files).features

    assert features.attributes["cpu.rdt"] == {
        "RDTMON": "true",
        "RDTCMT": "true",
        "RDTMBM": "true",
        "RDTL3CA": "true",
        "RDTL3CA_NUM_CLOSID": "15",
        "RDTMBA": "true",
    }


def test_security_reads_kvm_parameters_and_misc_capacity(tmp_path: Path) -> None:
    files = {
        "/proc/cpuinfo": x86_cpuinfo(V1 + " tdx_guest"),
        "/sys/module/kvm_amd/parameters/sev": "Y\n",
        "/sys/module/kvm_amd/parameters/sev_es": "N\n",
        "/sys/module/kvm_amd/parameters/sev_snp": "1\n",
        "/sys/module/kvm_intel/parameters/tdx": "Y\n",
        "/sys/fs/cgroup/misc.capacity": "tdx 31\nsev 509\nsev_es 99\n",
    }

    features = discovered(tmp_path, files).features

    assert features.attributes["cpu.security"] == {
        "tdx.enabled": "true",
        "tdx.total_keys": "31",
        "tdx.protected": "true",
        "sev.enabled": "true",
        "sev.asids": "509",
        "sev.snp.enabled": "true",
    }


@pytest.mark.parametrize(
    ("name", "frequencies", "expected"),
    [
        (
            "Xeon Gold 6252N CPU @ 2.30GHz",
            ["2300000", "2800000"],
            {"bf.enabled": "true"},
        ),
        ("Xeon Gold 6252 CPU @ 2.10GHz", ["2100000", "2100000"], {}),
        ("Core i7-1370P", ["1900000", "1400000"], {}),
        ("Xeon Platinum", ["2100000", "2800000"], None),
        ("Xeon Platinum", [], {}),
    ],
    ids=["sst-bf", "uniform", "hybrid", "unknown-nominal", "no-cpufreq"],
)
def test_sst_bf_compares_base_frequency_with_the_nominal_one(
    tmp_path: Path, name: str, frequencies: list[str], expected: dict[str, str] | None
) -> None:
    files: dict[str, Any] = {"/proc/cpuinfo": x86_cpuinfo(V1).replace("Test CPU", name)}
    for n, value in enumerate(frequencies):
        files[f"{TOPOLOGY}/cpu{n}/cpufreq/base_frequency"] = value + "\n"

    features = discovered(tmp_path, files).features

    assert features.attributes.get("cpu.sst") == expected


def test_unknown_architecture_reports_only_topology(tmp_path: Path) -> None:
    result = discovered(tmp_path, {"/proc/cpuinfo": "processor : 0\nfoo : bar\n"})

    cpu_names = {n for n in result.features.names() if n.startswith("cpu.")}
    assert cpu_names == {"cpu.topology"}


def test_hwcap_lists_hold_only_names_nfd_knows() -> None:
    assert "SVE2P1" not in cpu.ARM64_HWCAPS
    assert cpu.ARM_HWCAPS["fastmult"] == "FASTMUL"
    assert cpu.ARM_HWCAPS["vfpv3d16"] == "VFPv3D16"
