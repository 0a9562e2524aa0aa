"""Integer executor: agreement with fake-quant, SQNR, overflow counting, prefix cache, islands."""
from __future__ import annotations

import copy
from importlib import resources

import numpy as np
import pytest
import yaml

from hwsim.bits import BitPair
from hwsim.errors import DataError
from hwsim.execute import run_graph
from hwsim.graph import Graph, Node, TensorInfo
from hwsim.onnx_import import load_model
from hwsim.profile import parse_profile, shipped_profile
from hwsim.quant import (calibrate, compare, quantize_graph, reusable_values, run_fake, run_int, sqnr_db,
                         uniform_config)
from hwsim.quant.calibrate import float_dispatch
from tests.onnx_models import build_mobilenet_like, build_transformer_block

ORT = shipped_profile("cpu_onnxruntime")
TFL = shipped_profile("tflite_reference")


@pytest.fixture(scope="module")
def mnet():
    g = load_model(build_mobilenet_like())
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((16, 3, 32, 32)).astype(np.float32)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    return g, x, calibrate(g, calib, progress=False)


@pytest.mark.parametrize("profile", [ORT, TFL], ids=["onnxruntime", "tflite_reference"])
def test_integer_agrees_with_fake_quant_to_one_lsb_per_node(mnet, profile):
    g, x, stats = mnet
    qg = quantize_graph(g, profile, stats, "W8A8")
    rep = compare(qg, {"input": x})
    assert not rep.int_report.float_islands
    for row in rep.rows:
        # each node's own integer arithmetic differs from float rounding by at most 1 LSB
        # (requantization ties / fixed-point multipliers); larger end-to-end differences are
        # inherited from upstream nodes
        assert row.local_max_lsb <= 1, row
        assert row.acc_overflows == 0
    assert all(r.cause for r in rep.rows if r.local_max_lsb > 0)
    assert ("local differences from" in rep.table()) == any(r.local_max_lsb > 0 for r in rep.rows)
    out = rep.outputs["logits"]
    assert out["sqnr_int_db"] > 22 and abs(out["sqnr_int_db"] - out["sqnr_fake_db"]) < 1.5
    if profile is ORT:
        # ORT's float32 requantization is what fake-quant computes: almost every element agrees
        assert out["max_lsb"] <= 1 and out["frac_diff"] < 0.05


def test_w8a16_beats_w8a8_beats_w4a8(mnet):
    g, x, stats = mnet
    ref = run_graph(g, {"input": x}, float_dispatch())["logits"]
    s = {p: sqnr_db(ref, run_int(quantize_graph(g, ORT, stats, p), {"input": x})[0]["logits"])
         for p in ("W4A8", "W8A8", "W8A16")}
    assert s["W8A16"] > s["W8A8"] > s["W4A8"] > 3
    assert s["W8A8"] > 22


def test_outputs_are_dequantized_and_raw_codes_match(mnet):
    g, x, stats = mnet
    qg = quantize_graph(g, ORT, stats, "W8A8")
    outs, _ = run_int(qg, {"input": x})
    raw, _ = run_int(qg, {"input": x}, raw=True)
    assert outs["logits"].dtype == np.float32 and raw["logits"].dtype == np.uint8
    assert np.array_equal(qg.params("logits").dequantize(raw["logits"]), outs["logits"])


def test_prefix_cache_reuses_unchanged_tensors_and_gives_identical_results(mnet):
    g, x, stats = mnet
    base = uniform_config(g, "W8A8", ORT)
    qa = quantize_graph(g, ORT, stats, base)
    env_a, _ = run_int(qa, {"input": x}, keep="all", raw=True)
    last = [n.name for n in g.nodes if n.op == "Gemm"][-1]
    qb = quantize_graph(g, ORT, stats, dict(base, **{last: BitPair(4, 8)}))
    reuse = reusable_values(qb, qa, env_a)
    assert last not in reuse and g.node(last).outputs[0] not in reuse
    assert len(reuse) >= len(env_a) - 2
    fresh, _ = run_int(qb, {"input": x}, raw=True)
    cached, rep = run_int(qb, {"input": x}, raw=True, values=dict(reuse))
    assert np.array_equal(fresh["logits"], cached["logits"])
    ran = [k for k, r in rep.nodes.items() if r.calls]
    assert ran == [last]


def _acc16_profile(overflow: str):
    with resources.as_file(resources.files("hwsim.hw_profiles") / "cpu_onnxruntime.yaml") as p:
        doc = yaml.safe_load(p.read_text())
    doc = copy.deepcopy(doc)
    doc["name"] = f"acc16_{overflow}"
    doc["arithmetic"].update(accumulator_bits={"W4A8": 16, "W8A8": 16, "W8A16": 32},
                             bias_bits={"W4A8": 16, "W8A8": 16, "W8A16": 32}, overflow=overflow)
    doc.pop("sources", None)
    return parse_profile(doc, f"acc16_{overflow}.yaml")


def _ref_events(xq, zx, wq_nk, zw, bias, bits, saturate):
    """Sequential accumulation (bias, then k = 0..K-1) counting out-of-range results."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    acc = np.broadcast_to(bias.astype(np.int64), (xq.shape[0], wq_nk.shape[0])).copy()
    events = 0
    prods = (xq.astype(np.int64) - zx)[:, None, :] * (wq_nk.astype(np.int64) - zw[:, None])[None]
    for k in range(xq.shape[1]):
        acc = acc + prods[:, :, k]
        bad = (acc < lo) | (acc > hi)
        events += int(bad.sum())
        if saturate:
            acc = np.clip(acc, lo, hi)
        else:
            acc = (acc - lo) % (1 << bits) + lo
    return events, acc


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_overflow_counts_with_a_16_bit_accumulator(overflow):
    rng = np.random.default_rng(7)
    K, N = 96, 6
    w = np.abs(rng.standard_normal((N, K))).astype(np.float32) + 0.5      # same-sign products pile up
    g = Graph("acc", (TensorInfo("x", (None, K)),), ("y",),
              (Node("fc", "Gemm", ("x", "w", "b"), ("y",), {"transB": 1}),),
              {"w": w, "b": np.ones(N, np.float32)}, shapes={"x": (1, K), "y": (1, N)})
    x = np.abs(rng.standard_normal((8, K))).astype(np.float32) + 1.0
    prof = _acc16_profile(overflow)
    stats = calibrate(g, x, progress=False)
    qg = quantize_graph(g, prof, stats, "W8A8")
    plan = qg.plans["fc"]
    assert plan.accumulator_bits == 16 and plan.bias_q.dtype == np.int32
    _, rep = run_int(qg, {"x": x})
    xp = plan.inputs[0]
    xq = xp.quantize(x)
    events, _ = _ref_events(xq, int(xp.zero_point), plan.weight_q, plan.weight_params.zero_point,
                            plan.bias_q, 16, overflow == "saturate")
    assert events > 0
    assert rep.nodes["fc"].acc_overflows == events
    # with a 32-bit accumulator nothing overflows and the results differ
    ok = quantize_graph(g, ORT, calibrate(g, x, progress=False), "W8A8")
    out32, rep32 = run_int(ok, {"x": x}, raw=True)
    out16, _ = run_int(qg, {"x": x}, raw=True)
    assert rep32.total_overflows == 0 and not np.array_equal(out16["y"], out32["y"])


def test_float_islands_are_marked_and_transformer_runs():
    g = load_model(build_transformer_block())
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 8, 16)).astype(np.float32),
             "mask": np.zeros((2, 1, 1, 8), np.float32)}
    stats = calibrate(g, feeds, progress=False)
    qg = quantize_graph(g, ORT, stats, "W8A16")
    outs, rep = run_int(qg, feeds)
    islands = {rep.nodes[n].op for n in rep.float_islands}
    assert {"Softmax", "LayerNormalization"} <= islands
    assert all("no integer kernel" in rep.nodes[n].note for n in rep.float_islands)
    assert rep.to_dict()["nodes"][rep.float_islands[0]]["float_island"] is True
    assert {"Erf"} <= {rep.nodes[n].op for n, r in rep.nodes.items() if r.kind == "lut"}
    divs = [n.name for n in g.nodes if n.op == "Div"]
    assert divs and all(qg.plans[d].kind == "int" and qg.plans[d].as_op == "Mul" for d in divs)
    rows = {r.node: r for r in compare(qg, feeds).rows}
    assert all(rows[d].local_max_lsb <= 1 for d in divs)
    ref = run_graph(g, feeds, float_dispatch())["y"]
    assert sqnr_db(ref, outs["y"]) > 25


def test_dynamic_quantization_needs_no_calibration(mnet):
    g, x, _ = mnet
    qg = quantize_graph(g, ORT, None, "W8A8", dynamic=True)
    assert {p.kind for p in qg.plans.values()} == {"dynamic", "float"}
    outs, rep = run_int(qg, {"input": x})
    ref = run_graph(g, {"input": x}, float_dispatch())["logits"]
    assert sqnr_db(ref, outs["logits"]) > 25
    assert rep.nodes[next(n.name for n in g.nodes if n.op == "Conv")].macs > 0
    fake = run_fake(qg, {"input": x})["logits"]
    assert sqnr_db(outs["logits"], fake) > 50


@pytest.mark.parametrize("feeds, msg", [
    ({"inp": np.zeros((1, 3, 32, 32), np.float32)}, "do not match"),
    ({"input": np.full((1, 3, 32, 32), np.inf, np.float32)}, "NaN/Inf"),
    ({"input": np.zeros((1, 3, 32), np.float32)}, "rank"),
])
def test_bad_inputs_are_data_errors(mnet, feeds, msg):
    g, _, stats = mnet
    qg = quantize_graph(g, ORT, stats, "W8A8")
    with pytest.raises(DataError, match=msg):
        run_int(qg, feeds)
    with pytest.raises(DataError, match=msg):
        run_fake(qg, feeds)


def test_dead_channel_with_bias_gets_a_weight_scale_that_keeps_the_bias_in_range():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((3, 8)).astype(np.float32)
    w[1] = 1e-20                                       # a dead channel ...
    b = np.array([0.1, 2.0, -0.3], np.float32)         # ... with a real bias
    g = Graph("dead", (TensorInfo("x", (None, 8)),), ("y",),
              (Node("fc", "Gemm", ("x", "w", "b"), ("y",), {"transB": 1}),),
              {"w": w, "b": b}, shapes={"x": (1, 8), "y": (1, 3)})
    x = rng.standard_normal((16, 8)).astype(np.float32)
    qg = quantize_graph(g, ORT, calibrate(g, x, progress=False), "W8A8")
    plan = qg.plans["fc"]
    assert np.abs(plan.bias_q).max() <= 2 ** 30
    outs, rep = run_int(qg, {"x": x})
    assert rep.total_overflows == 0
    assert np.allclose(outs["y"][:, 1], 2.0, atol=2 * float(qg.params("y").scale))


def test_conv_relu6_and_gemm_bit_exact_with_onnxruntime_qlinear_ops():
    """Our glue (zero points, per-channel multipliers, int32 bias, folded ReLU6 clamp) fed to
    ONNX Runtime's QLinearConv / QLinearMatMul gives the same integers as run_int."""
    from onnx import TensorProto, helper, numpy_helper
    from tests.onnx_models import run_ort
    rng = np.random.default_rng(11)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32) * 0.3
    b = rng.standard_normal(8).astype(np.float32) * 0.1
    wf = rng.standard_normal((10, 8 * 5 * 5)).astype(np.float32) * 0.1
    attrs = {"kernel_shape": (3, 3), "strides": (2, 2), "dilations": (1, 1), "pads": (1, 0, 1, 2), "group": 1}
    g = Graph("cr", (TensorInfo("x", (None, 4, 9, 9)),), ("z",),
              (Node("conv", "Conv", ("x", "w", "b"), ("y",), attrs),
               Node("clip", "Clip", ("y",), ("r",), {"min": 0.0, "max": 6.0}),
               Node("flat", "Flatten", ("r",), ("f",), {"axis": 1}),
               Node("fc", "Gemm", ("f", "wf"), ("z",), {"transB": 1})),
              {"w": w, "b": b, "wf": wf},
              shapes={"x": (1, 4, 9, 9), "y": (1, 8, 5, 5), "r": (1, 8, 5, 5), "f": (1, 200), "z": (1, 10)})
    x = 3 * rng.standard_normal((6, 4, 9, 9)).astype(np.float32)
    qg = quantize_graph(g, ORT, calibrate(g, x, progress=False), "W8A8")
    raw, _ = run_int(qg, {"x": x}, keep="all", raw=True)
    c, fc = qg.plans["conv"], qg.plans["fc"]
    px, py, pz = c.inputs[0], c.outputs[0], fc.outputs[0]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in {
        "xs": np.float32(px.scale), "xz": np.uint8(px.zero_point), "ws": c.weight_params.scale,
        "wz": np.zeros(8, np.int8), "ys": np.float32(py.scale), "yz": np.uint8(py.zero_point),
        "wq": c.weight_q, "bq": c.bias_q, "fs": fc.weight_params.scale.astype(np.float32),
        "fz": np.zeros(10, np.int8), "fq": np.ascontiguousarray(fc.weight_q.T),
        "zs": np.float32(pz.scale), "zz": np.asarray(pz.zero_point, np.uint8)}.items()]
    nodes = [helper.make_node("QLinearConv", ["xq", "xs", "xz", "wq", "ws", "wz", "ys", "yz", "bq"], ["yq"],
                              strides=[2, 2], pads=[1, 0, 1, 2], kernel_shape=[3, 3]),
             helper.make_node("Flatten", ["yq"], ["fl"], axis=1),
             helper.make_node("QLinearMatMul", ["fl", "ys", "yz", "fq", "fs", "fz", "zs", "zz"], ["zq"])]
    m = helper.make_model(helper.make_graph(nodes, "q", [helper.make_tensor_value_info("xq", TensorProto.UINT8, None)],
                                            [helper.make_tensor_value_info("zq", TensorProto.UINT8, None),
                                             helper.make_tensor_value_info("yq", TensorProto.UINT8, None)], inits),
                          opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    got = run_ort(m, {"xq": raw["x"]})
    assert py.fmt.signed is False and int(py.zero_point) == 0       # ReLU6 output range: uint8 from 0
    assert np.array_equal(got["yq"], raw["r"])
    assert np.array_equal(got["zq"], raw["z"])


def test_integer_token_ids_gather_a_quantized_embedding_table():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((50, 8)).astype(np.float32)
    g = Graph("emb", (TensorInfo("ids", (None, 5), "int64"),), ("y",),
              (Node("emb", "Gather", ("E", "ids"), ("e",), {"axis": 0}), Node("fc", "MatMul", ("e", "W"), ("y",), {})),
              {"E": emb, "W": rng.standard_normal((8, 4)).astype(np.float32)},
              shapes={"ids": (1, 5), "e": (1, 5, 8), "y": (1, 5, 4)}, dtypes={"ids": "int64"})
    ids = rng.integers(0, 50, (16, 5))
    qg = quantize_graph(g, ORT, calibrate(g, {"ids": ids}, progress=False), "W8A8")
    assert "ids" not in qg.act
    raw, _ = run_int(qg, {"ids": ids}, keep="all", raw=True)
    p = qg.params("e")
    assert np.array_equal(raw["e"], p.quantize(emb)[ids])           # gathered codes of the quantized table
    rep = compare(qg, {"ids": ids})
    assert rep.outputs["y"]["sqnr_int_db"] > 30 and rep.outputs["y"]["max_lsb"] <= 1


def test_x86_int16_pair_saturation_is_counted_and_shows_where_fake_quant_misleads(mnet):
    from importlib import resources
    g, _, _ = mnet
    with resources.as_file(resources.files("hwsim.hw_profiles") / "cpu_onnxruntime.yaml") as f:
        doc = copy.deepcopy(yaml.safe_load(f.read_text()))
    doc["arithmetic"]["int16_pair_saturation"] = True      # emulate a non-VNNI x86 (vpmaddubsw)
    doc.pop("sources", None)
    prof = parse_profile(doc, "no_vnni.yaml")
    x = 4 * np.random.default_rng(3).standard_normal((8, 3, 32, 32)).astype(np.float32)
    qg = quantize_graph(g, prof, calibrate(g, x, progress=False), "W8A8")
    rep = compare(qg, {"input": x})
    assert sum(r.pair_saturations for r in rep.rows) > 0 and "pair saturations" in rep.table()
    out = rep.outputs["logits"]
    assert out["sqnr_int_db"] < out["sqnr_fake_db"] - 3          # fake-quant cannot see it


@pytest.mark.parametrize("profile", [ORT, TFL], ids=["onnxruntime", "tflite_reference"])
def test_random_mixed_precision_configs_from_the_group_graph_run_and_agree(mnet, profile):
    from hwsim.groups import build_groups
    g, x, stats = mnet
    groups = build_groups(g, profile)
    rng = np.random.default_rng(1)
    for _ in range(3):
        choice = tuple(int(rng.integers(len(gr.candidates))) for gr in groups)
        rep = compare(quantize_graph(g, profile, stats, groups.config_for(choice)), {"input": x[:2]})
        assert max(r.local_max_lsb for r in rep.rows) <= 1
        assert rep.int_report.total_overflows == 0


@pytest.mark.parametrize("value", [0.0, 0.5])
def test_constant_pad_uses_the_quantized_pad_value(value):
    g = Graph("pad", (TensorInfo("x", (None, 1, 4, 4)),), ("z",),
              (Node("p", "Pad", ("x",), ("y",), {"pads": (0, 0, 1, 1, 0, 0, 1, 1), "mode": "constant", "value": value}),
               Node("m", "Mul", ("y", "c"), ("z",), {})),
              {"c": np.float32(2.0)}, shapes={"x": (1, 1, 4, 4), "y": (1, 1, 6, 6), "z": (1, 1, 6, 6)})
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    qg = quantize_graph(g, ORT, calibrate(g, x, progress=False), "W8A8")
    raw, _ = run_int(qg, {"x": x}, keep="all", raw=True)
    p = qg.params("y")
    assert raw["y"][0, 0, 0, 0] == p.quantize(np.array([value], np.float32))[0]
    assert compare(qg, {"x": x}).rows[0].local_max_lsb == 0


def test_split_lut_reduce_and_global_max_ops_run_in_integer():
    from onnx import helper
    from tests.onnx_models import make_model
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Split", ["c", "sp"], ["a", "b"], axis=1),
             helper.make_node("LeakyRelu", ["a"], ["la"], alpha=0.1),
             helper.make_node("Exp", ["b"], ["eb"]),
             helper.make_node("Concat", ["la", "eb"], ["cc"], axis=1),
             helper.make_node("GlobalMaxPool", ["cc"], ["gm"]),
             helper.make_node("ReduceSum", ["cc", "ax"], ["rs"], keepdims=1),
             helper.make_node("Mul", ["gm", "rs"], ["m"]),
             helper.make_node("ReduceMean", ["m"], ["y"], axes=[1], keepdims=0)]
    m = make_model(nodes, [("x", ["N", 3, 8, 8])], [("y", None)],
                   [("W", rng.standard_normal((8, 3, 3, 3)).astype(np.float32)), ("sp", np.array([4, 4], np.int64)),
                    ("ax", np.array([2, 3], np.int64))], opset=13)
    g = load_model(m)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    stats = calibrate(g, x, progress=False)
    for prof in (ORT, TFL):
        rep = compare(quantize_graph(g, prof, stats, "W8A8"), {"x": x})
        assert not rep.int_report.float_islands
        assert max(r.local_max_lsb for r in rep.rows) <= 1
        assert rep.outputs["y"]["sqnr_int_db"] > 15


@pytest.mark.parametrize("include, ceil", [(0, 0), (1, 0), (0, 1)])
def test_padded_average_pool_runs_in_integer_with_per_window_divisors(include, ceil):
    attrs = {"kernel_shape": (3, 3), "strides": (2, 2), "dilations": (1, 1), "pads": (1, 1, 1, 1),
             "ceil_mode": ceil, "count_include_pad": include}
    g = Graph("ap", (TensorInfo("x", (None, 2, 6, 6)),), ("y",), (Node("ap", "AveragePool", ("x",), ("y",), attrs),),
              {}, shapes={"x": (1, 2, 6, 6), "y": (1, 2, 3, 3)})
    x = np.random.default_rng(2).standard_normal((3, 2, 6, 6)).astype(np.float32) + 1.0
    qg = quantize_graph(g, TFL, calibrate(g, x, progress=False), "W8A8")
    assert qg.plans["ap"].kind == "int"
    rep = compare(qg, {"x": x})
    assert rep.rows[0].local_max_lsb <= 1 and rep.outputs["y"]["sqnr_int_db"] > 35
