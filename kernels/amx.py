"""Intel AMX fast paths for the 8-bit-weight integer GEMM and convolution kernels.

Exact integer arithmetic throughout: int32 tile accumulators that provably cannot overflow
(the plan declines otherwise), combined in int64 where a product is split in two.

AMX (``amx_tile`` + ``amx_int8``, Sapphire Rapids and later) multiplies a 16 x 64-byte tile
of activations by a 16 x 64-byte tile of weights in one instruction (``tdpbusd``: uint8 x
int8, ``tdpbssd``: int8 x int8, accumulating 16 x 16 int32): 16,384 MACs, against 64 for one
``vpdpbusd``. ONNX Runtime's MLAS uses it for MatMulInteger / QLinearConv on such CPUs
(``import onnxruntime`` requests the tile-data permission, see :func:`hwsim.kernels.cpu.has_amx`),
which is why the VNNI kernels of :mod:`hwsim.kernels.vnni` cannot reach it there.

This module calls the instructions from Numba through ``@intrinsic``s over LLVM's
``llvm.x86.ldtilecfg / tilezero / tileloadd64 / tdpbusd / tdpbssd / tilestored64 /
tilerelease`` with literal tile numbers. One configuration: all eight tiles 16 rows x 64
bytes. A 2 x 2 block of C tiles (32 rows x 32 output channels) is computed per step from two
activation tiles and two weight tiles.

* Activations are read **in place** with a row stride: GEMM rows of A (``lda`` bytes apart);
  convolution output pixels of a zero-point-padded NHWC copy of the input (``C`` bytes apart
  for stride 1, where whole images are flattened over the padded width and the few padding
  columns are computed and dropped; ``stride_w * C`` bytes along one output row otherwise).
  A K-chunk is 64 bytes at a fixed offset from the tile's base: the K dimension of GEMM in
  steps of 64, or, for convolutions, each kernel row's contiguous ``KW * C`` bytes (one tap's
  ``C`` bytes when dilated) in steps of 64. Bytes of a chunk past its segment belong to other
  pixels or rows; they meet zero weight bytes and contribute exactly 0.
* Weights are packed once (cached for read-only arrays, i.e. constants) in AMX's VNNI layout:
  per 16 output channels and K-chunk, 16 rows of 16 x 4 bytes. int4 weights are unpacked to
  int8 when packing.
* 8-bit activations: uint8 with ``tdpbusd``, int8 with ``tdpbssd`` directly (no flip).
  16-bit activations with 8-bit weights (W8A16): the int16 value is ``256 * hi + lo`` with
  ``hi`` its signed and ``lo`` its unsigned byte; the activations become a low-byte and a
  high-byte plane (per task in cache for GEMM, as two 8-bit images for conv) multiplied by the
  8-bit packing (``tdpbusd`` / ``tdpbssd``), so ``sum(x * w) = 256 * sum(hi * w) + sum(lo *
  w)`` (uint16 ones are flipped to int16 first, ``x ^ 0x8000``, corrected exactly like the
  VNNI path).
  16-bit weights with 16-bit activations (W16A16): four byte products (``tdpbuud`` low x low,
  ``tdpbusd`` + ``tdpbsud`` for the two cross terms, ``tdpbssd`` high x high) combined as
  ``C0 + 256 C1 + 65536 C2`` in int64.
* The zero-point correction ``-zx * colsum(w)`` and the bias are added in the epilogue, which
  is the VNNI path's (:func:`hwsim.kernels.vnni._epilogue`, the portable requantization
  function per element, or the 16-lane ONNX Runtime float32 transcription).

Example
-------
>>> from hwsim.kernels import cpu
>>> cpu.has_amx() in (True, False)
True
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.extending import intrinsic
from numba.np.ufunc import parallel as _numba_parallel

from . import cpu, vnni
from .params import SCHEME_CODE, KernelStats
from .schemes import Requant

__all__ = ["TILE_ROWS", "CHUNK_BYTES", "AmxWeights", "pack_weights", "pack_weights16", "Launch", "gemm_fn", "conv_fn", "peak_gops",
           "fits_int32"]

TILE_ROWS = 16      # rows of every tile (activation rows / output pixels; C rows)
CHUNK_BYTES = 64    # bytes of K per activation tile row
_I8 = ir.IntType(8)
_I64 = ir.IntType(64)
_VOID = ir.VoidType()
_PTR = ir.IntType(8).as_pointer()
_INT32_MAX = 2 ** 31 - 1
_CODE_16X8 = SCHEME_CODE[Requant.TFLITE_16X8]

# ---------------------------------------------------------------------------------------
# The instructions. Tile numbers must be compile-time constants (``immarg``): the
# intrinsics take them as integer literals.
# ---------------------------------------------------------------------------------------


def _decl(builder, name, argtys):
    mod = builder.module
    try:
        return mod.get_global(name)
    except KeyError:
        return ir.Function(mod, ir.FunctionType(_VOID, argtys), name=name)


def _byte_ptr(context, builder, arrty, arr, idx):
    a = context.make_array(arrty)(context, builder, arr)
    return builder.bitcast(builder.gep(a.data, [idx]), _PTR)


def _literals(*tys):
    if not all(isinstance(t, types.IntegerLiteral) for t in tys):
        return None
    return [t.literal_value for t in tys]


@intrinsic
def _tcfg(typingctx, cfg):
    """ldtilecfg from a 64-byte uint8 array."""
    def codegen(context, builder, sig, args):
        p = _byte_ptr(context, builder, sig.args[0], args[0], ir.Constant(_I64, 0))
        builder.call(_decl(builder, "llvm.x86.ldtilecfg", [_PTR]), [p])
        return context.get_dummy_value()
    return types.none(cfg), codegen


@intrinsic
def _borrowed(typingctx, arr):
    """``arr`` without its reference count (no meminfo): passing the result on to compiled
    calls or taking views of it costs no atomic operations (two per array argument or view
    otherwise). Valid only while ``arr`` itself is alive, e.g. an argument of the running call."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        a.meminfo = ir.Constant(a.meminfo.type, None)
        return a._getvalue()
    return arr(arr), codegen


@intrinsic
def _trelease(typingctx):
    def codegen(context, builder, sig, args):
        builder.call(_decl(builder, "llvm.x86.tilerelease", []), [])
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic(prefer_literal=True)
def _tzero(typingctx, t):
    lit = _literals(t)
    if lit is None:
        return None

    def codegen(context, builder, sig, args):
        builder.call(_decl(builder, "llvm.x86.tilezero", [_I8]), [ir.Constant(_I8, lit[0])])
        return context.get_dummy_value()
    return types.none(t), codegen


def _make_tile_mem(name, doc):
    """An intrinsic ``f(t, arr, idx, stride)`` calling ``name`` (tileloadd64 / tilestored64) on
    tile ``t`` (a literal) and 16 rows of 64 bytes from element ``idx`` of ``arr``, ``stride``
    bytes apart."""
    @intrinsic(prefer_literal=True)
    def f(typingctx, t, arr, idx, stride):
        lit = _literals(t)
        if lit is None:
            return None

        def codegen(context, builder, sig, args):
            p = _byte_ptr(context, builder, sig.args[1], args[1], args[2])
            stride = context.cast(builder, args[3], sig.args[3], types.int64)
            builder.call(_decl(builder, name, [_I8, _PTR, _I64]), [ir.Constant(_I8, lit[0]), p, stride])
            return context.get_dummy_value()
        return types.none(t, arr, idx, stride), codegen
    f.__doc__ = doc
    return f


_tload = _make_tile_mem("llvm.x86.tileloadd64", "Tile t := 16 rows of 64 bytes from arr[idx:], rows stride bytes apart.")
_tstore = _make_tile_mem("llvm.x86.tilestored64", "16 rows of 64 bytes at arr[idx:], stride bytes apart := tile t.")


@intrinsic(prefer_literal=True)
def _tload_sel(typingctx, t, arr0, arr1, sel, idx, stride):
    """:func:`_tload` from ``arr1`` when ``sel`` is true, else from ``arr0``. The pointer is
    selected, not the array: an array chosen by ``x if c else y`` is a new reference, two
    reference-count atomics per use."""
    lit = _literals(t)
    if lit is None:
        return None

    def codegen(context, builder, sig, args):
        p0 = _byte_ptr(context, builder, sig.args[1], args[1], args[4])
        p1 = _byte_ptr(context, builder, sig.args[2], args[2], args[4])
        c = context.cast(builder, args[3], sig.args[3], types.boolean)
        stride = context.cast(builder, args[5], sig.args[5], types.int64)
        builder.call(_decl(builder, "llvm.x86.tileloadd64", [_I8, _PTR, _I64]),
                     [ir.Constant(_I8, lit[0]), builder.select(c, p1, p0), stride])
        return context.get_dummy_value()
    return types.none(t, arr0, arr1, sel, idx, stride), codegen


def _dp_codegen(name, lit):
    """Codegen of a tile dot product ``name`` on the literal tile numbers ``lit`` (C, A, B)."""
    def codegen(context, builder, sig, args):
        builder.call(_decl(builder, name, [_I8, _I8, _I8]), [ir.Constant(_I8, v) for v in lit])
        return context.get_dummy_value()
    return codegen


def _make_dp(name):
    @intrinsic(prefer_literal=True)
    def dp(typingctx, c, a, b):
        lit = _literals(c, a, b)
        if lit is None:
            return None
        return types.none(c, a, b), _dp_codegen(name, lit)
    return dp


_tdpbusd = _make_dp("llvm.x86.tdpbusd")   # C(int32) += A(uint8) . B(int8), 4-byte dot products
_tdpbssd = _make_dp("llvm.x86.tdpbssd")   # C(int32) += A(int8) . B(int8)
_tdpbuud = _make_dp("llvm.x86.tdpbuud")   # C(int32) += A(uint8) . B(uint8)
_tdpbsud = _make_dp("llvm.x86.tdpbsud")   # C(int32) += A(int8) . B(uint8)


@intrinsic(prefer_literal=True)
def _tdpb8(typingctx, signed, c, a, b):
    """``tdpbssd`` when the literal ``signed`` is true, else ``tdpbusd`` (int8 weights)."""
    if not isinstance(signed, types.BooleanLiteral):
        return None
    lit = _literals(c, a, b)
    if lit is None:
        return None
    name = "llvm.x86.tdpbssd" if signed.literal_value else "llvm.x86.tdpbusd"
    return types.none(signed, c, a, b), _dp_codegen(name, lit)


def _tile_config():
    """palette 1; all eight tiles 16 rows x 64 bytes."""
    cfg = np.zeros(64, np.uint8)
    cfg[0] = 1
    cfg[16:32].view(np.uint16)[:8] = CHUNK_BYTES
    cfg[48:56] = TILE_ROWS
    return cfg


_CFG = _tile_config()

# ---------------------------------------------------------------------------------------
# Microkernels: C (32 rows x 32 channels, or 32 x 16 low / high-byte sums for W8A16) into T
# from element ``toff`` (rows of 64 int32, the VNNI epilogue's layout). Activation rows at
# A[a0 + r * stride + koff[sl, kc]] (tile 0; At when ``sa``) and A[a1 + ...] (tile 1; At when
# ``sb``); packed weights from Bp[pb]. Arrays are passed whole with offsets: a slice is a new
# reference, two reference-count atomics per call.
# ---------------------------------------------------------------------------------------

_PANEL = TILE_ROWS * CHUNK_BYTES   # bytes of one packed weight tile
# activation x weight families of _task
FAM_U8 = 0      # uint8 x int8 (tdpbusd)
FAM_S8 = 1      # int8 x int8 (tdpbssd)
FAM_W16 = 2     # 16-bit x int16 weights: four byte products (_mk_ww)
FAM_SPLIT = 3   # 16-bit x int8 weights, rows split into byte planes per task (_split_rows, _mk_split)
FAM_PLANES = 4  # 16-bit x int8 weights, byte planes made by the caller (conv)
KBLOCK = 12                        # at most this many K-chunks per block (2 KB of a panel's weights each, kept in L1)


@njit(cache=True, nogil=True)
def _c_init(T, toff, init):
    """C tiles 0..3 := zero, or (``init``) the partial sums stored in T by the previous K block."""
    if init:
        _tload(0, T, toff, 256)
        _tload(1, T, toff + 16, 256)
        _tload(2, T, toff + 16 * 64, 256)
        _tload(3, T, toff + 16 * 64 + 16, 256)
    else:
        _tzero(0)
        _tzero(1)
        _tzero(2)
        _tzero(3)


@njit(cache=True, nogil=True)
def _mk_b8(A, At, sa, a0, sb, a1, stride, koff, sl, nkc, kc0, kc1, Bp, pb, T, toff, init, signed):
    """8-bit activations x int8 weights, K-chunks kc0..kc1: ``tdpbssd`` for int8 activations
    (``signed``, a literal: each value compiles its own kernel), ``tdpbusd`` for uint8; two
    16-channel panels at Bp[pb], Bp[pb + nkc * 1024]; C starts from T when ``init``."""
    _c_init(T, toff, init)
    pb1 = pb + nkc * _PANEL
    for kc in range(kc0, kc1):
        o = koff[sl, kc]
        _tload_sel(4, A, At, sa, a0 + o, stride)
        _tload(6, Bp, pb + kc * _PANEL, 64)
        _tdpb8(signed, 0, 4, 6)
        _tload(7, Bp, pb1 + kc * _PANEL, 64)
        _tdpb8(signed, 1, 4, 7)
        _tload_sel(5, A, At, sb, a1 + o, stride)
        _tdpb8(signed, 2, 5, 6)
        _tdpb8(signed, 3, 5, 7)
    _tstore(0, T, toff, 256)
    _tstore(1, T, toff + 16, 256)
    _tstore(2, T, toff + 16 * 64, 256)
    _tstore(3, T, toff + 16 * 64 + 16, 256)


@njit(cache=True, nogil=True)
def _mk_ww_one(A, At, sa, a0, stride, koff, sl, kc0, kc1, Bp, pb, T, toff, init):
    """One activation tile x one 16-channel panel, int16 x int16 as four byte products:
    C0 = sum(lo * wlo) (tdpbuud), C1 = sum(lo * whi) + sum(hi * wlo) (tdpbusd, tdpbsud),
    C2 = sum(hi * whi) (tdpbssd) into T columns 0..15, 16..31, 32..47."""
    if init:
        _tload(0, T, toff, 256)
        _tload(1, T, toff + 16, 256)
        _tload(2, T, toff + 32, 256)
    else:
        _tzero(0)
        _tzero(1)
        _tzero(2)
    for kc in range(kc0, kc1):
        q = pb + kc * 4 * _PANEL
        _tload_sel(3, A, At, sa, a0 + koff[sl, kc], stride)
        _tload(4, Bp, q, 64)
        _tdpbuud(0, 3, 4)
        _tload(5, Bp, q + _PANEL, 64)
        _tdpbusd(1, 3, 5)
        _tload(6, Bp, q + 2 * _PANEL, 64)
        _tdpbsud(1, 3, 6)
        _tload(7, Bp, q + 3 * _PANEL, 64)
        _tdpbssd(2, 3, 7)
    _tstore(0, T, toff, 256)
    _tstore(1, T, toff + 16, 256)
    _tstore(2, T, toff + 32, 256)


@njit(cache=True, nogil=True)
def _mk_ww(A, At, sa, a0, sb, a1, stride, koff, sl, kc0, kc1, Bp, pb, T, toff, init):
    """int16 activations x int16 weights, the pair's two tiles one after the other."""
    _mk_ww_one(A, At, sa, a0, stride, koff, sl, kc0, kc1, Bp, pb, T, toff, init)
    _mk_ww_one(A, At, sb, a1, stride, koff, sl, kc0, kc1, Bp, pb, T, toff + 16 * 64, init)


@njit(cache=True, nogil=True)
def _steps_b8(fam, A, At, tbase, tsrc, pslot, kn, koff, stride, Bp, pan_bytes, slot_tiles, nkc_all, pr0, pr1, p0, p1,
              corr32, mf, lo, hi, zy, orow, out, osize, pack, T):
    """:func:`_task`'s loop for 8-bit activations, one K block and whole 64-channel panel pairs
    ``p0, p0 + 2, .. < p1`` with the float32 epilogue on contiguous rows, by steps: step ``q``
    is panel pair ``q // npr`` x tile pair ``pr0 + q % npr`` (both 32-channel panels, so the
    pair's activation tiles are still in L1 for the second), and after its two microkernels
    the 32 rows of step ``q - 1`` are requantized (:func:`vnni._epilogue_f32_rows64`). T is a
    ring of two steps (2 x 32 rows x 64 int32, in L1), read one step after the tile stores.

    Against all panels' tiles first, then one epilogue over the group's rows from T (the group's
    rows x 64 int32, 64 KB at 256^3, out of L1): 256^3 medians 21.65 against 22.45 us over
    eight rounds, the two alternating in one process. Returns the clamp count."""
    clamped = 0
    npr = pr1 - pr0
    nq = (p1 - p0 + 1) // 2 * npr
    for q in range(nq + 1):
        if q < nq:
            pr = pr0 + q % npr
            t0 = 2 * pr
            sl = pslot[pr]
            for j in range(2):
                pb = (p0 + 2 * (q // npr) + j) * pan_bytes + sl * slot_tiles * _PANEL
                if fam == FAM_U8:
                    _mk_b8(A, At, tsrc[t0] != 0, tbase[t0], tsrc[t0 + 1] != 0, tbase[t0 + 1], stride, koff, sl,
                           nkc_all, 0, kn[sl], Bp, pb, T, (q % 2) * 2048 + 32 * j, False, False)
                else:
                    _mk_b8(A, At, tsrc[t0] != 0, tbase[t0], tsrc[t0 + 1] != 0, tbase[t0 + 1], stride, koff, sl,
                           nkc_all, 0, kn[sl], Bp, pb, T, (q % 2) * 2048 + 32 * j, False, True)
        e = q - 1
        if e >= 0:
            m0 = 32 * (e % npr)
            clamped += vnni._epilogue_f32_rows64(T, (e % 2) * 2048, m0, m0 + 32, (p0 + 2 * (e // npr)) * 32, corr32,
                                                 mf, lo, hi, zy, orow, out, osize, pack)
    return clamped


@njit(cache=True, nogil=True)
def _pairs_b8(A, At, tbase, tsrc, pslot, kn, koff, stride, Bp, pbase, slot_tiles, nkc_all, pr0, pr1, kb0, kbs, T, j,
              signed):
    """Tile pairs ``pr0..pr1`` of :func:`_task` x the 32-channel panel at ``Bp[pbase]`` (8-bit
    activations, :func:`_mk_b8`), K-chunks ``kb0..kb0 + kbs`` of each pair's slot, into T
    columns ``32 j..32 j + 31``; a slot with fewer chunks keeps its C in T."""
    for pr in range(pr0, pr1):
        t0 = 2 * pr
        sl = pslot[pr]
        if kb0 >= kn[sl]:
            continue
        kb1 = min(kn[sl], kb0 + kbs)
        _mk_b8(A, At, tsrc[t0] != 0, tbase[t0], tsrc[t0 + 1] != 0, tbase[t0 + 1], stride, koff, sl, nkc_all, kb0, kb1,
               Bp, pbase + sl * slot_tiles * _PANEL, T, (pr - pr0) * 32 * 64 + 32 * j, kb0 > 0, signed)


@njit(cache=True, nogil=True)
def _pairs_wide(fam, A, At, tbase, tsrc, pslot, kn, koff, stride, Bp, pbase, slot_tiles, nkc, pr0, pr1, kb0, kbs, T, j,
                base, hoff):
    """:func:`_pairs_b8` for 16-bit activations: byte planes (FAM_SPLIT / FAM_PLANES,
    :func:`_mk_split`, the high plane ``hoff`` bytes after the low one, tile offsets less
    ``base``) or the four-byte int16 products (FAM_W16, :func:`_mk_ww`) over 16 channels."""
    for pr in range(pr0, pr1):
        t0 = 2 * pr
        sl = pslot[pr]
        if kb0 >= kn[sl]:
            continue
        kb1 = min(kn[sl], kb0 + kbs)
        pb = pbase + sl * slot_tiles * _PANEL
        toff = (pr - pr0) * 32 * 64 + 32 * j
        if fam >= FAM_SPLIT:
            _mk_split(A, tbase[t0] - base, tbase[t0 + 1] - base, hoff, stride, koff, sl, kb0, kb1, Bp, pb, T, toff,
                      kb0 > 0)
        else:
            _mk_ww(A, At, tsrc[t0] != 0, tbase[t0], tsrc[t0 + 1] != 0, tbase[t0 + 1], stride, koff, sl, kb0, kb1, Bp, pb,
                   T, toff, kb0 > 0)


@njit(cache=True, nogil=True)
def _task(task, fam, A, At, tbase, tsrc, torow, pslot, kn, src_ld, stride, koff, Bp, N, pan_w, pairs_per_task, pans_per_task,
          corr, sn, out, osize, mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd, vec, corr32, cfg):
    """Task ``task`` of the grid of :func:`_run`: its row group x its panels, K blocks, epilogue.
    Returns its clamp count."""
    nslot, nkc = koff.shape
    npairs = tbase.shape[0] // 2
    npan = (N + pan_w - 1) // pan_w
    ngp = (npan + pans_per_task - 1) // pans_per_task
    w16 = fam == FAM_W16
    planes = fam >= FAM_SPLIT
    # bytes of packed weights per panel: per slot and chunk 2 tiles (16 + 16 channels), 4 for FAM_W16
    pan_bytes = nslot * nkc * _PANEL * (4 if w16 else 2)
    # a slot's first chunk within the panel, in tiles: 8-bit panels keep their two 16-channel halves apart
    slot_tiles = nkc * (4 if w16 else 1)
    half_bytes = nslot * nkc * _PANEL    # planes: 16-channel panel k is half k % 2 of 8-bit panel k // 2
    per_ep = 1 if w16 else 2
    nkb = (nkc + KBLOCK - 1) // KBLOCK
    kbs = (nkc + nkb - 1) // nkb      # balanced K blocks (9 chunks: one block of 9, not 8 + 1)
    g = task // ngp
    gp = task % ngp
    pr0 = g * pairs_per_task
    pr1 = min(npairs, pr0 + pairs_per_task)
    rows = 32 * (pr1 - pr0)
    orow = torow[32 * pr0: 32 * pr1]
    lo = amin - zy
    hi = amax - zy
    if ((fam == FAM_U8 or fam == FAM_S8) and vec and sn == 1 and nkb == 1 and N % 64 == 0 and lo <= hi
            and (osize == 1 or osize == 2)):
        T = _aligned_i32(2 * 2048)
        _tcfg(cfg)
        clamped = _steps_b8(fam, A, At, tbase, tsrc, pslot, kn, koff, stride, Bp, pan_bytes, slot_tiles, nslot * nkc,
                            pr0, pr1, gp * pans_per_task, min(npan, (gp + 1) * pans_per_task), corr32, mf, lo, hi, zy,
                            orow, out, osize, vnni._row64_pack(lo, hi, zy, osize), T)
        _trelease()
        return clamped
    # the whole group's accumulators, then one epilogue: the tile stores are long retired
    # when the vector loads read them, and the epilogue runs over many rows per call
    T = _aligned_i32(rows * 64)
    T64 = np.empty(rows * 64 if fam >= FAM_W16 else 1, np.int64)
    R = np.empty(16, np.int32)
    if fam == FAM_SPLIT:
        # the group's rows of int16 activations (src_ld bytes apart in A) as two byte planes of
        # ``stride`` bytes per row, made here so that they are still in cache for the tiles
        P = _aligned_u8(2 * rows * stride)
        _split_rows(A, 32 * pr0 * src_ld, src_ld, src_ld // 2, orow, stride, P, rows * stride)
        A = P
        base = 32 * pr0 * stride
        hoff = rows * stride
    else:
        base = 0
        hoff = src_ld      # FAM_PLANES: the high-byte plane's offset in A
    _tcfg(cfg)
    clamped = 0
    pend = min(npan, (gp + 1) * pans_per_task)
    # two panels per epilogue (T columns 0..31 and 32..63): whole 64-channel rows are
    # requantized and stored at once
    for p in range(gp * pans_per_task, pend, per_ep):
        cnt = min(per_ep, pend - p)
        n0 = p * pan_w
        n1 = min(N, n0 + cnt * pan_w)
        # K blocks of KBLOCK chunks: the panel's weights for one block (16 KB) stay in L1
        # while the group's activation tiles stream past; C goes through T between blocks
        for j in range(cnt):
            pbase = ((p + j) // 2) * pan_bytes + ((p + j) % 2) * half_bytes if planes else (p + j) * pan_bytes
            for kb0 in range(0, nkc, kbs):
                # one loop per family, each with a single microkernel call site: with the four
                # calls in one loop the 256^3 GEMM measured 25 us a call, with them apart 20
                if fam == FAM_U8:
                    _pairs_b8(A, At, tbase, tsrc, pslot, kn, koff, stride, Bp, pbase, slot_tiles, nslot * nkc, pr0,
                              pr1, kb0, kbs, T, j, False)
                elif fam == FAM_S8:
                    _pairs_b8(A, At, tbase, tsrc, pslot, kn, koff, stride, Bp, pbase, slot_tiles, nslot * nkc, pr0,
                              pr1, kb0, kbs, T, j, True)
                else:
                    _pairs_wide(fam, A, At, tbase, tsrc, pslot, kn, koff, stride, Bp, pbase, slot_tiles, nkc, pr0,
                                pr1, kb0, kbs, T, j, base, hoff)
        if planes and mode == 1 and code == _CODE_16X8:
            # W8A16 under TFLite 16x8: the epilogue reads the lo / hi sums itself
            if sn == 1:
                clamped += vnni._epilogue_16x8_lohi(T, 0, rows, n0, n1, corr, orow, out, osize, m0s, shift, zy,
                                                    amin, amax)
            else:
                clamped += vnni._epilogue_16x8_lohi_cols(T, 0, rows, n0, n1, corr, orow, sn, out, osize, m0s, shift,
                                                         zy, amin, amax)
            continue
        if w16:
            for r in range(rows):
                for c in range(16):
                    T64[r * 64 + c] = (np.int64(T[r * 64 + 32 + c]) * 65536 + np.int64(T[r * 64 + 16 + c]) * 256
                                       + T[r * 64 + c])
        elif planes:
            for r in range(rows):
                for j in range(cnt):
                    for c in range(16):
                        T64[r * 64 + 16 * j + c] = (np.int64(T[r * 64 + 32 * j + 16 + c]) * 256
                                                    + T[r * 64 + 32 * j + c])
        if vec:
            clamped += vnni._epilogue_f32(T, 0, rows, n0, n1, corr32, mf, lo, hi, zy, orow, sn,
                                          out, osize, R)
        else:
            clamped += vnni._epilogue(T, T64, fam >= FAM_W16, 0, rows, n0, n1, corr, orow, sn, out, osize, mode,
                                      code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd)
    _trelease()
    return clamped


@njit(cache=True, nogil=True, inline="always")
def _aligned_i32(n):
    """``n`` int32 starting on a cache line, like every tile (inlined: a compiled call returning
    an array, viewed as int32, measured 0.2 us more per 100 x 200 x 48 GEMM)."""
    raw = np.empty(n + 16, np.int32)
    return raw[((-raw.ctypes.data) % 64) // 4:][:n]


@njit(cache=True, nogil=True)
def _aligned_u8(n):
    """``n`` bytes starting on a cache line (inside compiled code)."""
    raw = np.empty(n + CHUNK_BYTES, np.uint8)
    s = (-raw.ctypes.data) % CHUNK_BYTES
    return raw[s:s + n]


@njit(cache=True, nogil=True)
def _split_rows(A, a0, src_ld, K, orow, ld, P, hoff):
    """Rows of int16 values (``K`` per row, little-endian bytes at ``A[a0 + r * src_ld]``) as
    two byte planes: ``P[r * ld + k]`` the low byte (unsigned), ``P[hoff + r * ld + k]`` the
    high byte (signed), so ``x = 256 * hi + lo`` exactly. Rows with ``orow[r] < 0`` (past the
    matrix) and bytes past ``K`` are left as they are: they meet dropped rows or zero weights."""
    for r in range(orow.shape[0]):
        if orow[r] < 0:
            continue
        src = A[a0 + r * src_ld: a0 + r * src_ld + 2 * K]
        lo = P[r * ld: r * ld + K]
        hi = P[hoff + r * ld: hoff + r * ld + K]
        for k in range(K):
            lo[k] = src[2 * k]
            hi[k] = src[2 * k + 1]


@njit(cache=True, nogil=True)
def _mk_split(A, a0, a1, hoff, stride, koff, sl, kc0, kc1, Bp, pb, T, toff, init):
    """int16 activations as byte planes (low bytes at ``A[a]``, high bytes at ``A[hoff + a]``,
    :func:`_split_rows`) x one 16-channel int8 weight tile per 64-element chunk (the 8-bit
    packing): T columns 0..15 get sum(lo * w) (``tdpbusd``), 16..31 sum(hi * w)
    (``tdpbssd``), rows 0..15 for tile ``a0``, 16..31 for ``a1``: 64 elements per tile row,
    twice what weights packed under the low and the high bytes of int16 rows would give."""
    _c_init(T, toff, init)
    for kc in range(kc0, kc1):
        o = koff[sl, kc]
        _tload(6, Bp, pb + kc * _PANEL, 64)
        _tload(4, A, a0 + o, stride)
        _tdpbusd(0, 4, 6)
        _tload(5, A, hoff + a0 + o, stride)
        _tdpbssd(1, 5, 6)
        _tload(7, A, a1 + o, stride)
        _tdpbusd(2, 7, 6)
        _tload(4, A, hoff + a1 + o, stride)
        _tdpbssd(3, 4, 6)
    _tstore(0, T, toff, 256)
    _tstore(1, T, toff + 16, 256)
    _tstore(2, T, toff + 16 * 64, 256)
    _tstore(3, T, toff + 16 * 64 + 16, 256)


@njit(cache=True, nogil=True, parallel=True)
def _run_parallel(ntask, fam, A, At, tbase, tsrc, torow, pslot, kn, src_ld, stride, koff, Bp, N, pan_w, ppt, qpt, corr, sn, out, osize,
                  mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd, vec, corr32, cfg):
    clamped = 0
    for task in prange(ntask):
        clamped += _task(task, fam, A, At, tbase, tsrc, torow, pslot, kn, src_ld, stride, koff, Bp, N, pan_w, ppt, qpt, corr, sn, out,
                         osize, mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd, vec, corr32, cfg)
    return clamped


# _run's blob (built by Launch._pack): a 64-byte head of int64 section offsets in bytes, then
# 64-byte aligned sections: int64 (a head of array offsets, then tbase, torow, pslot, kn, koff
# flattened, corr, m0s, shift and the scalars _S_*), float32 (mf, then bterm), float64 (mult),
# int32 (corr32), uint8 (the 64-byte tile configuration, then tsrc)
_S_FAM, _S_SRC_LD, _S_STRIDE, _S_N, _S_PAN_W, _S_SN, _S_OSIZE, _S_MODE, _S_CODE, _S_ZY, _S_AMIN, _S_AMAX, _S_RND, \
    _S_VEC, _S_NMF, _S_DELTA = range(16)


@njit(cache=True, nogil=True)
def _run(threads, A, At, out, Bp, blob):
    """Tile pairs x channel panels (``pan_w`` = 32 channels for 8-bit, 16 for 16-bit
    activations), the task grid (:func:`_task_grid`) being groups of pairs x panels, run in
    parallel over ``threads`` (Numba's count, read in Python: read here it would keep the
    function out of the cache), or in a plain loop on one thread (a parallel launch costs
    about 2 us). Returns the clamp count.

    Everything but the activations ``A`` / ``At``, the output bytes and the packed weights
    ``Bp`` comes in one byte array ``blob`` (see :meth:`Launch._pack`): each array argument
    costs about 60 ns to pass from Python and each argument of a compiled call a reference
    count up and down (about 200 atomic operations a call when this was three functions with
    35 arguments). The five arrays go on as borrowed views (:func:`_borrowed`), so views of
    them and calls with them count no references (against the counted version, alternating in
    one process: 32 x 64 x 64 1.82-1.91 against 2.33-2.49 us a call, 256^3 0.6-1.8 us less
    over six rounds, median 0.8). ``fam``: one of the ``FAM_*`` families; FAM_SPLIT rows are
    ``src_ld`` bytes apart and split per row group into byte planes of ``stride`` bytes per
    row, FAM_PLANES has the high-byte plane ``src_ld`` bytes after the low one. Tile ``t``
    starts at byte ``tbase[t]`` of ``A`` (``At`` when ``tsrc[t]``); its 16 output rows are
    ``torow[16 t: 16 t + 16]`` (< 0: drop).

    Returns -1 at once when the launch was made for rows starting ``delta`` >= 0 bytes past a
    cache line (its weight slots match that offset) and ``A`` starts elsewhere: the caller
    picks the launch for ``A``'s offset then (one compiled call of its own costs 0.2 us)."""
    A, At, out, Bp, blob = _borrowed(A), _borrowed(At), _borrowed(out), _borrowed(Bp), _borrowed(blob)
    q = blob[:64].view(np.int64)
    h = blob[q[0]:q[1]].view(np.int64)
    s = h[h[8]:h[9]]
    if s[_S_DELTA] >= 0 and A.ctypes.data % CHUNK_BYTES != s[_S_DELTA]:
        return -1
    f32 = blob[q[1]:q[2]].view(np.float32)
    u8 = blob[q[4]:q[5]]
    fam, src_ld, stride, N, pan_w = s[_S_FAM], s[_S_SRC_LD], s[_S_STRIDE], s[_S_N], s[_S_PAN_W]
    sn, osize, mode, code, zy = s[_S_SN], s[_S_OSIZE], s[_S_MODE], s[_S_CODE], s[_S_ZY]
    amin, amax, rnd, vec, nmf = s[_S_AMIN], s[_S_AMAX], s[_S_RND], s[_S_VEC] != 0, s[_S_NMF]
    tbase, torow, pslot, kn = h[h[0]:h[1]], h[h[1]:h[2]], h[h[2]:h[3]], h[h[3]:h[4]]
    koff = h[h[4]:h[5]].reshape((kn.shape[0], (h[5] - h[4]) // kn.shape[0]))
    corr, m0s, shift = h[h[5]:h[6]], h[h[6]:h[7]], h[h[7]:h[8]]
    mf, bterm, mult, corr32 = f32[:nmf], f32[nmf:], blob[q[2]:q[3]].view(np.float64), blob[q[3]:q[4]].view(np.int32)
    cfg, tsrc = u8[:64], u8[64:]
    npairs = tbase.shape[0] // 2
    npan = (N + pan_w - 1) // pan_w
    ppt, qpt = _task_grid(npairs, npan, threads, 2 * TILE_ROWS * stride)
    ntask = ((npairs + ppt - 1) // ppt) * ((npan + qpt - 1) // qpt)
    if threads == 1 or ntask == 1:
        clamped = 0
        for task in range(ntask):
            clamped += _task(task, fam, A, At, tbase, tsrc, torow, pslot, kn, src_ld, stride, koff, Bp, N, pan_w, ppt, qpt,
                             corr, sn, out, osize, mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd, vec,
                             corr32, cfg)
        return clamped
    return _run_parallel(ntask, fam, A, At, tbase, tsrc, torow, pslot, kn, src_ld, stride, koff, Bp, N, pan_w, ppt, qpt,
                         corr, sn, out, osize, mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd, vec, corr32,
                         cfg)


# ---------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------

class AmxWeights:
    """Centred weights packed for AMX. ``bp`` bytes; ``colsum`` int64 per output channel;
    ``maxabs`` max |w - zw|; ``w16`` True for 16-bit weights (four byte packings, 16-bit
    activations), else the 8-bit packing; ``n`` channels."""

    __slots__ = ("bp", "colsum", "maxabs", "w16", "n", "nkc")

    def __init__(self, bp, colsum, maxabs, n, nkc, w16=False):
        self.bp, self.colsum, self.maxabs, self.n, self.nkc, self.w16 = bp, colsum, maxabs, n, nkc, w16


def _aligned_copy(a):
    """The bytes of ``a`` in C order, in a buffer starting on a cache line (see :func:`aligned_empty`)."""
    a = np.asarray(a)
    out = aligned_empty(a.nbytes)
    out.view(a.dtype).reshape(a.shape)[...] = a
    return out


def _under_chunks(wrows, kmap, pan_w, dtype):
    """The weight rows under each element of each chunk, ``(nkc, elements, channels padded to
    whole panels of pan_w)`` in ``dtype``, zero where ``kmap`` is negative."""
    E, N = wrows.shape
    g = np.vstack([wrows, np.zeros((1, N), np.int64)])
    G = g[np.where(kmap < 0, E, kmap)]
    Gp = np.zeros(G.shape[:2] + (-(-N // pan_w) * pan_w,), dtype)
    Gp[:, :, :N] = G
    return Gp


def _packed(bp, wrows, nkc, w16=False):
    return AmxWeights(_aligned_copy(bp), wrows.sum(axis=0), int(np.abs(wrows).max()) if wrows.size else 0,
                      wrows.shape[1], nkc, w16=w16)


def pack_weights(wrows, kmap):
    """Pack centred weights ``wrows[e, n]`` (int64, values in int8) for the chunks ``kmap``:
    ``kmap[kc, i]`` is the weight row under element ``i`` of chunk ``kc`` (-1: zero), 64
    elements per chunk (8-bit activations, or the byte planes of 16-bit ones).

    Layout, per panel (32 channels) and chunk: tiles of 16 rows x 64 bytes, row ``r`` holding
    for each of 16 channels the 4 bytes of elements ``4r..4r+3``.
    """
    wrows = np.asarray(wrows, np.int64)
    nkc = kmap.shape[0]
    Gp = _under_chunks(wrows, kmap, 32, np.int8)           # (nkc, 64, channels)
    t = Gp.reshape(nkc, 16, 4, -1, 2, 16)                   # kc, r, q, panel, half, j
    bp = t.transpose(3, 4, 0, 1, 5, 2)                      # panel, half, kc, r, j, q
    return _packed(bp, wrows, nkc)


def pack_weights16(wrows, kmap):
    """Pack centred int16 weights for int16 activations (32 elements per chunk): per 16-channel
    panel and chunk four tiles, row ``r`` holding per channel ``[lo(2r), 0, lo(2r+1), 0]``,
    ``[hi(2r), 0, hi(2r+1), 0]``, ``[0, lo(2r), 0, lo(2r+1)]``, ``[0, hi(2r), 0, hi(2r+1)]`` with
    ``lo = w & 0xFF`` (unsigned) and ``hi = w >> 8`` (signed): under the activations' low
    bytes, then under their high bytes."""
    wrows = np.asarray(wrows, np.int64)
    nkc = kmap.shape[0]
    Gp = _under_chunks(wrows, kmap, 16, np.int64)          # (nkc, 32, channels)
    npan = Gp.shape[2] // 16
    te = Gp.reshape(nkc, 16, 2, npan, 16).transpose(3, 0, 1, 4, 2)   # panel, kc, r, j, e
    lo = (te & 0xFF).astype(np.uint8)
    hi = (te >> 8).astype(np.int8).view(np.uint8)
    z = np.zeros((npan, nkc, 4, 16, 16, 4), np.uint8)               # panel, kc, packing, r, j, byte
    for k, (part, off) in enumerate(((lo, 0), (hi, 0), (lo, 1), (hi, 1))):
        z[:, :, k, :, :, off] = part[..., 0]
        z[:, :, k, :, :, off + 2] = part[..., 1]
    return _packed(z, wrows, nkc, w16=True)


def fits_int32(K, x_bytes, signed, maxabs, w16=False):
    """True when no int32 tile accumulator can overflow: ``K * max|x as the tile sees it| *
    max|w| <= 2**31 - 1`` (for 16-bit activations, each byte product sum separately; for
    16-bit weights the largest byte product sum is ``K * 255 * 255``, the middle one ``2 K *
    255 * 128``)."""
    if w16:
        return K * 255 * 255 <= _INT32_MAX
    xmax = 255 if (x_bytes == 2 or not signed) else 128
    return K * xmax * max(1, maxabs) <= _INT32_MAX


# ---------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _task_grid(npairs, npan, threads, pair_bytes):
    """(pairs per task, panels per task): row groups of at most 8 pairs whose activations
    (``pair_bytes`` each) fit in about 128 KB of L2 across panels (1024^3: 4 pairs 2122 GOP/s,
    8 pairs 1709 in one run), split over panels when that gives too few tasks for the threads."""
    threads = max(1, threads)
    if threads == 1 and npan <= 2:
        # few panels re-read a group's rows: larger groups, fewer per-group costs (1 thread,
        # 12544x288x64: 7 pairs 556 us, 16 pairs 441 us; 3136x576x64: 144 -> 133 us)
        ppt = max(1, min(16, npairs, max(2, (256 << 10) // max(1, pair_bytes))))
    else:
        ppt = max(1, min(8, npairs, max(2, (128 << 10) // max(1, pair_bytes))))
    ngr = (npairs + ppt - 1) // ppt
    want = 4 * threads if threads > 1 else 1     # several tasks per thread balance the load; one thread needs one
    if ngr >= want or npan == 1:
        return ppt, npan
    split = min(npan, (want + ngr - 1) // ngr)
    qpt = (npan + split - 1) // split
    return ppt, qpt + (qpt % 2 if qpt < npan else 0)   # even: panels go to the epilogue in pairs


class Launch:
    """Everything of one fused run that does not depend on the activations, prepared once
    per plan: tiles (odd lists padded with a dropped copy of the last tile), the correction
    ``-zx * colsum(w) + bias``, the epilogue's arguments. ``launch(a_bytes, at_bytes, out_bytes)``
    runs :func:`_run` and returns the clamp count.

    ``koff`` is one row of chunk offsets, or one per slot (``koff[s]``, all of one length)
    when ``aw`` packs the weights once per slot (chunks of slot ``s`` at ``s * nkc``:
    :func:`_slot_weights`); tile ``t`` uses slot ``tslot[t]`` (both tiles of a pair alike) and
    the first ``kcount[slot]`` chunks of its row (default: all). ``delta`` >= 0: the launch
    runs only for activations starting that many bytes past a cache line (else returns -1,
    see :func:`_run`)."""

    def __init__(self, tbase, tsrc, torow, stride, koff, aw, sn, *, x_kernel_dtype, zx, bias, requant, osize,
                 tslot=None, kcount=None, src_ld=0, planes_hoff=0, delta=-1):
        dt = np.dtype(x_kernel_dtype)
        if dt.itemsize == 1:
            self.fam = FAM_S8 if dt == np.int8 else FAM_U8
        elif aw.w16:
            self.fam = FAM_W16
        else:       # 16-bit activations x the 8-bit packing: byte planes
            self.fam = FAM_PLANES if planes_hoff else FAM_SPLIT
        # uint16 -> int16 by x ^ 0x8000 (= x - 32768), corrected below (the caller flips planes)
        self.flip16 = dt == np.uint16 and not planes_hoff
        if self.flip16:
            delta = -1      # the flipped copy lies wherever NumPy puts it
        zeff = int(zx) - (32768 if dt == np.uint16 else 0)
        corr = -zeff * aw.colsum
        if bias is not None:
            corr = corr + bias
        if tslot is None:
            tslot = np.zeros(tbase.shape[0], np.int64)
        if tbase.shape[0] % 2:
            tbase = np.append(tbase, tbase[-1])
            tsrc = np.append(tsrc, tsrc[-1])
            tslot = np.append(tslot, tslot[-1])
            torow = np.append(torow, np.full(TILE_ROWS, -1, np.int64))
        if np.any(tslot[0::2] != tslot[1::2]):
            raise ValueError("both tiles of a pair must use the same weight slot")
        self.pslot = np.ascontiguousarray(tslot[0::2], np.int64)     # weight slot per tile pair
        koff = np.atleast_2d(koff)
        kn = np.full(koff.shape[0], koff.shape[1], np.int64) if kcount is None else kcount
        args, vec, corr32 = vnni.epilogue_args(aw.n, np.asarray(corr, np.int64), requant, osize, dt.itemsize == 1)
        mode, code, mf, mult, m0s, shift, bterm, zy, amin, amax, rnd = args
        scal = [0] * 16
        scal[_S_FAM], scal[_S_SRC_LD], scal[_S_STRIDE], scal[_S_N], scal[_S_PAN_W] = (
            self.fam, int(planes_hoff or src_ld), int(stride), aw.n, 16 if dt.itemsize == 2 else 32)
        scal[_S_SN], scal[_S_OSIZE], scal[_S_MODE], scal[_S_CODE], scal[_S_ZY] = int(sn), osize, mode, code, zy
        scal[_S_AMIN], scal[_S_AMAX], scal[_S_RND], scal[_S_VEC], scal[_S_NMF], scal[_S_DELTA] = (
            amin, amax, rnd, int(vec), mf.size, delta)
        self._bp = aw.bp
        self._blob = self._pack([tbase, torow, self.pslot, kn, koff, corr, m0s, shift, scal],
                                np.concatenate([mf, bterm]), mult, corr32, np.concatenate([_CFG, np.asarray(tsrc, np.uint8)]))

    @staticmethod
    def _pack(i64, f32, f64, i32, u8):
        """The blob :func:`_run` reads (see the note above it)."""
        head = np.cumsum([len(i64) + 1] + [np.size(a) for a in i64])
        secs = [np.concatenate([head] + [np.asarray(a, np.int64).reshape(-1) for a in i64]).astype(np.int64),
                np.asarray(f32, np.float32), np.asarray(f64, np.float64), np.asarray(i32, np.int32),
                np.asarray(u8, np.uint8)]
        offs = [CHUNK_BYTES]
        for a in secs:
            offs.append(offs[-1] + -(-a.nbytes // CHUNK_BYTES) * CHUNK_BYTES)
        blob = aligned_empty(offs[-1])
        blob[:] = 0
        blob[:6 * 8].view(np.int64)[:] = offs
        for o, a in zip(offs, secs):
            blob[o:o + a.nbytes] = a.reshape(-1).view(np.uint8)
        return blob

    def __call__(self, a_bytes, at_bytes, out_bytes):
        if self.flip16:
            a_bytes = np.bitwise_xor(a_bytes.view(np.uint16), np.uint16(0x8000)).view(np.uint8)
            at_bytes = np.bitwise_xor(at_bytes.view(np.uint16), np.uint16(0x8000)).view(np.uint8)
        return _run(_num_threads(), a_bytes, at_bytes, out_bytes, self._bp, self._blob)


def _num_threads():
    """``numba.get_num_threads()`` without its two lock acquisitions once Numba's threading
    layer is up (0.9 -> 0.2 us a call; the count is still the calling thread's own)."""
    if getattr(_numba_parallel, "_is_initialized", False):
        n = _numba_parallel._get_num_threads()
        if n > 0:
            return n
    return get_num_threads()


class _Stats:
    """The KernelStats of a plan's calls (``macs`` fixed): the last object is handed out again
    while the clamp count repeats (a frozen dataclass costs 0.75 us to build, a tenth of a
    small GEMM's call)."""

    __slots__ = ("macs", "last")

    def __init__(self, macs):
        self.macs = macs
        self.last = KernelStats(macs=macs)

    def __call__(self, clamped):
        s = self.last
        if s.out_clamped != clamped:
            s = self.last = KernelStats(macs=self.macs, out_clamped=clamped)
        return s


# ---------------------------------------------------------------------------------------
# Plans: GEMM and convolution as tiles over activations read in place
# ---------------------------------------------------------------------------------------

def _chunks(segments, epc, isz=1):
    """K-chunks of ``segments`` [(byte offset, elements, first weight row)]: (koff, kmap).
    Chunk ``j`` of a segment is the 64 bytes at ``offset + 64 j``; ``kmap`` gives the weight
    row under each of its ``epc`` elements, negative (zero weight) past the segment.

    A segment ``(offset, elements, row, lead)`` starts ``lead`` elements of ``isz`` bytes early
    (at ``offset - lead * isz``, e.g. on a cache line): those bytes belong to other pixels or
    rows and meet zero weights."""
    koff, kmap = [], []
    for seg in segments:
        off, length, row0 = seg[:3]
        lead = seg[3] if len(seg) > 3 else 0
        off -= lead * isz
        for j in range((length + lead + epc - 1) // epc):
            e = j * epc + np.arange(epc, dtype=np.int64) - lead
            koff.append(off + j * CHUNK_BYTES)
            kmap.append(np.where((e >= 0) & (e < length), row0 + e, -1))
    return np.asarray(koff, np.int64), np.asarray(kmap, np.int64).reshape(len(koff), epc)


def _weights(owner, key, centred_rows, kmap, w16):
    """The weights packed for the chunks ``kmap`` (cached per read-only owner): the 8-bit
    packing when the centred values fit int8, with ``w16`` (16-bit activations whose weights
    did not fit the 8-bit packing) the four-byte packing of int16 values; else None."""
    if not cpu.has_amx():      # also asks the OS for the tile state: without it AMX faults (SIGILL)
        return None

    def build():
        wc = centred_rows()
        lo, hi = (-32768, 32767) if w16 else (-128, 127)
        if wc.size and (wc.min() < lo or wc.max() > hi):
            return None
        return pack_weights16(wc, kmap) if w16 else pack_weights(wc, kmap)
    return vnni._cached_pack(owner, key + ("amx",), build)


def _exact(x, zx, K, aw, bias, accum):
    """The VNNI path's accumulator check plus the int32 tile bound: None when the tiles do
    not apply, else whether the proof used only the dtype (the plan is then reusable)."""
    by_dtype = []
    if aw is None or vnni._check_exact(x, zx, K, aw.maxabs, bias, accum, by_dtype, int32_lanes=False) is None:
        return None
    if not fits_int32(K, x.dtype.itemsize, x.dtype == np.int8, aw.maxabs, aw.w16):
        return None
    return not by_dtype


def _out_dtype(rq, accum):
    if rq is None:
        return np.dtype(np.int32 if accum.bits <= 32 else np.int64)
    return np.dtype(rq[0].out_fmt.storage_dtype)


def aligned_empty(nbytes):
    """``nbytes`` uninitialised bytes starting on a 64-byte cache line. A tile row that
    straddles two lines costs two loads: a tile load from L1 measured about 3 ns aligned
    and 15-20 ns 16 bytes off a line."""
    return _aligned_u8(nbytes)


@njit(cache=True, nogil=True)
def _line_offset(a):
    """Bytes from the cache line's start to ``a``'s first byte (``a.ctypes.data`` costs 1.4 us
    from Python, this 0.2)."""
    return a.ctypes.data % CHUNK_BYTES


def _aligned_rows(a2, rows, ld):
    """A copy of byte rows ``a2`` (M x L) in a 64-byte-aligned buffer of ``rows`` rows of ``ld``
    bytes (extra bytes and rows left as they are: they only meet zero weights or dropped rows)."""
    M, L = a2.shape
    v = aligned_empty(rows * ld)
    v.reshape(rows, ld)[:M, :L] = a2
    return v


def _shifted_chunks(K, isz, delta):
    """K-chunks for rows that start ``delta`` bytes past a 64-byte boundary: one segment that
    starts ``delta`` bytes early, so chunk ``c`` is the aligned 64 bytes at ``64 c - delta``
    (one more chunk than unshifted); the bytes before element 0 meet zero weights."""
    return _chunks([(0, K, 0, delta // isz)], CHUNK_BYTES // isz, isz)


def _period(ld):
    """Rows after which rows ``ld`` bytes apart start at the same offset within a cache line
    again (1, 2 or 4), or 0 when that takes more than 4 rows (``ld`` not a multiple of 16)."""
    if ld % 16:
        return 0
    return CHUNK_BYTES // math.gcd(ld % CHUNK_BYTES, CHUNK_BYTES) if ld % CHUNK_BYTES else 1


def _slot_weights(owner, key, centred_rows, shifted, w16):
    """Weights packed once per slot for the chunkings ``shifted`` = [(koff, kmap)] (one per
    slot), padded to one chunk count (extra chunks repeat the last offset under zero weights):
    (AmxWeights or None, koff of shape (slots, chunks), chunks per slot before the padding).
    ``key`` must name the chunkings."""
    nkc = max(k.shape[0] for k, _ in shifted)
    koffs, kmaps = [], []
    for k, m in shifted:
        extra = nkc - k.shape[0]
        koffs.append(np.concatenate([k, np.full(extra, k[-1], np.int64)]))
        kmaps.append(np.vstack([m, np.full((extra, m.shape[1]), -1, np.int64)]))
    aw = _weights(owner, key, centred_rows, np.vstack(kmaps), w16)
    return aw, np.stack(koffs), np.array([k.shape[0] for k, _ in shifted], np.int64)


def _row_tiles(M, ld, per):
    """Tiles over ``M`` rows ``ld`` bytes apart, in blocks of ``32 * per`` rows: the pair of
    tiles of class ``c`` in block ``b`` holds rows ``b * 32 per + c + per * i`` (i < 16, then
    16 <= i < 32), so that with ``per`` = :func:`_period` every row of a tile starts at the same
    offset within a cache line. Returns (tbase: first row's byte offset, rows: row index per
    tile row, cls: class per tile, block: block per tile, stride between a tile's rows)."""
    blk = 32 * per
    nb = (M + blk - 1) // blk
    b = np.arange(nb, dtype=np.int64)[:, None, None]
    c = np.arange(per, dtype=np.int64)[None, :, None]
    h = np.arange(2, dtype=np.int64)[None, None, :]
    first = (b * blk + c + per * TILE_ROWS * h).reshape(-1)
    rows = first[:, None] + per * np.arange(TILE_ROWS, dtype=np.int64)[None, :]
    cls = np.broadcast_to(c, (nb, per, 2)).reshape(-1)
    block = np.broadcast_to(b, (nb, per, 2)).reshape(-1)
    return first * ld, rows.reshape(-1), cls, block, per * ld


def gemm_fn(x, M, K, N, lead, centred_rows, owner, key, zx, bias, rq, params):
    """AMX plan for ``x (.., K) @ w (K, N)`` (see :func:`hwsim.kernels.vnni.gemm_plan`), or None.

    A tile row that straddles two cache lines costs two loads (a tile load measured 3 ns on
    one line, 15-20 ns across two). Rows are therefore read as 64-byte chunks aligned to the
    cache lines, against weights packed with a matching shift:

    * rows whose length is a multiple of 16 bytes start at offsets that repeat every ``per``
      = 1, 2 or 4 rows (:func:`_period`); tiles take every ``per``-th row (:func:`_row_tiles`),
      so all 16 rows of a tile start at one offset ``s`` within a line, and read the chunks
      starting ``s`` bytes before the row with weights shifted by ``s`` (one slot of packed
      weights per offset; the bytes before the first element and after the last lie in the
      rows' own cache lines). The offsets depend on where NumPy put ``x`` (large buffers
      usually 16 bytes past a line), so the plan prepares a launch per likely start offset
      (all four for weights up to 1 MB, else 0 and 16) and copies ``x`` to a cache line for
      any other (12544 x 288 x 64: rows of 288 bytes, every second row aligned);
    * other rows are copied into aligned rows when 4 or more channel panels read them, and
      read in place otherwise.
    """
    isz = x.dtype.itemsize
    if isz == 2:
        fn = _gemm_split_fn(x, M, K, N, lead, centred_rows, owner, key, zx, bias, rq, params)
        if fn is not None:
            return fn
    w16 = isz == 2       # 16-bit activations here: weights outside int8 (the four-byte packing)
    lda = K * isz
    per = _period(lda)
    if per and M < 64 * per:        # blocks of 32 * per rows: a few rows would fill a block with dropped rows
        per = 1 if lda % CHUNK_BYTES == 0 else 0
    pad = not per and (N + 31) // 32 >= 4
    ldp = -(-lda // CHUNK_BYTES) * CHUNK_BYTES if pad else lda
    tper = per or 1
    tbase, rows, cls, block, stride = _row_tiles(M, ldp, tper)
    torow = np.where(rows < M, rows * N, -1)
    # blocks with rows past M (or, unshifted, whose last reads pass the end of A) read a copy
    # of their rows
    tile_rows = rows.reshape(-1, TILE_ROWS)
    past = tile_rows.max(axis=1) >= M
    if not per:
        past |= tbase + (TILE_ROWS - 1) * stride + ldp + CHUNK_BYTES > M * ldp
    first = int(block[past].min()) if past.any() else int(block.max()) + 1
    tsrc = (block >= first).astype(np.uint8)
    blk_bytes = 32 * tper * ldp
    tb = np.where(tsrc == 1, tbase - first * blk_bytes, tbase)
    at_len = (int(block.max()) + 1 - first) * blk_bytes + 2 * CHUNK_BYTES
    out_dt = _out_dtype(rq, params.accum)
    # slots: chunkings for the start offsets the rows can have (NumPy's large buffers start
    # 16 bytes past a line, small ones at 0, 16, 32 or 48); made now, as the plan must not keep
    # the weights alive
    if per:
        deltas = (0, 16, 32, 48) if K * N * isz <= (1 << 20) else (0, 16)
        shifts = sorted({(d + c * lda) % CHUNK_BYTES for d in deltas for c in range(per)} | {0})
    else:
        deltas, shifts = (0,), [0]
    aw, koff, kcount = _slot_weights(owner, key + ("shifts",) + tuple(shifts), centred_rows,
                             [_shifted_chunks(K, isz, sh) for sh in shifts], w16)
    reusable = _exact(x, zx, K, aw, bias, params.accum)
    if reusable is None:
        return None
    launches = {}
    for d in deltas:
        tslot = np.array([shifts.index((d + c * ldp) % CHUNK_BYTES) if per else 0 for c in range(tper)])[cls]
        launches[d] = Launch(tb, tsrc, torow, stride, koff, aw, 1, x_kernel_dtype=x.dtype, zx=zx, bias=bias,
                             requant=rq, osize=out_dt.itemsize, tslot=tslot, kcount=kcount, delta=d if per else -1)
    stats = _Stats(M * N * K)
    no_tail = np.zeros(CHUNK_BYTES, np.uint8)    # never read: no tile has tsrc set
    has_tail = bool(tsrc.any())
    last = [launches[deltas[0]]]    # the launch the last call took (a guess for the next one)
    as_bytes = x.dtype != np.uint8
    oshape = (*lead, N)
    out_bytes = out_dt != np.uint8    # the output array is viewed as bytes for _run

    def fn(x_q, w_q, bias_q, pp):
        xa = x_q if type(x_q) is np.ndarray and x_q.flags.c_contiguous else np.ascontiguousarray(x_q)
        ab = xa.reshape(-1)
        if as_bytes:
            ab = ab.view(np.uint8)
        if pad:
            ab = _aligned_rows(ab.reshape(M, lda), M, ldp)
        # the result in its shape, and its bytes (three NumPy arrays made for a uint8 result, not
        # four: 0.25 us of 20 at 256^3)
        y = np.empty(oshape, out_dt)
        ob = y.reshape(-1)
        if out_bytes:
            ob = ob.view(np.uint8)
        if not has_tail:
            # the launch of the last call first: it returns -1 when x starts at another offset
            clamped = last[0](ab, no_tail, ob)
            if clamped >= 0:
                return y, stats(clamped)
        delta = _line_offset(ab) if per else 0
        if delta not in launches:
            # a start offset without its own weight slots (x is a view, or a large weight matrix
            # keeps slots for the usual offsets only): an aligned copy of x, O(M K) against the
            # GEMM's O(M K N), instead of tile rows across cache lines
            ab = _aligned_copy(ab)
            delta = 0
        at = no_tail
        if has_tail:
            # the tail copy starts delta bytes past a line too, with room before it
            raw = np.zeros(at_len + 2 * CHUNK_BYTES, np.uint8)
            off = CHUNK_BYTES + (delta - _line_offset(raw) - CHUNK_BYTES) % CHUNK_BYTES
            at = raw[off:off + at_len]
            src = ab[first * blk_bytes: M * ldp]
            at[:src.size] = src
        last[0] = launches[delta]
        clamped = last[0](ab, at, ob)
        return y, stats(clamped)
    fn.reusable = reusable
    return fn


def _gemm_split_fn(x, M, K, N, lead, centred_rows, owner, key, zx, bias, rq, params):
    """:func:`gemm_fn` for 16-bit activations with 8-bit weights: each task splits its rows of
    ``x`` into a low-byte and a high-byte plane (:func:`_split_rows`, rows padded to whole cache
    lines) and multiplies both with the 8-bit weight packing (:func:`_mk_split`); None when the
    centred weights leave int8 (then :func:`gemm_fn`'s four-byte int16 packing runs)."""
    koff, kmap = _shifted_chunks(K, 1, 0)
    aw = _weights(owner, key + ("split",), centred_rows, kmap, False)
    reusable = _exact(x, zx, K, aw, bias, params.accum)
    if reusable is None:
        return None
    ld = -(-K // CHUNK_BYTES) * CHUNK_BYTES
    tbase, rows, _, _, stride = _row_tiles(M, ld, 1)
    torow = np.where(rows < M, rows * N, -1)
    out_dt = _out_dtype(rq, params.accum)
    launch = Launch(tbase, np.zeros(tbase.shape[0], np.uint8), torow, stride, koff, aw, 1, x_kernel_dtype=x.dtype,
                    zx=zx, bias=bias, requant=rq, osize=out_dt.itemsize, src_ld=2 * K)
    stats = _Stats(M * N * K)
    no_tail = np.zeros(CHUNK_BYTES, np.uint8)

    def fn(x_q, w_q, bias_q, pp):
        xa = x_q if type(x_q) is np.ndarray and x_q.flags.c_contiguous else np.ascontiguousarray(x_q)
        ob = np.empty(M * N * out_dt.itemsize, np.uint8)
        clamped = launch(xa.reshape(-1).view(np.uint8), no_tail, ob)
        return ob.view(out_dt).reshape(*lead, N), stats(clamped)
    fn.reusable = reusable
    return fn


def conv_fn(x, wshape, geometry, centred_rows, owner, key, zx, bias, rq, params):
    """AMX plan for a dense NCHW convolution (see :func:`hwsim.kernels.vnni.conv_plan`), or None.
    ``geometry`` = (pads, strides, dilations, OH, OW, Hp, Wp); ``centred_rows()`` gives the
    centred weights as rows ``(kh * KW + kw) * C + c`` x output channels.

    16-bit activations with weights that fit int8 are laid out as two 8-bit images, the low
    and the high bytes (``x = 256 hi + lo``), and run as 8-bit convolutions (FAM_PLANES of
    :func:`_task`); int16 weights outside int8 use the four-byte packing over the int16 image."""
    if x.dtype.itemsize == 2:
        fn = _conv_fn(x, wshape, geometry, centred_rows, owner, key, zx, bias, rq, params, True)
        if fn is not None:
            return fn
    return _conv_fn(x, wshape, geometry, centred_rows, owner, key, zx, bias, rq, params, False)


def _conv_fn(x, wshape, geometry, centred_rows, owner, key, zx, bias, rq, params, planes):
    NB, C, H, W = x.shape
    Cout, _, KH, KW = wshape
    (pt, pl, _, _), (sh, sw), (dh, dw), OH, OW, Hp, Wp = geometry
    isz = 1 if planes else x.dtype.itemsize     # bytes per element as the tiles read them
    if planes:
        key = key + ("planes",)
    epc = CHUNK_BYTES // isz
    pix = C * isz
    if dw == 1:     # a kernel row's KW pixels are contiguous: one segment per kernel row
        segs = [(kh * dh * Wp * pix, KW * C, kh * KW * C) for kh in range(KH)]
    else:
        segs = [((kh * dh * Wp + kw * dw) * pix, C, (kh * KW + kw) * C) for kh in range(KH) for kw in range(KW)]
    K = C * KH * KW
    OHW = OH * OW
    img = Hp * Wp * pix
    b = np.arange(NB, dtype=np.int64)
    r = np.arange(TILE_ROWS, dtype=np.int64)
    if sh == 1 and sw == 1:
        # whole images flattened over the padded width: rows one pixel apart, 16 consecutive
        # pixels per tile. Unlike GEMM rows, pixels of 16/32/48 bytes are not tiled by row class
        # (see gemm_fn): the NCHW epilogue's 16 x 16 transpose needs consecutive pixels, and
        # measured more than the straddling tile rows cost (32x112x112->64: 525-789 GOP/s
        # consecutive, 325-469 by class)
        mp = np.arange(0, OH * Wp, TILE_ROWS, dtype=np.int64)
        tbase = (b[:, None] * img + mp[None, :] * pix).reshape(-1)
        oh, ow = np.divmod(mp[:, None] + r[None, :], Wp)
        o = np.where((oh < OH) & (ow < OW), oh * OW + ow, -1)
        stride = pix
    else:
        # one output row at a time: rows stride_w pixels apart
        ow0 = np.arange(0, OW, TILE_ROWS, dtype=np.int64)
        ohs = np.arange(OH, dtype=np.int64)
        tbase = (b[:, None, None] * img + (ohs[None, :, None] * sh * Wp + ow0[None, None, :] * sw) * pix).reshape(-1)
        ow = ow0[:, None] + r[None, :]
        o = np.where(ow < OW, ohs[:, None, None] * OW + ow[None], -1).reshape(-1, TILE_ROWS)
        stride = sw * pix
    koff, kmap = _chunks(segs, epc)
    aw = _weights(owner, key, centred_rows, kmap, x.dtype.itemsize == 2 and not planes)
    reusable = _exact(x, zx, K, aw, bias, params.accum)
    if reusable is None:
        return None
    o = np.broadcast_to(o.reshape(1, -1, TILE_ROWS), (NB, o.size // TILE_ROWS, TILE_ROWS))
    torow = np.where(o >= 0, b[:, None, None] * (Cout * OHW) + o, -1).reshape(-1)
    tsrc = np.zeros(tbase.shape[0], np.uint8)
    total = NB * img
    alloc = max(total, int(tbase.max()) + (TILE_ROWS - 1) * stride + int(koff.max()) + CHUNK_BYTES)
    at = np.zeros(CHUNK_BYTES, np.uint8)
    out_dt = _out_dtype(rq, params.accum)
    hoff = -(-alloc // CHUNK_BYTES) * CHUNK_BYTES
    launch = Launch(tbase, tsrc, torow, stride, koff, aw, OHW, x_kernel_dtype=x.dtype, zx=zx, bias=bias,
                    requant=rq, osize=out_dt.itemsize, planes_hoff=hoff if planes else 0)
    stats = _Stats(NB * OHW * Cout * K)
    flip = x.dtype == np.uint16
    zb = (int(zx) ^ 0x8000) if flip else int(zx) & 0xFFFF     # the zero point's bytes, as the planes hold it

    def fill(x_q):
        """The tiles' input: the zero-point-padded NHWC copy of x (two 8-bit images, low and
        high bytes, for planes)."""
        if not planes:
            xx = np.asarray(x_q)
            buf = aligned_empty(alloc)      # C % 64 == 0 puts every tile row on one line
            buf[total:] = 0
            vnni._to_nhwc(xx, pt, pl, Hp, Wp, C, zx, buf[:total].view(xx.dtype).reshape(NB, Hp, Wp, C))
            return buf
        xx = np.ascontiguousarray(x_q)
        if flip:
            xx = np.bitwise_xor(xx, np.uint16(0x8000))
        xb = xx.view(np.uint8).reshape(NB, C, H, W, 2)      # little-endian: low byte first
        buf = aligned_empty(2 * hoff)
        for k, zk in ((0, zb & 0xFF), (1, zb >> 8)):
            plane = buf[k * hoff: k * hoff + alloc]
            plane[total:] = 0
            vnni._to_nhwc(xb[..., k], pt, pl, Hp, Wp, C, zk, plane[:total].reshape(NB, Hp, Wp, C))
        return buf

    def fn(x_q, w_q, bias_q, pp):
        ob = np.empty(NB * Cout * OHW * out_dt.itemsize, np.uint8)
        clamped = launch(fill(x_q), at, ob)
        return ob.view(out_dt).reshape(NB, Cout, OH, OW), stats(clamped)
    fn.reusable = reusable
    return fn


# ---------------------------------------------------------------------------------------
# Peak
# ---------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _peak_loop(cfg, A, B, C, iters):
    _tcfg(cfg)
    _tzero(0)
    _tzero(1)
    _tzero(2)
    _tzero(3)
    _tload(4, A, 0, 64)
    _tload(5, A, 1024, 64)
    _tload(6, B, 0, 64)
    _tload(7, B, 1024, 64)
    for _ in range(iters):
        _tdpbusd(0, 4, 6)
        _tdpbusd(1, 4, 7)
        _tdpbusd(2, 5, 6)
        _tdpbusd(3, 5, 7)
    _tstore(0, C, 0, 64)
    _trelease()


def peak_gops(seconds=0.05):
    """Register-only ``tdpbusd`` loop (4 independent C tiles), GOP/s on one core; None
    without AMX."""
    if not cpu.has_amx():
        return None
    A = np.ones(2048, np.uint8)
    B = np.ones(2048, np.uint8)
    C = np.zeros(256, np.int32)
    return vnni.loop_rate(lambda n: _peak_loop(_CFG, A, B, C, n), 4 * TILE_ROWS * 16 * CHUNK_BYTES * 2, seconds)
