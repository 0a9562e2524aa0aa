"""hwsim.quant: QuantParams, observers, calibration, precision configs, quantize_graph."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from hypothesis import given, settings, strategies as st

from hwsim.bits import BitPair, IntFormat
from hwsim.errors import ConfigError, DataError, UnsupportedOpError
from hwsim.graph import Graph, Node, TensorInfo
from hwsim.onnx_import import load_model
from hwsim.profile import parse_profile, shipped_profile
from hwsim.quant import (CalibrationStats, QuantParams, TensorStats, calibrate, config_nodes, load_config,
                         observe_range, quantize_graph, save_config, uniform_config)
from hwsim.quant.config import parse_config
from tests.onnx_models import build_mobilenet_like

ORT = shipped_profile("cpu_onnxruntime")
TFL = shipped_profile("tflite_reference")
POW2 = shipped_profile("fpga_dpu_pow2")


# -- QuantParams ---------------------------------------------------------------------------------

def test_symmetric_signed_narrow_maps_range_ends_to_qmax():
    p = QuantParams.from_range(-0.5, 2.0, IntFormat(8, True, True), symmetric=True)
    assert int(p.zero_point) == 0 and np.isclose(float(p.scale), 2.0 / 127)
    assert p.quantize(np.array([2.0, -2.0, 0.0], np.float32)).tolist() == [127, -127, 0]


def test_asymmetric_uint8_zero_is_exact_and_extremes_saturate():
    p = QuantParams.from_range(-1.0, 3.0, IntFormat(8, False), symmetric=False)
    assert p.quantize(np.array([0.0], np.float32))[0] == p.zero_point
    assert p.dequantize(p.quantize(np.array([0.0], np.float32)))[0] == 0.0
    assert p.quantize(np.array([-100.0, 100.0], np.float32)).tolist() == [0, 255]


def test_power_of_two_scale_never_clips_more():
    p = QuantParams.from_range(-3.0, 3.0, IntFormat(8), symmetric=True, power_of_two=True)
    s = float(p.scale)
    assert np.log2(s) == int(np.log2(s)) and s * 127 >= 3.0


def test_per_channel_params_broadcast_on_axis():
    w = np.stack([np.linspace(-1, 1, 9), np.linspace(-4, 4, 9)]).reshape(2, 1, 3, 3).astype(np.float32)
    p = QuantParams.from_range(w.min(axis=(1, 2, 3)), w.max(axis=(1, 2, 3)), IntFormat(8, True, True),
                               symmetric=True, axis=0)
    assert p.per_channel and p.scale.shape == (2,)
    q = p.quantize(w)
    assert q[0].max() == 127 and q[1].max() == 127 and q[1].min() == -127


def test_tie_rules():
    p = QuantParams(np.float32(1.0), np.int64(0), IntFormat(8))
    x = np.array([0.5, 1.5, -0.5, -2.5], np.float32)
    assert p.quantize(x, "half_even").tolist() == [0, 2, 0, -2]
    assert p.quantize(x, "half_away").tolist() == [1, 2, -1, -3]
    assert p.quantize(x, "half_up").tolist() == [1, 2, 0, -2]


@settings(max_examples=60, deadline=None)
@given(lo=st.floats(-100, 0), span=st.floats(1e-3, 200), bits=st.sampled_from([4, 8, 16]),
       signed=st.booleans(), sym=st.booleans())
def test_fake_quantize_error_is_at_most_half_a_step_inside_the_range(lo, span, bits, signed, sym):
    fmt = IntFormat(bits, signed=signed)
    p = QuantParams.from_range(lo, lo + span, fmt, symmetric=sym)
    rlo, rhi = p.real_range()
    x = np.linspace(max(lo, float(rlo)), min(lo + span, float(rhi)), 257).astype(np.float32)
    err = np.abs(p.fake_quantize(x) - x)
    assert err.max() <= 0.5 * float(p.scale) * (1 + 1e-3) + 1e-6 * np.abs(x).max()


# -- observers ----------------------------------------------------------------------------------

def test_histogram_does_not_depend_on_batching_for_min_max_and_count():
    rng = np.random.default_rng(0)
    data = rng.standard_normal(20000) * np.linspace(1, 5, 20000)
    one, many = TensorStats(), TensorStats()
    one.update(data)
    for chunk in np.array_split(data, 37):
        many.update(chunk)
    assert one.count == many.count == data.size and one.hist.sum() == many.hist.sum() == data.size
    assert (one.min, one.max) == (many.min, many.max)
    # quantiles agree within one bin of the coarser histogram
    w = max(one.width, many.width)
    for o in ("percentile", "mse", "entropy"):
        a = observe_range(one, o, bits=8, symmetric=True)
        b = observe_range(many, o, bits=8, symmetric=True)
        assert abs(a[1] - b[1]) <= 4 * w + 1e-3 * abs(a[1]), o


def test_histogram_grows_from_a_constant_first_batch():
    s = TensorStats()
    s.update(np.zeros(10))
    s.update(np.array([1000.0, -3.0]))
    assert s.hist.sum() == 12 and s.hist.size <= s.max_bins and (s.min, s.max) == (-3.0, 1000.0)


def test_observers_clip_outliers_but_minmax_does_not():
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.standard_normal(100000), [40.0]])
    s = TensorStats()
    s.update(data)
    mm = observe_range(s, "minmax", bits=8, symmetric=True)
    assert mm[1] == 40.0
    for o in ("percentile", "entropy"):
        lo, hi = observe_range(s, o, bits=8, symmetric=True)
        assert 2.0 < hi < 10.0 and lo == -hi, (o, hi)

    def real_mse(rng_, bits):
        p = QuantParams.from_range(rng_[0], rng_[1], IntFormat(bits), symmetric=True)
        return float(np.mean((p.fake_quantize(data.astype(np.float32)) - data) ** 2))

    for bits in (4, 8):
        # the MSE observer's range really has lower quantization MSE than min-max (and than
        # a tight 3-sigma clip), measured on the data itself
        mse_rng = observe_range(s, "mse", bits=bits, symmetric=True)
        assert real_mse(mse_rng, bits) <= real_mse(mm, bits)
        assert real_mse(mse_rng, bits) <= real_mse((-3.0, 3.0), bits) * 1.05
    # more bits -> the MSE-optimal clip moves outward
    assert observe_range(s, "mse", bits=16, symmetric=True)[1] > observe_range(s, "mse", bits=4, symmetric=True)[1]


def test_nonnegative_tensor_ranges_start_at_zero():
    s = TensorStats()
    s.update(np.maximum(np.random.default_rng(2).standard_normal(50000), 0))
    assert s.nonnegative
    for o in ("minmax", "percentile", "mse", "entropy"):
        assert observe_range(s, o, bits=8, signed=False)[0] == 0.0


# -- calibration -------------------------------------------------------------------------------

def _tiny():
    rng = np.random.default_rng(0)
    g = Graph("tiny", (TensorInfo("x", (None, 8)),), ("z",),
              (Node("fc", "Gemm", ("x", "w", "b"), ("y",), {"transB": 1}), Node("relu", "Relu", ("y",), ("z",))),
              {"w": rng.standard_normal((4, 8)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)},
              shapes={"x": (1, 8), "y": (1, 4), "z": (1, 4)})
    return g, rng.standard_normal((64, 8)).astype(np.float32)


def test_calibrate_records_every_tensor_and_round_trips(tmp_path):
    g, x = _tiny()
    stats = calibrate(g, x, batch_size=10, progress=False)
    assert stats.num_samples == 64 and stats.num_batches == 7
    assert set(stats.tensors) == {"x", "y", "z"} and stats["z"].nonnegative and not stats["y"].nonnegative
    stats.save(tmp_path / "s.npz")
    back = CalibrationStats.load(tmp_path / "s.npz")
    assert back.num_samples == 64 and np.array_equal(back["y"].hist, stats["y"].hist)
    assert back.range("y", bits=8, signed=True, symmetric=False) == stats.range("y", bits=8, signed=True,
                                                                               symmetric=False)


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((0, 8), np.float32), "empty"),
    (np.full((4, 8), np.nan, np.float32), "NaN"),
    (np.zeros((4, 7), np.float32), "shape"),
    ({"nope": np.zeros((4, 8), np.float32)}, "do not match"),
    (np.array([["a"] * 8]), "dtype"),
    ([], "empty"),
])
def test_calibrate_bad_data_is_one_line_data_error(bad, msg):
    g, _ = _tiny()
    with pytest.raises(DataError, match=msg) as e:
        calibrate(g, bad, progress=False)
    assert "\n" not in str(e.value)


# -- precision configs --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnet():
    g = load_model(build_mobilenet_like())
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    return g, x, calibrate(g, x, progress=False)


def test_config_nodes_are_compute_nodes_only(mnet):
    g, _, _ = mnet
    names = config_nodes(g)
    ops = {g.node(n).op for n in names}
    assert "Conv" in ops and "Gemm" in ops and "Add" in ops
    assert not ops & {"Relu", "Clip", "Reshape", "MaxPool"}


def test_config_round_trip_with_default(tmp_path, mnet):
    g, _, _ = mnet
    cfg = uniform_config(g, "W8A8", ORT)
    first_conv = next(n for n in config_nodes(g) if g.node(n).op == "Conv")
    cfg[first_conv] = BitPair(4, 8)
    save_config(tmp_path / "c.yaml", cfg, default="W8A8")
    doc = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert doc == {"default": "W8A8", "layers": {first_conv: "W4A8"}}
    assert load_config(tmp_path / "c.yaml", g, ORT) == cfg


@pytest.mark.parametrize("doc, msg", [
    ({"default": "W8A8", "layers": {"conv_99999": "W8A8"}}, "does not exist"),
    ({"default": "W8A8", "layers": {"__FIRST__": "W2A8"}}, "not supported by profile 'cpu_onnxruntime'; allowed: W4A8, W8A8, W8A16"),
    ({"default": "W8A8", "layers": {"__FIRST__": "banana"}}, "must look like"),
    ({"layers": {"__FIRST__": "W8A8"}}, "no pair for layer"),
    ({"default": "W8A8", "layerz": {}}, "unknown key"),
    ({"default": "W8A8", "layers": {"__RELU__": "W8A8"}}, "takes its precision from its neighbours"),
])
def test_config_errors_name_layer_and_allowed_pairs(doc, msg, mnet):
    g, _, _ = mnet
    first = config_nodes(g)[0]
    relu = next(n.name for n in g.nodes if n.op in ("Relu", "Clip"))
    layers = {first if k == "__FIRST__" else relu if k == "__RELU__" else k: v
              for k, v in (doc.get("layers") or {}).items()}
    doc = dict(doc, layers=layers) if "layers" in doc else doc
    with pytest.raises(ConfigError, match=msg) as e:
        parse_config(doc, g, ORT, source="cfg.yaml")
    assert str(e.value).startswith("cfg.yaml") and "\n" not in str(e.value)


def test_load_config_missing_file_and_bad_yaml(tmp_path, mnet):
    g, _, _ = mnet
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "none.yaml", g, ORT)
    (tmp_path / "bad.yaml").write_text("layers: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(tmp_path / "bad.yaml", g, ORT)


# -- quantize_graph -----------------------------------------------------------------------------

def test_relu6_folded_unsigned_and_bias_scale(mnet):
    g, _, stats = mnet
    qg = quantize_graph(g, ORT, stats, "W8A8")
    folded = [p for p in qg.plans.values() if p.fused_activation is not None]
    assert folded and all(qg.plans[p.fused_node].kind == "fused" for p in folded)
    relu6 = next(p for p in folded if p.fused_activation == "relu6")
    out = relu6.outputs[0]
    assert not out.fmt.signed and int(out.zero_point) == 0          # post-ReLU6 range -> uint8 from 0
    assert qg.params(g.node(relu6.fused_node).outputs[0]) is out     # one quantizer for both tensors
    conv = next(p for p in qg.plans.values() if p.op == "Conv" and p.bias_q is not None)
    assert conv.bias_q.dtype == np.int32
    s = np.float32(conv.inputs[0].scale) * conv.weight_params.scale
    assert np.allclose(conv.bias_q * s, conv.bias_float, atol=s.max())


def test_tflite_16x8_bias_is_int64_and_activations_symmetric(mnet):
    g, _, stats = mnet
    qg = quantize_graph(g, TFL, stats, "W8A16")
    conv = next(p for p in qg.plans.values() if p.op == "Conv" and p.bias_q is not None)
    assert conv.bias_q.dtype == np.int64 and conv.requant.value == "tflite_16x8"
    assert all(int(p.zero_point) == 0 and p.fmt.bits == 16 for p in qg.act.values())


def test_power_of_two_profile_gives_power_of_two_scales(mnet):
    g, _, stats = mnet
    qg = quantize_graph(g, POW2, stats, "W8A8")
    scales = np.concatenate([np.atleast_1d(p.scale) for p in qg.act.values()] +
                            [np.atleast_1d(p.weight_params.scale) for p in qg.plans.values() if p.weight_params])
    m, _ = np.frexp(scales.astype(np.float64))
    assert np.all(m == 0.5)


def test_shared_scale_concat_inputs_share_one_quantizer():
    rng = np.random.default_rng(3)
    g = Graph("cat", (TensorInfo("x", (None, 4)),), ("y",),
              (Node("a", "Gemm", ("x", "wa"), ("ya",), {"transB": 1}), Node("b", "Gemm", ("x", "wb"), ("yb",), {"transB": 1}),
               Node("cat", "Concat", ("ya", "yb"), ("y",), {"axis": 1})),
              {"wa": rng.standard_normal((3, 4)).astype(np.float32), "wb": 5 * rng.standard_normal((3, 4)).astype(np.float32)},
              shapes={"x": (1, 4), "ya": (1, 3), "yb": (1, 3), "y": (1, 6)})
    stats = calibrate(g, rng.standard_normal((32, 4)).astype(np.float32), progress=False)
    shared = quantize_graph(g, TFL, stats, "W8A8")           # tflite_reference shares Concat scales
    assert shared.params("ya") is shared.params("yb") is shared.params("y")
    own = quantize_graph(g, ORT, stats, "W8A8")               # cpu_onnxruntime: Concat requantizes
    assert float(own.params("ya").scale) < float(own.params("yb").scale)


def test_residual_add_shares_one_scale_when_the_profile_says_so(mnet):
    import copy
    from importlib import resources
    g, x, stats = mnet
    with resources.as_file(resources.files("hwsim.hw_profiles") / "tflite_reference.yaml") as f:
        doc = copy.deepcopy(yaml.safe_load(f.read_text()))
    doc["quantization"]["shared_scale_ops"] = ["Add", "Concat"]
    doc.pop("sources", None)
    shared = parse_profile(doc, "shared_add.yaml")
    add = next(n for n in g.nodes if n.op == "Add")
    qs = quantize_graph(g, shared, stats, "W8A8")
    assert qs.params(add.inputs[0]) is qs.params(add.inputs[1])
    qo = quantize_graph(g, TFL, stats, "W8A8")
    assert qo.params(add.inputs[0]) is not qo.params(add.inputs[1])


def test_fixed_output_range_from_profile():
    g = Graph("sig", (TensorInfo("x", (None, 4)),), ("y",), (Node("s", "Sigmoid", ("x",), ("y",)),), {},
              shapes={"x": (1, 4), "y": (1, 4)})
    stats = calibrate(g, np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32), progress=False)
    p = quantize_graph(g, TFL, stats, "W8A8").params("y")
    assert float(p.scale) == 1 / 256 and int(p.zero_point) == -128


def test_unsupported_op_fails_at_quantize_time_naming_the_node():
    g = Graph("q", (TensorInfo("x", (None, 4)),), ("y",),
              (Node("dq", "DequantizeLinear", ("x", "s"), ("y",), {}),), {"s": np.float32(1.0)},
              shapes={"x": (1, 4), "y": (1, 4)})
    with pytest.raises(UnsupportedOpError, match="node 'dq'"):
        quantize_graph(g, ORT, CalibrationStats({}), "W8A8")


def test_consumers_disagreeing_on_activation_bits_is_a_config_error(mnet):
    g, _, stats = mnet
    cfg = uniform_config(g, "W8A8", ORT)
    add = next(n for n in g.nodes if n.op == "Add")
    cfg[add.name] = BitPair(8, 16)             # reads tensors whose other readers stay at A8
    with pytest.raises(ConfigError, match="different activation bits"):
        quantize_graph(g, ORT, stats, cfg)


def test_quantize_graph_is_cheap_and_cached(mnet):
    import time
    g, _, stats = mnet
    quantize_graph(g, ORT, stats, "W8A8")
    quantize_graph(g, ORT, stats, "W4A8")
    t = time.perf_counter()
    for pair in ("W8A8", "W4A8", "W8A16") * 10:
        quantize_graph(g, ORT, stats, pair)
    per_call = (time.perf_counter() - t) / 30
    assert per_call < 0.02, per_call
    a, b = quantize_graph(g, ORT, stats, "W8A8"), quantize_graph(g, ORT, stats, "W8A8")
    conv = next(n.name for n in g.nodes if n.op == "Conv")
    assert a.plans[conv].weight_q is b.plans[conv].weight_q      # cached weights, not recomputed


def test_observer_override_changes_ranges_without_recalibrating(mnet):
    g, _, stats = mnet
    mm = quantize_graph(g, ORT, stats, "W8A8")
    pc = quantize_graph(g, ORT, stats, "W8A8", observer="percentile")
    t = g.nodes[0].outputs[0]
    assert float(pc.params(t).scale) <= float(mm.params(t).scale)


@pytest.mark.parametrize("mod", ["qparams", "observers", "calibrate", "config", "qgraph", "int_exec", "fake_exec",
                                 "compare"])
def test_docstring_examples_run(mod):
    import doctest
    import importlib
    res = doctest.testmod(importlib.import_module(f"hwsim.quant.{mod}"), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0


def test_mse_weight_observer_never_increases_weight_error(mnet):
    g, _, stats = mnet
    a = quantize_graph(g, ORT, stats, "W4A8")
    b = quantize_graph(g, ORT, stats, "W4A8", weight_observer="mse")
    for name, pa in a.plans.items():
        if pa.weight_q is None or pa.op != "Conv":
            continue
        pb = b.plans[name]
        w = g.constants[g.node(name).inputs[1]]
        ea = ((pa.weight_params.dequantize(pa.weight_q) - w) ** 2).sum(axis=(1, 2, 3))
        eb = ((pb.weight_params.dequantize(pb.weight_q) - w) ** 2).sum(axis=(1, 2, 3))
        assert np.all(eb <= ea * (1 + 1e-6))
    with pytest.raises(ConfigError, match="weight observer"):
        quantize_graph(g, ORT, stats, "W4A8", weight_observer="max")
