"""Real torch.onnx exports (TorchScript and dynamo exporters), written by
scripts/export_torch_models.py into tests/data/models/; no torch needed here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from hwsim.float_exec import run_float
from hwsim.onnx_import import load_model
from hwsim.opset import OpClass, op_class_of
from tests.onnx_models import run_ort

MODELS = Path(__file__).parent / "data" / "models"
FILES = sorted(MODELS.glob("*.onnx"))
CNN_FILES = [p for p in FILES if not p.name.startswith(("encoder_", "fpn_"))]


def test_the_exports_are_there():
    names = {p.name for p in FILES}
    assert {"mbv2_torchscript_op13.onnx", "mbv3_torchscript_op17.onnx", "resnet_torchscript_op15.onnx",
            "mbv2_dynamo_op18.onnx", "resnet_dynamo_op18.onnx", "mbv3_dynamo_op20.onnx",
            "encoder_torchscript_op17.onnx", "encoder_dynamo_op18.onnx", "mbv2_torchscript_nofold_op13.onnx",
            "mbv3_torchscript_nofold_op11.onnx", "mbv3_dynamo_noopt_op18.onnx", "fpn_torchscript_op13.onnx",
            "fpn_dynamo_op18.onnx"} <= names
    assert all(p.stat().st_size < 1_000_000 for p in FILES)


@pytest.mark.parametrize("path", CNN_FILES, ids=lambda p: p.stem)
def test_torch_export_matches_ort_for_any_batch(path):
    m = onnx.load(path)
    g = load_model(path)
    assert g.inputs[0].shape[0] is None                      # dynamic batch kept
    assert g.shapes["logits"] == (1, 10)
    for b in (1, 4):
        x = {"input": np.random.default_rng(b).standard_normal((b, 3, 32, 32)).astype(np.float32)}
        ref = run_ort(m, x)["logits"]
        got = run_float(g, x)["logits"]
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    ops = {n.op for n in g.nodes}
    assert not ops & {"Shape", "Gather", "Unsqueeze", "Concat", "Constant", "ConstantOfShape", "Cast",
                      "Identity", "Pad", "BatchNormalization"}
    if "mb" in path.stem:
        assert any(op_class_of(n) == OpClass.DEPTHWISE for n in g.nodes)


def test_torchscript_pad_chain_fused_into_conv_as_asymmetric_pads():
    g = load_model(MODELS / "mbv3_torchscript_op17.onnx")
    first = g.nodes[0]
    assert first.op == "Conv" and first.inputs[0] == "input"
    assert first.attrs["pads"] == (0, 0, 1, 1)               # (top, left, bottom, right)


@pytest.mark.parametrize("name", ["encoder_torchscript_op17.onnx", "encoder_dynamo_op18.onnx"])
def test_torch_transformer_encoder_with_padding_mask(name):
    m = onnx.load(MODELS / name)
    g = load_model(MODELS / name)
    assert {"LayerNormalization", "Softmax", "Erf", "MatMul"} <= {n.op for n in g.nodes}
    assert not {"Shape", "ConstantOfShape", "Constant"} & {n.op for n in g.nodes}
    for b in (1, 3):
        rng = np.random.default_rng(b)
        feeds = {"ids": rng.integers(0, 50, (b, 8)).astype(np.int64), "mask": np.ones((b, 8), np.int64)}
        feeds["mask"][-1, 5:] = 0
        ref = run_ort(m, feeds)["logits"]
        got = run_float(g, feeds)["logits"]
        assert got.shape == ref.shape == (b, 3)
        assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_unfolded_exports_fold_to_the_same_graph():
    """BatchNormalization, Constant/Shape/Expand/CastLike chains of the raw exports all disappear:
    the raw and the exporter-optimised graphs run the same ops."""
    def ops(name):
        return sorted(n.op for n in load_model(MODELS / name).nodes)
    assert ops("mbv2_torchscript_nofold_op13.onnx") == ops("mbv2_torchscript_op13.onnx")
    assert ops("mbv3_dynamo_noopt_op18.onnx") == ops("mbv3_dynamo_op20.onnx")


def test_dynamic_sequence_length_needs_fixed_dims():
    """With a dynamic sequence length too, torch's attention reshapes cannot be written with 0/-1:
    the import says so and names the remedy; fixing the sequence length keeps the batch dynamic."""
    from hwsim.errors import ModelError, UnsupportedOpError
    path = MODELS / "encoder_dynamo_dynseq_op18.onnx"
    with pytest.raises(UnsupportedOpError, match="fixed_dims"):
        load_model(path)
    with pytest.raises(ModelError, match="no input dimension named sequence.*batch, seq"):
        load_model(path, fixed_dims={"sequence": 12})
    g = load_model(path, fixed_dims={"seq": 12})
    assert g.inputs[0].shape == (None, 12)
    m = onnx.load(path)
    for b in (1, 3):
        feeds = {"ids": np.random.default_rng(b).integers(0, 50, (b, 12)).astype(np.int64),
                 "mask": np.ones((b, 12), np.int64)}
        ref = run_ort(m, feeds)["logits"]
        assert np.abs(run_float(g, feeds)["logits"] - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("name", ["fpn_torchscript_op13.onnx", "fpn_dynamo_op18.onnx"])
def test_torch_fpn_head_interpolate_prelu_chunk(name):
    m = onnx.load(MODELS / name)
    g = load_model(MODELS / name)
    ops = {n.op for n in g.nodes}
    assert {"Resize", "PRelu", "LeakyRelu", "Softmax"} <= ops and not {"Shape", "Gather", "Cast"} & ops
    for b in (1, 3):
        x = {"input": np.random.default_rng(b).standard_normal((b, 3, 32, 32)).astype(np.float32)}
        ref = run_ort(m, x)["out"]
        got = run_float(g, x)["out"]
        assert got.shape == ref.shape == (b, 256, 4)
        assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
