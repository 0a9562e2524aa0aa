"""pytest-benchmark suite of the integer kernels (run: ``python3 -m pytest bench/ --benchmark-enable``).

The measurement code is shared with ``hwsim bench`` (:mod:`hwsim.cli.bench`). Each kernel x
pair x shape is a benchmark, next to its peers in the same run; ``extra_info`` carries
GOP/s so ``--benchmark-json`` output has the throughput. ``HWSIM_BENCH_THREADS`` selects
the thread counts (default "1,2").
"""
from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    # benchmarks are skipped in the regular test run unless asked for
    if not config.getoption("--benchmark-enable", default=False) and not os.environ.get("HWSIM_BENCH"):
        skip = pytest.mark.skip(reason="benchmarks: run with --benchmark-enable (or HWSIM_BENCH=1)")
        for it in items:
            it.add_marker(skip)


@pytest.fixture(params=[int(t) for t in os.environ.get("HWSIM_BENCH_THREADS", "1,2").split(",")],
                ids=lambda t: f"{t}thr")
def threads(request):
    from hwsim.cli.bench import _threads
    with _threads(request.param):
        yield request.param
