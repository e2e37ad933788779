"""The machine a run's numbers come from: the CPU and the instruction sets it offers.

Float sums are not associative, so the same seed gives (slightly) different losses on a
CPU whose kernels add with wider vectors: TensorFlow's oneDNN kernels dispatch at run
time to the widest SIMD extension the CPU has (AVX-512, AVX2, ...), unless
`ONEDNN_MAX_CPU_ISA` caps it. Reports record this next to the versions.
"""

import os
import platform
from typing import List, Optional, Tuple

# The extensions that change how float kernels add (x86 flags, Arm features), widest first.
_ISA_OF_INTEREST = (
    "amx_bf16", "amx_tile", "avx512_bf16", "avx512_vnni", "avx512f", "avx2", "fma", "avx",
    "sse4_2", "sve2", "sve", "asimd", "neon",
)
_WIDEST = (("avx512f", "avx512"), ("avx2", "avx2"), ("avx", "avx"), ("sse4_2", "sse4.2"),
           ("sve", "sve"), ("asimd", "neon"), ("neon", "neon"))


def cpu_info(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
    """The CPU: architecture, model, the SIMD extensions it has and TF's oneDNN settings.

    `simd` is the widest vector extension present (e.g. "avx512", "avx2", "neon"), which
    is what oneDNN's float kernels use unless `onednn_max_cpu_isa` caps them.
    `isa` lists the extensions of interest found in `cpuinfo_path` (empty where that file
    does not exist, e.g. macOS).
    """
    model, flags = _read_cpuinfo(cpuinfo_path)
    isa = [name for name in _ISA_OF_INTEREST if name in flags]
    return dict(
        machine=platform.machine(),
        model=model or platform.processor() or None,
        logical_cpus=os.cpu_count(),
        simd=next((label for flag, label in _WIDEST if flag in flags), None),
        isa=isa,
        onednn_opts=os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        onednn_max_cpu_isa=os.environ.get("ONEDNN_MAX_CPU_ISA"),
    )


def _read_cpuinfo(path: str) -> Tuple[Optional[str], List[str]]:
    """(model name, flags) of the first processor listed in a /proc/cpuinfo-style file."""
    try:
        with open(path) as file:
            lines = file.read().splitlines()
    except OSError:
        return None, []
    model, flags = None, []
    for line in lines:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if model is None and key in ("model name", "cpu model", "hardware"):
            model = value.strip()
        elif not flags and key in ("flags", "features"):
            flags = value.split()
    return model, flags
