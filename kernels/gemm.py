"""Portable integer GEMM (Numba): ``y = requant(Σ_k (x - zx)(w - zw) + bias)``.

One engine (:func:`run_core`) serves GEMM, grouped/depthwise convolution (through an
im2col in :mod:`hwsim.kernels.conv`) and every bit-width pair: operands arrive
zero-point-centred in int16 (when every centred value fits) or int32. It picks, per call,
the cheapest computation that is exact for the accumulator semantics documented in
:mod:`hwsim.kernels.params`:

* ``EXACT_FLOAT``: when no partial sum can leave the accumulator's range, the result is the
  exact integer sum. It is computed as a float32 (bound ``K·max|a|·max|b| + |bias| <= 2^24``)
  or float64 (``<= 2^53``) matrix product: every partial sum is then an integer that the
  float format represents exactly, so any summation order (and FMA) gives the exact
  result — on any IEEE machine, with any BLAS.
* Otherwise a per-output bound ``Σ|a_k||b_k| + |bias|`` (also exact in float64) finds the
  outputs whose running sum *could* overflow; only those go through the compiled
  ``CAREFUL`` loop, which wraps/saturates and counts after every MAC in canonical order.
* ``FAST64`` (compiled int64 dot products) when even float64 could not be exact;
  ``PAIRWISE``: the compiled x86 ``vpmaddubsw`` emulation (uint8 × int8 only, :func:`_pairwise_rows`).

Weights: ``w`` is (K, N) (ONNX MatMul layout), int8/uint8/int16/uint16, or a
:class:`~hwsim.kernels.params.PackedInt4`. Activations ``x`` are (..., K), int8/uint8/int16/uint16.

Examples
--------
>>> import numpy as np
>>> from hwsim.bits import IntFormat
>>> from hwsim.kernels import GemmParams, RequantParams, qgemm, gemm_acc
>>> x = np.array([[1, 2, 3]], np.uint8); w = np.array([[1], [-1], [2]], np.int8)
>>> gemm_acc(x, w, None, GemmParams(x_zero_point=1))[0].tolist()
[[3]]
>>> rp = RequantParams.create("onnxruntime", 0.1, 0.1, 0.02, IntFormat(8), 0)
>>> qgemm(x, w, np.array([0], np.int32), GemmParams(x_zero_point=1, requant=rp))[0].tolist()
[[2]]
"""
from __future__ import annotations

import numpy as np

from hwsim.errors import KernelError

from . import dispatch
from ._config import njit
from .params import GemmParams, KernelStats, PackedInt4
from .requant import requantize_2d
from .schemes import Overflow

__all__ = ["qgemm", "gemm_acc"]

EXACT_FLOAT, FAST64, CAREFUL, PAIRWISE = 0, 1, 2, 3

_IN_DTYPES = (np.int8, np.uint8, np.int16, np.uint16)


@njit
def acc_add(acc, t, bits, saturate):
    """One accumulator step ``acc + t`` in a ``bits``-wide register: returns ``(new, overflowed)``.

    wrap: two's complement; saturate: clamp to ``[-2^(bits-1), 2^(bits-1)-1]``.
    """
    if bits == 64:
        s = acc + t                      # wraps in int64
        if (acc >= 0) == (t >= 0) and (s >= 0) != (acc >= 0):
            if saturate:
                return (np.int64(9223372036854775807) if t > 0 else np.int64(-9223372036854775807 - 1)), 1
            return s, 1
        return s, 0
    s = acc + t
    half = np.int64(1) << (bits - 1)
    if s >= half or s < -half:
        if saturate:
            return (half - 1 if s > 0 else -half), 1
        return ((s + half) & ((half << 1) - 1)) - half, 1
    return s, 0


@njit
def _gemm_core(A, B, bias, zx, zw, mode, bits, saturate, out):
    """FAST64 (exact int64 dot products) or CAREFUL (per-MAC wrap/saturate, counted) over all
    outputs: A (G, M, K), B (G, Ng, K) centred; out (M, G*Ng) int64.

    Returns ``(acc_overflows, 0)`` (``zx``/``zw`` are unused here; PAIRWISE is :func:`_pairwise_rows`).
    """
    G, M, K = A.shape
    Ng = B.shape[1]
    overflows = 0
    pair_sats = 0
    for g in range(G):
        for m in range(M):
            a = A[g, m]
            if mode == 1:
                for n in range(Ng):
                    b0 = B[g, n]
                    s = np.int64(0)
                    for k in range(K):
                        s += np.int64(a[k]) * np.int64(b0[k])
                    out[m, g * Ng + n] = s + bias[g * Ng + n]
            elif mode == 2:
                for n in range(Ng):
                    b0 = B[g, n]
                    acc, o = acc_add(np.int64(0), bias[g * Ng + n], bits, saturate)
                    overflows += o
                    for k in range(K):
                        acc, o = acc_add(acc, np.int64(a[k]) * np.int64(b0[k]), bits, saturate)
                        overflows += o
                    out[m, g * Ng + n] = acc
    return overflows, pair_sats


@njit
def _pairwise_rows(A, Bt, bias, zx, zw, bits, saturate, out):
    """PAIRWISE semantics (see params.py) with ``Bt`` (G, K, Ng) so the inner loop runs over
    output channels; per output the order is bias, pair sums in k order, zero-point correction.
    Returns ``(acc_overflows, pair_saturations)``."""
    G, M, K = A.shape
    Ng = Bt.shape[2]
    sb = np.zeros((G, Ng), np.int64)
    for g in range(G):
        for k in range(K):
            for n in range(Ng):
                sb[g, n] += Bt[g, k, n]
    acc = np.empty(Ng, np.int64)
    overflows = 0
    pair_sats = 0
    for g in range(G):
        for m in range(M):
            a = A[g, m]
            sa = np.int64(0)
            for k in range(K):
                sa += a[k]
            for n in range(Ng):
                acc[n], o = acc_add(np.int64(0), bias[g * Ng + n], bits, saturate)
                overflows += o
            for k in range(0, K, 2):
                a0 = np.int64(a[k])
                b0 = Bt[g, k]
                if k + 1 < K:
                    a1 = np.int64(a[k + 1])
                    b1 = Bt[g, k + 1]
                else:
                    a1 = np.int64(0)
                    b1 = b0
                for n in range(Ng):
                    p = a0 * np.int64(b0[n]) + a1 * np.int64(b1[n])
                    if p > 32767:
                        p = np.int64(32767)
                        pair_sats += 1
                    elif p < -32768:
                        p = np.int64(-32768)
                        pair_sats += 1
                    acc[n], o = acc_add(acc[n], p, bits, saturate)
                    overflows += o
            for n in range(Ng):
                j = g * Ng + n
                corr = -zw[j] * sa - zx * sb[g, n] + K * zx * zw[j]
                v, o = acc_add(acc[n], corr, bits, saturate)
                overflows += o
                out[m, j] = v
    return overflows, pair_sats


@njit
def _gemm_careful_at(A, B, bias, rows, cols, bits, saturate, out):
    """CAREFUL loop for the listed outputs only: ``out[rows[i], cols[i]]`` (cols = global channel)."""
    Ng = B.shape[1]
    K = A.shape[2]
    overflows = 0
    for i in range(rows.shape[0]):
        m = rows[i]
        j = cols[i]
        g = j // Ng
        a = A[g, m]
        b0 = B[g, j - g * Ng]
        acc, o = acc_add(np.int64(0), bias[j], bits, saturate)
        overflows += o
        for k in range(K):
            acc, o = acc_add(acc, np.int64(a[k]) * np.int64(b0[k]), bits, saturate)
            overflows += o
        out[m, j] = acc
    return overflows


# ---------------------------------------------------------------------------------------------
# shared helpers (also used by conv.py)
# ---------------------------------------------------------------------------------------------

def as_weight_array(w, what="w") -> np.ndarray:
    """Unpack :class:`PackedInt4`; validate an integer weight array."""
    if isinstance(w, PackedInt4):
        return w.unpack()
    w = np.asarray(w)
    if w.dtype.type not in _IN_DTYPES:
        raise KernelError(f"{what}: integer weights of int8/uint8/int16/uint16 (or PackedInt4) expected, got {w.dtype}")
    return w


def check_input(x, what="x") -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.type not in _IN_DTYPES:
        raise KernelError(f"{what}: activations must be int8/uint8/int16/uint16, got {x.dtype}")
    return x


def dtype_range(dt) -> tuple[int, int]:
    info = np.iinfo(dt)
    return int(info.min), int(info.max)


def check_zero_point(z, dt, what):
    lo, hi = dtype_range(dt)
    zs = np.atleast_1d(np.asarray(z, np.int64))
    if zs.size and (zs.min() < lo or zs.max() > hi):
        raise KernelError(f"{what} {zs.tolist()} outside the {np.dtype(dt).name} range [{lo}, {hi}]")


def bias_vector(bias, n: int, what="bias") -> np.ndarray:
    if bias is None:
        return np.zeros(n, np.int64)
    b = np.asarray(bias)
    if not np.issubdtype(b.dtype, np.integer):
        raise KernelError(f"{what}: integer bias expected (int32/int64), got {b.dtype}; "
                          "fbgemm's float bias goes into RequantParams.create(bias_float=...)")
    b = b.reshape(-1).astype(np.int64)
    if b.size != n:
        raise KernelError(f"{what}: {b.size} entries for {n} output channels")
    return np.ascontiguousarray(b)


def zw_vector(zw: tuple, n: int, what="w_zero_point") -> np.ndarray:
    z = np.asarray(zw, np.int64)
    if z.size == 1:
        return np.full(n, z[0], np.int64)
    if z.size != n:
        raise KernelError(f"{what}: {z.size} entries for {n} output channels")
    return np.ascontiguousarray(z)


def use_pairwise(accum, xdt, wdt) -> bool:
    return bool(accum.pairwise_int16) and xdt == np.uint8 and wdt == np.int8


def work_dtype(x_dt, zx: int, w_dt, zw: np.ndarray, pairwise: bool):
    """int16 when every centred (or, pairwise, raw) operand fits, else int32; plus max |operand| bounds."""
    xlo, xhi = dtype_range(x_dt)
    wlo, whi = dtype_range(w_dt)
    if pairwise:
        return np.int16, max(abs(xlo), xhi), max(abs(wlo), whi)
    cx = (xlo - zx, xhi - zx)
    cw = (wlo - int(zw.max()), whi - int(zw.min()))
    fits = all(-32768 <= v <= 32767 for v in (*cx, *cw))
    return (np.int16 if fits else np.int32), max(abs(cx[0]), abs(cx[1])), max(abs(cw[0]), abs(cw[1]))


def _float_matmul(A, B, dt) -> np.ndarray:
    """(G, M, K) x (G, Ng, K) -> (M, G*Ng) float64, computed in ``dt`` (exact by the caller's bound)."""
    G, M, _ = A.shape
    Ng = B.shape[1]
    if G == 1:
        r = A[0].astype(dt) @ B[0].astype(dt).T
        return r.astype(np.float64, copy=False)
    r = np.matmul(A.astype(dt), B.astype(dt).transpose(0, 2, 1))         # (G, M, Ng)
    return r.transpose(1, 0, 2).reshape(M, G * Ng).astype(np.float64, copy=False)


def run_core(A, B, bias, zx, zw, accum, pairwise: bool, max_a: int, max_b: int) -> tuple[np.ndarray, int, int]:
    """Accumulators (M, G*Ng) int64 of centred (or, pairwise, raw) operands; returns (acc, overflows, pair_sats).

    ``max_a``/``max_b`` bound ``|A|``/``|B|`` (the data maxima).
    """
    G, M, K = A.shape
    N = G * B.shape[1]
    saturate = accum.overflow is Overflow.SATURATE
    out = np.empty((M, N), np.int64)
    if pairwise or M == 0 or N == 0:
        Bt = np.ascontiguousarray(B.transpose(0, 2, 1))
        ov, ps = _pairwise_rows(A, Bt, bias, np.int64(zx), zw, accum.bits, saturate, out)
        return out, int(ov), int(ps)
    max_bias = int(np.abs(bias).max()) if bias.size else 0
    products = K * max_a * max_b
    if products + max_bias > 2 ** 53 - 1:
        # beyond float64's exact integers (needs K > 2^21 with 16-bit operands): compiled int64 loops
        mode = FAST64 if products + max_bias <= accum.acc_max else CAREFUL
        ov, ps = _gemm_core(A, B, bias, np.int64(zx), zw, mode, accum.bits, saturate, out)
        return out, int(ov), int(ps)
    dt = np.float32 if products <= 2 ** 24 else np.float64
    exact = _float_matmul(A, B, dt)
    out[:] = exact.astype(np.int64) + bias[None, :]
    if products + max_bias <= accum.acc_max:
        return out, 0, 0
    # some running sums might leave the accumulator: find them with the exact per-output bound
    bound = _float_matmul(np.abs(A.astype(np.int32)), np.abs(B.astype(np.int32)), np.float64) + np.abs(bias)[None, :]
    rows, cols = np.nonzero(bound > accum.acc_max)
    if rows.size == 0:
        return out, 0, 0
    ov = _gemm_careful_at(A, B, bias, rows.astype(np.int64), cols.astype(np.int64), accum.bits, saturate, out)
    return out, int(ov), 0


def data_max_abs(arr: np.ndarray, center) -> int:
    """max |arr - center| over the data (0 for an empty array)."""
    if arr.size == 0:
        return 0
    c = np.asarray(center, np.int64)
    return int(max(abs(int(arr.min()) - int(c.max())), abs(int(arr.max()) - int(c.min()))))


def finish_acc(acc: np.ndarray, accum) -> np.ndarray:
    """Accumulators out of the accumulate-only entry points: int32 when they fit the profile width."""
    return acc.astype(np.int32) if accum.bits <= 32 else acc


# ---------------------------------------------------------------------------------------------
# public
# ---------------------------------------------------------------------------------------------

def _gemm(x_q, w_q, bias_q, p: GemmParams, with_requant: bool):
    if with_requant:
        # a repeat of a call that found a remembered plan: same objects, shape and dtype, so
        # the checks below passed for it already
        fast = dispatch.last_plan("gemm", x_q, w_q, bias_q, p)
        if fast is not None:
            return fast(x_q, w_q, bias_q, p)
    if not isinstance(p, GemmParams):
        raise KernelError(f"p must be GemmParams, got {type(p).__name__}")
    if with_requant and p.requant is None:
        raise KernelError("qgemm needs GemmParams.requant (use gemm_acc for accumulators)")
    x = check_input(x_q)
    w_shape = tuple(w_q.shape) if isinstance(w_q, PackedInt4) else np.shape(w_q)
    if x.ndim < 1 or len(w_shape) != 2:
        raise KernelError(f"gemm: x must be (..., K) and w (K, N), got {x.shape} and {w_shape}")
    K, N = w_shape
    if x.shape[-1] != K:
        raise KernelError(f"gemm: x has K={x.shape[-1]} but w has K={K}")
    pp = p if with_requant else p.replace(requant=None)
    fast = dispatch.plan_for("gemm", x_q, w_q, bias_q, pp)
    if fast is not None:
        return fast(x_q, w_q, bias_q, pp)
    w = as_weight_array(w_q)
    lead = x.shape[:-1]
    M = int(np.prod(lead)) if lead else 1
    zx = p.x_zero_point
    check_zero_point(zx, x.dtype, "x_zero_point")
    zw = zw_vector(p.w_zero_point, N)
    check_zero_point(zw, w.dtype, "w_zero_point")
    bias = bias_vector(bias_q, N)
    pairwise = use_pairwise(p.accum, x.dtype, w.dtype)
    wdt, _, _ = work_dtype(x.dtype, zx, w.dtype, zw, pairwise)
    x2 = x.reshape(M, K)
    if pairwise:
        A = x2.astype(np.int16).reshape(1, M, K)
        B = np.ascontiguousarray(w.T).astype(np.int16).reshape(1, N, K)
        acc, ov, ps = run_core(A, B, bias, zx, zw, p.accum, True, 0, 0)
    else:
        A = (x2.astype(np.int32) - zx).astype(wdt).reshape(1, M, K)
        B = np.ascontiguousarray((w.T.astype(np.int32) - zw[:, None]).astype(wdt)).reshape(1, N, K)
        acc, ov, ps = run_core(A, B, bias, zx, zw, p.accum, False, data_max_abs(x2, zx), data_max_abs(B, 0))
    stats = KernelStats(macs=M * N * K, acc_overflows=ov, pair_saturations=ps)
    if not with_requant:
        return finish_acc(acc, p.accum).reshape(*lead, N), stats
    rp = p.requant
    if rp.channels not in (1, N):
        raise KernelError(f"qgemm: {rp.channels} requantization channels for N={N}")
    y, clamped = requantize_2d(acc, rp)
    return y.astype(rp.out_fmt.storage_dtype).reshape(*lead, N), KernelStats(
        macs=stats.macs, acc_overflows=ov, pair_saturations=ps, out_clamped=clamped)


def gemm_acc(x_q, w_q, bias_q=None, p: GemmParams | None = None) -> tuple[np.ndarray, KernelStats]:
    """Integer accumulators ``Σ_k (x - zx)(w - zw) + bias`` (ONNX MatMulInteger semantics).

    Parameters
    ----------
    x_q : (..., K) int8/uint8/int16/uint16
    w_q : (K, N) int8/uint8/int16/uint16, or PackedInt4
    bias_q : (N,) integer or None
    p : GemmParams (``requant`` ignored); accumulator width/overflow from ``p.accum``

    Returns
    -------
    acc : (..., N) int32 (accumulator ≤ 32 bits) or int64
    stats : KernelStats
    """
    return _gemm(x_q, w_q, bias_q, p if p is not None else GemmParams(), False)


def qgemm(x_q, w_q, bias_q, p: GemmParams) -> tuple[np.ndarray, KernelStats]:
    """Quantized GEMM: accumulate as :func:`gemm_acc`, then requantize with ``p.requant``.

    Returns ``(y_q, KernelStats)``; ``y_q`` is (..., N) in ``p.requant.out_fmt.storage_dtype``.
    Calls ``dispatch.fast_path("gemm", x=, w=, bias=, params=)`` first; a returned callable is
    invoked as ``fn(x_q, w_q, bias_q, p)`` and must return the same result.
    """
    return _gemm(x_q, w_q, bias_q, p, True)
