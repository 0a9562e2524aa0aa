"""Explicit AVX-512 VNNI fast paths for the integer GEMM / convolution kernels.

LLVM's auto-vectoriser never emits ``vpdpbusd`` from Numba code, so this module calls the
instructions explicitly: a Numba type for one 512-bit register (``<16 x i32>``) and a few
``@intrinsic`` functions over it (load, 4-byte broadcast, ``llvm.x86.avx512.vpdpbusd.512``,
``llvm.x86.avx512.vpdpwssd.512``, and the bit operations the int4 unpack needs). The
microkernels keep a 6 x 64 tile of int32 accumulators in 24 zmm registers; activations are
read in place (row-major, 4-byte broadcasts straight from memory), weights are packed into
panels of 64 output channels (cached for read-only weight arrays, i.e. constants).

* GEMM (W8A8 u8/s8, W4A8, W8A16, W16A16): ``vpdpbusd`` for 8-bit activations (int4 weights
  stored as biased nibbles ``w + 8``, two per byte, unpacked to int8 inside the tile),
  ``vpdpwssd`` for 16-bit ones.
* Convolution (groups = 1, any kernel size, stride, dilation, padding): implicit GEMM over a
  zero-point-padded NHWC copy of the input; each kernel tap is a byte offset of the 6
  pixel rows, no im2col is materialised.
* Depthwise (:mod:`hwsim.kernels.vnni_dw`): NCHW rows read in place with masked loads,
  ``vpermb`` / ``vpermw`` sliding windows into ``vpdpbusd`` / ``vpdpwssd``, several output
  rows per pass; a per-plane kernel for what that does not cover.
* On CPUs with Intel AMX, :mod:`hwsim.kernels.amx` takes 8- and 16-bit-weight GEMM and dense
  convolution first (the plans here try it when asked, ``amx=True``).
* Requantization is fused: the tile's accumulators go straight through the portable path's
  per-element function (:func:`hwsim.kernels.requant.requantize_value`); the ONNX Runtime
  scheme runs 16 lanes at a time as a lane-wise transcription of
  :func:`hwsim.kernels.fixedpoint.scale_f32_rne`.

Signed 8-bit activations are flipped to unsigned with ``x ^ 0x80`` (= x + 128) in one
vectorised pass before the kernel (an xor inside the tile would compete with
``vpdpbusd`` for the same execution ports) and the exact correction ``-128 * colsum(w)``
is folded into the per-channel constant; unsigned 16-bit activations likewise with
``x ^ 0x8000``; weight zero points are subtracted from the packed weights.

When is it exact? The fast path is offered only when no running sum can leave the profile's
accumulator (``K * max|x - zx| * max|w - zw| + max|bias| <= acc_max``, by dtype range or,
failing that, by the data); then the portable semantics reduce to the exact sum, which the
kernels compute with int32 partial sums over K blocks that cannot overflow, summed in int64
when there is more than one block. Pair-saturation emulation, grouped (non-depthwise)
convolutions and weights that do not fit the instruction's operand go to the portable path.

Everything here is compiled lazily (``cache=True``); the instructions are only generated
when a kernel is first called, which :mod:`hwsim.kernels.dispatch` does only on CPUs with
``avx512_vnni`` (see :mod:`hwsim.kernels.cpu`).

Example
-------
>>> import numpy as np
>>> from hwsim.kernels import GemmParams, cpu, vnni
>>> a = np.arange(12, dtype=np.uint8).reshape(3, 4)
>>> w = np.ones((4, 2), dtype=np.int8)
>>> fn = vnni.gemm_plan(a, w, None, GemmParams()) if cpu.has_vnni() else None
>>> (fn(a, w, None, GemmParams())[0] if fn else a.astype(np.int32) @ w).tolist()
[[6, 6], [22, 22], [38, 38]]
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from . import fixedpoint as fp
from .requant import requantize_value

__all__ = [
    "MR", "NR", "peak_gops", "pack_weights", "PackedWeights", "run", "gemm_plan", "conv_plan", "depthwise_plan",
]

MR = 6    # rows of the register tile (output pixels / GEMM rows)
NR = 64   # columns of the register tile (output channels): 4 zmm of 16 int32

# ---------------------------------------------------------------------------------------
# A Numba type for one zmm register, and the instructions over it.
# ---------------------------------------------------------------------------------------

_I32 = ir.IntType(32)
_V16 = ir.VectorType(_I32, 16)     # 16 x int32 = 512 bits
_V32W = ir.VectorType(ir.IntType(16), 32)
_V64B = ir.VectorType(ir.IntType(8), 64)


class Zmm(types.Type):
    """One 512-bit register, seen as 16 int32 lanes."""

    def __init__(self):
        super().__init__(name="Zmm")


zmm = Zmm()


@register_model(Zmm)
class _ZmmModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _V16)


def _elem_ptr(context, builder, arrty, arr, idx):
    a = context.make_array(arrty)(context, builder, arr)
    return builder.gep(a.data, [idx])


@intrinsic
def _vzero(typingctx):
    def codegen(context, builder, sig, args):
        return ir.Constant(_V16, None)
    return zmm(), codegen


@intrinsic
def _vsplat(typingctx, x):
    def codegen(context, builder, sig, args):
        v = builder.trunc(args[0], _I32) if args[0].type.width > 32 else args[0]
        v = builder.insert_element(ir.Constant(_V16, ir.Undefined), v, ir.Constant(_I32, 0))
        return builder.shuffle_vector(v, ir.Constant(_V16, ir.Undefined), ir.Constant(_V16, None))
    return zmm(x), codegen


@intrinsic
def _vload(typingctx, arr, idx):
    """64 bytes starting at element ``idx`` of a 1-D array (unaligned)."""
    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        return builder.load(builder.bitcast(p, _V16.as_pointer()), align=1)
    return zmm(arr, idx), codegen


@intrinsic
def _vbcast4(typingctx, arr, idx):
    """The 4 bytes at element ``idx`` of a 1-D array, broadcast to all 16 lanes."""
    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        x = builder.load(builder.bitcast(p, _I32.as_pointer()), align=1)
        v = builder.insert_element(ir.Constant(_V16, ir.Undefined), x, ir.Constant(_I32, 0))
        return builder.shuffle_vector(v, ir.Constant(_V16, ir.Undefined), ir.Constant(_V16, None))
    return zmm(arr, idx), codegen


@intrinsic
def _vcol(typingctx, arr, idx):
    """16 int32: elements ``idx + 64 * lane`` of a 1-D int32 array (one column of a tile
    stored with rows of 64 int32), as 16 scalar loads into one register."""
    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        v = ir.Constant(_V16, ir.Undefined)
        for lane in range(16):
            x = builder.load(builder.gep(p, [ir.Constant(ir.IntType(64), 64 * lane)]), align=4)
            v = builder.insert_element(v, x, ir.Constant(_I32, lane))
        return v
    return zmm(arr, idx), codegen


@intrinsic
def _vstore(typingctx, arr, idx, v):
    """Store 16 int32 lanes at element ``idx`` of a 1-D int32 array (unaligned)."""
    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(p, _V16.as_pointer()), align=1)
        return context.get_dummy_value()
    return types.void(arr, idx, v), codegen


@intrinsic
def _vxor(typingctx, a, b):
    def codegen(context, builder, sig, args):
        return builder.xor(args[0], args[1])
    return zmm(a, b), codegen


@intrinsic
def _vand(typingctx, a, b):
    def codegen(context, builder, sig, args):
        return builder.and_(args[0], args[1])
    return zmm(a, b), codegen


@intrinsic
def _vsrl16(typingctx, a, n):
    """Logical right shift of each 16-bit lane by the constant ``n``."""
    if not isinstance(n, types.IntegerLiteral):
        return None
    k = n.literal_value

    def codegen(context, builder, sig, args):
        w = builder.bitcast(args[0], _V32W)
        r = builder.lshr(w, ir.Constant(_V32W, [k] * 32))
        return builder.bitcast(r, _V16)
    return zmm(a, n), codegen


@intrinsic
def _vsub8(typingctx, a, b):
    """Byte-wise wrapping subtraction."""
    def codegen(context, builder, sig, args):
        r = builder.sub(builder.bitcast(args[0], _V64B), builder.bitcast(args[1], _V64B))
        return builder.bitcast(r, _V16)
    return zmm(a, b), codegen


@intrinsic
def _vdpbusd(typingctx, acc, a, b):
    """acc + sum of 4 (uint8 of ``a``) x (int8 of ``b``) products per int32 lane (wraps)."""
    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(_V16, [_V16, _V64B, _V64B])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.512")
        return builder.call(fn, [args[0], builder.bitcast(args[1], _V64B),
                                 builder.bitcast(args[2], _V64B)])
    return zmm(acc, a, b), codegen


@intrinsic
def _vdpwssd(typingctx, acc, a, b):
    """acc + sum of 2 (int16 of ``a``) x (int16 of ``b``) products per int32 lane (wraps)."""
    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(_V16, [_V16, _V32W, _V32W])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpwssd.512")
        return builder.call(fn, [args[0], builder.bitcast(args[1], _V32W),
                                 builder.bitcast(args[2], _V32W)])
    return zmm(acc, a, b), codegen


@intrinsic
def _vsum(typingctx, v):
    """Wrapping int32 sum of the 16 lanes, as int64."""
    def codegen(context, builder, sig, args):
        s = builder.extract_element(args[0], ir.Constant(_I32, 0))
        for i in range(1, 16):
            s = builder.add(s, builder.extract_element(args[0], ir.Constant(_I32, i)))
        return builder.sext(s, ir.IntType(64))
    return types.int64(v), codegen


_F16 = ir.VectorType(ir.FloatType(), 16)


def _as_f(builder, v):
    return builder.bitcast(v, _F16)


def _clamp_f32(builder, ff, lo, hi):
    """Codegen: the float32 lanes ``ff`` clamped to [float(lo), float(hi)] (integer scalars),
    the low bound first as in the scalar code; one copy for the clamp, its counts and the
    rounding (LLVM merges the identical selects of one vector)."""
    def splat(x):
        v = builder.insert_element(ir.Constant(_F16, ir.Undefined), builder.sitofp(x, ir.FloatType()),
                                   ir.Constant(_I32, 0))
        return builder.shuffle_vector(v, ir.Constant(_F16, ir.Undefined), ir.Constant(_V16, None))
    vlo, vhi = splat(lo), splat(hi)
    ff = builder.select(builder.fcmp_ordered("<", ff, vlo), vlo, ff)
    return builder.select(builder.fcmp_ordered(">", ff, vhi), vhi, ff)


@intrinsic
def _vadd(typingctx, a, b):
    """Lane-wise wrapping int32 addition."""
    def codegen(context, builder, sig, args):
        return builder.add(args[0], args[1])
    return zmm(a, b), codegen


@intrinsic
def _vcvt_mul(typingctx, a, m):
    """float32(int32 lanes of ``a``) * (float32 lanes of ``m``), rounded to float32 (bits in a Zmm)."""
    def codegen(context, builder, sig, args):
        f = builder.sitofp(args[0], _F16)
        return builder.bitcast(builder.fmul(f, _as_f(builder, args[1])), _V16)
    return zmm(a, m), codegen


def _count_first(context, builder, mask, n, ntype):
    """Codegen: how many of the first ``n`` (0..16, of Numba type ``ntype``) lanes of the
    <16 x i1> ``mask`` are set, as an int64 (bit mask, then ``llvm.ctpop``)."""
    i64 = ir.IntType(64)
    bits = builder.zext(builder.bitcast(mask, ir.IntType(16)), i64)
    n = context.cast(builder, n, ntype, types.int64)
    bits = builder.and_(bits, builder.sub(builder.shl(ir.Constant(i64, 1), n), ir.Constant(i64, 1)))
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64]), "llvm.ctpop.i64")
    return builder.call(fn, [bits])


@intrinsic
def _vcount_out(typingctx, f, lo, hi, nvalid):
    """Number of the first ``nvalid`` float32 lanes of ``f`` below ``lo`` or above ``hi``."""
    def codegen(context, builder, sig, args):
        ff = _as_f(builder, args[0])
        flo = builder.sitofp(args[1], ir.FloatType())
        fhi = builder.sitofp(args[2], ir.FloatType())
        vlo = builder.shuffle_vector(builder.insert_element(ir.Constant(_F16, ir.Undefined), flo,
                                                            ir.Constant(_I32, 0)),
                                     ir.Constant(_F16, ir.Undefined), ir.Constant(_V16, None))
        vhi = builder.shuffle_vector(builder.insert_element(ir.Constant(_F16, ir.Undefined), fhi,
                                                            ir.Constant(_I32, 0)),
                                     ir.Constant(_F16, ir.Undefined), ir.Constant(_V16, None))
        out = builder.or_(builder.fcmp_ordered("<", ff, vlo), builder.fcmp_ordered(">", ff, vhi))
        return _count_first(context, builder, out, args[3], sig.args[3])
    return types.int64(f, lo, hi, nvalid), codegen


@intrinsic
def _vclamp_rint(typingctx, f, lo, hi, zy):
    """int32(rint(min(max(f, lo), hi))) + zy on float32 lanes (ties to even)."""
    def codegen(context, builder, sig, args):
        ff = _as_f(builder, args[0])

        ff = _clamp_f32(builder, ff, args[1], args[2])
        rint = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_F16, [_F16]), "llvm.rint.v16f32")
        r = builder.fptosi(builder.call(rint, [ff]), _V16)
        z = builder.trunc(args[3], _I32) if args[3].type.width > 32 else args[3]
        zv = builder.shuffle_vector(builder.insert_element(ir.Constant(_V16, ir.Undefined), z, ir.Constant(_I32, 0)),
                                    ir.Constant(_V16, ir.Undefined), ir.Constant(_V16, None))
        return builder.add(r, zv)
    return zmm(f, lo, hi, zy), codegen


@intrinsic
def _vsplat_f32(typingctx, x):
    """A float32 broadcast to 16 lanes (bits in a Zmm)."""
    def codegen(context, builder, sig, args):
        f = context.cast(builder, args[0], sig.args[0], types.float32)
        v = builder.insert_element(ir.Constant(_F16, ir.Undefined), f, ir.Constant(_I32, 0))
        v = builder.shuffle_vector(v, ir.Constant(_F16, ir.Undefined), ir.Constant(_V16, None))
        return builder.bitcast(v, _V16)
    return zmm(x), codegen


@intrinsic
def _vmul(typingctx, a, b):
    """Lane-wise wrapping int32 multiplication (vpmulld)."""
    def codegen(context, builder, sig, args):
        return builder.mul(args[0], args[1])
    return zmm(a, b), codegen


def _make_stores(width):
    """Intrinsics storing at a *byte* offset of a uint8 array: 16 int32 lanes narrowed (or
    widened) to ``width`` bits, and one int64 scalar truncated to ``width`` bits."""
    it = ir.IntType(width)
    vt = ir.VectorType(it, 16)

    @intrinsic
    def vst(typingctx, arr, off, v):
        def codegen(context, builder, sig, args):
            p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
            x = args[2]
            if width < 32:
                x = builder.trunc(x, vt)
            elif width > 32:
                x = builder.sext(x, vt)
            builder.store(x, builder.bitcast(p, vt.as_pointer()), align=1)
            return context.get_dummy_value()
        return types.void(arr, off, v), codegen

    @intrinsic
    def sst(typingctx, arr, off, v):
        def codegen(context, builder, sig, args):
            p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
            x = context.cast(builder, args[2], sig.args[2], types.int64)
            if width < 64:
                x = builder.trunc(x, it)
            builder.store(x, builder.bitcast(p, it.as_pointer()), align=1)
            return context.get_dummy_value()
        return types.void(arr, off, v), codegen
    return vst, sst


_vst8, _sst8 = _make_stores(8)
_vst16, _sst16 = _make_stores(16)
_vst32, _sst32 = _make_stores(32)
_vst64, _sst64 = _make_stores(64)


# Inlined at Numba level (inline="always") into every kernel: they are called per vector with
# an array argument, and a call that is not inlined increfs and decrefs that array (two
# atomic operations), measured as ~40 % of the depthwise kernel's time.

@njit(cache=True, nogil=True, inline="always")
def _put(out, i, v, osize):
    """out (uint8 bytes) element ``i`` of ``osize`` bytes := v (two's complement truncation)."""
    if osize == 1:
        _sst8(out, i, v)
    elif osize == 2:
        _sst16(out, i * 2, v)
    elif osize == 4:
        _sst32(out, i * 4, v)
    else:
        _sst64(out, i * 8, v)


@njit(cache=True, nogil=True, inline="always")
def _vput(out, i, r, osize):
    """16 consecutive elements ``i..i+15`` of ``osize`` bytes := the int32 lanes of r."""
    if osize == 1:
        _vst8(out, i, r)
    elif osize == 2:
        _vst16(out, i * 2, r)
    elif osize == 4:
        _vst32(out, i * 4, r)
    else:
        _vst64(out, i * 8, r)


XOR8 = -2139062144    # 0x80808080 as int32: uint8 <-> int8 by flipping the top bit of each byte
XOR16 = -2147450880   # 0x80008000 as int32: uint16 <-> int16

# ---------------------------------------------------------------------------------------
# Register-tile microkernels (written out: one zmm accumulator per variable).
# Each computes T[r*64 + j] = sum over taps t, steps s of the 4-byte group (4 uint8 or
# 2 int16 values) at byte A[o_r + taps[t] + 4*s] times the packed weights starting at byte
# Bp[pb] (consumed in order). A and Bp are byte views; offsets are in bytes.
# ---------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _mk_b8_6(A, o0, o1, o2, o3, o4, o5, taps, tsteps, t0, t1, Bp, pb, T, init):
    """6x64 tile: uint8 activations (int8 ones flipped beforehand) x int8 weights, vpdpbusd."""
    if init:
        c00 = _vload(T, 0)
        c01 = _vload(T, 16)
        c02 = _vload(T, 32)
        c03 = _vload(T, 48)
        c10 = _vload(T, 64)
        c11 = _vload(T, 80)
        c12 = _vload(T, 96)
        c13 = _vload(T, 112)
        c20 = _vload(T, 128)
        c21 = _vload(T, 144)
        c22 = _vload(T, 160)
        c23 = _vload(T, 176)
        c30 = _vload(T, 192)
        c31 = _vload(T, 208)
        c32 = _vload(T, 224)
        c33 = _vload(T, 240)
        c40 = _vload(T, 256)
        c41 = _vload(T, 272)
        c42 = _vload(T, 288)
        c43 = _vload(T, 304)
        c50 = _vload(T, 320)
        c51 = _vload(T, 336)
        c52 = _vload(T, 352)
        c53 = _vload(T, 368)
    else:
        c00 = c01 = c02 = c03 = _vzero()
        c10 = c11 = c12 = c13 = _vzero()
        c20 = c21 = c22 = c23 = _vzero()
        c30 = c31 = c32 = c33 = _vzero()
        c40 = c41 = c42 = c43 = _vzero()
        c50 = c51 = c52 = c53 = _vzero()
    for t in range(t0, t1):
        d = taps[t]
        p0 = o0 + d
        p1 = o1 + d
        p2 = o2 + d
        p3 = o3 + d
        p4 = o4 + d
        p5 = o5 + d
        for _s in range(tsteps[t]):
            b0 = _vload(Bp, pb)
            b1 = _vload(Bp, pb + 64)
            b2 = _vload(Bp, pb + 128)
            b3 = _vload(Bp, pb + 192)
            pb += 256
            a = _vbcast4(A, p0)
            p0 += 4
            c00 = _vdpbusd(c00, a, b0)
            c01 = _vdpbusd(c01, a, b1)
            c02 = _vdpbusd(c02, a, b2)
            c03 = _vdpbusd(c03, a, b3)
            a = _vbcast4(A, p1)
            p1 += 4
            c10 = _vdpbusd(c10, a, b0)
            c11 = _vdpbusd(c11, a, b1)
            c12 = _vdpbusd(c12, a, b2)
            c13 = _vdpbusd(c13, a, b3)
            a = _vbcast4(A, p2)
            p2 += 4
            c20 = _vdpbusd(c20, a, b0)
            c21 = _vdpbusd(c21, a, b1)
            c22 = _vdpbusd(c22, a, b2)
            c23 = _vdpbusd(c23, a, b3)
            a = _vbcast4(A, p3)
            p3 += 4
            c30 = _vdpbusd(c30, a, b0)
            c31 = _vdpbusd(c31, a, b1)
            c32 = _vdpbusd(c32, a, b2)
            c33 = _vdpbusd(c33, a, b3)
            a = _vbcast4(A, p4)
            p4 += 4
            c40 = _vdpbusd(c40, a, b0)
            c41 = _vdpbusd(c41, a, b1)
            c42 = _vdpbusd(c42, a, b2)
            c43 = _vdpbusd(c43, a, b3)
            a = _vbcast4(A, p5)
            p5 += 4
            c50 = _vdpbusd(c50, a, b0)
            c51 = _vdpbusd(c51, a, b1)
            c52 = _vdpbusd(c52, a, b2)
            c53 = _vdpbusd(c53, a, b3)
    _vstore(T, 0, c00)
    _vstore(T, 16, c01)
    _vstore(T, 32, c02)
    _vstore(T, 48, c03)
    _vstore(T, 64, c10)
    _vstore(T, 80, c11)
    _vstore(T, 96, c12)
    _vstore(T, 112, c13)
    _vstore(T, 128, c20)
    _vstore(T, 144, c21)
    _vstore(T, 160, c22)
    _vstore(T, 176, c23)
    _vstore(T, 192, c30)
    _vstore(T, 208, c31)
    _vstore(T, 224, c32)
    _vstore(T, 240, c33)
    _vstore(T, 256, c40)
    _vstore(T, 272, c41)
    _vstore(T, 288, c42)
    _vstore(T, 304, c43)
    _vstore(T, 320, c50)
    _vstore(T, 336, c51)
    _vstore(T, 352, c52)
    _vstore(T, 368, c53)


@njit(cache=True, nogil=True)
def _mk_b4_6(A, o0, o1, o2, o3, o4, o5, taps, tsteps, t0, t1, Bp, pb, T, init):
    """6x64 tile: uint8 activations x int4 weights (biased nibbles unpacked in the tile), vpdpbusd."""
    if init:
        c00 = _vload(T, 0)
        c01 = _vload(T, 16)
        c02 = _vload(T, 32)
        c03 = _vload(T, 48)
        c10 = _vload(T, 64)
        c11 = _vload(T, 80)
        c12 = _vload(T, 96)
        c13 = _vload(T, 112)
        c20 = _vload(T, 128)
        c21 = _vload(T, 144)
        c22 = _vload(T, 160)
        c23 = _vload(T, 176)
        c30 = _vload(T, 192)
        c31 = _vload(T, 208)
        c32 = _vload(T, 224)
        c33 = _vload(T, 240)
        c40 = _vload(T, 256)
        c41 = _vload(T, 272)
        c42 = _vload(T, 288)
        c43 = _vload(T, 304)
        c50 = _vload(T, 320)
        c51 = _vload(T, 336)
        c52 = _vload(T, 352)
        c53 = _vload(T, 368)
    else:
        c00 = c01 = c02 = c03 = _vzero()
        c10 = c11 = c12 = c13 = _vzero()
        c20 = c21 = c22 = c23 = _vzero()
        c30 = c31 = c32 = c33 = _vzero()
        c40 = c41 = c42 = c43 = _vzero()
        c50 = c51 = c52 = c53 = _vzero()
    lo = _vsplat(0x0F0F0F0F)
    eight = _vsplat(0x08080808)
    for t in range(t0, t1):
        d = taps[t]
        p0 = o0 + d
        p1 = o1 + d
        p2 = o2 + d
        p3 = o3 + d
        p4 = o4 + d
        p5 = o5 + d
        for _s in range(tsteps[t]):
            v0 = _vload(Bp, pb)
            v1 = _vload(Bp, pb + 64)
            pb += 128
            b0 = _vsub8(_vand(v0, lo), eight)
            b1 = _vsub8(_vand(_vsrl16(v0, 4), lo), eight)
            b2 = _vsub8(_vand(v1, lo), eight)
            b3 = _vsub8(_vand(_vsrl16(v1, 4), lo), eight)
            a = _vbcast4(A, p0)
            p0 += 4
            c00 = _vdpbusd(c00, a, b0)
            c01 = _vdpbusd(c01, a, b1)
            c02 = _vdpbusd(c02, a, b2)
            c03 = _vdpbusd(c03, a, b3)
            a = _vbcast4(A, p1)
            p1 += 4
            c10 = _vdpbusd(c10, a, b0)
            c11 = _vdpbusd(c11, a, b1)
            c12 = _vdpbusd(c12, a, b2)
            c13 = _vdpbusd(c13, a, b3)
            a = _vbcast4(A, p2)
            p2 += 4
            c20 = _vdpbusd(c20, a, b0)
            c21 = _vdpbusd(c21, a, b1)
            c22 = _vdpbusd(c22, a, b2)
            c23 = _vdpbusd(c23, a, b3)
            a = _vbcast4(A, p3)
            p3 += 4
            c30 = _vdpbusd(c30, a, b0)
            c31 = _vdpbusd(c31, a, b1)
            c32 = _vdpbusd(c32, a, b2)
            c33 = _vdpbusd(c33, a, b3)
            a = _vbcast4(A, p4)
            p4 += 4
            c40 = _vdpbusd(c40, a, b0)
            c41 = _vdpbusd(c41, a, b1)
            c42 = _vdpbusd(c42, a, b2)
            c43 = _vdpbusd(c43, a, b3)
            a = _vbcast4(A, p5)
            p5 += 4
            c50 = _vdpbusd(c50, a, b0)
            c51 = _vdpbusd(c51, a, b1)
            c52 = _vdpbusd(c52, a, b2)
            c53 = _vdpbusd(c53, a, b3)
    _vstore(T, 0, c00)
    _vstore(T, 16, c01)
    _vstore(T, 32, c02)
    _vstore(T, 48, c03)
    _vstore(T, 64, c10)
    _vstore(T, 80, c11)
    _vstore(T, 96, c12)
    _vstore(T, 112, c13)
    _vstore(T, 128, c20)
    _vstore(T, 144, c21)
    _vstore(T, 160, c22)
    _vstore(T, 176, c23)
    _vstore(T, 192, c30)
    _vstore(T, 208, c31)
    _vstore(T, 224, c32)
    _vstore(T, 240, c33)
    _vstore(T, 256, c40)
    _vstore(T, 272, c41)
    _vstore(T, 288, c42)
    _vstore(T, 304, c43)
    _vstore(T, 320, c50)
    _vstore(T, 336, c51)
    _vstore(T, 352, c52)
    _vstore(T, 368, c53)


@njit(cache=True, nogil=True)
def _mk_w16_6(A, o0, o1, o2, o3, o4, o5, taps, tsteps, t0, t1, Bp, pb, T, init):
    """6x64 tile: int16 activations (uint16 ones flipped beforehand) x int16 weights, vpdpwssd."""
    if init:
        c00 = _vload(T, 0)
        c01 = _vload(T, 16)
        c02 = _vload(T, 32)
        c03 = _vload(T, 48)
        c10 = _vload(T, 64)
        c11 = _vload(T, 80)
        c12 = _vload(T, 96)
        c13 = _vload(T, 112)
        c20 = _vload(T, 128)
        c21 = _vload(T, 144)
        c22 = _vload(T, 160)
        c23 = _vload(T, 176)
        c30 = _vload(T, 192)
        c31 = _vload(T, 208)
        c32 = _vload(T, 224)
        c33 = _vload(T, 240)
        c40 = _vload(T, 256)
        c41 = _vload(T, 272)
        c42 = _vload(T, 288)
        c43 = _vload(T, 304)
        c50 = _vload(T, 320)
        c51 = _vload(T, 336)
        c52 = _vload(T, 352)
        c53 = _vload(T, 368)
    else:
        c00 = c01 = c02 = c03 = _vzero()
        c10 = c11 = c12 = c13 = _vzero()
        c20 = c21 = c22 = c23 = _vzero()
        c30 = c31 = c32 = c33 = _vzero()
        c40 = c41 = c42 = c43 = _vzero()
        c50 = c51 = c52 = c53 = _vzero()
    for t in range(t0, t1):
        d = taps[t]
        p0 = o0 + d
        p1 = o1 + d
        p2 = o2 + d
        p3 = o3 + d
        p4 = o4 + d
        p5 = o5 + d
        for _s in range(tsteps[t]):
            b0 = _vload(Bp, pb)
            b1 = _vload(Bp, pb + 64)
            b2 = _vload(Bp, pb + 128)
            b3 = _vload(Bp, pb + 192)
            pb += 256
            a = _vbcast4(A, p0)
            p0 += 4
            c00 = _vdpwssd(c00, a, b0)
            c01 = _vdpwssd(c01, a, b1)
            c02 = _vdpwssd(c02, a, b2)
            c03 = _vdpwssd(c03, a, b3)
            a = _vbcast4(A, p1)
            p1 += 4
            c10 = _vdpwssd(c10, a, b0)
            c11 = _vdpwssd(c11, a, b1)
            c12 = _vdpwssd(c12, a, b2)
            c13 = _vdpwssd(c13, a, b3)
            a = _vbcast4(A, p2)
            p2 += 4
            c20 = _vdpwssd(c20, a, b0)
            c21 = _vdpwssd(c21, a, b1)
            c22 = _vdpwssd(c22, a, b2)
            c23 = _vdpwssd(c23, a, b3)
            a = _vbcast4(A, p3)
            p3 += 4
            c30 = _vdpwssd(c30, a, b0)
            c31 = _vdpwssd(c31, a, b1)
            c32 = _vdpwssd(c32, a, b2)
            c33 = _vdpwssd(c33, a, b3)
            a = _vbcast4(A, p4)
            p4 += 4
            c40 = _vdpwssd(c40, a, b0)
            c41 = _vdpwssd(c41, a, b1)
            c42 = _vdpwssd(c42, a, b2)
            c43 = _vdpwssd(c43, a, b3)
            a = _vbcast4(A, p5)
            p5 += 4
            c50 = _vdpwssd(c50, a, b0)
            c51 = _vdpwssd(c51, a, b1)
            c52 = _vdpwssd(c52, a, b2)
            c53 = _vdpwssd(c53, a, b3)
    _vstore(T, 0, c00)
    _vstore(T, 16, c01)
    _vstore(T, 32, c02)
    _vstore(T, 48, c03)
    _vstore(T, 64, c10)
    _vstore(T, 80, c11)
    _vstore(T, 96, c12)
    _vstore(T, 112, c13)
    _vstore(T, 128, c20)
    _vstore(T, 144, c21)
    _vstore(T, 160, c22)
    _vstore(T, 176, c23)
    _vstore(T, 192, c30)
    _vstore(T, 208, c31)
    _vstore(T, 224, c32)
    _vstore(T, 240, c33)
    _vstore(T, 256, c40)
    _vstore(T, 272, c41)
    _vstore(T, 288, c42)
    _vstore(T, 304, c43)
    _vstore(T, 320, c50)
    _vstore(T, 336, c51)
    _vstore(T, 352, c52)
    _vstore(T, 368, c53)


@njit(cache=True, nogil=True)
def _mk_b8_1(A, o0, taps, tsteps, t0, t1, Bp, pb, T, init):
    """1x64 tile: uint8 activations (int8 ones flipped beforehand) x int8 weights, vpdpbusd."""
    if init:
        c00 = _vload(T, 0)
        c01 = _vload(T, 16)
        c02 = _vload(T, 32)
        c03 = _vload(T, 48)
    else:
        c00 = c01 = c02 = c03 = _vzero()
    for t in range(t0, t1):
        d = taps[t]
        p0 = o0 + d
        for _s in range(tsteps[t]):
            b0 = _vload(Bp, pb)
            b1 = _vload(Bp, pb + 64)
            b2 = _vload(Bp, pb + 128)
            b3 = _vload(Bp, pb + 192)
            pb += 256
            a = _vbcast4(A, p0)
            p0 += 4
            c00 = _vdpbusd(c00, a, b0)
            c01 = _vdpbusd(c01, a, b1)
            c02 = _vdpbusd(c02, a, b2)
            c03 = _vdpbusd(c03, a, b3)
    _vstore(T, 0, c00)
    _vstore(T, 16, c01)
    _vstore(T, 32, c02)
    _vstore(T, 48, c03)


@njit(cache=True, nogil=True)
def _mk_b4_1(A, o0, taps, tsteps, t0, t1, Bp, pb, T, init):
    """1x64 tile: uint8 activations x int4 weights (biased nibbles unpacked in the tile), vpdpbusd."""
    if init:
        c00 = _vload(T, 0)
        c01 = _vload(T, 16)
        c02 = _vload(T, 32)
        c03 = _vload(T, 48)
    else:
        c00 = c01 = c02 = c03 = _vzero()
    lo = _vsplat(0x0F0F0F0F)
    eight = _vsplat(0x08080808)
    for t in range(t0, t1):
        d = taps[t]
        p0 = o0 + d
        for _s in range(tsteps[t]):
            v0 = _vload(Bp, pb)
            v1 = _vload(Bp, pb + 64)
            pb += 128
            b0 = _vsub8(_vand(v0, lo), eight)
            b1 = _vsub8(_vand(_vsrl16(v0, 4), lo), eight)
            b2 = _vsub8(_vand(v1, lo), eight)
            b3 = _vsub8(_vand(_vsrl16(v1, 4), lo), eight)
            a = _vbcast4(A, p0)
            p0 += 4
            c00 = _vdpbusd(c00, a, b0)
            c01 = _vdpbusd(c01, a, b1)
            c02 = _vdpbusd(c02, a, b2)
            c03 = _vdpbusd(c03, a, b3)
    _vstore(T, 0, c00)
    _vstore(T, 16, c01)
    _vstore(T, 32, c02)
    _vstore(T, 48, c03)


@njit(cache=True, nogil=True)
def _mk_w16_1(A, o0, taps, tsteps, t0, t1, Bp, pb, T, init):
    """1x64 tile: int16 activations (uint16 ones flipped beforehand) x int16 weights, vpdpwssd."""
    if init:
        c00 = _vload(T, 0)
        c01 = _vload(T, 16)
        c02 = _vload(T, 32)
        c03 = _vload(T, 48)
    else:
        c00 = c01 = c02 = c03 = _vzero()
    for t in range(t0, t1):
        d = taps[t]
        p0 = o0 + d
        for _s in range(tsteps[t]):
            b0 = _vload(Bp, pb)
            b1 = _vload(Bp, pb + 64)
            b2 = _vload(Bp, pb + 128)
            b3 = _vload(Bp, pb + 192)
            pb += 256
            a = _vbcast4(A, p0)
            p0 += 4
            c00 = _vdpwssd(c00, a, b0)
            c01 = _vdpwssd(c01, a, b1)
            c02 = _vdpwssd(c02, a, b2)
            c03 = _vdpwssd(c03, a, b3)
    _vstore(T, 0, c00)
    _vstore(T, 16, c01)
    _vstore(T, 32, c02)
    _vstore(T, 48, c03)



@njit(cache=True, nogil=True)
def _peak_b8(iters, seed):
    """Register-only loop of 24 independent dpbusd per iteration (the machine's peak)."""
    a = _vsplat(seed)
    b = _vsplat(seed + 1)
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = c9 = c10 = c11 = c12 = c13 = c14 = c15 = c16 = c17 = c18 = c19 = c20 = c21 = c22 = c23 = _vzero()
    for _ in range(iters):
        c0 = _vdpbusd(c0, a, b)
        c1 = _vdpbusd(c1, a, b)
        c2 = _vdpbusd(c2, a, b)
        c3 = _vdpbusd(c3, a, b)
        c4 = _vdpbusd(c4, a, b)
        c5 = _vdpbusd(c5, a, b)
        c6 = _vdpbusd(c6, a, b)
        c7 = _vdpbusd(c7, a, b)
        c8 = _vdpbusd(c8, a, b)
        c9 = _vdpbusd(c9, a, b)
        c10 = _vdpbusd(c10, a, b)
        c11 = _vdpbusd(c11, a, b)
        c12 = _vdpbusd(c12, a, b)
        c13 = _vdpbusd(c13, a, b)
        c14 = _vdpbusd(c14, a, b)
        c15 = _vdpbusd(c15, a, b)
        c16 = _vdpbusd(c16, a, b)
        c17 = _vdpbusd(c17, a, b)
        c18 = _vdpbusd(c18, a, b)
        c19 = _vdpbusd(c19, a, b)
        c20 = _vdpbusd(c20, a, b)
        c21 = _vdpbusd(c21, a, b)
        c22 = _vdpbusd(c22, a, b)
        c23 = _vdpbusd(c23, a, b)
    s = _vsum(c0) + _vsum(c1) + _vsum(c2) + _vsum(c3) + _vsum(c4) + _vsum(c5) + _vsum(c6) + _vsum(c7) + _vsum(c8) + _vsum(c9) + _vsum(c10) + _vsum(c11) + _vsum(c12) + _vsum(c13) + _vsum(c14) + _vsum(c15) + _vsum(c16) + _vsum(c17) + _vsum(c18) + _vsum(c19) + _vsum(c20) + _vsum(c21) + _vsum(c22) + _vsum(c23)
    return s


@njit(cache=True, nogil=True)
def _peak_w16(iters, seed):
    """Register-only loop of 24 independent dpwssd per iteration (the machine's peak)."""
    a = _vsplat(seed)
    b = _vsplat(seed + 1)
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = c9 = c10 = c11 = c12 = c13 = c14 = c15 = c16 = c17 = c18 = c19 = c20 = c21 = c22 = c23 = _vzero()
    for _ in range(iters):
        c0 = _vdpwssd(c0, a, b)
        c1 = _vdpwssd(c1, a, b)
        c2 = _vdpwssd(c2, a, b)
        c3 = _vdpwssd(c3, a, b)
        c4 = _vdpwssd(c4, a, b)
        c5 = _vdpwssd(c5, a, b)
        c6 = _vdpwssd(c6, a, b)
        c7 = _vdpwssd(c7, a, b)
        c8 = _vdpwssd(c8, a, b)
        c9 = _vdpwssd(c9, a, b)
        c10 = _vdpwssd(c10, a, b)
        c11 = _vdpwssd(c11, a, b)
        c12 = _vdpwssd(c12, a, b)
        c13 = _vdpwssd(c13, a, b)
        c14 = _vdpwssd(c14, a, b)
        c15 = _vdpwssd(c15, a, b)
        c16 = _vdpwssd(c16, a, b)
        c17 = _vdpwssd(c17, a, b)
        c18 = _vdpwssd(c18, a, b)
        c19 = _vdpwssd(c19, a, b)
        c20 = _vdpwssd(c20, a, b)
        c21 = _vdpwssd(c21, a, b)
        c22 = _vdpwssd(c22, a, b)
        c23 = _vdpwssd(c23, a, b)
    s = _vsum(c0) + _vsum(c1) + _vsum(c2) + _vsum(c3) + _vsum(c4) + _vsum(c5) + _vsum(c6) + _vsum(c7) + _vsum(c8) + _vsum(c9) + _vsum(c10) + _vsum(c11) + _vsum(c12) + _vsum(c13) + _vsum(c14) + _vsum(c15) + _vsum(c16) + _vsum(c17) + _vsum(c18) + _vsum(c19) + _vsum(c20) + _vsum(c21) + _vsum(c22) + _vsum(c23)
    return s



def loop_rate(run, ops_per_iter, seconds=0.05):
    """Ops per second of ``run(iters)`` (a register-only loop): iterations grown until one call
    takes ``seconds / 5``, then the best of 5 calls. Returns GOP/s."""
    import time
    run(10)
    iters = 1000
    while True:
        t0 = time.perf_counter()
        run(iters)
        dt = time.perf_counter() - t0
        if dt > seconds / 5:
            break
        iters *= 4
    best = dt
    for _ in range(4):
        t0 = time.perf_counter()
        run(iters)
        best = min(best, time.perf_counter() - t0)
    return ops_per_iter * iters / best / 1e9


def peak_gops(fam="b8", seconds=0.05):
    """Measure the peak of ``vpdpbusd`` ("b8", 128 int ops per instruction) or ``vpdpwssd``
    ("w16", 64) on this core with a register-only loop; returns GOP/s (best of 5)."""
    fn = _peak_b8 if fam == "b8" else _peak_w16
    return loop_rate(lambda n: fn(n, 1), 24 * (128 if fam == "b8" else 64), seconds)


MB = 96   # rows per task: 16 register tiles reuse one weight panel
CACHE_STEPS = 256  # 4-byte steps of weights per cache block (256 x 256 B = 64 KB; smaller blocks measured no faster here)

# ---------------------------------------------------------------------------------------
# Weight packing: W[t, c, n] (taps x input channels x output channels) -> panels of 64
# output channels, consumed linearly by the microkernels.
# ---------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _pack8(W, steps):
    T, C, N = W.shape
    npan = (N + NR - 1) // NR
    Bp = np.zeros(npan * T * steps * NR * 4, np.int8)
    for p in range(npan):
        for t in range(T):
            for s in range(steps):
                base = ((p * T + t) * steps + s) * NR * 4
                for j in range(NR):
                    n = p * NR + j
                    if n >= N:
                        break
                    for q in range(4):
                        c = s * 4 + q
                        if c < C:
                            Bp[base + j * 4 + q] = W[t, c, n]
    return Bp


@njit(cache=True, nogil=True)
def _pack4(W, steps):
    """int4 values in [-8, 7] -> biased nibbles (w + 8); byte i of the first 64 bytes of a
    step holds vector 0 (low nibble) and vector 1 (high nibble), the next 64 bytes 2 and 3."""
    T, C, N = W.shape
    npan = (N + NR - 1) // NR
    Bp = np.zeros(npan * T * steps * NR * 2, np.uint8)
    for p in range(npan):
        for t in range(T):
            for s in range(steps):
                base = ((p * T + t) * steps + s) * NR * 2
                for j in range(NR):
                    n = p * NR + j
                    vec = j // 16
                    lane = j % 16
                    for q in range(4):
                        c = s * 4 + q
                        v = 8
                        if c < C and n < N:
                            v = np.int64(W[t, c, n]) + 8
                        byte = base + (vec // 2) * 64 + lane * 4 + q
                        if vec % 2 == 0:
                            Bp[byte] |= np.uint8(v)
                        else:
                            Bp[byte] |= np.uint8(v << 4)
    return Bp


@njit(cache=True, nogil=True)
def _pack16(W, steps):
    T, C, N = W.shape
    npan = (N + NR - 1) // NR
    Bp = np.zeros(npan * T * steps * NR * 2, np.int16)
    for p in range(npan):
        for t in range(T):
            for s in range(steps):
                base = ((p * T + t) * steps + s) * NR * 2
                for j in range(NR):
                    n = p * NR + j
                    if n >= N:
                        break
                    for q in range(2):
                        c = s * 2 + q
                        if c < C:
                            Bp[base + j * 2 + q] = W[t, c, n]
    return Bp


@njit(cache=True, nogil=True)
def _colsum(W):
    T, C, N = W.shape
    s = np.zeros(N, np.int64)
    for t in range(T):
        for c in range(C):
            for n in range(N):
                s[n] += W[t, c, n]
    return s


@njit(cache=True, nogil=True)
def _acc_at(T, T64, blocked, i, c):
    if blocked:
        return T64[i] + c
    return np.int64(T[i]) + c


@njit(cache=True, nogil=True)
def _epilogue_f32(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, osize, R):
    """See :func:`_epilogue_f32_body`; the common cases (contiguous rows, 1- or 2-byte
    outputs) are called with literal ``sn`` / ``osize`` so that Numba compiles them with the
    store width and the row layout known (measured 3x faster than deciding per vector)."""
    if sn == 1:
        if n1 - n0 == NR and lo <= hi:
            if osize == 1:
                pack = _row64_pack(lo, hi, zy, 1)
                if pack == PACK_S8:
                    return _epilogue_f32_rows64(T, 0, m0, m1, n0, corr32, mf, lo, hi, zy, orow, out, 1, PACK_S8)
                if pack == PACK_U8:
                    return _epilogue_f32_rows64(T, 0, m0, m1, n0, corr32, mf, lo, hi, zy, orow, out, 1, PACK_U8)
                return _epilogue_f32_rows64(T, 0, m0, m1, n0, corr32, mf, lo, hi, zy, orow, out, 1, 0)
            if osize == 2:
                return _epilogue_f32_rows64(T, 0, m0, m1, n0, corr32, mf, lo, hi, zy, orow, out, 2, 0)
        if osize == 1:
            return _epilogue_f32_body(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, 1, out, 1, R)
        if osize == 2:
            return _epilogue_f32_body(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, 1, out, 2, R)
    if osize == 1:
        return _epilogue_f32_cols(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, 1, R)
    if osize == 2:
        return _epilogue_f32_cols(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, 2, R)
    return _epilogue_f32_body(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, osize, R)


PACK_S8 = 1     # _epilogue_f32_rows64: one-byte rows leave through signed packs
PACK_U8 = 2     # ... through unsigned packs (0: one narrowing store per vector)


@njit(cache=True, nogil=True, inline="always")
def _epilogue_f32_rows64(T, t0, m0, m1, n0, corr32, mf, lo, hi, zy, orow, out, osize, pack):
    """:func:`_epilogue_f32_body` for whole rows of 64 contiguous outputs (``sn`` = 1, ``n1 -
    n0`` = 64, ``lo <= hi``), row ``m`` from ``T[t0 + 64 (m - m0)]``: the four vectors of
    correction and scale stay in registers across the rows and each row is four straight-line
    vector steps (:func:`_ep_row64`; measured 0.2 ns per output through the general loop, whose
    per-vector bounds and reloads cost more than the arithmetic). ``pack``: see
    :func:`_ep_row64` and :func:`_row64_pack`. Inlined: a compiled call costs two
    reference-count atomics per array argument."""
    c0 = _vload(corr32, n0)
    c1 = _vload(corr32, n0 + 16)
    c2 = _vload(corr32, n0 + 32)
    c3 = _vload(corr32, n0 + 48)
    s0 = _vload(mf, n0)
    s1 = _vload(mf, n0 + 16)
    s2 = _vload(mf, n0 + 32)
    s3 = _vload(mf, n0 + 48)
    cnt = _vzero()
    for m in range(m0, m1):
        o = orow[m]
        if o >= 0:
            cnt = _ep_row64(T, t0 + (m - m0) * NR, out, o + n0, c0, c1, c2, c3, s0, s1, s2, s3, lo, hi, zy, osize, pack, cnt)
    return _vhsum(cnt)


@njit(cache=True, nogil=True)
def _row64_pack(lo, hi, zy, osize):
    """The ``pack`` of :func:`_ep_row64` for results clamped to [lo, hi] before ``zy``: the packs
    saturate, so they equal the byte truncation only for results inside one byte range and lanes
    (before ``zy``) inside int16."""
    if osize == 1 and -32768 <= lo and hi <= 32767:
        if -128 <= lo + zy and hi + zy <= 127:
            return PACK_S8
        if 0 <= lo + zy and hi + zy <= 255:
            return PACK_U8
    return 0


@njit(cache=True, nogil=True, inline="always")
def _ep_row64(T, t, out, o, c0, c1, c2, c3, s0, s1, s2, s3, lo, hi, zy, osize, pack, cnt):
    """One row of 64 outputs, requantized the ONNX Runtime float32 way: ``T[t:t + 64]`` (int32)
    plus the correction ``c0..c3``, times the scales ``s0..s3``, clamped to [lo, hi], rounded
    half to even, plus ``zy``, to ``out`` elements ``o..o + 63`` of ``osize`` bytes; returns
    ``cnt`` plus one in each lane per clamped value (:func:`_vcount_clamp_acc`). With ``pack``
    (a literal: PACK_S8 / PACK_U8, see :func:`_row64_pack`) the row leaves as one 64-byte store
    (:func:`_vpack4_st8`, which also adds ``zy``): 0.144 -> 0.10 ns per output in isolation."""
    f0 = _vcvt_mul(_vadd(_vload(T, t), c0), s0)
    f1 = _vcvt_mul(_vadd(_vload(T, t + 16), c1), s1)
    f2 = _vcvt_mul(_vadd(_vload(T, t + 32), c2), s2)
    f3 = _vcvt_mul(_vadd(_vload(T, t + 48), c3), s3)
    cnt = _vcount_clamp_acc(_vcount_clamp_acc(_vcount_clamp_acc(_vcount_clamp_acc(cnt, f0, lo, hi), f1, lo, hi),
                                              f2, lo, hi), f3, lo, hi)
    if pack == PACK_S8 or pack == PACK_U8:
        # zy joins between the packs (_vpack4_st8); the lanes lie in [lo, hi], inside int16
        r0 = _vclamp_rint(f0, lo, hi, 0)
        r1 = _vclamp_rint(f1, lo, hi, 0)
        r2 = _vclamp_rint(f2, lo, hi, 0)
        r3 = _vclamp_rint(f3, lo, hi, 0)
        if pack == PACK_S8:
            _vpack4_st8(out, o, r0, r1, r2, r3, zy, True)
        else:
            _vpack4_st8(out, o, r0, r1, r2, r3, zy, False)
    else:
        _vput(out, o, _vclamp_rint(f0, lo, hi, zy), osize)
        _vput(out, o + 16, _vclamp_rint(f1, lo, hi, zy), osize)
        _vput(out, o + 32, _vclamp_rint(f2, lo, hi, zy), osize)
        _vput(out, o + 48, _vclamp_rint(f3, lo, hi, zy), osize)
    return cnt


# ---------------------------------------------------------------------------------------
# Channel-major outputs (NCHW, ``sn`` > 1). A block of 16 rows whose outputs are consecutive
# (``orow[m + i] = orow[m] + i``) is requantized row-wise as for contiguous rows (16 channels
# per vector, the panel's constants in registers), then the 16 x 16 int32 results are
# transposed in registers and narrowed to the output width on the way (:func:`_vtr16_put`), so
# that each channel's 16 outputs leave in one store. Blocks that are not consecutive go the
# row-wise way with one store per element.
# ---------------------------------------------------------------------------------------

def _tr16_plan(width):
    """Shuffle network of :func:`_vtr16_put` for outputs of ``width`` (8, 16, 32) bits, over
    vectors of ``width``-bit elements: the stages, each a list of ``(a, b, mask)`` (vector k of
    the stage = shufflevector(v[a], v[b], mask) of the previous stage's vectors; None = don't
    care), and the number ``cpv`` of channels per final vector (channel ``k`` = elements ``16 (k
    % cpv)`` .. ``+ 15`` of final vector ``k // cpv``, rows in order). Input vector ``i`` is row
    ``i``: the low ``width`` bits of its int32 lane ``k`` are channel ``k``. The masks are
    derived by tracking which (row, channel) each element holds (and checked by the tests)."""
    per, step = 512 // width, 32 // width
    held = [[(i, p // step) if p % step == 0 else None for p in range(per)] for i in range(16)]
    stages = []

    def stage(spec):     # spec: (a, b, target contents)
        nonlocal held
        st = []
        for a, b, target in spec:
            src = held[a] + held[b]
            st.append((a, b, [None if t is None else src.index(t) for t in target]))
        stages.append(st)
        held = [list(t) for _, _, t in spec]

    def cols(k0, k1, rows):     # channel-major target: element 16 (k - k0) + i (or i's rank in rows)
        return [(i, k) for k in range(k0, k1) for i in rows]
    if width == 8:
        # pairs of rows' low bytes, the even pairs to the low half, the odd ones to the high half;
        # then halves merged (a blend): 4 rows x 16 channels per vector
        stage([(2 * j, 2 * j + 1, [None] * 32 * (j % 2) + [(2 * j + a, k) for a in range(2) for k in range(16)]
                + [None] * 32 * (1 - j % 2)) for j in range(8)])
        stage([(2 * h, 2 * h + 1, held[2 * h][:32] + held[2 * h + 1][32:]) for h in range(4)])
        # 8 rows x 8 channels (vector 2 h + g: rows 4h.. and 4h + 8.., channels 8g..), then 16 x 4
        stage([(h, h + 2, cols(8 * g, 8 * g + 8, list(range(4 * h, 4 * h + 4)) + list(range(4 * h + 8, 4 * h + 12))))
               for h in range(2) for g in range(2)])
        stage([(g, 2 + g, cols(8 * g + 4 * e, 8 * g + 4 * e + 4, range(16))) for g in range(2) for e in range(2)])
    elif width == 16:
        def rows(blocks):
            return sorted(i for b in blocks for i in (2 * b, 2 * b + 1))
        # pairs of rows' low words (2 x 16), then blocks of 4 x 8 (vector 2 j + h: row pairs j,
        # j + 4, channels 8h..), 8 x 4 (vector 4 j + 2 h + g), 16 x 2 (vector 4 h + 2 g + e)
        stage([(2 * j, 2 * j + 1, [(2 * j + a, k) for a in range(2) for k in range(16)]) for j in range(8)])
        stage([(j, j + 4, [(i, k) for i in rows([j, j + 4]) for k in range(8 * h, 8 * h + 8)])
               for j in range(4) for h in range(2)])
        stage([(2 * j + h, 2 * j + 4 + h, cols(8 * h + 4 * g, 8 * h + 4 * g + 4, rows([j, j + 2, j + 4, j + 6])))
               for j in range(2) for h in range(2) for g in range(2)])
        stage([(2 * h + g, 4 + 2 * h + g, cols(8 * h + 4 * g + 2 * e, 8 * h + 4 * g + 2 * e + 2, range(16)))
               for h in range(2) for g in range(2) for e in range(2)])
    else:
        stages = _tr16_stages()
    return stages, 32 // width


def _tr16_stages():
    """The int32 network: unpack 32-bit, unpack 64-bit (within 128-bit lanes), then two
    128-bit lane shuffles; lane i of final vector k = lane k of input vector i."""
    lo32 = [x for q in range(4) for x in (4 * q, 16 + 4 * q, 4 * q + 1, 17 + 4 * q)]
    hi32 = [x for q in range(4) for x in (4 * q + 2, 18 + 4 * q, 4 * q + 3, 19 + 4 * q)]
    lo64 = [x for q in range(4) for x in (4 * q, 4 * q + 1, 16 + 4 * q, 17 + 4 * q)]
    hi64 = [x for q in range(4) for x in (4 * q + 2, 4 * q + 3, 18 + 4 * q, 19 + 4 * q)]

    def lanes(sel):     # 128-bit lanes (source 0 / 1, lane) -> element mask
        return [16 * src + 4 * q + e for src, q in sel for e in range(4)]
    s1, s2, s3, s4 = [], [], [], [None] * 16
    for i in range(8):
        s1 += [(2 * i, 2 * i + 1, lo32), (2 * i, 2 * i + 1, hi32)]
    for i in range(4):   # then vector 4 i + c, 128-bit lane q: rows 4 i .. 4 i + 3 of channel 4 q + c
        s2 += [(4 * i, 4 * i + 2, lo64), (4 * i, 4 * i + 2, hi64), (4 * i + 1, 4 * i + 3, lo64),
               (4 * i + 1, 4 * i + 3, hi64)]
    a, b = lanes([(0, 0), (0, 1), (1, 0), (1, 1)]), lanes([(0, 2), (0, 3), (1, 2), (1, 3)])
    for c in range(4):
        s3 += [(c, 4 + c, a), (c, 4 + c, b), (8 + c, 12 + c, a), (8 + c, 12 + c, b)]
    e, o = lanes([(0, 0), (0, 2), (1, 0), (1, 2)]), lanes([(0, 1), (0, 3), (1, 1), (1, 3)])
    for c in range(4):
        s4[c], s4[4 + c] = (4 * c, 4 * c + 2, e), (4 * c, 4 * c + 2, o)
        s4[8 + c], s4[12 + c] = (4 * c + 1, 4 * c + 3, e), (4 * c + 1, 4 * c + 3, o)
    return [s1, s2, s3, s4]


_TR16_NET = {w: _tr16_plan(8 * w) for w in (1, 2, 4)}


def _mask_const(mask):
    """A shufflevector mask; don't-care entries (None) as 0 (llvmlite accepts no undef there)."""
    return ir.Constant(ir.VectorType(_I32, len(mask)), [0 if x is None else x for x in mask])


@intrinsic
def _vtr16_put(typingctx, out, o, sn, rows, osize, valid):
    """Transposed store of a 16 x 16 block: ``rows`` = 16 Zmm (row i, int32 lane k = channel
    k); for each channel ``k < valid`` the 16 consecutive elements ``o + k * sn + i`` (``osize``
    bytes each, of the uint8 array ``out``) := lane k of rows 0..15, truncated to ``osize``
    bytes as :func:`_vput` does. ``osize``: a literal 1, 2 or 4. The shuffles narrow on the way
    (:func:`_tr16_plan`: 20 shuffles for bytes, 32 for 16-bit, 64 for 32-bit elements; LLVM
    emits ~36, 32 and 64 instructions), against 16 scalar loads and inserts per channel for a
    column gather. Memory other than the ``valid`` channels' outputs is not touched."""
    if not (isinstance(rows, types.UniTuple) and rows.count == 16 and rows.dtype == zmm
            and isinstance(osize, types.IntegerLiteral) and osize.literal_value in _TR16_NET):
        return None
    w = osize.literal_value
    stages, cpv = _TR16_NET[w]
    vt = ir.VectorType(ir.IntType(8 * w), 64 // w)
    st = ir.VectorType(ir.IntType(8 * w), 16)     # one channel's 16 outputs
    i64 = ir.IntType(64)

    def codegen(context, builder, sig, args):
        v = [builder.bitcast(x, vt) for x in cgutils.unpack_tuple(builder, args[3], 16)]
        for stage in stages:
            v = [builder.shuffle_vector(v[a], v[b], _mask_const(m)) for a, b, m in stage]
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        o = context.cast(builder, args[1], sig.args[1], types.int64)
        sn = context.cast(builder, args[2], sig.args[2], types.int64)
        valid = context.cast(builder, args[5], sig.args[5], types.int64)
        for k in range(16):
            x = v[k // cpv]
            if cpv > 1:
                x = builder.shuffle_vector(x, ir.Constant(vt, ir.Undefined),
                                           _mask_const(list(range(16 * (k % cpv), 16 * (k % cpv) + 16))))
            off = builder.mul(builder.add(o, builder.mul(sn, ir.Constant(i64, k))), ir.Constant(i64, w))
            with builder.if_then(builder.icmp_signed(">", valid, ir.Constant(i64, k)), likely=True):
                p = builder.gep(arr.data, [off])
                builder.store(x, builder.bitcast(p, st.as_pointer()), align=1)
        return context.get_dummy_value()
    return types.void(out, o, sn, rows, osize, valid), codegen


@intrinsic
def _vcount_clamp(typingctx, f, lo, hi, nvalid):
    """Number of the first ``nvalid`` float32 lanes of ``f`` that the clamp of
    :func:`_vclamp_rint` changes. For ``lo <= hi`` these are the lanes :func:`_vcount_out`
    counts (below ``lo`` or above ``hi``; NaN in neither), with one compare instead of two:
    the clamp's own selects are the same instructions as in :func:`_vclamp_rint` (LLVM keeps
    one copy)."""
    def codegen(context, builder, sig, args):
        ff = _as_f(builder, args[0])

        fc = _clamp_f32(builder, ff, args[1], args[2])
        return _count_first(context, builder, builder.fcmp_ordered("!=", fc, ff), args[3], sig.args[3])
    return types.int64(f, lo, hi, nvalid), codegen


@intrinsic
def _vcount_clamp_acc(typingctx, acc, f, lo, hi):
    """``acc`` + 1 in the float32 lanes of ``f`` that the clamp of :func:`_vclamp_rint` changes
    (:func:`_vcount_clamp` without leaving the vector unit: one compare and a masked add per
    vector instead of two compares, a mask move and a popcount; :func:`_vhsum` at the end).

    The vector of ones passes through an empty inline-asm statement: with a constant, LLVM
    rewrites ``select(m, acc + 1, acc)`` as ``acc - sext(m)`` (``vpmovm2d`` + ``vpsubd``, two
    uops on the two 512-bit ports), with an opaque value it keeps one masked ``vpaddd``
    (0.125 -> 0.11 ns per output in isolation)."""
    def codegen(context, builder, sig, args):
        ff = _as_f(builder, args[1])

        fc = _clamp_f32(builder, ff, args[2], args[3])
        changed = builder.fcmp_ordered("!=", fc, ff)
        ones = builder.call(ir.InlineAsm(ir.FunctionType(_V16, [_V16]), "", "=v,0"), [ir.Constant(_V16, [1] * 16)])
        return builder.select(changed, builder.add(args[0], ones), args[0])
    return zmm(acc, f, lo, hi), codegen


@intrinsic
def _vhsum(typingctx, v):
    """Sum of the 16 int32 lanes (wrapping), as int64."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, [_V16]),
                                            "llvm.vector.reduce.add.v16i32")
        return builder.sext(builder.call(fn, [args[0]]), ir.IntType(64))
    return types.int64(v), codegen


# vpermd indices that put the dwords of packsswb(packssdw(a, b), packssdw(c, d)) back in order:
# the packs work per 128-bit lane, so lane L holds 4 bytes each of a, b, c, d from lane L
_PACK4_ORDER = [4 * (q % 4) + q // 4 for q in range(16)]


@intrinsic(prefer_literal=True)
def _vpack4_st8(typingctx, arr, off, a, b, c, d, zy, signed):
    """64 bytes at byte ``off`` of ``arr`` := the int32 lanes of a, b, c, d plus ``zy``, in
    order, narrowed with saturation (to int16, then to signed bytes with ``signed``, a literal,
    unsigned without); ``zy`` is added to the int16 words between the two packs (two adds per
    64 outputs instead of four). Equal to truncation of the exact sum when the lanes lie in
    int16 and the sums inside the byte range, which the callers' clamp guarantees (lanes in
    [lo, hi] with lo + zy, hi + zy inside one byte range); three packs, one dword permute and
    one store instead of four ``vpmovdb`` (two uops each)."""
    sg = signed.literal_value

    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])

        def call(name, ret, xs):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, [x.type for x in xs]), name)
            return builder.call(fn, xs)
        z = builder.trunc(context.cast(builder, args[6], sig.args[6], types.int64), ir.IntType(16))
        zv = builder.shuffle_vector(builder.insert_element(ir.Constant(_V32W, ir.Undefined), z, ir.Constant(_I32, 0)),
                                    ir.Constant(_V32W, ir.Undefined), ir.Constant(ir.VectorType(_I32, 32), None))
        ab = builder.add(call("llvm.x86.avx512.packssdw.512", _V32W, [args[2], args[3]]), zv)
        cd = builder.add(call("llvm.x86.avx512.packssdw.512", _V32W, [args[4], args[5]]), zv)
        v = call("llvm.x86.avx512.packsswb.512" if sg else "llvm.x86.avx512.packuswb.512", _V64B, [ab, cd])
        v = call("llvm.x86.avx512.permvar.si.512", _V16, [builder.bitcast(v, _V16), ir.Constant(_V16, _PACK4_ORDER)])
        builder.store(v, builder.bitcast(p, _V16.as_pointer()), align=1)
        return context.get_dummy_value()
    return types.void(arr, off, a, b, c, d, zy, signed), codegen


@intrinsic
def _vlane(typingctx, v, i):
    """Lane ``i`` (0..15) of a Zmm, as int32."""
    def codegen(context, builder, sig, args):
        i = builder.trunc(context.cast(builder, args[1], sig.args[1], types.int64), _I32)
        return builder.extract_element(args[0], i)
    return types.int32(v, i), codegen


@njit(cache=True, nogil=True, inline="always")
def _run16(orow, m):
    """Whether rows ``m .. m + 15`` have the consecutive outputs ``orow[m] + i`` (orow[m] >= 0)."""
    o = orow[m]
    if o < 0:
        return False
    for i in range(1, 16):
        if orow[m + i] != o + i:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _f32_row(T, t, c, s, lo, hi, zy, valid):
    """One row of 16 channels of :func:`_epilogue_f32_body` (``lo <= hi``): (results, number
    of the first ``valid`` lanes clamped)."""
    f = _vcvt_mul(_vadd(_vload(T, t), c), s)
    return _vclamp_rint(f, lo, hi, zy), _vcount_clamp(f, lo, hi, valid)


@njit(cache=True, nogil=True, inline="always")
def _f32_block(T, t, c, s, lo, hi, zy, out, o, sn, osize, valid):
    """Tile rows at ``t``, ``t + 64`` .. ``t + 15 * 64`` x 16 channels (correction ``c``, scale
    ``s``; the first ``valid`` stored) of :func:`_epilogue_f32_cols`: outputs ``o + k * sn +
    i``. Returns the clamp count."""
    r0, k0 = _f32_row(T, t, c, s, lo, hi, zy, valid)
    r1, k1 = _f32_row(T, t + NR, c, s, lo, hi, zy, valid)
    r2, k2 = _f32_row(T, t + 2 * NR, c, s, lo, hi, zy, valid)
    r3, k3 = _f32_row(T, t + 3 * NR, c, s, lo, hi, zy, valid)
    r4, k4 = _f32_row(T, t + 4 * NR, c, s, lo, hi, zy, valid)
    r5, k5 = _f32_row(T, t + 5 * NR, c, s, lo, hi, zy, valid)
    r6, k6 = _f32_row(T, t + 6 * NR, c, s, lo, hi, zy, valid)
    r7, k7 = _f32_row(T, t + 7 * NR, c, s, lo, hi, zy, valid)
    r8, k8 = _f32_row(T, t + 8 * NR, c, s, lo, hi, zy, valid)
    r9, k9 = _f32_row(T, t + 9 * NR, c, s, lo, hi, zy, valid)
    r10, k10 = _f32_row(T, t + 10 * NR, c, s, lo, hi, zy, valid)
    r11, k11 = _f32_row(T, t + 11 * NR, c, s, lo, hi, zy, valid)
    r12, k12 = _f32_row(T, t + 12 * NR, c, s, lo, hi, zy, valid)
    r13, k13 = _f32_row(T, t + 13 * NR, c, s, lo, hi, zy, valid)
    r14, k14 = _f32_row(T, t + 14 * NR, c, s, lo, hi, zy, valid)
    r15, k15 = _f32_row(T, t + 15 * NR, c, s, lo, hi, zy, valid)
    _vtr16_put(out, o, sn, (r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15), osize, valid)
    return k0 + k1 + k2 + k3 + k4 + k5 + k6 + k7 + k8 + k9 + k10 + k11 + k12 + k13 + k14 + k15


@njit(cache=True, nogil=True)
def _epilogue_f32_cols(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, osize, R):
    """:func:`_epilogue_f32_body` for channel-major outputs (NCHW, ``sn`` > 1): 16 rows whose
    outputs are consecutive (``orow[m + i] = orow[m] + i``) go 16 channels at a time through
    the row-wise arithmetic, then a transposing store (:func:`_vtr16_put`): one store of 16
    consecutive outputs per channel. Other row blocks go through the row-wise function;
    bounds ``lo > hi`` (the one-compare clamp count needs ``lo <= hi``) and outputs wider than
    2 bytes (not the float path's) through the column-gather twin
    :func:`_epilogue_f32_cols_vcol`. Bit-exact with both (values, clamp count)."""
    if lo <= hi:
        if osize == 1:
            return _f32_cols(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, 1, R)
        if osize == 2:
            return _f32_cols(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, 2, R)
    return _epilogue_f32_cols_vcol(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, osize, R)


@njit(cache=True, nogil=True)
def _f32_cols(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, osize, R):
    """:func:`_epilogue_f32_cols` with a literal ``osize``: rows in blocks of 16 from ``m0``;
    each stretch of consecutive-output blocks in one call of :func:`_f32_cols_run` (its loop
    holds no call, so nothing in it is spilled around one: measured ~30 % faster than
    deciding per block inside the loop)."""
    clamped = 0
    m = m0
    while m < m1:
        e = m
        while e + 16 <= m1 and _run16(orow, e):
            e += 16
        if e > m:
            clamped += _f32_cols_run(T[(m - m0) * NR:], m, e, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, osize)
            m = e
        else:
            mb = min(16, m1 - m)
            clamped += _epilogue_f32_body(T[(m - m0) * NR:], m, m + mb, n0, n1, corr32, mf, lo, hi, zy, orow, sn,
                                          out, osize, R)
            m += mb
    return clamped


@njit(cache=True, nogil=True)
def _f32_cols_run(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, osize):
    """Rows ``m0 .. m1`` (blocks of 16 with consecutive outputs) x channels ``n0 .. n1`` of
    :func:`_epilogue_f32_cols`, panel by panel (16 channels, their correction and scale in
    registers)."""
    clamped = 0
    for j in range((n1 - n0 + 15) // 16):
        nb = n0 + 16 * j
        valid = min(16, n1 - nb)
        c = _vload(corr32, nb)
        s = _vload(mf, nb)
        for m in range(m0, m1, 16):
            clamped += _f32_block(T, (m - m0) * NR + 16 * j, c, s, lo, hi, zy, out, orow[m] + nb * sn, sn, osize,
                                  valid)
    return clamped


@njit(cache=True, nogil=True)
def _epilogue_f32_cols_vcol(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, osize, R):
    """Twin of :func:`_epilogue_f32_cols` (same arguments and results) that reads each tile
    column with 16 scalar loads (:func:`_vcol`) instead of transposing: 16 rows whose outputs
    are consecutive go one channel at a time, other row blocks through the row-wise function.
    Kept as the plain reference of the transposed version (tests, benchmarks)."""
    clamped = 0
    m = m0
    while m < m1:
        mb = min(16, m1 - m)
        o = orow[m]
        run = mb == 16 and o >= 0
        if run:
            for i in range(1, 16):
                if orow[m + i] != o + i:
                    run = False
                    break
        if run:
            base = (m - m0) * NR - n0
            for n in range(n0, n1):
                f = _vcvt_mul(_vadd(_vcol(T, base + n), _vsplat(corr32[n])), _vsplat_f32(mf[n]))
                clamped += _vcount_out(f, lo, hi, 16)
                _vput(out, o + n * sn, _vclamp_rint(f, lo, hi, zy), osize)
        else:
            clamped += _epilogue_f32_body(T[(m - m0) * NR:], m, m + mb, n0, n1, corr32, mf, lo, hi, zy, orow, sn,
                                          out, osize, R)
        m += mb
    return clamped


@njit(cache=True, nogil=True)
def _epilogue_f32_body(T, m0, m1, n0, n1, corr32, mf, lo, hi, zy, orow, sn, out, osize, R):
    """ONNX Runtime scheme on 16 lanes at a time: a lane-wise transcription of
    :func:`hwsim.kernels.fixedpoint.scale_f32_rne` (float32 product, float clamp counted,
    rne) plus the zero point; int32 tile only, outputs of at most 16 bits (float32 bounds
    exact). ``corr32``/``mf`` are padded to whole panels. Rows with ``orow[m] < 0`` are
    skipped. ``R``: 16 int32 of scratch (passed in: an allocation per call costs more than
    the 32 rows it serves). Returns the clamp count."""
    clamped = 0
    nv = (n1 - n0 + 15) // 16
    for m in range(m0, m1):
        o = orow[m]
        if o < 0:
            continue
        for j in range(nv):
            nb = n0 + 16 * j
            valid = min(16, n1 - nb)
            f = _vcvt_mul(_vadd(_vload(T, (m - m0) * NR + 16 * j), _vload(corr32, nb)), _vload(mf, nb))
            clamped += _vcount_out(f, lo, hi, valid)
            r = _vclamp_rint(f, lo, hi, zy)
            if sn == 1 and valid == 16:
                _vput(out, o + nb, r, osize)
            else:
                _vstore(R, 0, r)
                for lane in range(valid):
                    _put(out, o + (nb + lane) * sn, R[lane], osize)
    return clamped


@njit(cache=True, nogil=True)
def _epilogue(T, T64, blocked, m0, m1, n0, n1, corr, orow, sn, out, osize,
              mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd):
    """See :func:`_epilogue_body`; contiguous rows of 1- or 2-byte outputs are called with
    literal ``sn`` / ``osize`` (compiled with the store width known)."""
    if sn == 1 and mode == 1:
        if osize == 1:
            return _epilogue_body(T, T64, blocked, m0, m1, n0, n1, corr, orow, 1, out, 1, 1, code, mf, mult, m0s,
                                  shift, bterm, zy, amin, amax, rnd)
        if osize == 2:
            return _epilogue_body(T, T64, blocked, m0, m1, n0, n1, corr, orow, 1, out, 2, 1, code, mf, mult, m0s,
                                  shift, bterm, zy, amin, amax, rnd)
    return _epilogue_body(T, T64, blocked, m0, m1, n0, n1, corr, orow, sn, out, osize, mode, code, mf, mult, m0s,
                          shift, bterm, zy, amin, amax, rnd)


# ---------------------------------------------------------------------------------------
# TFLite 16x8 epilogue, 8 int64 lanes per zmm: every value below is a Zmm whose 512 bits are
# read as <8 x i64> (the intrinsics bitcast). The scalar twin is _epilogue_16x8_rows.
#
# Per channel n the scalar function computes, all in wrapping int64 (fp.wrap_int32 last):
#     x = ((acc + corr[n]) * m + 2^(t-1)) >> t,   t = 15 - shift[n],   m = m0s[n] < 2^15
# which is the same as ((acc * m) + C[n]) >> t with C[n] = corr[n] * m + 2^(t-1) (mod 2^64),
# so the per-channel constant is folded once per call. For an int32 accumulator (or the lo /
# hi int32 halves of the W8A16 pair, acc = hi * 256 + lo) the product is vpmuldq (signed
# 32 x 32 -> 64, exact: |m|, |256 m| < 2^31) on the even int32 lanes and on the odd ones
# shifted down: the two halves come back in channel order by interleaving their low dwords.
# The rest is on 16 int32 lanes: wrap_int32(wrap_int32(x) + zy) is an int32 add, the clamp a
# max / min with the bounds cut to int32 (exact whenever _v16x8_ok), counted as lanes the clamp
# changed. Tails (channels not a multiple of 16): masked loads of the per-channel constants,
# masked stores; the tile rows are read whole (64 entries each, always allocated).
# ---------------------------------------------------------------------------------------

_I64 = ir.IntType(64)
_V8Q = ir.VectorType(_I64, 8)
_V16Q = ir.VectorType(_I64, 16)
_I32MIN = -2147483648
_I32MAX = 2147483647


def _q(builder, v):
    return builder.bitcast(v, _V8Q)


def _qconst(k):
    return ir.Constant(_V8Q, [k] * 8)


@intrinsic
def _vsplat64(typingctx, x):
    """An int64 broadcast to 8 lanes."""
    def codegen(context, builder, sig, args):
        x = context.cast(builder, args[0], sig.args[0], types.int64)
        v = builder.insert_element(ir.Constant(_V8Q, ir.Undefined), x, ir.Constant(_I32, 0))
        v = builder.shuffle_vector(v, ir.Constant(_V8Q, ir.Undefined), ir.Constant(ir.VectorType(_I32, 8), None))
        return builder.bitcast(v, _V16)
    return zmm(x), codegen


@intrinsic
def _vld64_even(typingctx, arr, idx, n):
    """8 int64: lane k = ``arr[idx + 2k]`` if ``2k < n`` else 0 (a masked load of 16
    elements, lanes at or beyond ``n`` not read, then the even ones)."""
    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        p = builder.bitcast(p, _I64.as_pointer())
        n = context.cast(builder, args[2], sig.args[2], types.int64)
        mt = ir.VectorType(ir.IntType(1), 16)
        lanes = ir.Constant(_V16Q, list(range(16)))
        nv = builder.insert_element(ir.Constant(_V16Q, ir.Undefined), n, ir.Constant(_I32, 0))
        nv = builder.shuffle_vector(nv, ir.Constant(_V16Q, ir.Undefined), ir.Constant(_V16, None))
        mask = builder.icmp_signed("<", lanes, nv)
        fnty = ir.FunctionType(_V16Q, [p.type, _I32, mt, _V16Q])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.masked.load.v16i64.p0")
        v = builder.call(fn, [p, ir.Constant(_I32, 8), mask, ir.Constant(_V16Q, None)])
        e = builder.shuffle_vector(v, ir.Constant(_V16Q, ir.Undefined),
                                   ir.Constant(ir.VectorType(_I32, 8), list(range(0, 16, 2))))
        return builder.bitcast(e, _V16)
    return zmm(arr, idx, n), codegen


@intrinsic
def _vld64_n(typingctx, arr, idx, n):
    """8 int64: lane k = ``arr[idx + k]`` if ``k < n`` else 0 (masked load)."""
    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
        p = builder.bitcast(p, _I64.as_pointer())
        n = context.cast(builder, args[2], sig.args[2], types.int64)
        mt = ir.VectorType(ir.IntType(1), 8)
        nv = builder.insert_element(ir.Constant(_V8Q, ir.Undefined), n, ir.Constant(_I32, 0))
        nv = builder.shuffle_vector(nv, ir.Constant(_V8Q, ir.Undefined), ir.Constant(ir.VectorType(_I32, 8), None))
        mask = builder.icmp_signed("<", ir.Constant(_V8Q, list(range(8))), nv)
        fnty = ir.FunctionType(_V8Q, [p.type, _I32, mt, _V8Q])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.masked.load.v8i64.p0")
        v = builder.call(fn, [p, ir.Constant(_I32, 8), mask, ir.Constant(_V8Q, None)])
        return builder.bitcast(v, _V16)
    return zmm(arr, idx, n), codegen


def _make_q2(op, doc):
    @intrinsic
    def f(typingctx, a, b):
        def codegen(context, builder, sig, args):
            return builder.bitcast(getattr(builder, op)(_q(builder, args[0]), _q(builder, args[1])), _V16)
        return zmm(a, b), codegen
    f.__doc__ = doc
    return f


_vadd64 = _make_q2("add", "Lane-wise wrapping int64 addition.")
_vsub64 = _make_q2("sub", "Lane-wise wrapping int64 subtraction.")
_vmul64 = _make_q2("mul", "Lane-wise wrapping int64 multiplication (vpmullq).")
_vshl64 = _make_q2("shl", "Lane-wise int64 left shift by the lanes of b (0..63; vpsllvq).")
_vsra64 = _make_q2("ashr", "Lane-wise int64 arithmetic right shift by the lanes of b (0..63; vpsravq).")


@intrinsic
def _vmuldq(typingctx, x, m, odd):
    """8 int64: (int32 lane ``2k + odd`` of ``x``) * (int32 in the low half of int64 lane k
    of ``m``), exact (vpmuldq; the odd lanes shifted down first). ``odd``: literal 0 or 1."""
    if not isinstance(odd, types.IntegerLiteral):
        return None
    k = odd.literal_value

    def codegen(context, builder, sig, args):
        c32 = _qconst(32)
        x = _q(builder, args[0])
        x = builder.ashr(x, c32) if k else builder.ashr(builder.shl(x, c32), c32)
        m = _q(builder, args[1])
        m = builder.ashr(builder.shl(m, c32), c32)
        return builder.bitcast(builder.mul(x, m), _V16)
    return zmm(x, m, odd), codegen


@intrinsic
def _vlo32_eo(typingctx, e, o):
    """16 int32: lane 2k = low half of int64 lane k of ``e``, lane 2k + 1 = that of ``o``
    (int32 wraps; undoes the even / odd split of :func:`_vmuldq`)."""
    def codegen(context, builder, sig, args):
        idx = []
        for k in range(8):
            idx += [2 * k, 16 + 2 * k]
        return builder.shuffle_vector(args[0], args[1], ir.Constant(_V16, idx))
    return zmm(e, o), codegen


@intrinsic
def _vlo32_cat(typingctx, a, b):
    """16 int32: the low halves of the 8 int64 lanes of ``a``, then those of ``b`` (int32 wraps)."""
    def codegen(context, builder, sig, args):
        return builder.shuffle_vector(args[0], args[1], ir.Constant(_V16, list(range(0, 32, 2))))
    return zmm(a, b), codegen


@intrinsic
def _vmax32(typingctx, a, b):
    """Lane-wise signed int32 maximum."""
    def codegen(context, builder, sig, args):
        return builder.select(builder.icmp_signed(">", args[0], args[1]), args[0], args[1])
    return zmm(a, b), codegen


@intrinsic
def _vmin32(typingctx, a, b):
    """Lane-wise signed int32 minimum."""
    def codegen(context, builder, sig, args):
        return builder.select(builder.icmp_signed("<", args[0], args[1]), args[0], args[1])
    return zmm(a, b), codegen


@intrinsic
def _vcount_ne(typingctx, a, b, nvalid):
    """Number of the first ``nvalid`` (0..16) int32 lanes where ``a`` and ``b`` differ."""
    def codegen(context, builder, sig, args):
        return _count_first(context, builder, builder.icmp_signed("!=", args[0], args[1]), args[2], sig.args[2])
    return types.int64(a, b, nvalid), codegen


def _make_mstore(width):
    """A store of the first ``n`` (0..16) of 16 int32 lanes narrowed (or widened) to
    ``width`` bits at a *byte* offset of a uint8 array; the other lanes' memory is not touched."""
    vt = ir.VectorType(ir.IntType(width), 16)
    mt = ir.VectorType(ir.IntType(1), 16)

    @intrinsic
    def mst(typingctx, arr, off, v, n):
        def codegen(context, builder, sig, args):
            p = _elem_ptr(context, builder, sig.args[0], args[0], args[1])
            p = builder.bitcast(p, vt.as_pointer())
            x = args[2]
            if width < 32:
                x = builder.trunc(x, vt)
            elif width > 32:
                x = builder.sext(x, vt)
            n = builder.trunc(context.cast(builder, args[3], sig.args[3], types.int64), _I32)
            nv = builder.insert_element(ir.Constant(_V16, ir.Undefined), n, ir.Constant(_I32, 0))
            nv = builder.shuffle_vector(nv, ir.Constant(_V16, ir.Undefined), ir.Constant(_V16, None))
            mask = builder.icmp_signed("<", ir.Constant(_V16, list(range(16))), nv)
            fnty = ir.FunctionType(ir.VoidType(), [vt, p.type, _I32, mt])
            fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.store.v16i{width}.p0")
            builder.call(fn, [x, p, ir.Constant(_I32, 1), mask])
            return context.get_dummy_value()
        return types.void(arr, off, v, n), codegen
    return mst


_vmst8 = _make_mstore(8)
_vmst16 = _make_mstore(16)
_vmst32 = _make_mstore(32)
_vmst64 = _make_mstore(64)


@njit(cache=True, nogil=True, inline="always")
def _vput_n(out, i, r, osize, n):
    """Elements ``i..i+n-1`` (``n`` <= 16) of ``osize`` bytes := the first ``n`` int32 lanes of r."""
    if osize == 1:
        _vmst8(out, i, r, n)
    elif osize == 2:
        _vmst16(out, i * 2, r, n)
    elif osize == 4:
        _vmst32(out, i * 4, r, n)
    else:
        _vmst64(out, i * 8, r, n)


@njit(cache=True, nogil=True, inline="always")
def _kfold(m, s, c):
    """(m, C, t) from loaded multiplier ``m``, shift ``s`` and correction ``c`` lanes:
    ``t = 15 - s``, ``C = c * m + 2^(t - 1)`` (wrapping int64)."""
    one = _vsplat64(1)
    t = _vsub64(_vsplat64(15), s)
    return m, _vadd64(_vmul64(c, m), _vshl64(one, _vsub64(t, one))), t


@njit(cache=True, nogil=True, inline="always")
def _kconst_eo(m0s, shift, corr, nb, valid, odd):
    """Constants of the even (``odd`` = 0) or odd (1) channels of the 16 starting at ``nb``, of
    which ``valid`` are real (the others get m = 0, shift = 0)."""
    return _kfold(_vld64_even(m0s, nb + odd, valid - odd), _vld64_even(shift, nb + odd, valid - odd),
                  _vld64_even(corr, nb + odd, valid - odd))


@njit(cache=True, nogil=True, inline="always")
def _kconst_n(m0s, shift, corr, nb, valid):
    """Constants of the 8 consecutive channels starting at ``nb``, of which ``valid`` are real."""
    return _kfold(_vld64_n(m0s, nb, valid), _vld64_n(shift, nb, valid), _vld64_n(corr, nb, valid))


@njit(cache=True, nogil=True, inline="always")
def _kpanel(m0s, shift, corr, nb, valid):
    """Constants of the 16-channel panel at ``nb`` (``valid`` real channels) for
    :func:`_v16x8_lohi`: ``(me, mo, he, ho, ce, co, te, to)``, the multipliers of the even and
    odd channels, the same times 256 (for the high-byte sums), folded constants and shifts."""
    me, ce, te = _kconst_eo(m0s, shift, corr, nb, valid, 0)
    mo, co, to = _kconst_eo(m0s, shift, corr, nb, valid, 1)
    eight = _vsplat64(8)
    return me, mo, _vshl64(me, eight), _vshl64(mo, eight), ce, co, te, to


@njit(cache=True, nogil=True, inline="always")
def _kbounds(zy, amin, amax):
    """``(zv, lov, hiv)``: the zero point and the clamp bounds cut to int32, as 16 lanes."""
    return _vsplat(zy), _vsplat(max(amin, _I32MIN)), _vsplat(min(amax, _I32MAX))


@njit(cache=True, nogil=True)
def _v16x8_ok(amin, amax):
    """Whether the vector epilogues' int32 clamp is exact for these bounds: any ``amin <=
    amax`` that meets the int32 range (the scalar results are int32, so the bounds can then be
    cut to it); otherwise the callers use the scalar functions."""
    return amin <= amax and amin <= _I32MAX and amax >= _I32MIN


@njit(cache=True, nogil=True)
def _epilogue_16x8_lohi(T, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax):
    """TFLite 16x8 epilogue of the AMX W8A16 pair straight from its int32 tile sums, no int64
    buffer: channel ``n0 + 16 j + c`` (``n1 - n0 <= 32``) of row ``m`` has ``acc = hi * 256 +
    lo + corr[n]`` with ``lo = T[(m - m0) * 64 + 32 j + c]``, ``hi = T[(m - m0) * 64 + 32 j +
    16 + c]``; output element ``(m, n)`` is ``out[orow[m] + n]`` (``osize`` bytes, little-endian
    truncation), rows with ``orow[m] < 0`` skipped. Bit-exact with :func:`_epilogue_16x8_rows`
    on the combined ``T64`` (``m0s`` < 2^15, ``shift`` in [-31, 14] as params.py enforces).
    Returns the clamp count."""
    if not _v16x8_ok(amin, amax):
        return _epilogue_16x8_lohi_scalar(T, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax)
    if osize == 1:
        return _e16x8_lohi(T, m0, m1, n0, n1, corr, orow, out, 1, m0s, shift, zy, amin, amax)
    if osize == 2:
        return _e16x8_lohi(T, m0, m1, n0, n1, corr, orow, out, 2, m0s, shift, zy, amin, amax)
    return _e16x8_lohi(T, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax)


@njit(cache=True, nogil=True, inline="always")
def _v16x8_lohi(T, t, me, mo, he, ho, ce, co, te, to, zv, lov, hiv):
    """16 channels of one row from the lo (``T[t..t+15]``) and hi (``T[t+16..t+31]``) sums:
    ``(clamped values, values before the clamp)``, int32 lanes in channel order."""
    lo = _vload(T, t)
    hi = _vload(T, t + 16)
    e = _vadd64(_vadd64(_vmuldq(lo, me, 0), _vmuldq(hi, he, 0)), ce)
    d = _vadd64(_vadd64(_vmuldq(lo, mo, 1), _vmuldq(hi, ho, 1)), co)
    r = _vadd(_vlo32_eo(_vsra64(e, te), _vsra64(d, to)), zv)
    return _vmin32(_vmax32(r, lov), hiv), r


@njit(cache=True, nogil=True)
def _e16x8_lohi(T, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax):
    """:func:`_epilogue_16x8_lohi` on vectors (bounds checked by the caller): the constants
    of a 16-channel panel (multiplier, 256 x multiplier, folded constant, shift; even and odd
    lanes) stay in registers while the rows stream past; two whole panels (``n1 - n0 = 32``,
    the AMX driver's usual call) go together, a row at a time (measured ~10 % faster than
    panel by panel)."""
    zv, lov, hiv = _kbounds(zy, amin, amax)
    clamped = 0
    if n1 - n0 == 32:
        me, mo, he, ho, ce, co, te, to = _kpanel(m0s, shift, corr, n0, 16)
        me2, mo2, he2, ho2, ce2, co2, te2, to2 = _kpanel(m0s, shift, corr, n0 + 16, 16)
        for m in range(m0, m1):
            o = orow[m]
            if o < 0:
                continue
            t = (m - m0) * NR
            c, r = _v16x8_lohi(T, t, me, mo, he, ho, ce, co, te, to, zv, lov, hiv)
            clamped += _vcount_ne(c, r, 16)
            _vput(out, o + n0, c, osize)
            c, r = _v16x8_lohi(T, t + 32, me2, mo2, he2, ho2, ce2, co2, te2, to2, zv, lov, hiv)
            clamped += _vcount_ne(c, r, 16)
            _vput(out, o + n0 + 16, c, osize)
        return clamped
    for j in range((n1 - n0 + 15) // 16):
        nb = n0 + 16 * j
        valid = min(16, n1 - nb)
        me, mo, he, ho, ce, co, te, to = _kpanel(m0s, shift, corr, nb, valid)
        for m in range(m0, m1):
            o = orow[m]
            if o < 0:
                continue
            c, r = _v16x8_lohi(T, (m - m0) * NR + 32 * j, me, mo, he, ho, ce, co, te, to, zv, lov, hiv)
            clamped += _vcount_ne(c, r, valid)
            if valid == 16:
                _vput(out, o + nb, c, osize)
            else:
                _vput_n(out, o + nb, c, osize, valid)
    return clamped


@njit(cache=True, nogil=True)
def _epilogue_16x8_lohi_scalar(T, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax):
    """Scalar twin of :func:`_epilogue_16x8_lohi` (same arguments):
    :func:`_epilogue_16x8_lohi_cols_scalar` with contiguous outputs (``sn`` = 1)."""
    return _epilogue_16x8_lohi_cols_scalar(T, m0, m1, n0, n1, corr, orow, 1, out, osize, m0s, shift, zy, amin, amax)


@njit(cache=True, nogil=True)
def _epilogue_16x8_lohi_cols(T, m0, m1, n0, n1, corr, orow, sn, out, osize, m0s, shift, zy, amin, amax):
    """:func:`_epilogue_16x8_lohi` (same tile layout: ``n1 - n0 <= 32`` channels, lo sums at
    T columns ``32 j + c``, hi sums at ``32 j + 16 + c``) for channel-major outputs: element
    ``(m, n)`` is ``out[orow[m] + n * sn]`` (NCHW, ``sn`` = OH * OW), rows with ``orow[m] < 0``
    skipped. 16 rows whose outputs are consecutive go through :func:`_v16x8_lohi` row by row
    and a transposing store (:func:`_vtr16_put`); other rows (and 8-byte outputs) through the
    same vector arithmetic with one store per element; bounds :func:`_v16x8_ok` rejects
    through the scalar twin :func:`_epilogue_16x8_lohi_cols_scalar`. Bit-exact with it (and with
    :func:`_epilogue` on the combined ``T64``). Returns the clamp count."""
    if not _v16x8_ok(amin, amax):
        return _epilogue_16x8_lohi_cols_scalar(T, m0, m1, n0, n1, corr, orow, sn, out, osize, m0s, shift, zy, amin,
                                               amax)
    if osize == 1:
        return _e16x8_cols(T, m0, m1, n0, n1, corr, orow, sn, out, 1, m0s, shift, zy, amin, amax)
    if osize == 2:
        return _e16x8_cols(T, m0, m1, n0, n1, corr, orow, sn, out, 2, m0s, shift, zy, amin, amax)
    if osize == 4:
        return _e16x8_cols(T, m0, m1, n0, n1, corr, orow, sn, out, 4, m0s, shift, zy, amin, amax)
    return _e16x8_cols_rows(T, m0, m1, n0, n1, corr, orow, sn, out, osize, m0s, shift, zy, amin, amax)


@njit(cache=True, nogil=True)
def _e16x8_cols(T, m0, m1, n0, n1, corr, orow, sn, out, osize, m0s, shift, zy, amin, amax):
    """:func:`_epilogue_16x8_lohi_cols` with a literal ``osize`` (bounds checked): rows in
    blocks of 16 from ``m0``, stretches of consecutive-output blocks to :func:`_e16x8_cols_run`,
    the other blocks to :func:`_e16x8_cols_rows`."""
    clamped = 0
    m = m0
    while m < m1:
        e = m
        while e + 16 <= m1 and _run16(orow, e):
            e += 16
        if e > m:
            clamped += _e16x8_cols_run(T[(m - m0) * NR:], m, e, n0, n1, corr, orow, sn, out, osize, m0s, shift, zy,
                                       amin, amax)
            m = e
        else:
            mb = min(16, m1 - m)
            clamped += _e16x8_cols_rows(T[(m - m0) * NR:], m, m + mb, n0, n1, corr, orow, sn, out, osize, m0s, shift,
                                        zy, amin, amax)
            m += mb
    return clamped


@njit(cache=True, nogil=True, inline="always")
def _b16x8_row(T, t, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, valid):
    c, r = _v16x8_lohi(T, t, me, mo, he, ho, ce, co, te, to, zv, lov, hiv)
    return c, _vcount_ne(c, r, valid)


@njit(cache=True, nogil=True)
def _e16x8_cols_run(T, m0, m1, n0, n1, corr, orow, sn, out, osize, m0s, shift, zy, amin, amax):
    """Rows ``m0 .. m1`` (blocks of 16 with consecutive outputs) of :func:`_e16x8_cols`, panel
    by panel (the panel's constants in registers, as :func:`_e16x8_lohi`): per block 16 rows
    of :func:`_v16x8_lohi`, then one store of 16 consecutive outputs per channel."""
    zv, lov, hiv = _kbounds(zy, amin, amax)
    clamped = 0
    for j in range((n1 - n0 + 15) // 16):
        nb = n0 + 16 * j
        v = min(16, n1 - nb)
        me, mo, he, ho, ce, co, te, to = _kpanel(m0s, shift, corr, nb, v)
        for m in range(m0, m1, 16):
            t = (m - m0) * NR + 32 * j
            c0, k0 = _b16x8_row(T, t, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c1, k1 = _b16x8_row(T, t + NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c2, k2 = _b16x8_row(T, t + 2 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c3, k3 = _b16x8_row(T, t + 3 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c4, k4 = _b16x8_row(T, t + 4 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c5, k5 = _b16x8_row(T, t + 5 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c6, k6 = _b16x8_row(T, t + 6 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c7, k7 = _b16x8_row(T, t + 7 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c8, k8 = _b16x8_row(T, t + 8 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c9, k9 = _b16x8_row(T, t + 9 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c10, k10 = _b16x8_row(T, t + 10 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c11, k11 = _b16x8_row(T, t + 11 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c12, k12 = _b16x8_row(T, t + 12 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c13, k13 = _b16x8_row(T, t + 13 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c14, k14 = _b16x8_row(T, t + 14 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            c15, k15 = _b16x8_row(T, t + 15 * NR, me, mo, he, ho, ce, co, te, to, zv, lov, hiv, v)
            _vtr16_put(out, orow[m] + nb * sn, sn,
                       (c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15), osize, v)
            clamped += k0 + k1 + k2 + k3 + k4 + k5 + k6 + k7 + k8 + k9 + k10 + k11 + k12 + k13 + k14 + k15
    return clamped


@njit(cache=True, nogil=True)
def _e16x8_cols_rows(T, m0, m1, n0, n1, corr, orow, sn, out, osize, m0s, shift, zy, amin, amax):
    """Rows ``m0 .. m1`` of :func:`_e16x8_cols` whose outputs are not consecutive: the vector
    arithmetic of :func:`_e16x8_lohi`, each element stored on its own."""
    zv, lov, hiv = _kbounds(zy, amin, amax)
    clamped = 0
    for j in range((n1 - n0 + 15) // 16):
        nb = n0 + 16 * j
        valid = min(16, n1 - nb)
        me, mo, he, ho, ce, co, te, to = _kpanel(m0s, shift, corr, nb, valid)
        for m in range(m0, m1):
            o = orow[m]
            if o < 0:
                continue
            c, r = _v16x8_lohi(T, (m - m0) * NR + 32 * j, me, mo, he, ho, ce, co, te, to, zv, lov, hiv)
            clamped += _vcount_ne(c, r, valid)
            for lane in range(valid):
                _put(out, o + (nb + lane) * sn, _vlane(c, lane), osize)
    return clamped


@njit(cache=True, nogil=True)
def _epilogue_16x8_lohi_cols_scalar(T, m0, m1, n0, n1, corr, orow, sn, out, osize, m0s, shift, zy, amin, amax):
    """Scalar twin of :func:`_epilogue_16x8_lohi_cols` (same arguments): the combine of the
    AMX driver (``acc = 256 hi + lo``) and :func:`_epilogue_16x8_rows`'s arithmetic, element by
    element, output element ``(m, n)`` at ``orow[m] + n * sn``."""
    clamped = 0
    for m in range(m0, m1):
        o = orow[m]
        if o < 0:
            continue
        for n in range(n0, n1):
            j = (n - n0) // 16
            i = (m - m0) * NR + 32 * j + (n - n0) % 16
            acc = np.int64(T[i + 16]) * 256 + np.int64(T[i])
            r = fp.multiply_by_quantized_multiplier_16x8(acc + corr[n], m0s[n], shift[n])
            r = fp.wrap_int32(r + zy)
            lo_hit = r < amin
            hi_hit = r > amax
            clamped += lo_hit | hi_hit
            _put(out, o + n * sn, amin if lo_hit else (amax if hi_hit else r), osize)
    return clamped


@njit(cache=True, nogil=True)
def _epilogue_16x8_vec(T, T64, blocked, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax):
    """TFLite 16x8 epilogue of the tile (rows of 64, contiguous outputs ``out[orow[m] + n]``,
    ``n1 - n0 <= 64``) on vectors: int64 accumulators ``T64`` when ``blocked``, else the int32
    tile ``T``. Bit-exact with :func:`_epilogue_16x8_rows` / the per-element
    :func:`requantize_value`; the caller checks :func:`_v16x8_ok`. Returns the clamp count."""
    if blocked:
        if osize == 1:
            return _e16x8_t64(T64, m0, m1, n0, n1, corr, orow, out, 1, m0s, shift, zy, amin, amax)
        if osize == 2:
            return _e16x8_t64(T64, m0, m1, n0, n1, corr, orow, out, 2, m0s, shift, zy, amin, amax)
        return _e16x8_t64(T64, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax)
    if osize == 1:
        return _e16x8_t32(T, m0, m1, n0, n1, corr, orow, out, 1, m0s, shift, zy, amin, amax)
    if osize == 2:
        return _e16x8_t32(T, m0, m1, n0, n1, corr, orow, out, 2, m0s, shift, zy, amin, amax)
    return _e16x8_t32(T, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax)


@njit(cache=True, nogil=True)
def _e16x8_t64(T64, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax):
    """:func:`_epilogue_16x8_vec` on int64 accumulators: 16 channels = two vectors of 8
    (vpmullq by the multiplier, + the folded constant, vpsravq), per 16-channel block the
    constants in registers while the rows stream past."""
    zv, lov, hiv = _kbounds(zy, amin, amax)
    clamped = 0
    for j in range((n1 - n0 + 15) // 16):
        nb = n0 + 16 * j
        valid = min(16, n1 - nb)
        ma, ca, ta = _kconst_n(m0s, shift, corr, nb, valid)
        mb, cb, tb = _kconst_n(m0s, shift, corr, nb + 8, valid - 8)
        for m in range(m0, m1):
            o = orow[m]
            if o < 0:
                continue
            t = (m - m0) * NR + 16 * j
            a = _vadd64(_vmul64(_vload(T64, t), ma), ca)
            b = _vadd64(_vmul64(_vload(T64, t + 8), mb), cb)
            r = _vadd(_vlo32_cat(_vsra64(a, ta), _vsra64(b, tb)), zv)
            c = _vmin32(_vmax32(r, lov), hiv)
            clamped += _vcount_ne(c, r, valid)
            if valid == 16:
                _vput(out, o + nb, c, osize)
            else:
                _vput_n(out, o + nb, c, osize, valid)
    return clamped


@njit(cache=True, nogil=True)
def _e16x8_t32(T, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax):
    """:func:`_epilogue_16x8_vec` on the int32 tile: vpmuldq on the even and odd lanes."""
    zv, lov, hiv = _kbounds(zy, amin, amax)
    clamped = 0
    for j in range((n1 - n0 + 15) // 16):
        nb = n0 + 16 * j
        valid = min(16, n1 - nb)
        me, ce, te = _kconst_eo(m0s, shift, corr, nb, valid, 0)
        mo, co, to = _kconst_eo(m0s, shift, corr, nb, valid, 1)
        for m in range(m0, m1):
            o = orow[m]
            if o < 0:
                continue
            x = _vload(T, (m - m0) * NR + 16 * j)
            e = _vadd64(_vmuldq(x, me, 0), ce)
            d = _vadd64(_vmuldq(x, mo, 1), co)
            r = _vadd(_vlo32_eo(_vsra64(e, te), _vsra64(d, to)), zv)
            c = _vmin32(_vmax32(r, lov), hiv)
            clamped += _vcount_ne(c, r, valid)
            if valid == 16:
                _vput(out, o + nb, c, osize)
            else:
                _vput_n(out, o + nb, c, osize, valid)
    return clamped


@njit(cache=True, nogil=True)
def _epilogue_16x8_rows(T64, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax):
    """TFLite 16x8 on int64 accumulators, rows contiguous: the same scalar function in a flat
    loop over a row (values first, stores after) so LLVM can vectorise it; a function of its
    own so that it is compiled apart from the other schemes' branches."""
    clamped = 0
    R = np.empty(NR, np.int64)
    for m in range(m0, m1):
        base = (m - m0) * NR - n0
        o = orow[m]
        if o < 0:
            continue
        for n in range(n0, n1):
            r = fp.multiply_by_quantized_multiplier_16x8(T64[base + n] + corr[n], m0s[n], shift[n])
            r = fp.wrap_int32(r + zy)
            lo_hit = r < amin
            hi_hit = r > amax
            clamped += lo_hit | hi_hit
            R[n - n0] = amin if lo_hit else (amax if hi_hit else r)
        for n in range(n0, n1):
            _put(out, o + n, R[n - n0], osize)
    return clamped


@njit(cache=True, nogil=True)
def _epilogue_body(T, T64, blocked, m0, m1, n0, n1, corr, orow, sn, out, osize,
                   mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd):
    """Tile rows m0..m1 x channels n0..n1: ``acc = tile + corr[n]`` (int64), then
    mode 0: ``out = acc``; mode 1: ``out = requantize_value(acc, ...)`` — the portable
    path's own per-element function (:mod:`hwsim.kernels.requant`). Output element
    ``(m, n)`` is ``out[orow[m] + n * sn]``; rows with ``orow[m] < 0`` are skipped (padding
    rows of a tile). Returns the number of clamped outputs."""
    clamped = 0
    if mode == 0:
        for m in range(m0, m1):
            base = (m - m0) * NR - n0
            o = orow[m]
            if o < 0:
                continue
            for n in range(n0, n1):
                _put(out, o + n * sn, _acc_at(T, T64, blocked, base + n, corr[n]), osize)
        return 0
    if code == 0:
        lo = amin - zy
        hi = amax - zy
        if sn == 1:
            for m in range(m0, m1):
                base = (m - m0) * NR - n0
                o = orow[m]
                if o < 0:
                    continue
                for n in range(n0, n1):
                    r, k = fp.scale_f32_rne(_acc_at(T, T64, blocked, base + n, corr[n]), mf[n], lo, hi)
                    _put(out, o + n, r + zy, osize)
                    clamped += k
        else:
            for n in range(n0, n1):
                o = n * sn
                for m in range(m0, m1):
                    if orow[m] < 0:
                        continue
                    r, k = fp.scale_f32_rne(_acc_at(T, T64, blocked, (m - m0) * NR + n - n0, corr[n]),
                                            mf[n], lo, hi)
                    _put(out, orow[m] + o, r + zy, osize)
                    clamped += k
        return clamped
    if sn == 1 and code == 5 and _v16x8_ok(amin, amax):
        return _epilogue_16x8_vec(T, T64, blocked, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin,
                                  amax)
    if sn == 1 and code == 5 and blocked:
        return _epilogue_16x8_rows(T64, m0, m1, n0, n1, corr, orow, out, osize, m0s, shift, zy, amin, amax)
    for n in range(n0, n1):
        o = n * sn
        for m in range(m0, m1):
            if orow[m] < 0:
                continue
            v, k = requantize_value(_acc_at(T, T64, blocked, (m - m0) * NR + n - n0, corr[n]), code, mult[n],
                                    m0s[n], shift[n], bterm[n], zy, amin, amax, rnd)
            _put(out, orow[m] + o, v, osize)
            clamped += k
    return clamped


@njit(cache=True, nogil=True, parallel=True)
def _run(fam, A, rows, taps, tsteps, tbo, blocks, Bp, pstride, N, corr, orow, sn, out, osize,
         mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd, clamps, vec, corr32, cb):
    """All rows x all 64-channel panels with the microkernels of family ``fam`` (:data:`_FAM`:
    0 = 8-bit weights, 1 = int4 weights, 2 = 16-bit), K in ``blocks`` (tap ranges) summed in int64 when
    there is more than one, epilogue fused (see :func:`_epilogue`). Per-task clamp counts
    go to ``clamps``."""
    M = rows.shape[0]
    npan = (N + NR - 1) // NR
    nmb = (M + MB - 1) // MB
    nblk = blocks.shape[0] - 1
    for task in prange(nmb * npan):
        mb = task // npan
        p = task % npan
        m0 = mb * MB
        m1 = min(M, m0 + MB)
        T = np.empty(MB * NR, np.int32)
        T64 = np.zeros(MB * NR if nblk > 1 else 1, np.int64)
        for bi in range(nblk):
            t0 = blocks[bi]
            t1 = blocks[bi + 1]
            for c0 in range(t0, t1, cb):
                # cache block: cb taps of weights (about 16 KB) reused by all row tiles
                c1 = min(t1, c0 + cb)
                pb = p * pstride + tbo[c0]
                init = c0 != t0
                m = m0
                while m + MR <= m1:
                    r = rows[m:m + MR]
                    if fam == 0:
                        _mk_b8_6(A, r[0], r[1], r[2], r[3], r[4], r[5], taps, tsteps, c0, c1, Bp, pb,
                                 T[(m - m0) * NR:], init)
                    elif fam == 1:
                        _mk_b4_6(A, r[0], r[1], r[2], r[3], r[4], r[5], taps, tsteps, c0, c1, Bp, pb,
                                 T[(m - m0) * NR:], init)
                    else:
                        _mk_w16_6(A, r[0], r[1], r[2], r[3], r[4], r[5], taps, tsteps, c0, c1, Bp, pb,
                                  T[(m - m0) * NR:], init)
                    m += MR
                while m < m1:
                    if fam == 0:
                        _mk_b8_1(A, rows[m], taps, tsteps, c0, c1, Bp, pb, T[(m - m0) * NR:], init)
                    elif fam == 1:
                        _mk_b4_1(A, rows[m], taps, tsteps, c0, c1, Bp, pb, T[(m - m0) * NR:], init)
                    else:
                        _mk_w16_1(A, rows[m], taps, tsteps, c0, c1, Bp, pb, T[(m - m0) * NR:], init)
                    m += 1
            if nblk > 1:
                for i in range((m1 - m0) * NR):
                    T64[i] += T[i]
        if vec:
            clamps[task] = _epilogue_f32(T, m0, m1, p * NR, min(N, p * NR + NR), corr32, mf, amin - zy, amax - zy,
                                         zy, orow, sn, out, osize, np.empty(16, np.int32))
        else:
            clamps[task] = _epilogue(T, T64, nblk > 1, m0, m1, p * NR, min(N, p * NR + NR), corr, orow, sn, out,
                                     osize, mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd)



_FAM = {"b8": 0, "b4": 1, "w16": 2}
_INT32_MAX = 2 ** 31 - 1


def _to_nhwc(x, pt, pl, Hp, Wp, Cp, pad, xp=None):
    """x (N, C, H, W) -> (N, Hp, Wp, Cp): border filled with ``pad``, extra channels 0
    (NumPy's strided copy is the fastest transposition available here). Written into ``xp``
    when given (an (N, Hp, Wp, Cp) array of x's dtype), else into a new array."""
    NB, C, H, W = x.shape
    if xp is None:
        xp = np.empty((NB, Hp, Wp, Cp), x.dtype)
    xp[:, :pt] = pad
    xp[:, pt + H:] = pad
    xp[:, :, :pl] = pad
    xp[:, :, pl + W:] = pad
    if Cp > C:
        xp[..., C:] = 0
    xp[:, pt:pt + H, pl:pl + W, :C] = x.transpose(0, 2, 3, 1)
    return xp


class PackedWeights:
    """Weights packed for one family: ``bp`` bytes, ``steps`` per tap, ``pstride`` bytes per
    panel, ``colsum`` (int64 per output channel), ``maxabs`` (max |w - zw|)."""

    __slots__ = ("fam", "bp", "steps", "pstride", "colsum", "maxabs", "ntaps", "n")

    def __init__(self, w3, fam):
        T, C, N = w3.shape
        self.fam = fam
        self.ntaps = T
        self.n = N
        if fam == "w16":
            self.steps = (C + 1) // 2
            self.bp = _pack16(np.ascontiguousarray(w3, dtype=np.int16), self.steps).view(np.uint8)
        elif fam == "b8":
            self.steps = (C + 3) // 4
            self.bp = _pack8(np.ascontiguousarray(w3, dtype=np.int8), self.steps).view(np.uint8)
        else:
            self.steps = (C + 3) // 4
            self.bp = _pack4(np.ascontiguousarray(w3, dtype=np.int8), self.steps)
        self.pstride = T * self.steps * (128 if fam == "b4" else 256)
        w64 = np.ascontiguousarray(w3, dtype=np.int64)
        self.colsum = _colsum(w64)
        self.maxabs = int(np.abs(w64).max()) if w64.size else 0


def pack_weights(w3, fam):
    """Pack centred weights ``w3[t, c, n]`` (taps x input channels x output channels) for
    family ``fam`` ("b8": values in int8, "b4": in [-8, 7], "w16": in int16)."""
    return PackedWeights(np.asarray(w3), fam)


def epilogue_args(N, corr, requant, osize, int32_tile):
    """Arguments of :func:`_epilogue` / :func:`_epilogue_f32` for ``N`` output channels:
    ``(args, vec, corr32)`` where ``args`` = (mode, code, mf, mult, m0s, shift, bterm, zy,
    amin, amax, rnd), ``vec`` says whether the 16-lane ONNX Runtime epilogue applies (int32
    tile, outputs of at most 2 bytes, corrections inside int32) and ``corr32`` is ``corr``
    padded to whole 64-channel panels (with ``mf`` in ``args`` padded likewise when ``vec``)."""
    if requant is None:
        z1 = np.zeros(N, np.int64)
        zf = np.zeros(N, np.float64)
        args = (0, 0, np.zeros(N, np.float32), zf, z1, z1, np.zeros(N, np.float32), 0, 0, 0, 0)
    else:
        rp, code, rnd = requant

        def per(a, dt):
            # a writeable copy: RequantParams' arrays are read-only, and Numba compiles the
            # kernels once more for read-only arrays (a cold AMX compile measured 60-80 s)
            a = np.asarray(a, dt)
            return np.array(np.broadcast_to(a, (N,)) if a.size == 1 else a, dt)
        args = (1, code, per(rp.multiplier, np.float32), per(rp.multiplier, np.float64), per(rp.m0, np.int64),
                per(rp.shift, np.int64), per(rp.bias_term, np.float32), rp.out_zero_point, rp.act_min,
                rp.act_max, rnd)
    npad = ((N + NR - 1) // NR) * NR
    vec = bool(requant is not None and args[1] == 0 and int32_tile and osize <= 2
               and np.abs(corr).max(initial=0) <= _INT32_MAX)
    corr32 = np.zeros(npad, np.int32)
    if vec:
        mfp = np.zeros(npad, np.float32)
        corr32[:N] = corr
        mfp[:N] = args[2]
        args = args[:2] + (mfp,) + args[3:]
    return args, vec, corr32


def run(a_bytes, rows, taps, tsteps, kmax_x, pw, out, orow, sn, *, x_kernel_dtype, zx, bias,
        requant=None, kblock_bound=_INT32_MAX, bsteps=None, tbo=None):
    """Run the fused kernel. ``a_bytes``: activations as a flat uint8 view; ``rows`` byte
    offset of each output row's first tap; ``taps``/``tsteps`` byte offset and 4-byte steps
    of each tap. ``kmax_x`` bounds |activation as the kernel sees it| (after the xor flip).
    Splits the taps into blocks whose int32 partial sums cannot overflow. Returns the clamp
    count (0 without requantization)."""
    fam = pw.fam
    # the instructions take uint8 (vpdpbusd) / int16 (vpdpwssd) activations: flip the top bit
    # of int8 / uint16 ones (x + 128 / x - 32768); the correction below makes it exact
    if x_kernel_dtype == np.int8:
        a_bytes = np.bitwise_xor(a_bytes, np.uint8(0x80))
    elif x_kernel_dtype == np.uint16:
        a_bytes = np.bitwise_xor(a_bytes.view(np.uint16), np.uint16(0x8000)).view(np.uint8)
    zeff = int(zx) + (128 if x_kernel_dtype == np.int8 else 0) - (32768 if x_kernel_dtype == np.uint16 else 0)
    N = pw.n
    corr = -zeff * pw.colsum
    if bias is not None:
        corr = corr + bias
    corr = np.ascontiguousarray(corr, dtype=np.int64)
    # K blocks: each block's raw partial sums stay inside int32
    per_elem = max(1, kmax_x * pw.maxabs)
    g = 2 if fam == "w16" else 4
    ntaps = taps.shape[0]
    blocks = [0]
    acc = 0
    for t in range(ntaps):
        k = int(tsteps[t]) * g * per_elem
        if k > kblock_bound:
            raise ValueError("tap too large for an int32 block")
        if acc + k > kblock_bound:
            blocks.append(t)
            acc = 0
        acc += k
    blocks.append(ntaps)
    blocks = np.asarray(blocks, np.int64)
    if tbo is None:
        tbo = np.arange(ntaps, dtype=np.int64) * ((bsteps or pw.steps) * (128 if fam == "b4" else 256))
    M = rows.shape[0]
    ntask = ((M + MB - 1) // MB) * ((N + NR - 1) // NR)
    clamps = np.zeros(max(ntask, 1), np.int64)
    args, vec, corr32 = epilogue_args(N, corr, requant, out.dtype.itemsize, len(blocks) == 2)
    cb = max(1, CACHE_STEPS // max(1, int(np.max(tsteps)) if ntaps else 1))
    _run(_FAM[fam], a_bytes, rows, taps, np.ascontiguousarray(tsteps, dtype=np.int64), tbo, blocks, pw.bp,
              pw.pstride, N, corr, orow, sn, out.reshape(-1).view(np.uint8), out.dtype.itemsize, *args,
              clamps, vec, corr32, cb)
    return int(clamps.sum())


# ---------------------------------------------------------------------------------------
# Planning: when is the fast path exactly the portable path, and with which family?
# ---------------------------------------------------------------------------------------

_PACK_CACHE: dict = {}


class _W:
    """Weights seen without unpacking: ``shape``, ``dtype``, ``is4``, ``owner`` (cache key
    object when read-only, else None); ``values()`` gives the integer array (unpacks int4)."""

    __slots__ = ("src", "shape", "dtype", "is4", "owner")

    def __init__(self, w_q):
        from .params import PackedInt4
        self.src = w_q
        self.owner = _owner(w_q)
        if isinstance(w_q, PackedInt4):
            self.shape, self.is4 = tuple(w_q.shape), True
            self.dtype = np.dtype(np.int8 if w_q.signed else np.uint8)
        else:
            a = np.asarray(w_q)
            self.src = a
            self.shape, self.is4, self.dtype = a.shape, False, a.dtype

    @property
    def ndim(self):
        return len(self.shape)

    def values(self):
        return self.src.unpack() if self.is4 else self.src


def _owner(w_q):
    """The object plans and packings are remembered for: read-only weights (an array, or a
    PackedInt4 whose data is read-only), else None."""
    if type(w_q) is np.ndarray:
        return None if w_q.flags.writeable else w_q
    from .params import PackedInt4
    if isinstance(w_q, PackedInt4):
        return None if w_q.data.flags.writeable else w_q
    return w_q if (isinstance(w_q, np.ndarray) and not w_q.flags.writeable) else None


def _weights_of(w_q):
    return _W(w_q)


def _cached_pack(owner, key, build):
    """Packing is O(weights); cache it for read-only weight arrays (the executors' constants)."""
    if owner is None:
        return build()
    hit = _memo_get(owner, key)
    if hit is not None:
        return hit
    pw = build()
    _memo_put(owner, key, pw)
    return pw


def memo_plan(kind, path, problem, make):
    """``make()`` (a plan: callable or None), remembered per read-only weight array for the
    same activation shape/dtype, bias object and params object (identity, kept alive by the
    entry), so repeated calls skip planning. Plans marked ``reusable = False`` (their exactness
    was proved from the data) and problems with writeable weights or bias are not remembered."""
    x, w, bias, params = problem
    owner = _owner(w)
    if owner is None or (bias is not None and (type(bias) is not np.ndarray or bias.flags.writeable)):
        return make()
    xa = x if type(x) is np.ndarray else np.asarray(x)
    key = ("plan", kind, path, xa.shape, xa.dtype.str, id(bias), id(params))
    hit = _memo_get(owner, key)
    if hit is not None and hit[0] is bias and hit[1] is params:
        _remember_last(kind, path, xa, owner, bias, params, hit[2])
        return hit[2]
    fn = make()
    if fn is not None and getattr(fn, "reusable", False):
        _memo_put(owner, key, (bias, params, fn))
        _remember_last(kind, path, xa, owner, bias, params, fn)
    return fn


# per kind, the plan memo_plan handed out last and what it was for: (weakref to the weights,
# bias, params, kernel path, activation shape, activation dtype, plan)
_LAST_PLAN: dict = {}


def _remember_last(kind, path, x, owner, bias, params, fn):
    e = _LAST_PLAN.get(kind)
    if e is not None and e[6] is fn:     # already the last one (a plan is made for one key)
        return
    import weakref

    def forget(ref, kind=kind, last=_LAST_PLAN):    # the weights are gone: so is their plan
        e = last.get(kind)
        if e is not None and e[0] is ref:
            del last[kind]
    _LAST_PLAN[kind] = (weakref.ref(owner, forget), bias, params, path, x.shape, x.dtype, fn)


def last_plan(kind, path, x, w, bias, params):
    """The plan :func:`memo_plan` handed out last for ``kind`` when this call has the very same
    weights, bias and params objects, activation shape and dtype and kernel path (and the
    weights and bias are still read-only), else None: a repeated call skips the memo's key
    (0.3 us against 0.9 for the memo lookup). Such a call also passed the kernel's input
    checks before, which depend on nothing else."""
    e = _LAST_PLAN.get(kind)
    if (e is None or e[1] is not bias or e[2] is not params or e[3] != path or type(x) is not np.ndarray
            or e[0]() is not w or e[4] != x.shape or e[5] is not x.dtype):
        return None
    if _owner(w) is None or (bias is not None and bias.flags.writeable):
        return None
    return e[6]


def _memo_get(owner, key):
    hit = _PACK_CACHE.get((id(owner),) + key)
    return hit[1] if hit is not None and hit[0]() is owner else None


def _memo_put(owner, key, value):
    import weakref
    k = (id(owner),) + key
    if len(_PACK_CACHE) > 1024:
        _PACK_CACHE.clear()
    _PACK_CACHE[k] = (weakref.ref(owner, lambda _r, k=k, c=_PACK_CACHE: c.pop(k, None)), value)


def _family(xdt, wc_min, wc_max, is_int4):
    if xdt.itemsize == 1:
        if is_int4 and -8 <= wc_min and wc_max <= 7:
            return "b4"
        if -128 <= wc_min and wc_max <= 127:
            return "b8"
        return None
    if -32768 <= wc_min and wc_max <= 32767:
        return "w16"
    return None


def _x_bounds(x, zx):
    """(max |x - zx| by dtype, kernel-side max |x| by dtype)."""
    info = np.iinfo(x.dtype)
    centred = max(abs(int(info.min) - zx), abs(int(info.max) - zx))
    kside = 255 if x.dtype.itemsize == 1 else 32768
    return centred, kside


def _x_data_bounds(x, zx):
    if x.size == 0:
        return 0, 0
    lo, hi = int(x.min()), int(x.max())
    centred = max(abs(lo - zx), abs(hi - zx))
    if x.dtype == np.uint16:
        lo, hi = lo - 32768, hi - 32768
    if x.dtype.itemsize == 1:
        return centred, 255
    return centred, max(abs(lo), abs(hi))


def _check_exact(x, zx, K, wmax, bias, accum, by_dtype=None, int32_lanes=True):
    """Bounds under which no running sum can leave the profile's accumulator (then the
    portable semantics are the exact sum, which the fast path computes). Returns the
    kernel-side activation bound, or None when the fast path does not apply. When the
    bounds had to be taken from the data (not from the dtype), ``by_dtype`` (a list) gets
    False appended: a plan made for this ``x`` is then not valid for other data.
    ``int32_lanes``: also require the VNNI instructions' int32 lane sums to fit (the AMX path
    bounds its tiles itself)."""
    acc_max = min(accum.acc_max, 2 ** 62)
    bmax = int(np.abs(bias).max()) if bias is not None and bias.size else 0
    cx, kx = _x_bounds(x, zx)
    if K * cx * wmax + bmax > acc_max or (int32_lanes and x.dtype.itemsize == 2 and 2 * kx * wmax > _INT32_MAX):
        if by_dtype is not None:
            by_dtype.append(False)
        cx, kx = _x_data_bounds(x, zx)
        if K * cx * wmax + bmax > acc_max:
            return None
    g = 4 if x.dtype.itemsize == 1 else 2
    if int32_lanes and g * kx * max(wmax, 1) > _INT32_MAX:
        return None
    return kx


def _bias64(bias, n):
    if bias is None:
        return None
    b = np.asarray(bias)
    if not np.issubdtype(b.dtype, np.integer) or b.size != n:
        return False
    return b.reshape(-1).astype(np.int64)


def _requant_args(rp, n):
    from .params import SCHEME_CODE
    if rp is None:
        return None
    if rp.channels not in (1, n):
        return False
    return (rp, SCHEME_CODE[rp.scheme], fp.ROUNDING_CODE[rp.rounding])


def _zw(zw, n):
    z = np.asarray(zw, np.int64)
    if z.size == 1:
        return np.full(n, z[0], np.int64)
    return z if z.size == n else None


def plan_args(x, wa, bias, p, n):
    """What every fast-path plan needs from the problem, ``(zw, bias64, requant, zx)`` for
    ``n`` output channels, or None when no fast path takes it (pair-saturation emulation,
    a non-integer bias, requantization or zero points of the wrong size or range)."""
    if p.accum.pairwise_int16 and x.dtype == np.uint8 and wa.dtype == np.int8:
        return None
    zw = _zw(p.w_zero_point, n)
    b64 = _bias64(bias, n)
    rq = _requant_args(p.requant, n)
    if zw is None or b64 is False or rq is False:
        return None
    zx = int(p.x_zero_point)
    info = np.iinfo(x.dtype)
    if not info.min <= zx <= info.max:
        return None
    return zw, b64, rq, zx


def gemm_plan(x, w, bias, params, amx=False):
    """A callable ``fn(x_q, w_q, bias_q, p) -> (y, KernelStats)`` equal to the portable
    :func:`hwsim.kernels.qgemm` / ``gemm_acc`` for this problem, or None. With ``amx`` the
    AMX tiles of :mod:`hwsim.kernels.amx` are tried first (8-bit weights)."""
    from .params import KernelStats
    x = np.asarray(x)
    p = params
    if x.dtype.type not in (np.uint8, np.int8, np.uint16, np.int16) or x.ndim < 1:
        return None
    wa = _weights_of(w)
    is4, owner = wa.is4, wa.owner
    if wa.ndim != 2 or wa.dtype.type not in (np.uint8, np.int8, np.uint16, np.int16):
        return None
    K, N = wa.shape
    if x.shape[-1] != K or K == 0 or N == 0:
        return None
    args = plan_args(x, wa, bias, p, N)
    if args is None:
        return None
    zw, b64, rq, zx = args
    key = ("gemm", wa.shape, str(wa.dtype), tuple(zw.tolist()), x.dtype.itemsize)
    lead = x.shape[:-1]
    M = int(np.prod(lead)) if lead else 1
    if amx and M > 0:
        from . import amx as _amx
        fn = _amx.gemm_fn(x, M, K, N, lead, lambda: wa.values().astype(np.int64) - zw[None, :], owner,
                          key + (str(x.dtype),), zx, b64, rq, p)
        if fn is not None:
            return fn

    def build():
        wc = wa.values().astype(np.int64) - zw[None, :]
        fam = _family(x.dtype, int(wc.min()), int(wc.max()), is4)
        if fam is None:
            return None
        return PackedWeights(wc.reshape(1, K, N), fam)
    pw = _cached_pack(owner, key, build)
    if pw is None:
        return None
    by_dtype = []
    kx = _check_exact(x, zx, K, pw.maxabs, b64, p.accum, by_dtype)
    if kx is None:
        return None

    def fn(x_q, w_q, bias_q, pp):
        x2 = np.ascontiguousarray(np.asarray(x_q).reshape(M, K))
        g = 4 if x2.dtype.itemsize == 1 else 2
        if K % g:
            xp = np.zeros((M, K + g - K % g), x2.dtype)
            xp[:, :K] = x2
            x2 = xp
        isz = x2.dtype.itemsize
        lda = x2.shape[1] * isz
        total = pw.steps
        chunk = max(1, min(total, CACHE_STEPS, _INT32_MAX // (g * kx * max(pw.maxabs, 1))))
        ntaps = (total + chunk - 1) // chunk
        # the packer laid out one tap of `steps`; taps here are consecutive chunks of it
        taps = np.arange(ntaps, dtype=np.int64) * (chunk * 4)
        tsteps = np.full(ntaps, chunk, np.int64)
        tsteps[-1] = total - chunk * (ntaps - 1)
        rows = np.arange(M, dtype=np.int64) * lda
        orow = np.arange(M, dtype=np.int64) * N
        if rq is None:
            out = np.empty(M * N, np.int32 if pp.accum.bits <= 32 else np.int64)
        else:
            out = np.empty(M * N, rq[0].out_fmt.storage_dtype)
        clamped = _run_chunked(x2.reshape(-1).view(np.uint8), rows, taps, tsteps, kx, pw, out, orow, 1,
                               x2.dtype, zx, b64, rq, chunk)
        stats = KernelStats(macs=M * N * K, acc_overflows=0, pair_saturations=0, out_clamped=clamped)
        return out.reshape(*lead, N), stats
    fn.reusable = not by_dtype
    return fn


def _run_chunked(a_bytes, rows, taps, tsteps, kx, pw, out, orow, sn, xdt, zx, bias, rq, chunk):
    """GEMM: the packed weights are one tap of K; its consecutive chunks act as taps."""
    return run(a_bytes, rows, taps, tsteps, kx, pw, out, orow, sn, x_kernel_dtype=xdt, zx=zx, bias=bias,
               requant=rq, bsteps=chunk)


def conv_plan(x, w, bias, params, amx=False):
    """Fast path for a dense (groups == 1) NCHW convolution as an implicit GEMM over a
    padded NHWC copy of the input (no im2col), or None. With ``amx`` the AMX tiles of
    :mod:`hwsim.kernels.amx` are tried first (8-bit weights)."""
    from .params import KernelStats
    x = np.asarray(x)
    p = params
    if p.groups != 1 or x.ndim != 4 or x.dtype.type not in (np.uint8, np.int8, np.uint16, np.int16):
        return None
    wa = _weights_of(w)
    is4, owner = wa.is4, wa.owner
    if wa.ndim != 4 or wa.dtype.type not in (np.uint8, np.int8, np.uint16, np.int16):
        return None
    NB, C, H, W = x.shape
    Cout, Cg, KH, KW = wa.shape
    if Cg != C or Cout == 0:
        return None
    args = plan_args(x, wa, bias, p, Cout)
    if args is None:
        return None
    zw, b64, rq, zx = args
    pt, pl, pbm, pr = p.pads
    (sh, sw), (dh, dw) = p.strides, p.dilations
    OH = (H + pt + pbm - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
    if OH < 1 or OW < 1:
        return None
    g = 4 if x.dtype.itemsize == 1 else 2
    Cp = (C + g - 1) // g * g
    key = ("conv", wa.shape, str(wa.dtype), tuple(zw.tolist()), x.dtype.itemsize)
    Hp = max(H + pt + pbm, (OH - 1) * sh + dh * (KH - 1) + 1)
    Wp = max(W + pl + pr, (OW - 1) * sw + dw * (KW - 1) + 1)
    if amx and NB > 0:
        from . import amx as _amx

        def rows():
            wc = wa.values().astype(np.int64) - zw[:, None, None, None]
            return wc.transpose(2, 3, 1, 0).reshape(KH * KW * C, Cout)
        fn = _amx.conv_fn(x, wa.shape, (p.pads, (sh, sw), (dh, dw), OH, OW, Hp, Wp), rows, owner,
                          key + (str(x.dtype),), zx, b64, rq, p)
        if fn is not None:
            return fn

    def build():
        wc = wa.values().astype(np.int64) - zw[:, None, None, None]
        fam = _family(x.dtype, int(wc.min()), int(wc.max()), is4)
        if fam is None:
            return None
        return PackedWeights(wc.transpose(2, 3, 1, 0).reshape(KH * KW, C, Cout), fam)
    pw = _cached_pack(owner, key, build)
    if pw is None:
        return None
    Kg = C * KH * KW
    by_dtype = []
    kx = _check_exact(x, zx, Kg, pw.maxabs, b64, p.accum, by_dtype)
    if kx is None:
        return None
    # a tap whose int32 partial sums could overflow is split into chunks of input channels
    chunk = max(1, min(pw.steps, _INT32_MAX // (g * kx * max(pw.maxabs, 1))))
    nch = (pw.steps + chunk - 1) // chunk
    isz = x.dtype.itemsize
    M = NB * OH * OW
    OHW = OH * OW
    mi = np.arange(M, dtype=np.int64)
    b_, r_ = np.divmod(mi, OHW)
    oh, ow = np.divmod(r_, OW)
    rows = ((b_ * Hp + oh * sh) * Wp + ow * sw) * Cp * isz
    orow = b_ * (Cout * OHW) + r_
    kh, kw = np.divmod(np.arange(KH * KW, dtype=np.int64), KW)
    tap0 = (kh * dh * Wp + kw * dw) * Cp * isz
    j = np.arange(nch, dtype=np.int64)
    taps = (tap0[:, None] + j[None, :] * (chunk * 4)).reshape(-1)
    tsteps = np.broadcast_to(np.minimum(chunk, pw.steps - j * chunk)[None, :], (KH * KW, nch)).reshape(-1).copy()
    step_bytes = 128 if pw.fam == "b4" else 256
    tbo = ((np.arange(KH * KW, dtype=np.int64)[:, None] * pw.steps + j[None, :] * chunk) * step_bytes).reshape(-1)

    def fn(x_q, w_q, bias_q, pp):
        xx = np.ascontiguousarray(x_q)
        xp = _to_nhwc(xx, pt, pl, Hp, Wp, Cp, zx)
        if rq is None:
            out = np.empty(NB * Cout * OHW, np.int32 if pp.accum.bits <= 32 else np.int64)
        else:
            out = np.empty(NB * Cout * OHW, rq[0].out_fmt.storage_dtype)
        clamped = run(xp.reshape(-1).view(np.uint8), rows, taps, tsteps, kx, pw, out, orow, OHW,
                      x_kernel_dtype=xx.dtype, zx=zx, bias=b64, requant=rq, tbo=tbo)
        stats = KernelStats(macs=M * Cout * Kg, acc_overflows=0, pair_saturations=0, out_clamped=clamped)
        return out.reshape(NB, Cout, OH, OW), stats
    fn.reusable = not by_dtype
    return fn


def depthwise_plan(x, w, bias, params):
    """Depthwise fast path; lives in :mod:`hwsim.kernels.vnni_dw` (imported lazily: that
    module imports this one)."""
    from .vnni_dw import depthwise_plan as plan
    return plan(x, w, bias, params)
