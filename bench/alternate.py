"""Our W8A8 GEMM (requantized) and onnxruntime's MatMulInteger u8s8 on one problem, timed in
alternating windows in one process, one thread: the best of each window and their ratio.

A full ``hwsim bench`` run times each problem in a few windows; on a shared machine whole
windows (and whole processes) move by 20-45 %, which this script shows directly. Usage::

    python3 bench/alternate.py 256 256 256 [--rounds 5] [--min-time 0.3]
"""
from __future__ import annotations

import argparse

import numpy as np

from hwsim.cli.bench import _ort_gemm_peers, _threads, gemm_case, time_best


def alternate(M, K, N, rounds=5, min_time=0.3):
    """[(our seconds, onnxruntime seconds)] per round, each the best of its window."""
    case = gemm_case("W8A8", M, K, N)
    ort = _ort_gemm_peers(M, K, N, 1, np.random.default_rng(0))["ort_int"]
    out = []
    with _threads(1):
        for _ in range(rounds):
            out.append((time_best(case.call, min_time), time_best(ort, min_time)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("M", type=int)
    ap.add_argument("K", type=int)
    ap.add_argument("N", type=int)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per window")
    args = ap.parse_args(argv)
    for ours, ort in alternate(args.M, args.K, args.N, args.rounds, args.min_time):
        print(f"hwsim {ours * 1e6:9.1f} us   onnxruntime {ort * 1e6:9.1f} us   ratio {ort / ours:.2f}")


if __name__ == "__main__":
    main()
