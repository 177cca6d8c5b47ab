"""/proc/cpuinfo read into its processor blocks, and the host's architecture.

NFD's cpu source is compiled per architecture; which code ran on a host depends on
its GOARCH. We tell it from the files: /proc/sys/kernel/arch when present (Linux
6.x), else the shape of /proc/cpuinfo, which differs clearly between architectures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetcompat.hosttree import HostTree

X86_64 = "x86_64"
ARM64 = "aarch64"
ARM = "arm"
S390X = "s390x"
PPC64LE = "ppc64le"
RISCV64 = "riscv64"
UNKNOWN = "unknown"

_ARCH_NAMES = {
    "x86_64": X86_64,
    "amd64": X86_64,
    "aarch64": ARM64,
    "arm64": ARM64,
    "s390x": S390X,
    "ppc64le": PPC64LE,
    "riscv64": RISCV64,
}


@dataclass(frozen=True)
class CpuInfo:
    """The key/value blocks of /proc/cpuinfo, in file order."""

    blocks: tuple[dict[str, str], ...] = field(default_factory=tuple)

    def first(self, key: str) -> str | None:
        """The value of `key` in the first block that has it."""
        for block in self.blocks:
            if key in block:
                return block[key]
        return None

    def all(self, key: str) -> list[str]:
        """The values of `key` in every block that has it."""
        return [block[key] for block in self.blocks if key in block]


def parse_cpuinfo(text: str) -> CpuInfo:
    """Split /proc/cpuinfo into blocks of `key : value` lines."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current.setdefault(key.strip(), value.strip())
    if current:
        blocks.append(current)
    return CpuInfo(tuple(blocks))


def read_cpuinfo(tree: HostTree) -> CpuInfo:
    """The host's /proc/cpuinfo, empty when absent or unreadable."""
    text = tree.read_optional("/proc/cpuinfo")
    return parse_cpuinfo(text or "")


def host_arch(tree: HostTree, info: CpuInfo) -> str:
    """The host's architecture, in the spelling `uname -m` uses (or "unknown")."""
    declared = (tree.read_optional("/proc/sys/kernel/arch") or "").strip()
    if declared in _ARCH_NAMES:
        return _ARCH_NAMES[declared]
    if declared.startswith("arm"):
        return ARM

    if info.first("flags") is not None and info.first("vendor_id") is not None:
        return X86_64
    if info.first("CPU implementer") is not None:
        architecture = info.first("CPU architecture") or ""
        return ARM64 if architecture in ("8", "AArch64") else ARM
    vendor = info.first("vendor_id") or ""
    if "S390" in vendor:
        return S390X
    if info.first("isa") is not None and (info.first("isa") or "").startswith("rv64"):
        return RISCV64
    cpu = info.first("cpu") or ""
    if cpu.startswith("POWER") or info.first("platform") in ("pSeries", "PowerNV"):
        return PPC64LE
    return UNKNOWN
