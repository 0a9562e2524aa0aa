"""CPU features that decide which kernel path runs.

:func:`has_amx` is true when this process may run the Intel AMX tile kernels of
:mod:`hwsim.kernels.amx`: the CPU reports ``amx_tile`` and ``amx_int8`` besides the VNNI
flags below, Numba compiles for the host CPU, and Linux grants the process the tile-data
state (``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``, requested once; ONNX
Runtime's MLAS requests the same on import).

:func:`has_vnni` is true when this process may run the explicit AVX-512 VNNI kernels of
:mod:`hwsim.kernels.vnni`: the CPU reports ``avx512f``, ``avx512bw`` and ``avx512_vnni``
(``/proc/cpuinfo`` flags, or LLVM's view of the host CPU when /proc is unavailable), and
Numba compiles for the host CPU (``NUMBA_CPU_NAME`` unset or ``host``; otherwise the
features must be listed in ``NUMBA_CPU_FEATURES``).

The environment variable ``HWSIM_KERNEL_PATH`` chooses: ``auto`` (default: the best the
CPU allows, AMX then VNNI), ``vnni`` (the AVX-512 VNNI kernels even where AMX exists) or
``portable`` (never a fast path). Every path computes the same bits.

Example
-------
>>> from hwsim.kernels import cpu
>>> cpu.kernel_path() in ("amx", "vnni", "portable")
True
"""
from __future__ import annotations

import contextlib
import functools
import os

from hwsim.errors import ConfigError

__all__ = ["cpu_flags", "has_vnni", "has_amx", "kernel_path", "forced_path", "ENV_VAR", "PATHS"]

ENV_VAR = "HWSIM_KERNEL_PATH"
PATHS = ("auto", "vnni", "portable")
_NEEDED = ("avx512f", "avx512bw", "avx512_vnni")
_NEEDED_AMX = ("amx_tile", "amx_int8")


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
        names = {"avx512f": "avx512f", "avx512bw": "avx512bw", "avx512vnni": "avx512_vnni",
                 "amx-tile": "amx_tile", "amx-int8": "amx_int8"}
        return frozenset(v for k, v in names.items() if feats.get(k, False))
    except Exception:   # pragma: no cover - no LLVM host query on this platform
        return frozenset()


_ENV_KEY = os.fsencode(ENV_VAR)


def _numba_targets_host(needed=_NEEDED) -> bool:
    name = os.environ.get("NUMBA_CPU_NAME", "host").strip().lower()
    if name in ("", "host"):
        return True
    feats = os.environ.get("NUMBA_CPU_FEATURES", "")
    return all(f"+{f.replace('_', '', 1) if f.startswith('avx') else f.replace('_', '-')}" in feats
               for f in needed)


@functools.lru_cache(maxsize=1)
def _tile_permission() -> bool:
    """Ask Linux for the AMX tile-data state (arch_prctl ARCH_REQ_XCOMP_PERM = 0x1023,
    XFEATURE_XTILEDATA = 18); True when granted (or already granted)."""
    import ctypes
    import platform
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(158, 0x1023, 18) == 0   # 158 = SYS_arch_prctl on x86-64
    except (OSError, AttributeError):   # pragma: no cover - no libc syscall here
        return False


@functools.lru_cache(maxsize=1)
def has_amx() -> bool:
    """True when the CPU, Numba's target and the OS allow the AMX int8 tile kernels."""
    flags = cpu_flags()
    return (has_vnni() and all(f in flags for f in _NEEDED_AMX) and _numba_targets_host(_NEEDED + _NEEDED_AMX)
            and _tile_permission())


@functools.lru_cache(maxsize=1)
def has_vnni() -> bool:
    """True when the CPU (and Numba's target) support the AVX-512 VNNI kernels."""
    flags = cpu_flags()
    return all(f in flags for f in _NEEDED) and _numba_targets_host()


def kernel_path() -> str:
    """``"amx"``, ``"vnni"`` or ``"portable"``: the path :mod:`hwsim.kernels.dispatch` uses now
    (``"amx"`` also uses the VNNI kernels for what the tiles do not cover).

    Raises ConfigError when ``HWSIM_KERNEL_PATH`` holds an unknown value.
    """
    return _path_for(_env_value())


def _env_value() -> str:
    """``HWSIM_KERNEL_PATH`` or "auto". ``os.environ.get`` of an unset variable costs 1 us (a
    KeyError raised and caught inside the mapping); on POSIX the mapping's own dict of bytes is
    asked directly (0.1 us), the same data ``os.environ`` reads and writes."""
    data = getattr(os.environ, "_data", None)
    if os.name == "posix" and isinstance(data, dict):
        v = data.get(_ENV_KEY)
        return "auto" if v is None else os.fsdecode(v)
    return os.environ.get(ENV_VAR, "auto")


@functools.lru_cache(maxsize=8)
def _path_for(raw: str) -> str:
    """:func:`kernel_path` for the environment value ``raw`` (asked on every kernel call: the
    answer is remembered per value, 0.8 -> 0.2 us)."""
    v = raw.strip().lower() or "auto"
    if v not in PATHS:
        raise ConfigError(f"environment variable {ENV_VAR}={v!r}: allowed values are {', '.join(PATHS)}")
    if v == "portable" or not has_vnni():
        return "portable"
    if v == "auto" and has_amx():
        return "amx"
    return "vnni"


@contextlib.contextmanager
def forced_path(value: str):
    """Within the block, ``HWSIM_KERNEL_PATH=value`` (one of :data:`PATHS`); restored after.

    Example
    -------
    >>> from hwsim.kernels import cpu
    >>> with cpu.forced_path("portable"):
    ...     cpu.kernel_path()
    'portable'
    """
    if value not in PATHS:
        raise ConfigError(f"kernel path {value!r}: allowed values are {', '.join(PATHS)}")
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = old
