"""Instruction sets for ``tools/benchmark.py``: what the CPU has, what torch, oneDNN and MKL were
limited to, and the environment that limits a fresh process to AVX2.

The limits are environment variables read once when torch loads its kernels, so running one
benchmark per instruction set means one process per instruction set: ``--isa native avx2``
re-executes the benchmark with :func:`isa_env` and collects the JSON each child writes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

# the variables that cap torch's own kernels, oneDNN's and MKL's
LIMIT_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
# "native": no cap (every variable removed); "avx2": an AVX-512 machine stands in for an AVX2 one
ISA_LIMITS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}
# torch.backends.cpu.get_cpu_capability() a child limited to the ISA must report
EXPECTED_CAPABILITY = {"avx2": "AVX2"}
# the /proc/cpuinfo flags that decide which kernels run (vector width, bf16/int8 dot products, AMX)
KEY_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
)


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The :data:`KEY_FLAGS` the CPU has, from ``/proc/cpuinfo`` (``cpuinfo`` its text); [] elsewhere."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    line = next((ln for ln in cpuinfo.splitlines() if ln.startswith(("flags", "Features"))), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in KEY_FLAGS if f in have]


def isa_info() -> dict[str, object]:
    """What this process runs with: torch's kernel capability (what its vectorised ops were built
    for and picked at load), the oneDNN and MKL caps from the environment (None: uncapped) and the
    CPU's flags."""
    return {
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "mkl_enable_instructions": os.environ.get("MKL_ENABLE_INSTRUCTIONS"),
        "cpu_flags": cpu_flags(),
    }


def isa_label(info: Mapping[str, object]) -> str:
    """One line for a table header: "AVX2 (oneDNN AVX2, MKL AVX2); CPU flags avx2 fma ..."."""
    caps = (
        f"oneDNN {info['onednn_max_cpu_isa'] or 'native'}, MKL {info['mkl_enable_instructions'] or 'native'}"
    )
    return f"{info['torch_capability']} ({caps}); CPU flags {' '.join(info['cpu_flags']) or 'unknown'}"


def isa_env(isa: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process limited to ``isa``: ``base`` (default ``os.environ``)
    without any of :data:`LIMIT_VARS`, plus the limits of ``isa``."""
    if isa not in ISA_LIMITS:
        raise ValueError(f"unknown instruction set {isa!r}; choose from {sorted(ISA_LIMITS)}")
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in LIMIT_VARS}
    return {**env, **ISA_LIMITS[isa]}


def child_argv(argv: Sequence[str], isa: str, out: Path) -> list[str]:
    """The command that re-runs the benchmark for one ISA: ``argv`` without ``--isa ...`` and
    ``--out ...``, writing its JSON to ``out``."""
    kept, skip = [], False
    for arg in argv:
        if arg in ("--isa", "--out"):
            skip = True  # drop the option and the values that follow it
            continue
        if skip and not arg.startswith("--"):
            continue
        skip = False
        if arg.startswith(("--isa=", "--out=")):
            continue
        kept.append(arg)
    return [sys.executable, str(Path(__file__).with_name("benchmark.py")), *kept, "--out", str(out)]


def check_capability(isa: str, info: Mapping[str, object]) -> None:
    """Raise when a child asked for ``isa`` ran with other kernels (a CPU without that ISA, or a
    torch that ignores the variable): its figures would be labelled with the wrong ISA."""
    want = EXPECTED_CAPABILITY.get(isa)
    if want is not None and info["torch_capability"] != want:
        raise RuntimeError(
            f"--isa {isa}: the benchmark ran with torch capability {info['torch_capability']}, not {want}"
        )
