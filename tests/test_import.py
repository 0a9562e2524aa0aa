"""ONNX import: realistic models vs onnxruntime, folding, normalisation, errors."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hwsim.errors import ModelError, UnsupportedOpError
from hwsim.float_exec import run_float
from hwsim.graph import Graph
from hwsim.onnx_import import load_model
from hwsim.opset import OpClass, op_class_of
from tests.onnx_models import (build_efficientnet_like, build_mlp, build_mobilenet_like, build_paddle_style, build_resnet_like,
                               build_tf2onnx_style, build_transformer_block, make_model, run_ort)

RTOL = 1e-4


def assert_close(got, ref, rtol=RTOL):
    for k, r in ref.items():
        assert got[k].shape == r.shape
        err = float(np.abs(got[k].astype(np.float64) - r).max())
        assert err <= rtol * float(np.abs(r).max()), f"{k}: {err:.3g} vs {np.abs(r).max():.3g}"


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def every_tensor_has_shape(g: Graph):
    for t in list(g.tensors()) + list(g.constants):
        assert t in g.shapes, t
        assert t in g.dtypes, t
        assert all(isinstance(d, int) and d >= 0 for d in g.shapes[t]), (t, g.shapes[t])


@pytest.mark.parametrize("opset", [11, 13, 15, 17, 18, 21])
def test_mobilenet_like_matches_ort_any_batch(opset):
    m = build_mobilenet_like(opset=opset)
    g = load_model(m)
    every_tensor_has_shape(g)
    for batch in (1, 3):
        x = {"input": rand(batch, 3, 32, 32, seed=batch)}
        assert_close(run_float(g, x), run_ort(m, x))
    ops = [n.op for n in g.nodes]
    assert "BatchNormalization" not in ops          # all folded into the convs
    assert not {"Shape", "Gather", "Concat", "Unsqueeze", "Identity"} & set(ops)
    assert sum(op_class_of(n) == OpClass.DEPTHWISE for n in g.nodes) == 5
    reshape = [n for n in g.nodes if n.op == "Reshape"][0]
    assert reshape.attrs["shape"] == (0, -1)      # the batch entry stays dynamic
    assert g.shapes["logits"] == (1, 10)
    assert g.inputs[0].shape == (None, 3, 32, 32)


def test_mobilenet_like_static_batch_and_sizes():
    m = build_mobilenet_like(batch=2, input_size=48, width=16, num_classes=7, seed=5)
    g = load_model(m)
    x = {"input": rand(2, 3, 48, 48)}
    assert_close(run_float(g, x), run_ort(m, x))
    assert g.shapes["logits"] == (2, 7)


@pytest.mark.parametrize("opset", [13, 20])
def test_efficientnet_like(opset):
    m = build_efficientnet_like(opset=opset)
    g = load_model(m)
    every_tensor_has_shape(g)
    for b in (1, 2):
        x = {"input": rand(b, 3, 32, 32, seed=b)}
        assert_close(run_float(g, x), run_ort(m, x))
    assert "BatchNormalization" not in [n.op for n in g.nodes]
    assert sum(op_class_of(n) == OpClass.DEPTHWISE for n in g.nodes) == 4


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_resnet_like(opset):
    m = build_resnet_like(opset=opset)
    g = load_model(m)
    every_tensor_has_shape(g)
    x = {"input": rand(2, 3, 32, 32)}
    assert_close(run_float(g, x), run_ort(m, x))
    assert "BatchNormalization" not in [n.op for n in g.nodes]
    assert all("folded_bn" in n.attrs for n in g.nodes if n.op == "Conv")


@pytest.mark.parametrize("opset", [13, 18])
def test_tf2onnx_style(opset):
    m = build_tf2onnx_style(opset=opset)
    g = load_model(m)
    every_tensor_has_shape(g)
    x = {"input": rand(3, 16, 16, 3)}
    assert_close(run_float(g, x), run_ort(m, x))
    ops = [n.op for n in g.nodes]
    assert "Identity" not in ops
    assert ops.count("BatchNormalization") == 1       # the one after Relu is executed, the other folded
    assert g.nodes[0].op == "Transpose" and g.nodes[0].attrs["perm"] == (0, 3, 1, 2)


@pytest.mark.parametrize("opset", [11, 13])
def test_paddle_style(opset):
    m = build_paddle_style(opset=opset)
    g = load_model(m)
    x = {"input": rand(2, 3, 16, 16)}
    assert_close(run_float(g, x), run_ort(m, x))
    assert not {"Identity", "Dropout", "BatchNormalization"} & {n.op for n in g.nodes}


def test_mlp():
    m = build_mlp()
    g = load_model(m)
    assert_close(run_float(g, {"input": rand(5, 16)}), run_ort(m, {"input": rand(5, 16)}))


@pytest.mark.parametrize("opset", [13, 17])
def test_transformer_block(opset):
    m = build_transformer_block(opset=opset)
    g = load_model(m)
    every_tensor_has_shape(g)
    mask = np.zeros((2, 1, 1, 8), np.float32)
    mask[1, ..., 5:] = -1e4
    feeds = {"x": rand(2, 8, 16), "mask": mask}
    assert_close(run_float(g, feeds), run_ort(m, feeds))


def test_bn_not_folded_when_conv_output_has_other_consumer():
    w = rand(4, 3, 3, 3)
    c = [np.ones(4, np.float32) * 1.5, np.full(4, 0.1, np.float32), np.zeros(4, np.float32), np.ones(4, np.float32)]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Add", ["bn", "r"], ["y"])]
    m = make_model(nodes, [("x", ["N", 3, 8, 8])], [("y", None)],
                   [("w", w), ("g", c[0]), ("b", c[1]), ("m", c[2]), ("v", c[3])])
    g = load_model(m)
    assert "BatchNormalization" in [n.op for n in g.nodes]
    x = {"x": rand(2, 3, 8, 8)}
    assert_close(run_float(g, x), run_ort(m, x))


def test_gemm_bn_folding():
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
             helper.make_node("BatchNormalization", ["h", "g", "bb", "m", "v"], ["y"])]
    m = make_model(nodes, [("x", ["N", 6])], [("y", None)],
                   [("w", rand(4, 6)), ("b", rand(4, seed=1)), ("g", rand(4, seed=2)), ("bb", rand(4, seed=3)),
                    ("m", rand(4, seed=4)), ("v", np.abs(rand(4, seed=5)) + 0.5)])
    g = load_model(m)
    assert [n.op for n in g.nodes] == ["Gemm"]
    assert_close(run_float(g, {"x": rand(3, 6)}), run_ort(m, {"x": rand(3, 6)}))


def test_identity_output_names_and_constant_folding():
    nodes = [helper.make_node("Constant", [], ["k"], value=helper.make_tensor("kv", TensorProto.FLOAT, [3], [1, 2, 3])),
             helper.make_node("Mul", ["k", "k"], ["k2"]),          # constant chain: folded
             helper.make_node("Add", ["x", "k2"], ["a"]),
             helper.make_node("Identity", ["a"], ["out"]),
             helper.make_node("Identity", ["x"], ["xcopy"])]
    m = make_model(nodes, [("x", ["N", 3])], [("out", None), ("xcopy", None)])
    g = load_model(m)
    assert g.outputs == ("out", "xcopy")
    assert [n.op for n in g.nodes] == ["Add", "Identity"]
    assert np.array_equal(g.constants[g.nodes[0].inputs[1]], [1, 4, 9])
    x = {"x": rand(2, 3)}
    assert_close(run_float(g, x), run_ort(m, x))


def test_shape_chain_with_arithmetic_dynamic_batch():
    """Shape -> Slice -> ReduceProd / Concat: flatten everything but the batch (dynamo style)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "one", "big"], ["tail"]),
             helper.make_node("ReduceProd", ["tail"], ["p"], keepdims=1),
             helper.make_node("Slice", ["s", "zero", "one"], ["head"]),
             helper.make_node("Concat", ["head", "p"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [("one", np.array([1], np.int64)), ("big", np.array([100], np.int64)), ("zero", np.array([0], np.int64))]
    m = make_model(nodes, [("x", ["batch", 3, 4, 5])], [("y", None)], inits)
    g = load_model(m)
    assert [n.op for n in g.nodes] == ["Reshape"] and g.nodes[0].attrs["shape"] == (0, 60)
    for b in (1, 4):
        x = {"x": rand(b, 3, 4, 5)}
        assert_close(run_float(g, x), run_ort(m, x))


def test_batch_times_something_becomes_minus_one():
    """Reshape target [N*3, -1]... the batch entry that is not a copied dim becomes -1."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
             helper.make_node("Mul", ["n", "three"], ["n3"]),
             helper.make_node("Unsqueeze", ["n3", "ax"], ["n3u"]),
             helper.make_node("Concat", ["n3u", "twenty"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [("i0", np.array(0, np.int64)), ("three", np.array(3, np.int64)), ("ax", np.array([0], np.int64)),
             ("twenty", np.array([20], np.int64))]
    m = make_model(nodes, [("x", ["N", 3, 4, 5])], [("y", None)], inits)
    g = load_model(m)
    assert g.nodes[0].attrs["shape"] == (-1, 20)
    x = {"x": rand(2, 3, 4, 5)}
    assert_close(run_float(g, x), run_ort(m, x))


def test_batch_dependent_uniform_fill_broadcasts():
    """ConstantOfShape(Shape(x)) (torch's ones_like/zeros_like) used by an element-wise op."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["z"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.5])),
             helper.make_node("Add", ["x", "z"], ["y"])]
    m = make_model(nodes, [("x", ["N", 3])], [("y", None)])
    g = load_model(m)
    assert [n.op for n in g.nodes] == ["Add"] and g.constants[g.nodes[0].inputs[1]].shape == (1, 3)
    for b in (1, 3):
        assert_close(run_float(g, {"x": rand(b, 3)}), run_ort(m, {"x": rand(b, 3)}))


def test_runtime_use_of_batch_dependent_values_is_rejected():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
             helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
             helper.make_node("Range", ["zero", "nf", "one"], ["r"]),
             helper.make_node("Unsqueeze", ["r", "ax"], ["ru"]),
             helper.make_node("Add", ["x", "ru"], ["y"], name="add_range")]
    inits = [("i0", np.array(0, np.int64)), ("zero", np.array(0.0, np.float32)), ("one", np.array(1.0, np.float32)),
             ("ax", np.array([1], np.int64))]
    m = make_model(nodes, [("x", ["N", 3])], [("y", None)], inits)
    with pytest.raises(UnsupportedOpError, match="node 'add_range'.*computed from the dynamic input dimensions"):
        load_model(m)


def test_unsupported_op_error_names_node_op_and_list():
    m = make_model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("LpNormalization", ["r"], ["y"], name="lpn")],
                   [("x", ["N", 3])], [("y", None)])
    with pytest.raises(UnsupportedOpError) as e:
        load_model(m)
    assert e.value.node_name == "lpn" and e.value.op_type == "LpNormalization"
    assert "Conv" in e.value.supported and "node 'lpn'" in str(e.value) and "\n" not in str(e.value)


def test_fold_only_op_at_run_time_is_rejected():
    m = make_model([helper.make_node("Floor", ["x"], ["y"], name="e")], [("x", ["N", 3])], [("y", None)])
    with pytest.raises(UnsupportedOpError, match="node 'e'.*only when its inputs are constants"):
        load_model(m)


def test_custom_domain_rejected():
    node = helper.make_node("FusedConv", ["x"], ["y"], domain="com.microsoft", name="fc")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    with pytest.raises(UnsupportedOpError, match="com.microsoft.FusedConv"):
        load_model(m)


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        load_model(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\xff\x12")
    with pytest.raises(ModelError) as e:
        load_model(bad)
    assert "not an ONNX model" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ModelError, match="not a file"):
        load_model(tmp_path)


def test_load_from_path_and_bytes(tmp_path):
    m = build_mlp()
    p = tmp_path / "mlp.onnx"
    onnx.save(m, p)
    g1, g2 = load_model(p), load_model(m.SerializeToString())
    assert [n.op for n in g1.nodes] == [n.op for n in g2.nodes]
    assert g1.name == "mlp"


def test_input_checks():
    from hwsim.errors import DataError
    g = load_model(build_mlp())
    with pytest.raises(DataError, match=r"the model expects \(N, 16\) \(axis 1\)"):
        run_float(g, {"input": rand(2, 15)})
    with pytest.raises(DataError, match=r"missing: \['input'\]"):
        run_float(g, {})
    x = rand(2, 16)
    x[1, 3] = np.nan
    with pytest.raises(DataError, match="1 NaN/Inf"):
        run_float(g, {"input": x})
    with pytest.raises(DataError, match="is empty"):
        run_float(g, {"input": rand(2, 16)[:0]})
    # float64 input is cast to the model's float32
    assert run_float(g, {"input": rand(2, 16).astype(np.float64)})["logits"].dtype == np.float32


def test_every_imported_node_carries_exactly_the_normalised_attributes():
    from pathlib import Path
    from hwsim.opset import NORMALISED_ATTRS, OPTIONAL_ATTRS, OPS
    assert set(NORMALISED_ATTRS) == set(OPS)
    models = [build_mobilenet_like(opset=11), build_mobilenet_like(opset=18), build_resnet_like(), build_tf2onnx_style(),
              build_paddle_style(), build_mlp(), build_transformer_block()]
    models += sorted(p for p in (Path(__file__).parent / "data" / "models").glob("*.onnx") if "dynseq" not in p.name)
    seen = set()
    for m in models:
        for n in load_model(m).nodes:
            keys = set(n.attrs)
            required = set(NORMALISED_ATTRS[n.op])
            assert required <= keys <= required | set(OPTIONAL_ATTRS.get(n.op, ())), (n.name, n.op, keys)
            seen.add(n.op)
    assert {"Conv", "Gemm", "Clip", "Reshape", "Softmax", "LayerNormalization", "MaxPool"} <= seen


def test_two_outputs_identity_of_one_tensor_and_input_passthrough():
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Identity", ["r"], ["out1"]),
             helper.make_node("Identity", ["r"], ["out2"]),
             helper.make_node("Sigmoid", ["r"], ["out3"])]
    m = make_model(nodes, [("x", ["N", 3])], [("out1", None), ("out2", None), ("out3", None), ("x", None)])
    g = load_model(m)
    assert g.outputs == ("out1", "out2", "out3", "x")
    x = {"x": rand(2, 3)}
    got, ref = run_float(g, x), run_ort(m, x)
    assert set(got) == set(ref)
    assert_close(got, ref)


def test_constant_graph_output():
    nodes = [helper.make_node("Constant", [], ["k"], value=helper.make_tensor("kv", TensorProto.FLOAT, [2], [1, 2])),
             helper.make_node("Relu", ["x"], ["y"])]
    m = make_model(nodes, [("x", ["N", 3])], [("y", None), ("k", [2])])
    g = load_model(m)
    got = run_float(g, {"x": rand(2, 3)})
    assert np.array_equal(got["k"], [1, 2]) and got["y"].shape == (2, 3)


def test_qdq_model_runs_in_float_with_runtime_conv_weight():
    """A QDQ model (DequantizeLinear feeding Conv's weight) imports; float execution = ORT."""
    rng = np.random.default_rng(0)
    wq = rng.integers(-127, 128, size=(4, 3, 3, 3)).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd", "b"], ["y"], pads=[1, 1, 1, 1])]
    inits = [("xs", np.array(0.02, np.float32)), ("xz", np.array(0, np.int8)), ("wq", wq),
             ("ws", np.linspace(0.01, 0.02, 4).astype(np.float32)), ("b", rand(4, seed=3))]
    m = make_model(nodes, [("x", ["N", 3, 8, 8])], [("y", None)], inits)
    g = load_model(m)
    assert [n.op for n in g.nodes] == ["QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv"]
    x = {"x": rand(2, 3, 8, 8)}
    assert_close(run_float(g, x), run_ort(m, x))


def test_stale_value_info_is_ignored():
    """A wrong value_info left by a graph-editing tool does not mislead the importer."""
    m = build_mobilenet_like()
    for n in m.graph.node:
        if n.op_type == "Conv":
            m.graph.value_info.append(helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, [7, 7]))
    g = load_model(m)
    every_tensor_has_shape(g)
    assert g.shapes[g.nodes[0].outputs[0]] == (1, 8, 16, 16)
    x = {"input": rand(2, 3, 32, 32)}
    m2 = build_mobilenet_like()
    assert_close(run_float(g, x), run_ort(m2, x))


def test_same_padding_on_dynamic_spatial_dims():
    w = rand(4, 3, 3, 3)
    def model(stride):
        node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[stride, stride], name="c")
        return make_model([node], [("x", ["N", 3, "H", "W"])], [("y", None)], [("w", w)])
    g = load_model(model(1))                                     # stride 1: the padding never depends on the size
    for hw in (5, 8):
        x = {"x": rand(1, 3, hw, hw)}
        assert_close(run_float(g, x), run_ort(model(1), x))
    with pytest.raises(UnsupportedOpError, match="node 'c'.*dynamic spatial dimension"):
        load_model(model(2))
    g = load_model(model(2), fixed_dims={"H": 9, "W": 10})
    x = {"x": rand(2, 3, 9, 10)}
    assert_close(run_float(g, x), run_ort(model(2), x))


def test_metadata_lists_dynamic_dims():
    g = load_model(build_mobilenet_like())
    assert g.metadata["dynamic_dims"] == {"input": {0: "N"}} and g.metadata["fixed_dims"] == {}
    assert load_model(build_mobilenet_like(batch=2)).metadata["dynamic_dims"] == {"input": {}}
