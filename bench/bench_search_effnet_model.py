"""An EfficientNet-Lite0-class CNN built in code with onnx.helper (for bench_search_effnet.py).

The EfficientNet-Lite0 topology (Tan & Le 2019, "Lite" variant: ReLU6, no squeeze-excite):
stem 3×3/2 conv (32) → 16 MBConv blocks (expand 1×1, depthwise 3×3 or 5×5, project 1×1,
residual Add when shape allows) in 7 stages (16, 24, 40, 80, 112, 192, 320 channels) →
head 1×1 conv (1280) → global average pool → flatten → FC (1000). Convolutions carry
BatchNormalization (folded by the importer). Weights are random (He init with per-channel
log-normal gains, so channel ranges differ as in trained networks); the model is for
measuring search speed and behaviour, not accuracy.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["build_efficientnet_lite0", "smooth_images"]

# (expand ratio, output channels, repeats, stride, kernel)
_STAGES = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
           (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]


def build_efficientnet_lite0(input_size: int = 224, num_classes: int = 1000, seed: int = 0,
                             width: float = 1.0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    count = [0]

    def name(base):
        count[0] += 1
        return f"{base}{count[0]}"

    def const(arr, base="c"):
        nm = name(base)
        inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def node(op, ins, base, **attrs):
        nm = name(base)
        nodes.append(helper.make_node(op, ins, [nm + "_o"], name=nm, **attrs))
        return nm + "_o"

    def ch(c):
        return max(8, int(round(c * width / 8)) * 8)

    def conv_bn(x, cin, cout, k, stride=1, group=1, act=True, gain=2.0):
        fan_in = cin // group * k * k
        w = rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(gain / fan_in)
        w *= rng.lognormal(0.0, 0.35, (cout, 1, 1, 1))
        y = node("Conv", [x, const(w.astype(np.float32), "w")], "conv", kernel_shape=[k, k],
                 strides=[stride, stride], pads=[k // 2] * 4, group=group)
        y = node("BatchNormalization", [
            y, const((1.0 + 0.1 * rng.standard_normal(cout)).astype(np.float32), "g"),
            const((0.1 * rng.standard_normal(cout)).astype(np.float32), "b"),
            const((0.05 * rng.standard_normal(cout)).astype(np.float32), "m"),
            const((1.0 + 0.1 * rng.random(cout)).astype(np.float32), "v")], "bn", epsilon=1e-3)
        if act:
            y = node("Clip", [y, const(np.array(0.0, np.float32), "lo"), const(np.array(6.0, np.float32), "hi")],
                     "relu6_")
        return y

    x = "input"
    c = ch(32)
    h = conv_bn(x, 3, c, 3, stride=2)
    for t, cout, reps, stride, k in _STAGES:
        cout = ch(cout)
        for r in range(reps):
            s = stride if r == 0 else 1
            inp = h
            mid = c * t
            y = h
            if t != 1:
                y = conv_bn(y, c, mid, 1)
            y = conv_bn(y, mid, mid, k, stride=s, group=mid)
            y = conv_bn(y, mid, cout, 1, act=False, gain=1.0)
            if s == 1 and cout == c:
                y = node("Add", [inp, y], "add")
            h, c = y, cout
    h = conv_bn(h, c, 1280, 1)
    h = node("GlobalAveragePool", [h], "gap")
    h = node("Flatten", [h], "flatten", axis=1)
    w = (rng.standard_normal((num_classes, 1280)) / np.sqrt(1280)).astype(np.float32)
    b = (0.01 * rng.standard_normal(num_classes)).astype(np.float32)
    nodes.append(helper.make_node("Gemm", [h, const(w, "fcw"), const(b, "fcb")], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(nodes, "efficientnet_lite0_like",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                             ["N", 3, input_size, input_size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", num_classes])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="hwsim-bench")
    m.ir_version = 8
    return m


def smooth_images(n: int, size: int, seed: int = 1) -> np.ndarray:
    """``n`` spatially correlated random RGB images (normalised like ImageNet inputs), float32 NCHW."""
    rng = np.random.default_rng(seed)
    small = rng.standard_normal((n, 3, size // 8 + 1, size // 8 + 1)).astype(np.float32)
    img = np.repeat(np.repeat(small, 8, axis=2), 8, axis=3)[:, :, :size, :size]
    # a little blur and texture
    img = 0.6 * img + 0.25 * np.roll(img, 4, axis=2) + 0.25 * np.roll(img, 4, axis=3)
    img += 0.3 * rng.standard_normal(img.shape).astype(np.float32)
    return np.ascontiguousarray(img, dtype=np.float32)
