"""Kernel throughput benchmarks: ours (fast path as dispatched, requantization included)
and the peers, per shape and thread count. GOP/s is in each benchmark's extra_info."""
from __future__ import annotations

import numpy as np
import pytest

from hwsim.cli import bench as hb


def _run(benchmark, fn, ops, **info):
    benchmark.extra_info.update(info)
    benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)
    best = benchmark.stats.stats.min
    benchmark.extra_info["gops"] = ops / best / 1e9


@pytest.mark.parametrize("pair", hb.PAIRS)
@pytest.mark.parametrize("shape", hb.GEMM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm(benchmark, threads, pair, shape):
    case = hb.gemm_case(pair, *shape)
    _run(benchmark, case.call, case.ops, kernel="gemm", pair=pair, shape=case.shape, threads=threads)


@pytest.mark.parametrize("pair", hb.PAIRS)
@pytest.mark.parametrize("shape", hb.CONV_SHAPES, ids=lambda s: "c{}h{}w{}o{}k{}".format(*s))
def test_conv(benchmark, threads, pair, shape):
    case = hb.conv_case(pair, *shape)
    _run(benchmark, case.call, case.ops, kernel=case.kernel, pair=pair, shape=case.shape, threads=threads)


@pytest.mark.parametrize("pair", hb.PAIRS)
@pytest.mark.parametrize("shape", hb.DW_SHAPES, ids=lambda s: "c{}h{}w{}k{}".format(*s))
def test_depthwise(benchmark, threads, pair, shape):
    case = hb.depthwise_case(pair, *shape)
    _run(benchmark, case.call, case.ops, kernel=case.kernel, pair=pair, shape=case.shape, threads=threads)


@pytest.mark.parametrize("shape", hb.GEMM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_peer_gemm(benchmark, threads, shape):
    M, K, N = shape
    rng = np.random.default_rng(0)
    peers = {"np_f32": (lambda a=rng.standard_normal((M, K)).astype(np.float32),
                        b=rng.standard_normal((K, N)).astype(np.float32): a @ b)}
    try:
        peers.update(hb._ort_gemm_peers(M, K, N, threads, rng))
    except ImportError:
        pass
    peers.update(hb._torch_peers("gemm", shape, threads, rng))
    ops = 2 * M * K * N
    for name, fn in peers.items():
        benchmark.extra_info[name + "_gops"] = ops / hb.time_best(fn, 0.2) / 1e9
    _run(benchmark, peers["np_f32"], ops, kernel="gemm", pair="np_f32", shape=f"{M}x{K}x{N}", threads=threads)


@pytest.mark.parametrize("shape", hb.CONV_SHAPES + [s[:3] + (s[0],) + s[3:] for s in hb.DW_SHAPES],
                         ids=lambda s: "c{}h{}w{}o{}k{}".format(*s[:5]))
def test_peer_conv(benchmark, threads, shape):
    C, H, W, Cout, k, s, pd = shape
    groups = C if len(shape) == 7 and shape in [x[:3] + (x[0],) + x[3:] for x in hb.DW_SHAPES] else 1
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    peers = hb._ort_conv_peers(C, H, W, Cout, k, s, pd, groups, threads, rng)
    peers.update(hb._torch_peers("conv", (C, H, W, Cout, k, s, pd, groups), threads, rng))
    OH = (H + 2 * pd - k) // s + 1
    OW = (W + 2 * pd - k) // s + 1
    ops = 2 * OH * OW * Cout * (C // groups) * k * k
    for name, fn in peers.items():
        benchmark.extra_info[name + "_gops"] = ops / hb.time_best(fn, 0.2) / 1e9
    _run(benchmark, peers["ort_int"], ops, kernel="conv", pair="ort_int", shape=str(shape), threads=threads)


@pytest.mark.parametrize("fam", ["b8", "w16"])
def test_peak(benchmark, fam):
    from hwsim.kernels import cpu, vnni
    if cpu.kernel_path() not in ("vnni", "amx"):
        pytest.skip("no AVX-512 VNNI")
    benchmark.extra_info["gops"] = max(vnni.peak_gops(fam) for _ in range(3))
    benchmark.pedantic(vnni.peak_gops, args=(fam,), rounds=3, iterations=1)
