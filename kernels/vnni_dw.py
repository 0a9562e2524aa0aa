"""Depthwise convolution fast path (AVX-512): :func:`depthwise_plan`.

Split out of :mod:`hwsim.kernels.vnni` (which forwards :func:`depthwise_plan` here); it uses
that module's zmm type, intrinsics, fused stores and planning helpers.

Two kernels, both NCHW in and out, both exact (the plan only offers them when no running
sum can leave int32 or the profile's accumulator; then the portable semantics are the
exact sum, computed here in int32 mod 2^32):

* :func:`_dw_rows`, the row-window kernel (used whenever it applies): lane ``j`` of a zmm
  is output column ``16 v + j`` of one output row. Each input row is read *in place* with
  a masked load whose passthrough is the zero point (the padding columns), and one permute
  (``vpermb``, AVX512-VBMI, for 8-bit inputs; ``vpermw`` for 16-bit ones) turns it into
  the 16 sliding windows of 4 bytes / 2 int16, multiplied with ``vpdpbusd`` /
  ``vpdpwssd`` by the packed kernel row. The zero point's share is a per-kernel-row
  constant; signed 8-bit (unsigned 16-bit) inputs are flipped with an xor. 3x3 rows inside
  the image take specialised paths (4 output rows from 6 input rows at stride 1, 2 from 5
  at stride 2); others a general loop (any kernel size, stride, dilation that fit a
  register). Needs int8 centred weights for 8-bit inputs (int16 for 16-bit ones).
* :func:`_dw_run`, the plane kernel (the fallback): one zero-padded int32 copy of each
  (image, channel) plane, 16 output columns per zmm.

Requantization is fused: the portable path's per-element function
(:func:`hwsim.kernels.requant.requantize_value`), with the ONNX Runtime scheme and TFLite
int16x8 16 lanes at a time (lane-wise transcriptions of their
:mod:`hwsim.kernels.fixedpoint` functions), so outputs and ``KernelStats`` (clamp counts)
equal the portable path's. ``tests/test_vnni_dw.py`` checks this on random problems.
"""
from __future__ import annotations

import os

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .requant import requantize_value
from .vnni import (
    _I32,
    _INT32_MAX,
    _V16,
    _V32W,
    _V64B,
    XOR8,
    XOR16,
    _cached_pack,
    _count_first,
    _put,
    _vadd,
    _vclamp_rint,
    _vcount_out,
    _vcvt_mul,
    _vdpbusd,
    _vdpwssd,
    _vload,
    _vmul,
    _vput,
    _vsplat,
    _vsplat_f32,
    _vst8,
    _vstore,
    _vxor,
    _weights_of,
    _x_bounds,
    _x_data_bounds,
    plan_args,
    zmm,
)

__all__ = ["depthwise_plan"]

# ---------------------------------------------------------------------------------------
# Instructions the row-window kernel needs on top of vnni's: masked loads (vmovdqu8/16
# with a passthrough: the lanes outside the image row read the zero point, without
# touching memory) and the full-width permutes vpermb (AVX512-VBMI) / vpermw (AVX512BW).
# ---------------------------------------------------------------------------------------


def _make_mload(n, bits):
    et = ir.IntType(bits)
    vt = ir.VectorType(et, n)
    mt = ir.VectorType(ir.IntType(1), n)

    @intrinsic
    def mload(typingctx, arr, off, mask, passthru):
        """``n`` elements of ``bits`` bits from byte ``off`` of a uint8 array; element i is
        read only when bit i of ``mask`` is set, else taken from ``passthru``."""
        def codegen(context, builder, sig, args):
            a = context.make_array(sig.args[0])(context, builder, args[0])
            p = builder.gep(a.data, [args[1]])        # may point before the row: masked lanes are not read
            m = context.cast(builder, args[2], sig.args[2], types.uint64)
            m = builder.bitcast(builder.trunc(m, ir.IntType(n)) if n < 64 else m, mt)
            # the pre-LLVM-21 form (explicit alignment); newer LLVMs auto-upgrade it
            fnty = ir.FunctionType(vt, [p.type, _I32, mt, vt])
            fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.load.v{n}i{bits}.p0")
            r = builder.call(fn, [p, ir.Constant(_I32, 1), m, builder.bitcast(args[3], vt)])
            return builder.bitcast(r, _V16)
        return zmm(arr, off, mask, passthru), codegen
    return mload


_vmload8 = _make_mload(64, 8)
_vmload16 = _make_mload(32, 16)


def _make_perm(name, vt):
    @intrinsic
    def perm(typingctx, data, idx):
        """``r[i] = data[idx[i]]`` over the whole register (one instruction)."""
        def codegen(context, builder, sig, args):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt]), name)
            r = builder.call(fn, [builder.bitcast(args[0], vt), builder.bitcast(args[1], vt)])
            return builder.bitcast(r, _V16)
        return zmm(data, idx), codegen
    return perm


_vpermb = _make_perm("llvm.x86.avx512.permvar.qi.512", _V64B)
_vpermw = _make_perm("llvm.x86.avx512.permvar.hi.512", _V32W)


_I64 = ir.IntType(64)
_V16Q = ir.VectorType(_I64, 16)
_F16 = ir.VectorType(ir.FloatType(), 16)


def _splat(builder, x, vt):
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), x, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(_I32, vt.count), None))


def _to_i32(builder, context, val, ty):
    return builder.trunc(context.cast(builder, val, ty, types.int64), _I32)


@intrinsic
def _v16x8(typingctx, a, m, total, zy):
    """TFLite int16x8 requantization of 16 int32 lanes, lane-wise
    :func:`hwsim.kernels.fixedpoint.multiply_by_quantized_multiplier_16x8` then the zero
    point: ``int32((a * m + 2^(total-1)) >> total) + zy`` (int64 product, int32 wraps);
    ``m`` < 2^15 and 1 <= ``total`` <= 46 (every valid 16x8 multiplier)."""
    def codegen(context, builder, sig, args):
        a64 = builder.sext(args[0], _V16Q)
        m64 = builder.sext(_to_i32(builder, context, args[1], sig.args[1]), _I64)
        t = context.cast(builder, args[2], sig.args[2], types.int64)
        rnd = builder.shl(ir.Constant(_I64, 1), builder.sub(t, ir.Constant(_I64, 1)))
        p = builder.add(builder.mul(a64, _splat(builder, m64, _V16Q)), _splat(builder, rnd, _V16Q))
        r = builder.trunc(builder.ashr(p, _splat(builder, t, _V16Q)), _V16)
        return builder.add(r, _splat(builder, _to_i32(builder, context, args[3], sig.args[3]), _V16))
    return zmm(a, m, total, zy), codegen


@intrinsic
def _vclampi(typingctx, r, lo, hi):
    """Lane-wise int32 clamp to [lo, hi]."""
    def codegen(context, builder, sig, args):
        vlo = _splat(builder, _to_i32(builder, context, args[1], sig.args[1]), _V16)
        vhi = _splat(builder, _to_i32(builder, context, args[2], sig.args[2]), _V16)
        x = builder.select(builder.icmp_signed("<", args[0], vlo), vlo, args[0])
        return builder.select(builder.icmp_signed(">", x, vhi), vhi, x)
    return zmm(r, lo, hi), codegen


@intrinsic
def _vcount_outi(typingctx, r, lo, hi, nvalid):
    """Number of the first ``nvalid`` int32 lanes of ``r`` below ``lo`` or above ``hi``."""
    def codegen(context, builder, sig, args):
        vlo = _splat(builder, _to_i32(builder, context, args[1], sig.args[1]), _V16)
        vhi = _splat(builder, _to_i32(builder, context, args[2], sig.args[2]), _V16)
        o = builder.or_(builder.icmp_signed("<", args[0], vlo), builder.icmp_signed(">", args[0], vhi))
        return _count_first(context, builder, o, args[3], sig.args[3])
    return types.int64(r, lo, hi, nvalid), codegen


@intrinsic
def _vclamp_count(typingctx, f, lo, hi, nvalid):
    """Number of the first ``nvalid`` float32 lanes of ``f`` outside ``[lo, hi]``, counted as
    ``clamp(f) != f`` (one compare; same lanes as ``f < lo or f > hi``: no NaN here)."""
    def codegen(context, builder, sig, args):
        ff = builder.bitcast(args[0], _F16)
        flo = builder.sitofp(context.cast(builder, args[1], sig.args[1], types.int64), ir.FloatType())
        fhi = builder.sitofp(context.cast(builder, args[2], sig.args[2], types.int64), ir.FloatType())
        vlo, vhi = _splat(builder, flo, _F16), _splat(builder, fhi, _F16)
        c = builder.select(builder.fcmp_ordered("<", ff, vlo), vlo, ff)
        c = builder.select(builder.fcmp_ordered(">", c, vhi), vhi, c)
        o = builder.fcmp_unordered("!=", c, ff)
        return _count_first(context, builder, o, args[3], sig.args[3])
    return types.int64(f, lo, hi, nvalid), codegen


_FULL64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_FULL32 = np.uint64(0xFFFFFFFF)


def _has_vbmi() -> bool:
    """vpermb is usable: the CPU reports avx512vbmi and Numba compiles for it."""
    from . import cpu
    if "avx512vbmi" not in cpu.cpu_flags():
        return False
    name = os.environ.get("NUMBA_CPU_NAME", "host").strip().lower()
    return name in ("", "host") or "+avx512vbmi" in os.environ.get("NUMBA_CPU_FEATURES", "")


@njit(cache=True, nogil=True, parallel=True)
def _dw_run(xb, NB, C, H, W, isz, sgn, w, wpair, pairs, cmult, sh, sw, dh, dw, pt, pl, OH, OW, zx, bias, out,
            osize, mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd, clamps, vec):
    """Direct depthwise conv, one (image, channel) plane per task: a centred, zero-padded
    int32 copy of the input plane; 16 output columns per zmm (``vpmulld`` + ``vpaddd`` per
    tap, stride 1) or scalar int32 loops (other strides); then the fused epilogue (the
    portable path's per-element requantization; the ONNX Runtime scheme 16 lanes at a
    time). ``out`` is the (N, Cout, OH, OW) result as bytes of ``osize``-byte elements."""
    Cout, KH, KW = w.shape
    OWp = (OW + 15) // 16 * 16
    hs = (np.int32(1) << (8 * isz - 1)) if sgn else np.int32(0)   # sign extension: (v ^ hs) - hs
    z32 = np.int32(zx)
    Hp = max(H + pt, (OH - 1) * sh + (KH - 1) * dh + 1)
    Wp = max(W + pl, (OW - 1) * sw + (KW - 1) * dw + 1, OWp + (KW + 1) * dw)
    for task in prange(NB * Cout):
        b = task // Cout
        co = task % Cout
        c = co // cmult
        xp = np.zeros(Hp * Wp + 16 + dw, np.int32)
        src0 = (b * C + c) * H * W
        for h in range(H):
            base = (h + pt) * Wp + pl
            s = (src0 + h * W) * isz
            if isz == 1 and not sgn:
                for ww in range(W):
                    xp[base + ww] = np.int32(xb[s + ww]) - z32
            elif isz == 1:
                for ww in range(W):
                    xp[base + ww] = np.int32(np.int8(xb[s + ww])) - z32
            else:
                for ww in range(W):
                    v = np.int32(xb[s + 2 * ww]) | (np.int32(xb[s + 2 * ww + 1]) << 8)
                    xp[base + ww] = ((v ^ hs) - hs) - z32
        acc = np.empty(OH * OWp, np.int32)
        bv = np.int32(bias[co])
        if sw == 1 and pairs:
            # centred 8-bit inputs fit int16: pairs of taps (kw, kw+1) per vpdpwssd lane
            xq = np.zeros(Hp * Wp + 16, np.int32)
            for i in range(Hp * Wp):
                xq[i] = (xp[i] & 0xFFFF) | (xp[i + dw] << 16)
            bvec = _vsplat(bv)
            KP = (KW + 1) // 2
            for oh in range(OH):
                for v in range(OWp // 16):
                    a = bvec
                    for kh in range(KH):
                        rb = (oh * sh + kh * dh) * Wp + 16 * v
                        for kp in range(KP):
                            a = _vdpwssd(a, _vload(xq, rb + 2 * kp * dw), _vsplat(wpair[co, kh, kp]))
                    _vstore(acc, oh * OWp + 16 * v, a)
        elif sw == 1:
            bvec = _vsplat(bv)
            for oh in range(OH):
                for v in range(OWp // 16):
                    a = bvec
                    for kh in range(KH):
                        rb = (oh * sh + kh * dh) * Wp + 16 * v
                        for kw in range(KW):
                            a = _vadd(a, _vmul(_vload(xp, rb + kw * dw), _vsplat(w[co, kh, kw])))
                    _vstore(acc, oh * OWp + 16 * v, a)
        else:
            for oh in range(OH):
                for ow in range(OW):
                    s = bv
                    for kh in range(KH):
                        rb = (oh * sh + kh * dh) * Wp + ow * sw
                        for kw in range(KW):
                            s += xp[rb + kw * dw] * w[co, kh, kw]
                    acc[oh * OWp + ow] = s
        ob = (b * Cout + co) * OH * OW
        k = 0
        if mode == 0:
            for oh in range(OH):
                for ow in range(OW):
                    _put(out, ob + oh * OW + ow, acc[oh * OWp + ow], osize)
        elif code == 0 and vec:
            # 16 lanes at a time: lane-wise fp.scale_f32_rne (see _epilogue_f32)
            lo = amin - zy
            hi = amax - zy
            mv = _vsplat_f32(mf[co])
            R = np.empty(16, np.int32)
            for oh in range(OH):
                for v in range(OWp // 16):
                    f = _vcvt_mul(_vload(acc, oh * OWp + 16 * v), mv)
                    valid = min(16, OW - 16 * v)
                    k += _vcount_out(f, lo, hi, valid)
                    r = _vclamp_rint(f, lo, hi, zy)
                    o = ob + oh * OW + 16 * v
                    if valid == 16:
                        _vput(out, o, r, osize)
                    else:
                        _vstore(R, 0, r)
                        for lane in range(valid):
                            _put(out, o + lane, R[lane], osize)
        else:
            for oh in range(OH):
                for ow in range(OW):
                    v, kk = requantize_value(np.int64(acc[oh * OWp + ow]), code, mult[co], m0s[co], shift[co],
                                             bterm[co], zy, amin, amax, rnd)
                    _put(out, ob + oh * OW + ow, v, osize)
                    k += kk
        clamps[task] = k


# Numba-level inlining (inline="always", as vnni._put / _vput) for everything called per
# vector with an array argument: a call that is not inlined increfs and decrefs the array
# (two atomic operations), which measured as ~40 % of the kernel's time.

@njit(inline="always")
def _epi_rows(A, nr, nv, OW, out, ob, osize, mode, code, mv, mult, m0, sh_, bt, zy, amin, amax, rnd, vec, R):
    """Fused epilogue of ``nr`` output rows: row ``r`` of int32 accumulators is
    ``A[r * nv * 16 :]`` (``OW`` real columns), its outputs start at element ``ob + r * OW``.
    The branches on the scheme and the output width are taken once per call, not per
    vector. Returns the clamp count."""
    k = 0
    full = OW // 16
    rest = OW - 16 * full
    if mode == 1 and code == 0 and vec:
        # ONNX Runtime: lane-wise fp.scale_f32_rne (as vnni._epilogue_f32)
        lo = amin - zy
        hi = amax - zy
        for r in range(nr):
            base = r * nv * 16
            o = ob + r * OW
            if osize == 1:
                for v in range(full):
                    f = _vcvt_mul(_vload(A, base + 16 * v), mv)
                    k += _vclamp_count(f, lo, hi, 16)
                    _vst8(out, o + 16 * v, _vclamp_rint(f, lo, hi, zy))
            else:
                for v in range(full):
                    f = _vcvt_mul(_vload(A, base + 16 * v), mv)
                    k += _vclamp_count(f, lo, hi, 16)
                    _vput(out, o + 16 * v, _vclamp_rint(f, lo, hi, zy), osize)
            if rest:
                f = _vcvt_mul(_vload(A, base + 16 * full), mv)
                k += _vclamp_count(f, lo, hi, rest)
                _vstore(R, 0, _vclamp_rint(f, lo, hi, zy))
                for lane in range(rest):
                    _put(out, o + 16 * full + lane, R[lane], osize)
    elif mode == 1 and code == 5:
        # TFLite int16x8, lane-wise (fp.multiply_by_quantized_multiplier_16x8, zero point, clamp)
        total = 15 - sh_
        for r in range(nr):
            base = r * nv * 16
            o = ob + r * OW
            for v in range(nv):
                q = _v16x8(_vload(A, base + 16 * v), m0, total, zy)
                valid = min(16, OW - 16 * v)
                k += _vcount_outi(q, amin, amax, valid)
                q = _vclampi(q, amin, amax)
                if valid == 16:
                    _vput(out, o + 16 * v, q, osize)
                else:
                    _vstore(R, 0, q)
                    for lane in range(valid):
                        _put(out, o + 16 * v + lane, R[lane], osize)
    elif mode == 0:
        for r in range(nr):
            base = r * nv * 16
            o = ob + r * OW
            for v in range(full):
                _vput(out, o + 16 * v, _vload(A, base + 16 * v), osize)
            for lane in range(rest):
                _put(out, o + 16 * full + lane, A[base + 16 * full + lane], osize)
    else:
        for r in range(nr):
            base = r * nv * 16
            o = ob + r * OW
            for j in range(OW):
                v, kk = requantize_value(np.int64(A[base + j]), code, mult, m0, sh_, bt, zy, amin, amax, rnd)
                _put(out, o + j, v, osize)
                k += kk
    return k


@njit(inline="always")
def _tail_f32(A, nr, nv, full, rest, OW, out, ob, mv, lo, hi, zy, R, osize):
    """ONNX Runtime epilogue of the last, partial vector (``rest`` columns) of ``nr`` rows
    held in the row buffer; returns the clamp count."""
    k = 0
    for r in range(nr if rest else 0):
        f = _vcvt_mul(_vload(A, 16 * (r * nv + full)), mv)
        k += _vclamp_count(f, lo, hi, rest)
        _vstore(R, 0, _vclamp_rint(f, lo, hi, zy))
        for lane in range(rest):
            _put(out, ob + r * OW + 16 * full + lane, R[lane], osize)
    return k


@njit(inline="always")
def _epi_f32_8(a, out, o, mv, lo, hi, zy):
    """ONNX Runtime epilogue of 16 accumulators to 16 one-byte outputs at ``o``; returns the clamp count."""
    f = _vcvt_mul(a, mv)
    _vst8(out, o, _vclamp_rint(f, lo, hi, zy))
    return _vclamp_count(f, lo, hi, 16)


@njit(inline="always")
def _win8u(xb, off, fv, flip, ix):
    """:func:`_win8` for a window inside the row (a plain load: no blend uop)."""
    xv = _vload(xb, off)
    if flip != 0:
        xv = _vxor(xv, fv)
    return _vpermb(xv, ix)


@njit(inline="always")
def _win8(xb, off, m, pv, fv, flip, ix):
    """The 16 sliding 4-byte windows of the input row bytes at ``off`` (masked load, xor flip, vpermb)."""
    xv = _vmload8(xb, off, m, pv)
    if flip != 0:
        xv = _vxor(xv, fv)
    return _vpermb(xv, ix)


@njit(inline="always")
def _win16(xb, off, m, pv, fv, flip):
    """32 int16 of an input row at byte ``off`` (masked load, xor flip for uint16)."""
    if m == _FULL32:
        y = _vload(xb, off)
    else:
        y = _vmload16(xb, off, m, pv)
    if flip != 0:
        y = _vxor(y, fv)
    return y


@njit(inline="always")
def _dp6(a, l0, h0, l1, h1, l2, h2, w0, u0, w1, u1, w2, u2):
    """``a`` + three kernel rows of int16 pairs (taps 0,1 and 2,3 of each row)."""
    a = _vdpwssd(_vdpwssd(a, l0, w0), h0, u0)
    a = _vdpwssd(_vdpwssd(a, l1, w1), h1, u1)
    return _vdpwssd(_vdpwssd(a, l2, w2), h2, u2)


@njit(cache=True, nogil=True, parallel=True)
def _dw_rows(xb, NB, C, H, W, isz, fam16, flip, zxrep, idx, wq, rowc, bias32, cmult, sh, dh, pt, OH, OW, RB,
             col0, masks, one16, out, osize, mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd, clamps, vec):
    """Row-window depthwise kernel, NCHW in and out, no copy of the input.

    Lane ``j`` of a vector holds output column ``16 v + j`` of one output row. For each
    kernel row the input row is read in place with a masked load (the columns outside the
    image read the zero point) and one permute (``vpermb`` / ``vpermw`` with ``idx``) turns
    it into the sliding windows: lane ``j`` = the 4 bytes (8-bit inputs, ``vpdpbusd``) or 2
    int16 (``vpdpwssd``) of the taps ``kw = T g .. T g + T - 1`` under output column
    ``16 v + j`` (stride and dilation are in ``idx``). The products use the raw (xor-flipped)
    inputs; the zero point's share is the constant ``rowc[co, kh] = -zx' * sum_kw w``, added
    for the kernel rows inside the image (rows outside contribute exactly zero), so the
    int32 sum (mod 2^32) is the exact centred sum, which fits int32 (checked by the plan).

    3 x 3 (any KW <= 4) with 8-bit inputs: interior rows without any padded kernel row take
    a specialised path, 4 output rows from 6 input rows at stride 1 (each window permuted
    once, used by up to 3 rows), 2 from 5 at stride 2; with the ONNX Runtime scheme and
    8-bit outputs they requantize straight from the registers. Accumulators of up to 4 rows go to a row buffer, then
    through the fused epilogue (:func:`_epi_rows`).
    Tasks: (image, channel, block of ``RB`` output rows)."""
    Cout, KH, G = wq.shape
    nv = (OW + 15) // 16
    nrb = (OH + RB - 1) // RB
    fast3 = KH == 3 and G == 1 and not fam16
    fast16 = KH == 3 and G == 2 and fam16 and one16
    unit = sh == 1 and dh == 1
    fuse = mode == 1 and code == 0 and vec and osize == 1
    full = OW // 16
    rest = OW - 16 * full
    lo = amin - zy
    hi = amax - zy
    ntask = NB * Cout * nrb
    nchunk = min(ntask, 64)     # tasks per parallel chunk share the row buffers (allocated once per chunk)
    for chunk in prange(nchunk):
        R = np.empty(16, np.int32)
        A = np.empty(4 * nv * 16, np.int32)
        for task in range(chunk * ntask // nchunk, (chunk + 1) * ntask // nchunk):
            b = task // (Cout * nrb)
            r_ = task % (Cout * nrb)
            co = r_ // nrb
            rb = r_ % nrb
            c = co // cmult
            plane = (b * C + c) * H * W
            ob = (b * Cout + co) * OH * OW
            ix = _vload(idx, 0)
            ix2 = _vload(idx, 16)
            pv = _vsplat(zxrep)
            fv = _vsplat(flip)
            mv = _vsplat_f32(mf[co])
            w0 = _vsplat(wq[co, 0, 0])
            w1 = _vsplat(wq[co, min(1, KH - 1), 0])
            w2 = _vsplat(wq[co, min(2, KH - 1), 0])
            g1 = min(1, G - 1)
            u0 = _vsplat(wq[co, 0, g1])
            u1 = _vsplat(wq[co, min(1, KH - 1), g1])
            u2 = _vsplat(wq[co, min(2, KH - 1), g1])
            full_init = np.int64(bias32[co])
            for kh in range(KH):
                full_init += rowc[co, kh]
            ivf = _vsplat(full_init)
            k = 0
            oh_end = min(OH, rb * RB + RB)
            oh = rb * RB
            while oh < oh_end:
                ih0 = oh * sh - pt
                nr = 1
                if fast3 and unit and oh + 3 < oh_end and ih0 >= 0 and ih0 + 5 < H:
                    # four output rows from six input rows
                    p0 = plane + ih0 * W
                    for v in range(nv):
                        c0 = col0[v, 0]
                        m = masks[v, 0]
                        if m == _FULL64:
                            x0 = _win8u(xb, p0 + c0, fv, flip, ix)
                            x1 = _win8u(xb, p0 + W + c0, fv, flip, ix)
                            x2 = _win8u(xb, p0 + 2 * W + c0, fv, flip, ix)
                            x3 = _win8u(xb, p0 + 3 * W + c0, fv, flip, ix)
                            x4 = _win8u(xb, p0 + 4 * W + c0, fv, flip, ix)
                            x5 = _win8u(xb, p0 + 5 * W + c0, fv, flip, ix)
                        else:
                            x0 = _win8(xb, p0 + c0, m, pv, fv, flip, ix)
                            x1 = _win8(xb, p0 + W + c0, m, pv, fv, flip, ix)
                            x2 = _win8(xb, p0 + 2 * W + c0, m, pv, fv, flip, ix)
                            x3 = _win8(xb, p0 + 3 * W + c0, m, pv, fv, flip, ix)
                            x4 = _win8(xb, p0 + 4 * W + c0, m, pv, fv, flip, ix)
                            x5 = _win8(xb, p0 + 5 * W + c0, m, pv, fv, flip, ix)
                        a0 = _vdpbusd(_vdpbusd(_vdpbusd(ivf, x0, w0), x1, w1), x2, w2)
                        a1 = _vdpbusd(_vdpbusd(_vdpbusd(ivf, x1, w0), x2, w1), x3, w2)
                        a2 = _vdpbusd(_vdpbusd(_vdpbusd(ivf, x2, w0), x3, w1), x4, w2)
                        a3 = _vdpbusd(_vdpbusd(_vdpbusd(ivf, x3, w0), x4, w1), x5, w2)
                        if fuse and v < full:
                            # ONNX Runtime epilogue straight from the registers (8-bit outputs)
                            o = ob + oh * OW + 16 * v
                            k += _epi_f32_8(a0, out, o, mv, lo, hi, zy)
                            k += _epi_f32_8(a1, out, o + OW, mv, lo, hi, zy)
                            k += _epi_f32_8(a2, out, o + 2 * OW, mv, lo, hi, zy)
                            k += _epi_f32_8(a3, out, o + 3 * OW, mv, lo, hi, zy)
                        else:
                            _vstore(A, 16 * v, a0)
                            _vstore(A, 16 * (nv + v), a1)
                            _vstore(A, 16 * (2 * nv + v), a2)
                            _vstore(A, 16 * (3 * nv + v), a3)
                    nr = 4
                    if fuse:
                        k += _tail_f32(A, 4, nv, full, rest, OW, out, ob + oh * OW, mv, lo, hi, zy, R, osize)
                        oh += 4
                        continue
                elif fast16 and unit and oh + 3 < oh_end and ih0 >= 0 and ih0 + 5 < H:
                    # 16-bit 3x3: one load per input row, two vpermw (taps 0,1 and 2,3)
                    p0 = 2 * (plane + ih0 * W)
                    W2 = 2 * W
                    for v in range(nv):
                        c0 = 2 * col0[v, 0]
                        m = masks[v, 0]
                        y0 = _win16(xb, p0 + c0, m, pv, fv, flip)
                        y1 = _win16(xb, p0 + W2 + c0, m, pv, fv, flip)
                        y2 = _win16(xb, p0 + 2 * W2 + c0, m, pv, fv, flip)
                        y3 = _win16(xb, p0 + 3 * W2 + c0, m, pv, fv, flip)
                        y4 = _win16(xb, p0 + 4 * W2 + c0, m, pv, fv, flip)
                        y5 = _win16(xb, p0 + 5 * W2 + c0, m, pv, fv, flip)
                        l0, h0 = _vpermw(y0, ix), _vpermw(y0, ix2)
                        l1, h1 = _vpermw(y1, ix), _vpermw(y1, ix2)
                        l2, h2 = _vpermw(y2, ix), _vpermw(y2, ix2)
                        l3, h3 = _vpermw(y3, ix), _vpermw(y3, ix2)
                        l4, h4 = _vpermw(y4, ix), _vpermw(y4, ix2)
                        l5, h5 = _vpermw(y5, ix), _vpermw(y5, ix2)
                        _vstore(A, 16 * v, _dp6(ivf, l0, h0, l1, h1, l2, h2, w0, u0, w1, u1, w2, u2))
                        _vstore(A, 16 * (nv + v), _dp6(ivf, l1, h1, l2, h2, l3, h3, w0, u0, w1, u1, w2, u2))
                        _vstore(A, 16 * (2 * nv + v), _dp6(ivf, l2, h2, l3, h3, l4, h4, w0, u0, w1, u1, w2, u2))
                        _vstore(A, 16 * (3 * nv + v), _dp6(ivf, l3, h3, l4, h4, l5, h5, w0, u0, w1, u1, w2, u2))
                    nr = 4
                elif fast16 and ih0 >= 0 and ih0 + 2 * dh < H:
                    p0 = 2 * (plane + ih0 * W)
                    p1 = p0 + 2 * dh * W
                    p2 = p1 + 2 * dh * W
                    for v in range(nv):
                        c0 = 2 * col0[v, 0]
                        m = masks[v, 0]
                        y0 = _win16(xb, p0 + c0, m, pv, fv, flip)
                        y1 = _win16(xb, p1 + c0, m, pv, fv, flip)
                        y2 = _win16(xb, p2 + c0, m, pv, fv, flip)
                        _vstore(A, 16 * v, _dp6(ivf, _vpermw(y0, ix), _vpermw(y0, ix2), _vpermw(y1, ix), _vpermw(y1, ix2),
                                                _vpermw(y2, ix), _vpermw(y2, ix2), w0, u0, w1, u1, w2, u2))
                elif fast3 and sh == 2 and dh == 1 and oh + 1 < oh_end and ih0 >= 0 and ih0 + 4 < H:
                    # stride 2: two output rows from five input rows (the middle one is shared)
                    p0 = plane + ih0 * W
                    for v in range(nv):
                        c0 = col0[v, 0]
                        m = masks[v, 0]
                        x0 = _win8(xb, p0 + c0, m, pv, fv, flip, ix)
                        x1 = _win8(xb, p0 + W + c0, m, pv, fv, flip, ix)
                        x2 = _win8(xb, p0 + 2 * W + c0, m, pv, fv, flip, ix)
                        x3 = _win8(xb, p0 + 3 * W + c0, m, pv, fv, flip, ix)
                        x4 = _win8(xb, p0 + 4 * W + c0, m, pv, fv, flip, ix)
                        a0 = _vdpbusd(_vdpbusd(_vdpbusd(ivf, x0, w0), x1, w1), x2, w2)
                        a1 = _vdpbusd(_vdpbusd(_vdpbusd(ivf, x2, w0), x3, w1), x4, w2)
                        if fuse and v < full:
                            o = ob + oh * OW + 16 * v
                            k += _epi_f32_8(a0, out, o, mv, lo, hi, zy)
                            k += _epi_f32_8(a1, out, o + OW, mv, lo, hi, zy)
                        else:
                            _vstore(A, 16 * v, a0)
                            _vstore(A, 16 * (nv + v), a1)
                    nr = 2
                    if fuse:
                        k += _tail_f32(A, 2, nv, full, rest, OW, out, ob + oh * OW, mv, lo, hi, zy, R, osize)
                        oh += 2
                        continue
                elif fast3 and ih0 >= 0 and ih0 + 2 * dh < H:
                    p0 = plane + ih0 * W
                    p1 = p0 + dh * W
                    p2 = p1 + dh * W
                    for v in range(nv):
                        c0 = col0[v, 0]
                        m = masks[v, 0]
                        a = _vdpbusd(ivf, _win8(xb, p0 + c0, m, pv, fv, flip, ix), w0)
                        a = _vdpbusd(a, _win8(xb, p1 + c0, m, pv, fv, flip, ix), w1)
                        a = _vdpbusd(a, _win8(xb, p2 + c0, m, pv, fv, flip, ix), w2)
                        if fuse and v < full:
                            k += _epi_f32_8(a, out, ob + oh * OW + 16 * v, mv, lo, hi, zy)
                        else:
                            _vstore(A, 16 * v, a)
                    if fuse:
                        k += _tail_f32(A, 1, nv, full, rest, OW, out, ob + oh * OW, mv, lo, hi, zy, R, osize)
                        oh += 1
                        continue
                else:
                    # general: any KH, groups of taps, kernel rows in the padding skipped
                    init = np.int64(bias32[co])
                    kh0 = KH
                    kh1 = 0
                    for kh in range(KH):
                        ih = ih0 + kh * dh
                        if 0 <= ih < H:
                            init += rowc[co, kh]
                            kh0 = min(kh0, kh)
                            kh1 = kh + 1
                    iv = _vsplat(init)
                    for v in range(nv):
                        a = iv
                        if fam16:
                            for kh in range(kh0, kh1):
                                rbase = (plane + (ih0 + kh * dh) * W) * 2
                                for g in range(G):
                                    xv = _vxor(_vmload16(xb, rbase + 2 * col0[v, g], masks[v, g], pv), fv)
                                    a = _vdpwssd(a, _vpermw(xv, ix), _vsplat(wq[co, kh, g]))
                        else:
                            for kh in range(kh0, kh1):
                                rbase = plane + (ih0 + kh * dh) * W
                                for g in range(G):
                                    a = _vdpbusd(a, _win8(xb, rbase + col0[v, g], masks[v, g], pv, fv, flip, ix),
                                                 _vsplat(wq[co, kh, g]))
                        _vstore(A, 16 * v, a)
                k += _epi_rows(A, nr, nv, OW, out, ob + oh * OW, osize, mode, code, mv, mult[co], m0s[co], shift[co],
                               bterm[co], zy, amin, amax, rnd, vec, R)
                oh += nr
            clamps[task] = k


_GEOM: dict = {}


def _rows_setup(fam16, KW, sw, dw, pl, W, OW):
    """(T, G, idx, col0, masks, one16) of the row-window kernel (cached per geometry), or
    None when a window does not fit one register (``15 sw + (T - 1) dw`` past the last
    element). ``idx`` holds two permute vectors; ``one16``: 16-bit taps 0..3 come from one load."""
    key = (fam16, KW, sw, dw, pl, W, OW)
    hit = _GEOM.get(key)
    if hit is not None:
        return hit[0]
    T, E = (2, 32) if fam16 else (4, 64)
    if 15 * sw + (T - 1) * dw >= E:
        setup = None
    else:
        G = (KW + T - 1) // T
        lane = np.arange(16)[:, None] * sw + np.arange(T)[None, :] * dw
        # second vector (16-bit only): the taps (2 dw, 3 dw) of the same load, when they fit
        lane2 = lane + 2 * dw if fam16 and 15 * sw + 3 * dw < E else 0 * lane
        idx = np.concatenate([lane.reshape(-1), lane2.reshape(-1)]).astype(np.uint8 if not fam16 else np.uint16)
        idx = np.concatenate([idx.view(np.uint8), np.zeros(128 - idx.nbytes, np.uint8)]).view(np.int32)
        nv = (OW + 15) // 16
        col0 = (16 * sw * np.arange(nv)[:, None] - pl + T * dw * np.arange(G)[None, :]).astype(np.int64)
        pos = col0[:, :, None] + np.arange(E)[None, None, :]
        ok = (pos >= 0) & (pos < W)
        masks = (ok.astype(np.uint64) << np.arange(E, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)
        one16 = bool(fam16 and 15 * sw + 3 * dw < E)
        setup = (T, G, idx, np.ascontiguousarray(col0), np.ascontiguousarray(masks), one16)
    if len(_GEOM) > 256:
        _GEOM.clear()
    _GEOM[key] = (setup,)
    return setup


class _DwWeights:
    """Everything the kernels need from the weights (cached for read-only weights): centred
    values ``wc`` (Cout, KH, KW) int64 and their bounds, the plane kernel's int32 / pair
    arrays, and the row-window kernel's packed dwords per (Cout, KH, group): 4 int8 taps
    (``wq8``, when every centred weight fits int8) or 2 int16 taps (``wq16``), with the
    per-kernel-row sums ``wsum`` (Cout, KH)."""

    def __init__(self, wa, zw, Cout, KH, KW):
        wc = wa.values().reshape(Cout, KH, KW).astype(np.int64) - zw[:, None, None]
        self.wc = wc
        self.wmax = int(np.abs(wc).max()) if wc.size else 0
        lo, hi = (int(wc.min()), int(wc.max())) if wc.size else (0, 0)
        self.wc32 = np.ascontiguousarray(wc, dtype=np.int32)
        KP = (KW + 1) // 2
        wp = np.zeros((Cout, KH, 2 * KP), np.int64)
        wp[:, :, :KW] = wc
        self.wpair = np.ascontiguousarray(((wp[:, :, 0::2] & 0xFFFF) | ((wp[:, :, 1::2] & 0xFFFF) << 16))
                                          .astype(np.uint32).view(np.int32))
        self.wq16 = self.wpair if -32768 <= lo and hi <= 32767 else None
        self.wq8 = None
        if -128 <= lo and hi <= 127:
            G = (KW + 3) // 4
            w4 = np.zeros((Cout, KH, 4 * G), np.int64)
            w4[:, :, :KW] = wc
            wq = sum((w4[:, :, t::4] & 0xFF) << (8 * t) for t in range(4))
            self.wq8 = np.ascontiguousarray(wq.astype(np.uint32).view(np.int32))
        self.wsum = wc.sum(axis=2)


#: set False to run every depthwise problem through the plane kernel (tests)
ROWS = True


def _i32(a):
    """int64 values wrapped to int32 (the kernel sums mod 2^32)."""
    return np.ascontiguousarray((np.asarray(a, np.int64) & 0xFFFFFFFF).astype(np.uint32).view(np.int32))


def _rows_plan(xdt, wd, zx, b64, KH, KW, sw, dw, pl, W, tasks, OH, OW):
    """Arguments of :func:`_dw_rows` for this problem, or None (plane kernel instead): 8-bit
    inputs need int8 centred weights and vpermb; 16-bit inputs int16 centred weights."""
    if not ROWS:
        return None
    fam16 = xdt.itemsize == 2
    wq = wd.wq16 if fam16 else wd.wq8
    if wq is None or (not fam16 and not _has_vbmi()):
        return None
    setup = _rows_setup(fam16, KW, sw, dw, pl, W, OW)
    if setup is None:
        return None
    _, _, idx, col0, masks, one16 = setup
    Cout = wq.shape[0]
    if fam16:
        flip = XOR16 if xdt == np.uint16 else 0
        zk = zx - 32768 if xdt == np.uint16 else zx        # zero point in the kernel's int16 domain
        zxrep = (zx & 0xFFFF) * 0x00010001
    else:
        flip = XOR8 if xdt == np.int8 else 0
        zk = zx + 128 if xdt == np.int8 else zx            # zero point in the kernel's uint8 domain
        zxrep = (zx & 0xFF) * 0x01010101
    rowc = _i32(-zk * wd.wsum)          # the zero point's share of each kernel row
    b32 = _i32(b64 if b64 is not None else np.zeros(Cout, np.int64))
    nrb = max(1, min(OH, -(-16 // max(tasks, 1))))      # at least 16 tasks for the threads
    RB = -(-OH // nrb)
    zxrep = int(np.uint32(zxrep).view(np.int32))
    return fam16, flip, zxrep, idx, wq, rowc, b32, RB, col0, masks, one16


def _epilogue_args(rq, Cout):
    """The fused epilogue's arguments (mode, code, per-channel arrays, ...)."""
    if rq is None:
        return (0, 0, np.zeros(Cout, np.float32), np.zeros(Cout), np.zeros(Cout, np.int64),
                np.zeros(Cout, np.int64), np.zeros(Cout, np.float32), 0, 0, 0, 0)
    rp, code, rnd = rq

    def per(a, dt):
        a = np.asarray(a, dt)
        return np.ascontiguousarray(np.broadcast_to(a, (Cout,)) if a.size == 1 else a)
    return (1, code, per(rp.multiplier, np.float32), per(rp.multiplier, np.float64), per(rp.m0, np.int64),
            per(rp.shift, np.int64), per(rp.bias_term, np.float32), rp.out_zero_point, rp.act_min,
            rp.act_max, rnd)


def depthwise_plan(x, w, bias, params):
    """Depthwise (groups == Cin, one input channel per group) fast path, or None when a
    running sum could leave int32 or the accumulator, or when pair saturation is emulated.

    The row-window kernel (:func:`_dw_rows`) runs when the centred weights fit the
    instruction's operand (int8 for 8-bit inputs, with AVX512-VBMI; int16 for 16-bit ones)
    and a window fits a register; otherwise the plane kernel (:func:`_dw_run`)."""
    from .params import KernelStats
    x = np.asarray(x)
    p = params
    if x.ndim != 4 or x.dtype.type not in (np.uint8, np.int8, np.uint16, np.int16):
        return None
    wa = _weights_of(w)
    if wa.ndim != 4 or wa.dtype.type not in (np.uint8, np.int8, np.uint16, np.int16):
        return None
    NB, C, H, W = x.shape
    Cout, Cg, KH, KW = wa.shape
    if Cg != 1 or p.groups != C or Cout % C:
        return None
    args = plan_args(x, wa, bias, p, Cout)
    if args is None:
        return None
    zw, b64, rq, zx = args
    wd = _cached_pack(wa.owner, ("dw", KH, KW, zw.tobytes()), lambda: _DwWeights(wa, zw, Cout, KH, KW))
    wmax = wd.wmax
    bmax = int(np.abs(b64).max()) if b64 is not None and b64.size else 0
    cx, _ = _x_bounds(x, zx)
    lim = min(p.accum.acc_max, _INT32_MAX)
    by_data = False
    if KH * KW * cx * wmax + bmax > lim:
        cx, _ = _x_data_bounds(x, zx)
        by_data = True
        if KH * KW * cx * wmax + bmax > lim:
            return None
    if cx > _INT32_MAX:
        return None
    # vpdpwssd pairs: lane (x[i], x[i+dw]) x (w[kh, 2kp], w[kh, 2kp+1]); needs int16 operands
    pairs = bool(cx <= 32767 and wmax <= 32767)
    bias_v = b64 if b64 is not None else np.zeros(Cout, np.int64)
    pt, pl = p.pads[0], p.pads[1]
    (sh, sw), (dh, dw) = p.strides, p.dilations
    OH = (H + pt + p.pads[2] - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + p.pads[3] - dw * (KW - 1) - 1) // sw + 1
    if OH < 1 or OW < 1:
        return None
    rows = _rows_plan(x.dtype, wd, zx, b64, KH, KW, sw, dw, pl, W, NB * Cout, OH, OW)
    args = _epilogue_args(rq, Cout)
    if rq is None:
        odt = np.dtype(np.int32 if p.accum.bits <= 32 else np.int64)
    else:
        odt = np.dtype(rq[0].out_fmt.storage_dtype)
    macs = NB * OH * OW * Cout * KH * KW
    cmult = Cout // C

    def fn(x_q, w_q, bias_q, pp):
        xx = np.ascontiguousarray(x_q)
        out = np.empty((NB, Cout, OH, OW), odt)
        if rows is not None:
            fam16, flip, zxrep, idx, wq, rowc, b32, RB, col0, masks, one16 = rows
            clamps = np.zeros(max(NB * Cout * ((OH + RB - 1) // RB), 1), np.int64)
            _dw_rows(xx.reshape(-1).view(np.uint8), NB, C, H, W, xx.dtype.itemsize, fam16, flip, zxrep, idx, wq,
                     rowc, b32, cmult, sh, dh, pt, OH, OW, RB, col0, masks, one16, out.reshape(-1).view(np.uint8),
                     odt.itemsize, *args, clamps, odt.itemsize <= 2)
        else:
            clamps = np.zeros(max(NB * Cout, 1), np.int64)
            _dw_run(xx.reshape(-1).view(np.uint8), NB, C, H, W, xx.dtype.itemsize, xx.dtype.kind == "i", wd.wc32,
                    wd.wpair, pairs, cmult, sh, sw, dh, dw, pt, pl, OH, OW, zx, bias_v,
                    out.reshape(-1).view(np.uint8), odt.itemsize, *args, clamps, odt.itemsize <= 2)
        stats = KernelStats(macs=macs, acc_overflows=0, pair_saturations=0, out_clamped=int(clamps.sum()))
        return out, stats
    fn.reusable = not by_data      # exactness proved from the dtype bounds holds for any data
    fn.kernel = "rows" if rows is not None else "plane"
    return fn
