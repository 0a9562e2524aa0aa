"""`hwsim bench` plumbing (no timing asserts): argument errors, table format, JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hwsim.cli import main
from hwsim.cli import bench as hb


def test_bad_threads_is_one_line_error(capsys):
    assert main(["bench", "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert "--threads" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_table_ratios():
    row = {"kernel": "gemm", "pair": "W8A8", "shape": "8x8x8", "threads": 1, "path": "vnni", "gops": 100.0,
           "ort_int_gops": 50.0, "np_f32_gops": 200.0, "peak_frac": 0.5}
    text = hb.format_table({"rows": [row], "peaks": {}})
    line = text.splitlines()[1]
    assert "2.00" in line and "0.50" in line and "50%" in line


def test_cases_compute_like_portable(monkeypatch):
    for case in (hb.gemm_case("W4A8", 9, 20, 33), hb.conv_case("W8A8s8", 3, 5, 5, 7, 3, 1, 1),
                 hb.depthwise_case("W8A8", 4, 6, 6, 3, 1, 1)):
        monkeypatch.setenv("HWSIM_KERNEL_PATH", "portable")
        ref = case.call()
        monkeypatch.setenv("HWSIM_KERNEL_PATH", "auto")
        got = case.call()
        np.testing.assert_array_equal(got[0], ref[0])
        assert got[1] == ref[1]


def test_peak_positive():
    from hwsim.kernels import cpu, vnni
    if cpu.kernel_path() not in ("vnni", "amx"):
        pytest.skip("no AVX-512 VNNI")
    assert vnni.peak_gops("b8", seconds=0.01) > 0


def test_json_written(tmp_path, monkeypatch):
    # a tiny suite through run(): patch the shape lists to keep it fast
    monkeypatch.setattr(hb, "QUICK_GEMM", [(8, 16, 64)])
    monkeypatch.setattr(hb, "QUICK_CONV", [(4, 6, 6, 8, 3, 1, 1)])
    monkeypatch.setattr(hb, "DW_SHAPES", [(4, 6, 6, 3, 1, 1)])
    out = tmp_path / "b.json"
    assert main(["bench", "--quick", "--threads", "1", "--threads", "2", "--min-time", "0.001", "--no-startup",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    kinds = {r["kernel"] for r in data["rows"]}
    assert kinds == {"gemm", "conv3x3", "dw3x3"}
    assert all(r["gops"] > 0 for r in data["rows"])
    two = [r for r in data["rows"] if r["threads"] == 2]
    assert two and all(r["scaling"] > 0 and r["scaling_across_passes"] > 0 for r in two)
    assert not any("scaling" in r for r in data["rows"] if r["threads"] == 1)
