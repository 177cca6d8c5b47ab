"""x86 /proc/cpuinfo flags translated to the names NFD's `cpu.cpuid` reports.

NFD runs the CPUID instruction through klauspost/cpuid and reports the Go names of
the set bits (`AVX512VNNI`, `SSE4`, `CLMUL`, ...), plus `X86_64_V1`..`V4`. A remote
host only shows us what Linux prints in the `flags` line, which names the same CPUID
bits in the kernel's spelling. This table maps one to the other, and the rules
below it reproduce what klauspost derives rather than reads (OS support gating of
AVX and AVX-512, HTT, AVXSLOW, the microarchitecture level).

Bits klauspost reads that Linux never prints cannot be recovered from a host's
files; docs/discovery.md lists them (PMU_FIXEDCOUNTER_*, FP128/FP256/MOVU, the IBS
sub-features, AVX10_128/256/512, ...).
"""

from __future__ import annotations

# Linux flag -> klauspost names, unconditionally.
DIRECT: dict[str, tuple[str, ...]] = {
    "fpu": ("X87",),
    "cx8": ("CMPXCHG8",),
    "sep": ("SYSEE",),
    "cmov": ("CMOV",),
    "mmx": ("MMX",),
    "fxsr": ("FXSR",),
    # klauspost sets FXSROPT from the same leaf-1 bit as SSE.
    "sse": ("SSE", "FXSROPT"),
    "sse2": ("SSE2",),
    "syscall": ("SYSCALL",),
    "nx": ("NX",),
    "mmxext": ("MMXEXT",),
    "fxsr_opt": ("FXSROPT",),
    "rdtscp": ("RDTSCP",),
    "3dnowext": ("AMD3DNOWEXT",),
    "3dnow": ("AMD3DNOW",),
    "pni": ("SSE3",),
    "pclmulqdq": ("CLMUL",),
    "vmx": ("VMX",),
    "ssse3": ("SSSE3",),
    "cx16": ("CX16",),
    "sse4_1": ("SSE4",),
    "sse4_2": ("SSE42",),
    "movbe": ("MOVBE",),
    "popcnt": ("POPCNT",),
    "aes": ("AESNI",),
    # Linux drops xsave when the OS has not enabled it, so it implies OSXSAVE.
    "xsave": ("XSAVE", "OSXSAVE"),
    "f16c": ("F16C",),
    "rdrand": ("RDRAND",),
    "hypervisor": ("HYPERVISOR",),
    "lahf_lm": ("LAHF",),
    "svm": ("SVM",),
    "abm": ("LZCNT", "POPCNT"),
    "sse4a": ("SSE4A",),
    "ibs": ("IBS",),
    "topoext": ("TOPEXT",),
    "cpb": ("CPBOOST",),
    "overflow_recov": ("MCAOVERFLOW",),
    "succor": ("SUCCOR",),
    "bmi1": ("BMI1",),
    "hle": ("HLE",),
    "erms": ("ERMS",),
    "rtm": ("RTM",),
    "mpx": ("MPX",),
    "rdseed": ("RDSEED",),
    "adx": ("ADX",),
    "sha_ni": ("SHA",),
    "sgx": ("SGX",),
    "sgx_lc": ("SGXLC",),
    "waitpkg": ("WAITPKG",),
    "shstk": ("CETSS",),
    "user_shstk": ("CETSS",),
    "gfni": ("GFNI",),
    "vaes": ("VAES",),
    "vpclmulqdq": ("VPCLMULQDQ",),
    "tme": ("TME",),
    "cldemote": ("CLDEMOTE",),
    "movdiri": ("MOVDIRI",),
    "movdir64b": ("MOVDIR64B",),
    "enqcmd": ("ENQCMD",),
    "fsrm": ("FSRM",),
    "srbds_ctrl": ("SRBDS_CTRL",),
    "md_clear": ("MD_CLEAR",),
    "rtm_always_abort": ("RTM_ALWAYS_ABORT",),
    "serialize": ("SERIALIZE",),
    "hybrid_cpu": ("HYBRID_CPU",),
    "tsxldtrk": ("TSXLDTRK",),
    "pconfig": ("PCONFIG",),
    "ibt": ("CETIBT",),
    "ibpb": ("IBPB",),
    "stibp": ("STIBP",),
    "flush_l1d": ("FLUSH_L1D",),
    "arch_capabilities": ("IA32_ARCH_CAP",),
    "core_capabilities": ("IA32_CORE_CAP",),
    "cmpccxadd": ("CMPCCXADD",),
    "fzrm": ("MOVSB_ZL",),
    "fsrs": ("STOSB_SHORT",),
    "fsrc": ("CMPSB_SCADBS_SHORT",),
    "hreset": ("HRESET",),
    "avx_ifma": ("AVXIFMA",),
    "lam": ("LAM",),
    "avx_vnni_int8": ("AVXVNNIINT8",),
    "avx_ne_convert": ("AVXNECONVERT",),
    "amx_complex": ("AMXCOMPLEX",),
    "avx_vnni_int16": ("AVXVNNIINT16",),
    "prefetchi": ("PREFETCHI",),
    "avx10": ("AVX10",),
    "apx": ("APX_F",),
    "psfd": ("PSFD",),
    "amd_psfd": ("PSFD",),
    "ipred_ctrl": ("IDPRED_CTRL",),
    "rrsba_ctrl": ("RRSBA_CTRL",),
    "bhi_ctrl": ("BHI_CTRL",),
    "cppc": ("CPPC",),
    "amd_ssbd": ("SPEC_CTRL_SSBD",),
    "amd_ppin": ("PPIN",),
    "wbnoinvd": ("WBNOINVD",),
    "rdpru": ("RDPRU",),
    "invlpgb": ("INVLPGB",),
    "irperf": ("MSRIRC",),
    "clzero": ("CLZERO",),
    "mcommit": ("MCOMMIT",),
    "tdx_guest": ("TDX_GUEST",),
}

# Flags klauspost only reads when a condition on other flags holds.
NEEDS_XSAVE = {
    "xsaveopt": "XSAVEOPT",
    "xsavec": "XSAVEC",
    "xgetbv1": "XGETBV1",
    "xsaves": "XSAVES",
}
NEEDS_AVX = {
    "avx2": "AVX2",
    "avx_vnni": "AVXVNNI",
    "xop": "XOP",
    "fma4": "FMA4",
}
# Inside klauspost's "OS saves ZMM state" block; Linux hides avx512f without it.
NEEDS_AVX512_STATE = {
    "avx512f": "AVX512F",
    "avx512dq": "AVX512DQ",
    "avx512ifma": "AVX512IFMA",
    "avx512pf": "AVX512PF",
    "avx512er": "AVX512ER",
    "avx512cd": "AVX512CD",
    "avx512bw": "AVX512BW",
    "avx512vl": "AVX512VL",
    "avx512vbmi": "AVX512VBMI",
    "avx512_vbmi2": "AVX512VBMI2",
    "avx512_vnni": "AVX512VNNI",
    "avx512_bitalg": "AVX512BITALG",
    "avx512_vpopcntdq": "AVX512VPOPCNTDQ",
    "avx512_vp2intersect": "AVX512VP2INTERSECT",
    "avx512_fp16": "AVX512FP16",
    "avx512_bf16": "AVX512BF16",
    "amx_bf16": "AMXBF16",
    "amx_tile": "AMXTILE",
    "amx_int8": "AMXINT8",
    "amx_fp16": "AMXFP16",
    "wrmsrns": "WRMSRNS",
    "msrlist": "MSRLIST",
}
NEEDS_SVM = {
    "npt": "SVMNP",
    "lbrv": "LBRVIRT",
    "svm_lock": "SVML",
    "nrip_save": "NRIPS",
    "tsc_scale": "TSCRATEMSR",
    "vmcb_clean": "VMCBCLEAN",
    "flushbyasid": "SVMFBASID",
    "decodeassists": "SVMDA",
    "pausefilter": "SVMPF",
    "pfthreshold": "SVMPFT",
}
# klauspost reads these leaves only when the vendor is AMD (not Hygon).
AMD_ONLY = {
    "sme": "SME",
    "sev": "SEV",
    "vm_page_flush": "MSR_PAGEFLUSH",
    "sev_es": "SEV_ES",
    "sev_snp": "SEV_SNP",
    "sme_coherent": "SME_COHERENT",
    "debug_swap": "SEV_DEBUGSWAP",
    "srso_no": "SRSO_NO",
    "srso_user_kernel_no": "SRSO_USER_KERNEL_NO",
    "ibpb_brtype": "IBPB_BRTYPE",
    "sbpb": "SBPB",
    "tsa_l1_no": "TSA_L1_NO",
    "tsa_sq_no": "TSA_SQ_NO",
}

LEVELS: tuple[frozenset[str], ...] = (
    frozenset({"CMOV", "CMPXCHG8", "X87", "FXSR", "MMX", "SSE", "SSE2"}),
    frozenset({"CX16", "LAHF", "POPCNT", "SSE3", "SSE4", "SSE42", "SSSE3"}),
    frozenset(
        {"AVX", "AVX2", "BMI1", "BMI2", "F16C", "FMA3", "LZCNT", "MOVBE", "OSXSAVE"}
    ),
    frozenset({"AVX512F", "AVX512BW", "AVX512CD", "AVX512DQ", "AVX512VL"}),
)
"""What each of klauspost's X64Level levels adds to the one below it."""


def klauspost_flags(
    linux: set[str], vendor: str, family: int, model: int, threads_per_core: int
) -> set[str]:
    """The klauspost feature names for a CPU with these Linux flags and identity."""
    names: set[str] = set()
    for flag in linux:
        names.update(DIRECT.get(flag, ()))

    if "xsave" in linux:
        names.update(NEEDS_XSAVE[f] for f in linux if f in NEEDS_XSAVE)
    if "avx" in linux and "xsave" in linux:
        names.add("AVX")
        names.update(NEEDS_AVX[f] for f in linux if f in NEEDS_AVX)
        if _avx_slow(vendor, family, model):
            names.add("AVXSLOW")
    if "fma" in linux and "xsave" in linux:
        names.add("FMA3")
    if "bmi2" in linux and "bmi1" in linux:
        names.add("BMI2")
    if "avx512f" in linux:
        names.update(NEEDS_AVX512_STATE[f] for f in linux if f in NEEDS_AVX512_STATE)
    if "svm" in linux:
        names.update(NEEDS_SVM[f] for f in linux if f in NEEDS_SVM)

    if vendor == "AMD":
        names.update(AMD_ONLY[f] for f in linux if f in AMD_ONLY)
        if family < 0x19 or (
            family == 0x1A and (model <= 0x4F or 0x60 <= model <= 0x7F)
        ):
            names.update(("TSA_L1_NO", "TSA_SQ_NO"))
    if vendor != "Intel" and "ibrs" in linux:
        names.add("IBRS")
    if vendor == "Intel" and "ssbd" in linux:
        names.add("SPEC_CTRL_SSBD")
    # klauspost counts threads per core from leaf 0xB, or on AMD before Zen
    # (family 23) not at all: Bulldozer's paired cores are not threads.
    smt_known = vendor == "Intel" or (vendor == "AMD" and family >= 23)
    if smt_known and "ht" in linux and threads_per_core > 1:
        names.add("HTT")

    names.update(f"X86_64_V{n}" for n in range(1, x64_level(names) + 1))
    return names


def x64_level(names: set[str]) -> int:
    """The microarchitecture level klauspost's X64Level reports for these names."""
    if not names & {"SYSEE", "SYSCALL"}:
        return 0
    level = 0
    required: set[str] = set()
    for wanted in LEVELS:
        required |= wanted
        if not required <= names:
            break
        level += 1
    return level


def _avx_slow(vendor: str, family: int, model: int) -> bool:
    """klauspost's guess that AVX runs as two 128-bit halves on this CPU."""
    if vendor == "Intel":
        return family == 6 and model < 60
    if vendor == "AMD":
        return family < 23 or (family == 23 and model < 49)
    return False
