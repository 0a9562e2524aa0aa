"""CPU features that decide which kernel path runs.

:func:`has_vnni` is true when this process may run the explicit AVX-512 VNNI kernels of
:mod:`hwsim.kernels.vnni`: the CPU reports ``avx512f``, ``avx512bw`` and ``avx512_vnni``
(``/proc/cpuinfo`` flags, or LLVM's view of the host CPU when /proc is unavailable), and
Numba compiles for the host CPU (``NUMBA_CPU_NAME`` unset or ``host``; otherwise the
features must be listed in ``NUMBA_CPU_FEATURES``).

The environment variable ``HWSIM_KERNEL_PATH`` forces a path: ``portable`` (never use the
fast paths) or ``auto`` (default: use them where the CPU allows).

Example
-------
>>> from hwsim.kernels import cpu
>>> cpu.kernel_path() in ("vnni", "portable")
True
"""
from __future__ import annotations

import functools
import os

from hwsim.errors import ConfigError

__all__ = ["cpu_flags", "has_vnni", "kernel_path", "ENV_VAR"]

ENV_VAR = "HWSIM_KERNEL_PATH"
_NEEDED = ("avx512f", "avx512bw", "avx512_vnni")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """CPU feature flags, Linux /proc/cpuinfo names (e.g. ``avx512_vnni``)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        import llvmlite.binding as llvm
        feats = llvm.get_host_cpu_features()
        names = {"avx512f": "avx512f", "avx512bw": "avx512bw", "avx512vnni": "avx512_vnni"}
        return frozenset(v for k, v in names.items() if feats.get(k, False))
    except Exception:   # pragma: no cover - no LLVM host query on this platform
        return frozenset()


def _numba_targets_host() -> bool:
    name = os.environ.get("NUMBA_CPU_NAME", "host").strip().lower()
    if name in ("", "host"):
        return True
    feats = os.environ.get("NUMBA_CPU_FEATURES", "")
    return all(f"+{f.replace('_', '')}" in feats for f in _NEEDED)


@functools.lru_cache(maxsize=1)
def has_vnni() -> bool:
    """True when the CPU (and Numba's target) support the AVX-512 VNNI kernels."""
    flags = cpu_flags()
    return all(f in flags for f in _NEEDED) and _numba_targets_host()


def kernel_path() -> str:
    """``"vnni"`` or ``"portable"``: the path :mod:`hwsim.kernels.dispatch` uses now.

    Raises ConfigError when ``HWSIM_KERNEL_PATH`` holds an unknown value.
    """
    v = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if v not in ("auto", "portable"):
        raise ConfigError(f"environment variable {ENV_VAR}={v!r}: allowed values are auto, portable")
    if v == "portable":
        return "portable"
    return "vnni" if has_vnni() else "portable"
