"""NFD's cpu source: cpuid, model, cstate, pstate, rdt, security, sst, topology,
coprocessor.

NFD reads most of these from the CPUID instruction (x86) or the auxiliary vector
(other architectures) of the machine it runs on; we read what Linux shows of the
same bits in /proc/cpuinfo. Where a file cannot tell what an instruction would, the
element (or the whole feature) is left out and a note says so; docs/discovery.md
lists these gaps.
"""

from __future__ import annotations

import re

from fleetcompat.discovery import cpuinfo as arch
from fleetcompat.discovery import hwcaps
from fleetcompat.discovery.cpuinfo import CpuInfo
from fleetcompat.discovery.x86flags import klauspost_flags
from fleetcompat.features import Features
from fleetcompat.hosttree import HostTree, Unreadable

SYS_CPU = "/sys/devices/system/cpu"
BUS_CPU = "/sys/bus/cpu/devices"


def _names(text: str) -> frozenset[str]:
    """The whitespace-separated names in `text`."""
    return frozenset(text.split())


X86_VENDORS = {
    "AMDisbetter!": "AMD",
    "AuthenticAMD": "AMD",
    "CentaurHauls": "VIA",
    "GenuineIntel": "Intel",
    "TransmetaCPU": "Transmeta",
    "GenuineTMx86": "Transmeta",
    "Geode by NSC": "NSC",
    "VIA VIA VIA": "VIA",
    "HygonGenuine": "Hygon",
    "Vortex86 SoC": "SiS",
    "SiS SiS SiS": "SiS",
    "RiseRiseRise": "SiS",
    "Genuine  RDC": "RDC",
}
"""x86 vendor strings (CPUID leaf 0) as klauspost names them."""

ARM_IMPLEMENTERS = {
    0xC0: "Ampere",
    0x41: "ARM",
    0x42: "Broadcom",
    0x43: "Cavium",
    0x44: "DEC",
    0x46: "Fujitsu",
    0x49: "Infineon",
    0x4D: "Motorola",
    0x4E: "NVIDIA",
    0x50: "AMCC",
    0x51: "Qualcomm",
    0x56: "Marvell",
    0x69: "Intel",
}
"""arm64 MIDR implementer codes klauspost names; any other is VendorUnknown."""

ARM64_HWCAPS = _names(
    """FP ASIMD EVTSTRM AES PMULL SHA1 SHA2 CRC32 ATOMICS FPHP ASIMDHP CPUID ASIMDRDM
    JSCVT FCMA LRCPC DCPOP SHA3 SM3 SM4 ASIMDDP SHA512 SVE ASIMDFHM DIT USCAT ILRCPC
    FLAGM SSBS SB PACA PACG DCPODP SVE2 SVEAES SVEPMULL SVEBITPERM SVESHA3 SVESM4
    FLAGM2 FRINT SVEI8MM SVEF32MM SVEF64MM SVEBF16 I8MM BF16 DGH RNG BTI MTE ECV AFP
    RPRES MTE3 SME SMEI16I64 SMEF64F64 SMEI8I32 SMEF16F32 SMEB16F32 SMEF32F32
    SMEFA64 WFXT EBF16 SVEEBF16"""
)
"""The arm64 HWCAP/HWCAP2 names NFD knows; newer ones are dropped."""

ARM_HWCAPS = {
    name.lower(): name
    for name in _names(
        """SWP HALF THUMB 26BIT FPA VFP EDSP JAVA IWMMXT CRUNCH THUMBEE NEON VFPv3
        VFPv3D16 TLS VFPv4 IDIVA IDIVT VFPD32 LPAE EVTSTRM AES PMULL SHA1 SHA2 CRC32"""
    )
} | {"fastmult": "FASTMUL"}
"""32-bit arm: Linux hwcap name -> NFD name."""

S390X_HWCAPS = _names(
    """ESAN3 ZARCH STFLE MSA LDISP EIMM DFP EDAT ETF3EH HIGHGPRS TE VX VXD VXE GS VXE2
    VXP SORT DFLT VXP2 NNPA PCIMIO SIE"""
)
"""The s390x HWCAP names NFD knows."""

_UNSAFE = re.compile(r"[^-A-Za-z0-9_.]+")


def discover(tree: HostTree, notes: list[str]) -> Features:
    """The cpu.* features NFD's worker would report for this host."""
    info = arch.read_cpuinfo(tree)
    host = arch.host_arch(tree, info)
    features = Features()

    if host == arch.UNKNOWN:
        notes.append(
            "cpu: architecture not recognised from /proc/cpuinfo; only "
            "cpu.topology reported"
        )
        features.attributes["cpu.topology"] = topology(tree)
        return features

    flags = cpuid_flags(tree, info, host, notes)
    if flags is not None and host == arch.X86_64 and _hybrid(tree):
        flags.add("HYBRID_CPU")
    if flags is not None:
        features.flags["cpu.cpuid"] = flags
    if host == arch.X86_64:
        features.attributes["cpu.cpuid"] = {}
        _note_cpuid_gaps(info, notes)
    features.attributes["cpu.model"] = model(tree, info, host, flags or set(), notes)

    x86 = host == arch.X86_64
    cstate = detect_cstate(tree) if x86 else {}
    if cstate is not None:
        features.attributes["cpu.cstate"] = cstate
    features.attributes["cpu.pstate"] = detect_pstate(tree) if x86 else {}
    features.attributes["cpu.rdt"] = detect_rdt(tree, info) if x86 else {}
    features.attributes["cpu.security"] = security(tree, info, host, notes)
    sst = detect_sst(tree, info, notes) if x86 else {}
    if sst is not None:
        features.attributes["cpu.sst"] = sst
    features.attributes["cpu.topology"] = topology(tree)
    features.attributes["cpu.coprocessor"] = coprocessor(tree, host)
    return features


def _note_cpuid_gaps(info: CpuInfo, notes: list[str]) -> None:
    """Say which cpuid elements NFD likely reports here that files cannot show."""
    flags, vendor = _linux_flags(info), x86_vendor(info)
    if "avx10" in flags:
        notes.append("cpu: AVX10_VERSION needs CPUID leaf 0x24; left out")
    if vendor == "Intel" and "arch_perfmon" in flags:
        notes.append("cpu: PMU_FIXEDCOUNTER_* flags need CPUID leaf 0xA; left out")
    if vendor == "AMD" and "ssbd" in flags and "amd_ssbd" not in flags:
        notes.append(
            "cpu: SPEC_CTRL_SSBD on AMD needs CPUID 0x80000008 (Linux shows only "
            "ssbd); left out"
        )


def cpuid_flags(
    tree: HostTree, info: CpuInfo, host: str, notes: list[str]
) -> set[str] | None:
    """cpu.cpuid flags for the architecture, or None when files cannot tell.

    Outside x86 the HWCAP bits of the auxiliary vector are used when the probe
    recorded it (exactly what NFD reads); /proc/cpuinfo, which lists the same bits
    by name, otherwise.
    """
    caps = hwcaps.read_hwcaps(tree, host) if host != arch.X86_64 else None
    if caps is not None:
        named = hwcaps.hwcap_flags(host, *caps)
        if named is not None:
            return named
    if host == arch.X86_64:
        vendor = x86_vendor(info)
        family, model_id = _int(info.first("cpu family")), _int(info.first("model"))
        return klauspost_flags(
            _linux_flags(info), vendor, family, model_id, _threads_per_core(info)
        )
    if host == arch.ARM64:
        names = (info.first("Features") or "").upper().split()
        return {name for name in names if name in ARM64_HWCAPS}
    if host == arch.ARM:
        names = (info.first("Features") or "").split()
        return {ARM_HWCAPS[name] for name in names if name in ARM_HWCAPS}
    if host == arch.S390X:
        names = (info.first("features") or "").upper().split()
        return {name for name in names if name in S390X_HWCAPS}
    if host == arch.PPC64LE:
        notes.append(
            "cpu: ppc64le cpuid flags come from AT_HWCAP, which this capture lacks; "
            "left out"
        )
        return None
    return set()


def model(
    tree: HostTree, info: CpuInfo, host: str, flags: set[str], notes: list[str]
) -> dict[str, str]:
    """cpu.model: vendor_id, family and id as klauspost reports them, hypervisor.

    On arm64 klauspost reads the MIDR only when the CPUID hwcap is set (`flags`).
    """
    vendor, family, model_id = "VendorUnknown", 0, 0
    if host == arch.X86_64:
        vendor = x86_vendor(info)
        family, model_id = _int(info.first("cpu family")), _int(info.first("model"))
    elif host == arch.ARM64 and "CPUID" in flags:
        implementer = _int(info.first("CPU implementer"))
        vendor = ARM_IMPLEMENTERS.get(implementer, "VendorUnknown")
        # MIDR_EL1: variant in bits 23:20, architecture (0xF on ARMv8) in 19:16.
        family = (_int(info.first("CPU variant")) << 4) | 0xF
        model_id = (_int(info.first("CPU part")) << 4) | _int(
            info.first("CPU revision")
        )
    attrs = {"vendor_id": vendor, "family": str(family), "id": str(model_id)}

    hypervisor = _hypervisor(tree, info, host, notes)
    if hypervisor:
        attrs["hypervisor"] = hypervisor
    if host == arch.S390X:
        _s390x_model(info, attrs)
    return attrs


def x86_vendor(info: CpuInfo) -> str:
    """The klauspost vendor name for /proc/cpuinfo's vendor_id."""
    raw = (info.first("vendor_id") or "").strip()
    return X86_VENDORS.get(raw, "VendorUnknown")


def _hypervisor(tree: HostTree, info: CpuInfo, host: str, notes: list[str]) -> str:
    """NFD's hypervisor value: none, a lower-cased vendor, or "" when unknowable."""
    if host == arch.S390X:
        text = tree.read_optional("/proc/sysinfo")
        if text is None:
            return ""
        for line in text.split("\n"):
            if "Control Program:" in line:
                value = line.split(":", 1)[1].strip()
                return _UNSAFE.sub("_", value) if value else "none"
        return "none"
    if host != arch.X86_64 or "hypervisor" not in _linux_flags(info):
        return "none"
    guessed = guess_hypervisor(tree)
    if not guessed:
        notes.append(
            "cpu: hypervisor vendor (CPUID leaf 0x40000000) not recognisable "
            "from DMI; cpu.model hypervisor left out"
        )
    return guessed


def guess_hypervisor(tree: HostTree) -> str:
    """The hypervisor vendor klauspost would name, told from DMI and /sys/hypervisor."""
    if (tree.read_optional("/sys/hypervisor/type") or "").strip() == "xen":
        return "xenhvm"
    dmi = " ".join(
        (tree.read_optional(f"/sys/devices/virtual/dmi/id/{name}") or "").strip()
        for name in ("sys_vendor", "product_name", "bios_vendor", "chassis_vendor")
    ).lower()
    for needle, vendor in (
        ("vmware", "vmware"),
        ("microsoft corporation", "msvm"),
        ("xen", "xenhvm"),
        ("bhyve", "bhyve"),
        ("kvm", "kvm"),
        ("qemu", "kvm"),
        ("seabios", "kvm"),
        ("bochs", "kvm"),
        ("amazon ec2", "kvm"),
        ("google compute engine", "kvm"),
        ("openstack", "kvm"),
    ):
        if needle in dmi:
            return vendor
    return ""


def _s390x_model(info: CpuInfo, attrs: dict[str, str]) -> None:
    """Overlay s390x's vendor_id, family and id from /proc/cpuinfo, as NFD does."""
    vendor = info.first("vendor_id")
    if vendor:
        attrs["vendor_id"] = _UNSAFE.sub("_", vendor)
    identification = info.first("identification")
    if identification and identification != "0":
        attrs["family"] = identification
    machines = info.all("machine")
    if machines and machines[-1] and machines[-1] != "0":
        attrs["id"] = machines[-1]


def detect_cstate(tree: HostTree) -> dict[str, str] | None:
    """cpu.cstate (x86); None where NFD fails and leaves the feature out."""
    if not tree.exists(SYS_CPU):
        return None
    if not tree.exists(f"{SYS_CPU}/cpuidle"):
        return {}
    try:
        driver = tree.read_text(f"{SYS_CPU}/cpuidle/current_driver")
        if driver is None:
            return None
        if driver.strip() != "intel_idle":
            return {}
        limit = tree.read_text("/sys/module/intel_idle/parameters/max_cstate")
    except Unreadable:
        return None
    if limit is None or not re.fullmatch(r"[-+]?\d+", limit.strip()):
        return None
    return {"enabled": str(int(limit.strip()) > 0).lower()}


def detect_pstate(tree: HostTree) -> dict[str, str]:
    """cpu.pstate (x86): intel_pstate status, turbo and the common governor."""
    base = f"{SYS_CPU}/intel_pstate"
    if not tree.exists(SYS_CPU) or not tree.exists(base):
        return {}
    status = tree.read_optional(f"{base}/status")
    if status is None or status.strip() == "off":
        return {}
    status = status.strip()
    attrs = {"status": status}
    no_turbo = tree.read_optional(f"{base}/no_turbo")
    if no_turbo is not None:
        attrs["turbo"] = "true" if no_turbo.startswith("0") else "false"
    if status != "active":
        return attrs

    try:
        policies = tree.list_dir(f"{SYS_CPU}/cpufreq") or []
    except Unreadable:
        policies = []
    governor = ""
    for policy in policies:
        cpus = tree.read_optional(f"{SYS_CPU}/cpufreq/{policy}/affected_cpus")
        if cpus is None or not cpus.strip():
            continue
        text = tree.read_optional(f"{SYS_CPU}/cpufreq/{policy}/scaling_governor")
        if text is None:
            continue
        if governor and governor != text.strip():
            governor = ""
            break
        governor = text.strip()
    if governor:
        attrs["scaling_governor"] = governor
    return attrs


def detect_rdt(tree: HostTree, info: CpuInfo) -> dict[str, str]:
    """cpu.rdt (x86) from the RDT flags Linux prints for the same CPUID leaves.

    Monitoring (leaf 0xF) is read the same way on Intel and AMD; allocation is read
    by NFD from leaf 0x10, which only Intel implements (AMD's cat_l3 comes from
    another leaf), so allocation elements are derived for Intel only.
    """
    flags = _linux_flags(info)
    attrs: dict[str, str] = {}
    if "cqm" in flags and "cqm_llc" in flags:
        attrs["RDTMON"] = "true"
        if "cqm_occup_llc" in flags:
            attrs["RDTCMT"] = "true"
        if {"cqm_mbm_total", "cqm_mbm_local"} <= flags:
            attrs["RDTMBM"] = "true"
    if "rdt_a" in flags and x86_vendor(info) == "Intel":
        if "cat_l3" in flags:
            attrs["RDTL3CA"] = "true"
            closids = tree.read_optional("/sys/fs/resctrl/info/L3/num_closids")
            if closids is not None and closids.strip().isdigit():
                attrs["RDTL3CA_NUM_CLOSID"] = str(int(closids.strip()) - 1)
        if "cat_l2" in flags:
            attrs["RDTL2CA"] = "true"
        if "mba" in flags:
            attrs["RDTMBA"] = "true"
    return attrs


def security(
    tree: HostTree, info: CpuInfo, host: str, notes: list[str]
) -> dict[str, str]:
    """cpu.security: TDX, SEV and (s390x) secure execution; SGX is left out."""
    attrs: dict[str, str] = {}
    if host == arch.S390X:
        value = tree.read_optional("/sys/firmware/uv/prot_virt_host")
        if value is not None and value.rstrip("\n") == "1":
            attrs["se.enabled"] = "true"
        return attrs
    if host != arch.X86_64:
        return attrs

    flags = _linux_flags(info)
    if "sgx" in flags:
        notes.append("cpu: sgx.enabled/sgx.epc need the CPUID EPC size; left out")
    tdx = tree.read_optional("/sys/module/kvm_intel/parameters/tdx")
    if tdx is not None and tdx.rstrip("\n") == "Y":
        attrs["tdx.enabled"] = "true"
        _misc_capacity(tree, "tdx", "tdx.total_keys", attrs)
    if "tdx_guest" in flags:
        attrs["tdx.protected"] = "true"
    if _sev_parameter(tree, "sev"):
        attrs["sev.enabled"] = "true"
        _misc_capacity(tree, "sev", "sev.asids", attrs)
    if _sev_parameter(tree, "sev_es"):
        attrs["sev.es.enabled"] = "true"
        _misc_capacity(tree, "sev_es", "sev.encrypted_state_ids", attrs)
    if _sev_parameter(tree, "sev_snp"):
        attrs["sev.snp.enabled"] = "true"
    return attrs


def _sev_parameter(tree: HostTree, name: str) -> bool:
    """Whether a kvm_amd SEV parameter starts with 1 or Y."""
    value = tree.read_optional(f"/sys/module/kvm_amd/parameters/{name}")
    return value is not None and value[:1] in ("1", "Y")


def _misc_capacity(
    tree: HostTree, resource: str, key: str, attrs: dict[str, str]
) -> None:
    """Set `key` from the misc cgroup capacity of `resource`, as NFD reads it."""
    for path in ("/sys/fs/cgroup/misc.capacity", "/sys/fs/cgroup/misc/misc.capacity"):
        text = tree.read_optional(path)
        if text is None:
            continue
        for line in text.split("\n"):
            if line.startswith(resource):
                fields = line.split(" ")
                if len(fields) > 1 and re.fullmatch(r"[-+]?\d+", fields[1]):
                    attrs[key] = str(int(fields[1]))
                return
        return


def detect_sst(
    tree: HostTree, info: CpuInfo, notes: list[str]
) -> dict[str, str] | None:
    """cpu.sst (x86): bf.enabled when a CPU's base frequency exceeds the nominal one.

    NFD takes the nominal frequency from CPUID leaf 0x16; we take it from the
    "@ 2.70GHz" of the model name, which states the same number. Without it, equal
    base frequencies on every CPU, or a part that is not a Xeon (SST-BF is a Xeon
    feature; hybrid cores differ in base frequency without it), mean SST-BF is off;
    otherwise the feature is left out with a note.
    """
    try:
        cpus = tree.list_dir(BUS_CPU) or []
    except Unreadable:
        return {}
    found = []
    for cpu in cpus:
        value = tree.read_optional(f"{BUS_CPU}/{cpu}/cpufreq/base_frequency")
        if value is not None and value.strip().isdigit():
            found.append(int(value.strip()))
    if not found:
        return {}

    name = info.first("model name") or ""
    stated = re.search(r"@ *([0-9]+(?:\.[0-9]+)?) *GHz", name)
    if stated:
        nominal = round(float(stated.group(1)) * 1000)
        return {"bf.enabled": "true"} if max(found) // 1000 > nominal else {}
    if len(set(found)) == 1 or "Xeon" not in name:
        return {}
    notes.append("cpu: SST-BF may be enabled (base frequencies differ); left out")
    return None


def topology(tree: HostTree) -> dict[str, str]:
    """cpu.topology: hardware_multithreading and socket_count, or empty on error."""
    try:
        cpus = tree.list_dir(BUS_CPU)
    except Unreadable:
        return {}
    if cpus is None:
        return {}
    threaded = False
    packages: set[str] = set()
    for cpu in cpus:
        siblings = tree.read_optional(f"{BUS_CPU}/{cpu}/topology/thread_siblings_list")
        package = tree.read_optional(f"{BUS_CPU}/{cpu}/topology/physical_package_id")
        if siblings is None or package is None:
            return {}
        threaded = threaded or "," in siblings or "-" in siblings
        packages.add(package.strip())
    return {
        "hardware_multithreading": str(threaded).lower(),
        "socket_count": str(len(packages)),
    }


def coprocessor(tree: HostTree, host: str) -> dict[str, str]:
    """cpu.coprocessor (ppc64le): nx_gzip when the NX GZIP caps file exists."""
    if host != arch.PPC64LE:
        return {}
    if tree.exists("/sys/devices/vio/ibm,compression-v1/nx_gzip_caps"):
        return {"nx_gzip": "true"}
    return {}


def _hybrid(tree: HostTree) -> bool:
    """Whether perf registered both hybrid core PMUs (only hybrid parts have both)."""
    return all(
        tree.read_optional(f"/sys/devices/{pmu}/cpus") is not None
        for pmu in ("cpu_atom", "cpu_core")
    )


def _linux_flags(info: CpuInfo) -> set[str]:
    """The x86 `flags` of the first processor listed."""
    return set((info.first("flags") or "").split())


def _threads_per_core(info: CpuInfo) -> int:
    """Logical CPUs per core of the first package (siblings / cpu cores, rounded up
    so that a hybrid part with threaded and single-thread cores counts as threaded)."""
    siblings, cores = _int(info.first("siblings")), _int(info.first("cpu cores"))
    return -(-siblings // cores) if cores > 0 else 1


def _int(text: str | None) -> int:
    """A decimal or 0x-hex number from /proc/cpuinfo, 0 when absent or garbled."""
    if not text:
        return 0
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return 0
