"""bench/summarize.py: medians of several hwsim bench --json runs, ratios taken per run."""
import importlib.util
import json
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("summarize", Path(__file__).parents[1] / "bench" / "summarize.py")
summarize = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(summarize)


def _run(tmp_path, name, gops, ort):
    row = dict(kernel="gemm", pair="W8A8", shape="8x8x8", threads=1, gops=gops, ort_int_gops=ort, scaling=gops / 100,
               torch_int_gops=gops / 4)
    p = tmp_path / name
    p.write_text(json.dumps({"rows": [row, dict(row, pair="W4A8", ort_int_gops=None)]}))
    return p


def test_median_of_per_run_ratios(tmp_path, capsys):
    paths = [_run(tmp_path, "a.json", 100, 200), _run(tmp_path, "b.json", 300, 100), _run(tmp_path, "c.json", 200, 200)]
    rows = dict((k, (g, r)) for k, g, r in summarize.summarize(paths))
    gops, ratio = rows[("gemm", "W8A8", "8x8x8", 1)]
    assert gops == [100, 300, 200] and ratio == [0.5, 3.0, 1.0]
    assert rows[("gemm", "W4A8", "8x8x8", 1)][1] == []
    summarize.main([str(p) for p in paths])
    out = capsys.readouterr().out
    assert "200 (100-300)" in out and "1.00 (0.50-3.00)" in out
    assert "2.00 (1.00-3.00)" in out      # the per-run scaling column
    assert "4.00 (4.00-4.00)" in out      # the per-run ratio to torch
