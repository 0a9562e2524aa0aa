"""Search on real models through the integer executor: brute force on a tiny model, the demo
model end to end (API and CLI), stored points == fresh evaluations, prefix cache, resume."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwsim.demo_data import demo_model_path, load_demo_data
from hwsim.onnx_import import load_model
from hwsim.profile import shipped_profile
from hwsim.quant.config import load_config
from hwsim.search import recheck, search
from hwsim.search.algorithm import run_phases
from hwsim.search.bruteforce import front_gap, true_front
from hwsim.search.evaluator import ModelProblem
from hwsim.search.pareto import build_path

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _tiny_model():
    """conv3x3 -> relu -> conv1x1 -> relu -> GAP -> flatten -> gemm: 4 groups (3 x 3 x 2 x 3 = 54 configs)."""
    rng = np.random.default_rng(7)
    inits = [numpy_helper.from_array(rng.normal(0, 0.4, (6, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.1, 6).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 0.4, (6, 6, 1, 1)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.normal(0, 0.4, (5, 6)).astype(np.float32), "w3"),
             numpy_helper.from_array(rng.normal(0, 0.1, 5).astype(np.float32), "b3")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], name="fc", transB=1)]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return load_model(m)


@pytest.fixture(scope="module")
def demo():
    calib, tx, ty = load_demo_data()
    return load_model(demo_model_path()), calib[:48], tx[:150], ty[:150]


@pytest.mark.parametrize("metric", ["latency", "bops"])
def test_brute_force_front_on_tiny_model(metric, record_property):
    g = _tiny_model()
    x = np.random.default_rng(1).normal(size=(16, 3, 6, 6)).astype(np.float32)
    p = ModelProblem(g, shipped_profile("cpu_onnxruntime"), x, cost_metric=metric)
    assert [len(gr.candidates) for gr in p.groups] == [3, 3, 2, 3]
    out = run_phases(p, threshold=-math.inf, full_curve=True, cost=p.cost, neighbours=p.neighbours())
    front = true_front(p)
    gap = front_gap(front, [(q.cost, q.score) for q in out.points])
    record_property("front_gap", gap)
    print(f"tiny model, {metric}: true front {gap['front_size']} of 54 configs; greedy path {len(out.points)} points, "
          f"{gap['matched']} true-front points matched exactly; max gap {gap['max_gap']:.2f} dB, "
          f"mean gap {gap['mean_gap']:.2f} dB")
    costs = [q.cost for q in out.points]
    assert all(b < a for a, b in zip(costs, costs[1:]))
    # all-highest is (within rounding noise of W8A16 vs W8A8 at the output) the most accurate
    assert max(s for _, s, _ in front) - out.points[0].score < 0.5
    assert gap["uncovered"] == 0 and gap["matched"] >= 2
    assert gap["mean_gap"] < 3.0


def test_demo_search_meets_budget_and_beats_uniform(demo, tmp_path):
    g, calib, _, _ = demo
    r = search(g, "cpu_onnxruntime", calib, target_sqnr=30.0, out_dir=tmp_path)
    assert r.budget_met and r.chosen.score >= 30.0
    for name, b in r.baselines.items():
        if b.score >= 30.0:
            assert r.chosen.cost <= b.cost, name
    costs = [p.cost for p in r.pareto]
    assert all(b < a for a, b in zip(costs, costs[1:]))
    # stored cost/score of every evaluated point == a fresh evaluation without any cache
    assert recheck(r) == []
    # counts: phase 1 = 1 + sum(candidates - 1)
    assert r.evaluations["phase1"] == 1 + sum(len(gr["candidates"]) - 1 for gr in r.groups)
    assert r.evaluations["total"] == r.evaluations["fresh"]
    # files
    for f in ("sensitivity.json", "pareto.json", "config.yaml", "pareto.png", "report.md", "result.json"):
        assert (tmp_path / f).is_file(), f
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cfg = load_config(tmp_path / "config.yaml", g, shipped_profile("cpu_onnxruntime"))
    assert cfg == r.config
    d = json.loads((tmp_path / "result.json").read_text())
    assert set(d) >= {"groups", "sensitivity", "pareto", "chosen", "baselines", "evaluations", "times", "target"}
    md = (tmp_path / "report.md").read_text()
    assert "uniform W8A8" in md and "phase 1: sensitivity" in md


def _strip(d):
    return {k: v for k, v in d.items() if k not in ("times", "prefix_cache", "files", "evaluations")}


def test_identical_across_thread_counts_and_prefix_cache(demo):
    g, calib, _, _ = demo
    a = search(g, "mobile_npu", calib, target_sqnr=28.0, workers=1)
    b = search(g, "mobile_npu", calib, target_sqnr=28.0, workers=2)
    c = search(g, "mobile_npu", calib, target_sqnr=28.0, workers=2, prefix_cache=False)
    assert _strip(a.to_dict()) == _strip(b.to_dict()) == _strip(c.to_dict())
    assert a.prefix_cache["nodes_skipped"] > 0 and c.prefix_cache["nodes_skipped"] == 0


def test_prefix_cache_saving_is_measured(record_property):
    from tests.onnx_models import build_mobilenet_like
    g = load_model(build_mobilenet_like())
    x = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    prof = shipped_profile("cpu_onnxruntime")
    res = {}
    for pc in (True, False):
        p = ModelProblem(g, prof, x, prefix_cache=pc)
        choices = [tuple(1 if i == k else 0 for i in range(len(p.groups))) for k in range(len(p.groups))]
        p.score((0,) * len(p.groups))
        for c in choices[:3]:
            p.score(c)                                   # warm up (JIT)
        before = dict(p.cache_stats)
        t = time.perf_counter()
        scores = [p.score(c) for c in choices[3:]]
        res[pc] = (time.perf_counter() - t, scores, {k: p.cache_stats[k] - before[k] for k in before})
    assert res[True][1] == res[False][1]
    frac = res[True][2]["nodes_skipped"] / (res[True][2]["nodes_skipped"] + res[True][2]["nodes_run"])
    record_property("prefix_cache", {"with_s": res[True][0], "without_s": res[False][0], "skipped": frac})
    print(f"phase-1-style evaluations of mobilenet_like: {res[True][0]:.2f} s with prefix cache, "
          f"{res[False][0]:.2f} s without; {100 * frac:.0f} % of node executions reused")
    assert frac > 0.3


def test_neighbour_locality_gives_the_same_path(demo):
    from tests.onnx_models import build_mobilenet_like
    g = load_model(build_mobilenet_like())
    x = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    p = ModelProblem(g, shipped_profile("mobile_npu"), x)
    from hwsim.search.sensitivity import SensitivityEntry, SensitivityTable
    rng = np.random.default_rng(3)
    entries = tuple(SensitivityEntry(i, j, float(40 - rng.uniform(0, 10) * j), 0.0, 0.0)
                    for i, gr in enumerate(p.groups) for j in range(1, len(gr.candidates)))
    table = SensitivityTable(40.0, 0.0, entries)
    full = build_path(p, table, cost=p.cost)
    fast = build_path(p, table, cost=p.cost, neighbours=p.neighbours())
    assert [s.choice for s in full] == [s.choice for s in fast]
    assert len(full) > 10


def test_accuracy_budget_with_labels(demo, tmp_path):
    g, calib, tx, ty = demo
    r = search(g, "mobile_npu", calib, max_drop=1.0, eval_data=tx, labels=ty)
    assert r.score_name == "top1_accuracy" and r.target["reference"] == "float"
    assert r.chosen.score >= r.reference_score - 1.0
    assert r.chosen.cost < r.baselines["W8A16"].cost


def test_cli_search_writes_files_resumes_and_rejects_bad_input(demo, tmp_path, capsys):
    from hwsim.cli import main
    g, calib, tx, ty = demo
    np.save(tmp_path / "c.npy", calib)
    out = tmp_path / "res"
    args = ["search", str(demo_model_path()), "--profile", "cpu_onnxruntime", "--calib", str(tmp_path / "c.npy"),
            "--target-sqnr", "30", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    first = json.loads((out / "pareto.json").read_text())
    text = capsys.readouterr().out
    assert "uniform W8A8" in text and "chosen (mixed)" in text
    assert main(args) == 0                                   # rerun: everything from the checkpoint
    again = json.loads((out / "result.json").read_text())
    assert again["evaluations"]["fresh"] == 0 and again["evaluations"]["resumed"] == again["evaluations"]["total"]
    assert json.loads((out / "pareto.json").read_text()) == first
    capsys.readouterr()
    bad = [["search", str(demo_model_path()), "--profile", "cpu_onnxruntime", "--calib", str(tmp_path / "no.npy"),
            "--target-sqnr", "30", "--out", str(tmp_path / "x")],
           ["search", str(demo_model_path()), "--profile", "cpu_onnxruntime", "--calib", str(tmp_path / "c.npy"),
            "--out", str(tmp_path / "x")],
           ["search", str(demo_model_path()), "--profile", "nope_profile", "--calib", str(tmp_path / "c.npy"),
            "--target-sqnr", "30", "--out", str(tmp_path / "x")]]
    for b in bad:
        assert main(b) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x" / "config.yaml").exists()


def test_api_rejects_bad_arguments(demo):
    from hwsim.errors import ConfigError, DataError
    g, calib, tx, ty = demo
    with pytest.raises(ConfigError):
        search(g, "cpu_onnxruntime", calib)                                   # no budget
    with pytest.raises(ConfigError):
        search(g, "cpu_onnxruntime", calib, target_sqnr=30, max_drop=1)       # two budgets
    with pytest.raises(ConfigError):
        search(g, "cpu_onnxruntime", calib, target_sqnr=30, labels=ty, eval_data=tx)
    with pytest.raises(DataError):
        search(g, "cpu_onnxruntime", calib, max_drop=1, labels=ty[:10], eval_data=tx)
    bad = calib.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError):
        search(g, "cpu_onnxruntime", bad, target_sqnr=30)
    with pytest.raises(ConfigError):
        search(g, "cpu_onnxruntime", calib, target_sqnr=30, cost_metric="speed")


def test_checkpoint_of_other_inputs_is_discarded(demo, tmp_path):
    g, calib, _, _ = demo
    a = search(g, "cpu_onnxruntime", calib, target_sqnr=30.0, out_dir=tmp_path)
    assert a.evaluations["checkpoint"] == "new"
    b = search(g, "cpu_onnxruntime", calib[:40], target_sqnr=30.0, out_dir=tmp_path)
    assert b.evaluations["checkpoint"] == "discarded (inputs changed)" and b.evaluations["resumed"] == 0
    c = search(g, "cpu_onnxruntime", calib[:40], target_sqnr=25.0, out_dir=tmp_path)   # budget change: reuse
    assert c.evaluations["checkpoint"] == "resumed" and c.evaluations["fresh"] <= 3
