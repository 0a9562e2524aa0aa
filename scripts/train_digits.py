"""Train the demo CNN on scikit-learn's digits and write the packaged demo files.

Dev-only: needs torch (CPU wheel) and scikit-learn; the package and its tests never do.

Writes
------
hwsim/data/digits_cnn.onnx : the trained float model, opset 17, input ``input`` [N,1,8,8]
    float32 in [0, 1], output ``logits`` [N,10]. Built with onnx.helper from the trained
    weights (no torch exporter involved), so the graph is exactly the one below.
hwsim/data/digits.npz : ``calib`` (256 training images), ``test_x``/``test_y`` (the
    held-out split), float32 images scaled to [0, 1], int64 labels.

Architecture (7.3 k parameters; node names as in the ONNX file)::

    conv1  Conv 1->16 3x3 pad 1        -> relu1
    conv2  Conv 16->16 3x3 pad 1       -> relu2
    add1   Add(relu1, relu2)                      (residual)
    conv3  Conv 16->24 3x3 stride 2 pad 1 -> relu3   [24,4,4]
    dw4    Conv 24->24 3x3 depthwise pad 1 -> relu4
    pw5    Conv 24->32 1x1             -> relu5
    gap    GlobalAveragePool -> flatten -> fc Gemm 32->10

Usage::

    python scripts/train_digits.py            # trains (seeded) and overwrites hwsim/data/*
    python scripts/train_digits.py --check    # also verifies onnxruntime == torch on the test set

Training is seeded and single-threaded, so a rerun on the same machine reproduces the files.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "hwsim" / "data"
SEED = 20240611
N_CALIB = 256
TEST_FRACTION = 0.3


def load_split():
    """Stratified, seeded train/test split of sklearn's digits, images scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    return train_test_split(x, y, test_size=TEST_FRACTION, random_state=SEED, stratify=y)


def build_torch_model():
    import torch.nn as nn

    class DigitsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
            self.conv3 = nn.Conv2d(16, 24, 3, stride=2, padding=1)
            self.dw4 = nn.Conv2d(24, 24, 3, padding=1, groups=24)
            self.pw5 = nn.Conv2d(24, 32, 1)
            self.fc = nn.Linear(32, 10)
            self.act = nn.ReLU()

        def forward(self, x):
            a1 = self.act(self.conv1(x))
            a2 = self.act(self.conv2(a1))
            s = a1 + a2
            a3 = self.act(self.conv3(s))
            a4 = self.act(self.dw4(a3))
            a5 = self.act(self.pw5(a4))
            g = a5.mean(dim=(2, 3))
            return self.fc(g)

    return DigitsCNN()


def augment(xb, rng):
    """Random shifts of up to one pixel (zero fill): cheap, keeps digits recognisable."""
    out = np.zeros_like(xb)
    for i in range(len(xb)):
        dy, dx = rng.integers(-1, 2, size=2)
        src = xb[i, 0]
        shifted = np.roll(np.roll(src, dy, axis=0), dx, axis=1)
        if dy == 1:
            shifted[0, :] = 0
        elif dy == -1:
            shifted[-1, :] = 0
        if dx == 1:
            shifted[:, 0] = 0
        elif dx == -1:
            shifted[:, -1] = 0
        out[i, 0] = shifted
    return out


def train(x_train, y_train, epochs: int = 150, lr: float = 5e-3, weight_decay: float = 0.05):
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(SEED)
    model = build_torch_model()
    # decoupled weight decay (AdamW): Adam's L2 decay drives the weights of dead ReLU channels
    # towards denormal magnitudes, which makes per-channel weight scales degenerate
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = len(x_train)
    for epoch in range(epochs):
        model.train()
        perm = rng.permutation(n)
        total = 0.0
        for i in range(0, n, 64):
            idx = perm[i:i + 64]
            xb = torch.from_numpy(augment(x_train[idx], rng))
            yb = torch.from_numpy(y_train[idx])
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1:3d}  loss {total / n:.4f}", file=sys.stderr)
    model.eval()
    return model


def to_onnx(model) -> onnx.ModelProto:
    """Build the ONNX graph by hand from the trained weights (opset 17, dynamic batch)."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    inits = []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def conv(name, x, y, stride=1, pad=1, group=1):
        w = init(f"{name}.weight", sd[f"{name}.weight"])
        b = init(f"{name}.bias", sd[f"{name}.bias"])
        k = sd[f"{name}.weight"].shape[-1]
        return helper.make_node("Conv", [x, w, b], [y], name=name, kernel_shape=[k, k],
                                strides=[stride, stride], pads=[pad] * 4, group=group,
                                dilations=[1, 1])

    nodes = [
        conv("conv1", "input", "conv1_out"),
        helper.make_node("Relu", ["conv1_out"], ["relu1_out"], name="relu1"),
        conv("conv2", "relu1_out", "conv2_out"),
        helper.make_node("Relu", ["conv2_out"], ["relu2_out"], name="relu2"),
        helper.make_node("Add", ["relu1_out", "relu2_out"], ["add1_out"], name="add1"),
        conv("conv3", "add1_out", "conv3_out", stride=2),
        helper.make_node("Relu", ["conv3_out"], ["relu3_out"], name="relu3"),
        conv("dw4", "relu3_out", "dw4_out", group=24),
        helper.make_node("Relu", ["dw4_out"], ["relu4_out"], name="relu4"),
        conv("pw5", "relu4_out", "pw5_out", pad=0),
        helper.make_node("Relu", ["pw5_out"], ["relu5_out"], name="relu5"),
        helper.make_node("GlobalAveragePool", ["relu5_out"], ["gap_out"], name="gap"),
        helper.make_node("Flatten", ["gap_out"], ["flat_out"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat_out", init("fc.weight", sd["fc.weight"]), init("fc.bias", sd["fc.bias"])],
                         ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "digits_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                          producer_name="hwsim scripts/train_digits.py")
    m.ir_version = 8
    m.doc_string = ("Small CNN trained on scikit-learn's digits (UCI optdigits test set, CC BY 4.0); "
                    "input [N,1,8,8] float32 scaled to [0,1]; output logits [N,10].")
    onnx.checker.check_model(m, full_check=True)
    return m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=150, help="training epochs (default 150)")
    ap.add_argument("--lr", type=float, default=5e-3, help="AdamW learning rate (default 5e-3)")
    ap.add_argument("--wd", type=float, default=0.05, help="AdamW decoupled weight decay (default 0.05)")
    ap.add_argument("--out", type=Path, default=DATA, help="output folder (default hwsim/data)")
    ap.add_argument("--check", action="store_true", help="verify onnxruntime output against torch")
    args = ap.parse_args(argv)

    import torch

    x_train, x_test, y_train, y_test = load_split()
    model = train(x_train, y_train, args.epochs, args.lr, args.wd)
    with torch.no_grad():
        t_logits = model(torch.from_numpy(x_test)).numpy()
    acc = float((t_logits.argmax(1) == y_test).mean())
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params}  float test accuracy {acc:.4f} ({len(y_test)} test digits)")

    m = to_onnx(model)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "digits_cnn.onnx").write_bytes(m.SerializeToString())

    rng = np.random.default_rng(SEED)
    calib_idx = np.sort(rng.choice(len(x_train), size=N_CALIB, replace=False))
    buf = io.BytesIO()
    np.savez_compressed(buf, calib=x_train[calib_idx].astype(np.float32),
                        test_x=x_test.astype(np.float32), test_y=y_test.astype(np.int64))
    (args.out / "digits.npz").write_bytes(buf.getvalue())
    print(f"wrote {args.out / 'digits_cnn.onnx'} ({len(m.SerializeToString())} B), "
          f"{args.out / 'digits.npz'} ({len(buf.getvalue())} B)")

    if args.check:
        import onnxruntime as ort

        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        o_logits = sess.run(None, {"input": x_test})[0]
        diff = float(np.abs(o_logits - t_logits).max())
        o_acc = float((o_logits.argmax(1) == y_test).mean())
        print(f"onnxruntime accuracy {o_acc:.4f}, max |ort - torch| = {diff:.2e}")
        if diff > 1e-4:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
