"""HWCAP bits from the auxiliary vector, named as NFD names them per architecture.

On arm, arm64, ppc64le and s390x NFD reads AT_HWCAP and AT_HWCAP2 with getauxval.
The probe records its own /proc/self/auxv (the kernel gives every process the same
bits), so the flags come out exactly as NFD's, including on ppc64le where
/proc/cpuinfo does not list them.
"""

from __future__ import annotations

from typing import Literal

from fleetcompat.discovery import cpuinfo as arch
from fleetcompat.hosttree import HostTree, Unreadable


def _words(text: str) -> list[str]:
    """The whitespace-separated words of `text`, in order."""
    return text.split()


AT_HWCAP = 16
AT_HWCAP2 = 26

# arm64: bit n of AT_HWCAP / AT_HWCAP2 is the n-th name (NFD's cpuid_linux_arm64.go).
ARM64_HWCAP = _words(
    """FP ASIMD EVTSTRM AES PMULL SHA1 SHA2 CRC32 ATOMICS FPHP ASIMDHP CPUID
ASIMDRDM JSCVT FCMA LRCPC DCPOP SHA3 SM3 SM4 ASIMDDP SHA512 SVE ASIMDFHM DIT USCAT
ILRCPC FLAGM SSBS SB PACA PACG"""
)
ARM64_HWCAP2 = _words(
    """DCPODP SVE2 SVEAES SVEPMULL SVEBITPERM SVESHA3 SVESM4 FLAGM2 FRINT
SVEI8MM SVEF32MM SVEF64MM SVEBF16 I8MM BF16 DGH RNG BTI MTE ECV AFP RPRES MTE3 SME
SMEI16I64 SMEF64F64 SMEI8I32 SMEF16F32 SMEB16F32 SMEF32F32 SMEFA64 WFXT EBF16
SVEEBF16"""
)

# arm (32-bit), as NFD's cpuid_linux_arm.go.
ARM_HWCAP = _words(
    """SWP HALF THUMB 26BIT FASTMUL FPA VFP EDSP JAVA IWMMXT CRUNCH THUMBEE
NEON VFPv3 VFPv3D16 TLS VFPv4 IDIVA IDIVT VFPD32 LPAE EVTSTRM"""
)
ARM_HWCAP2 = _words("AES PMULL SHA1 SHA2 CRC32")

# s390x: bit n of AT_HWCAP (NFD's cpuid_linux_s390x.go; HPAGE is named EDAT).
S390X_HWCAP = _words(
    """ESAN3 ZARCH STFLE MSA LDISP EIMM DFP EDAT ETF3EH HIGHGPRS TE VX VXD
VXE GS VXE2 VXP SORT DFLT VXP2 NNPA PCIMIO SIE"""
)

# ppc64le: named from the top bit down (NFD's cpuid_linux_ppc64le.go); "-" marks
# bits NFD does not name.
PPC64LE_HWCAP = _words(
    """PPC32 PPC64 PPC601 ALTIVEC FPU MMU 4xxMAC UCACHE SPE EFPFLOAT
EFPDOUBLE NOTB POWER4 POWER5 POWER5+ CELLBE BOOKE SMT IC_SNOOP ARCH_2_05 PA6T DFP
POWER6X ARCH_2_06 VSX ARCHPMU - - - - TRUE_LE PPCLE"""
)
PPC64LE_HWCAP2 = _words(
    """ARCH_2_07 HTM DSCR EBB ISEL TAR VCRYPTO HTM-NOSC ARCH_3_00 IEEE128
DARN SCV HTM-NO-SUSPEND ARCH_3_1 MMA"""
)


def read_hwcaps(tree: HostTree, host: str) -> tuple[int, int] | None:
    """AT_HWCAP and AT_HWCAP2 from /proc/self/auxv, or None when not recorded."""
    try:
        data = tree.read_bytes("/proc/self/auxv")
    except Unreadable:
        return None
    if not data:
        return None
    word = 4 if host == arch.ARM else 8
    order: Literal["big", "little"] = "big" if host == arch.S390X else "little"
    values: dict[int, int] = {}
    for start in range(0, len(data) - 2 * word + 1, 2 * word):
        key = int.from_bytes(data[start : start + word], order)
        values[key] = int.from_bytes(data[start + word : start + 2 * word], order)
    if AT_HWCAP not in values:
        return None
    return values[AT_HWCAP], values.get(AT_HWCAP2, 0)


def hwcap_flags(host: str, hwcap: int, hwcap2: int) -> set[str] | None:
    """NFD's cpu.cpuid flags for these HWCAP bits, or None for other architectures."""
    if host == arch.ARM64:
        return _low_bits(hwcap, ARM64_HWCAP) | _low_bits(hwcap2, ARM64_HWCAP2)
    if host == arch.ARM:
        return _low_bits(hwcap, ARM_HWCAP) | _low_bits(hwcap2, ARM_HWCAP2)
    if host == arch.S390X:
        return _low_bits(hwcap, S390X_HWCAP)
    if host == arch.PPC64LE:
        return _high_bits(hwcap, PPC64LE_HWCAP) | _high_bits(hwcap2, PPC64LE_HWCAP2)
    return None


def _low_bits(value: int, names: list[str]) -> set[str]:
    """The names of the set bits, bit 0 first."""
    return {name for bit, name in enumerate(names) if value >> bit & 1}


def _high_bits(value: int, names: list[str]) -> set[str]:
    """The names of the set bits of a 32-bit word, bit 31 first."""
    return {
        name
        for bit, name in enumerate(names)
        if name != "-" and value >> (31 - bit) & 1
    }
