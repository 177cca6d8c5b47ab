"""Which compatibility artifact a host gets: its architecture, the image's platforms.

`host_architecture` tells a host's GOARCH from its features. NFD has no
architecture feature, but the `cpu.cpuid` flags it reports are specific to each
architecture (X86_64_V1/SSE2 on amd64, ASIMD/FP on arm64, THUMB/NEON/VFP on 32-bit
arm, PPC64 or ALTIVEC on ppc64le, ZARCH/ESAN3 on s390x); as fallbacks, the kernel's
build configuration (`kernel.config`, see `kconfig_architecture`), the
`.x86_64`-style suffix of `kernel.version.full` (RHEL-like kernels) and an s390
`cpu.model.vendor_id`.

An image's artifact for platform `linux/<arch>[/variant]` is used for hosts of that
architecture; an artifact of a single-manifest image, or one chosen for no platform,
is used for every host. A host whose architecture cannot be told (RISC-V without a
kernel config, for which NFD reports no CPUID flags, or features without any of
these) gets only such platform-independent artifacts; other cells are "not
evaluated: platform mismatch".
The variant (arm/v7 against arm/v6) is not told apart: the first artifact of the
host's architecture is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fleetcompat.features import Features

ANY_PLATFORM = ""
"""The platform of an artifact that applies to every host."""

_ARCH_FLAGS: tuple[tuple[str, frozenset[str]], ...] = (
    ("amd64", frozenset({"X86_64_V1", "SSE2", "CMOV", "CX8", "X87"})),
    ("arm64", frozenset({"ASIMD", "FP", "ASIMDHP", "ATOMICS"})),
    ("arm", frozenset({"THUMB", "NEON", "VFP", "HALF", "SWP", "VFPv3"})),
    ("ppc64le", frozenset({"PPC64", "ALTIVEC", "PPC_LE", "TRUE_LE", "VSX"})),
    ("s390x", frozenset({"ZARCH", "ESAN3", "STFLE"})),
)
_KERNEL_SUFFIXES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


@dataclass(frozen=True)
class ImageTarget:
    """One image and platform with the artifact chosen for it, or why there is none.

    `platform` is `os/arch[/variant]`, or "" for an artifact that applies to every
    host (a single-manifest image, or one attached to an index with no platform).
    """

    image: str
    platform: str
    artifact: str | None
    spec: bytes | None
    problem: str = ""


def host_architecture(features: Features) -> str:
    """The GOARCH of a host, told from its features; "" when they do not say."""
    flags = features.flags.get("cpu.cpuid") or set()
    for arch, marks in _ARCH_FLAGS:
        if flags & marks:
            return arch

    kconfig = kconfig_architecture(features.attributes.get("kernel.config") or {})
    if kconfig:
        return kconfig

    full = (features.attributes.get("kernel.version") or {}).get("full", "")
    suffix = full.rsplit(".", 1)[-1] if "." in full else ""
    if suffix in _KERNEL_SUFFIXES:
        return _KERNEL_SUFFIXES[suffix]
    vendor = (features.attributes.get("cpu.model") or {}).get("vendor_id", "")
    if "S390" in vendor.upper():
        return "s390x"
    return ""


def kconfig_architecture(config: dict[str, str]) -> str:
    """The GOARCH a kernel was built for, from NFD's `kernel.config` elements.

    NFD names the options without `CONFIG_` and stores the whole kconfig:
    X86_64 means amd64, ARM64 arm64, S390 s390x, PPC64 with CPU_LITTLE_ENDIAN
    ppc64le, RISCV with 64BIT riscv64. X86 alone is read as amd64 unless X86_32
    is set: every 32-bit x86 kernel sets X86_32, a 64-bit one sets X86_64, and
    NFD's own example NodeFeature (trimmed to three options) has only X86. A
    32-bit x86 host ("386") is told only by X86_32; Kubernetes ships no builds
    for it. Big-endian ppc64 and 32-bit arm are not told from the config.
    """
    enabled = {name for name, value in config.items() if value in ("y", "true")}
    if "X86_32" in enabled:
        return "386"
    if "X86_64" in enabled or "X86" in enabled:
        return "amd64"
    if "ARM64" in enabled:
        return "arm64"
    if "S390" in enabled:
        return "s390x"
    if "PPC64" in enabled and "CPU_LITTLE_ENDIAN" in enabled:
        return "ppc64le"
    if "RISCV" in enabled and "64BIT" in enabled:
        return "riscv64"
    return ""


def platform_arch(platform: str) -> str:
    """The architecture part of `os/arch[/variant]`; "" for any platform."""
    parts = platform.split("/")
    return parts[1] if len(parts) > 1 else ""


def choose_target(arch: str, targets: Sequence[ImageTarget]) -> ImageTarget | None:
    """The target a host of `arch` gets among one image's targets, if any."""
    for target in targets:
        if arch and target.platform and platform_arch(target.platform) == arch:
            return target
    for target in targets:
        if target.platform == ANY_PLATFORM:
            return target
    return None


def unmatched_reason(arch: str, platforms: Iterable[tuple[str, str]]) -> str:
    """Why a host of `arch` got no evaluation of an image.

    `platforms` are the image's (platform, status) pairs, as stored per run.
    """
    pairs = list(platforms)
    for platform, status in pairs:
        if status != "ok" and (
            platform == ANY_PLATFORM or (arch and platform_arch(platform) == arch)
        ):
            return "no artifact"
    if not arch:
        return "platform mismatch: host architecture unknown"
    names = ", ".join(sorted({p for p, _ in pairs if p})) or "none"
    return f"platform mismatch: host {arch}, image has {names}"
