"""Dev-only: export small torch CNNs with random weights to tests/data/models/*.onnx.

Needs torch (and onnxscript for the dynamo exporter); the tests only read the .onnx files.

    pip install --target /tmp/torchenv /opt/wheels/torch-*.whl onnxscript
    PYTHONPATH=/tmp/torchenv python scripts/export_torch_models.py

Models (small channel counts, every file < 1 MB), all with a dynamic batch dimension:
  mbv2_torchscript_op13.onnx  MobileNetV2-style (ReLU6, depthwise, residual, BN), x.view(x.size(0), -1)
  mbv3_torchscript_op17.onnx  MobileNetV3-style (HardSwish, SE with HardSigmoid, asymmetric-pad conv)
  resnet_torchscript_op15.onnx ResNet-style (MaxPool, downsample, AdaptiveAvgPool, flatten)
  mbv2_dynamo_op18.onnx / resnet_dynamo_op18.onnx / mbv3_dynamo_op20.onnx  the same nets, dynamo exporter
  mbv2_torchscript_nofold_op13.onnx / mbv3_torchscript_nofold_op11.onnx  without constant folding
      (BatchNormalization nodes, Constant/Shape chains; opset 11 HardSwish = x * HardSigmoid(x))
  mbv3_dynamo_noopt_op18.onnx  dynamo exporter with optimize=False (Expand, CastLike, Shape chains)
  fpn_torchscript_op13.onnx / fpn_dynamo_op18.onnx  LeakyReLU, PReLU, F.interpolate (nearest to another
      tensor's size, bilinear x2), chunk/cat, softmax over (N, H*W, 4); output "out"
  encoder_torchscript_op17.onnx / encoder_dynamo_op18.onnx  embedding + one nn.TransformerEncoderLayer
      (GELU, LayerNorm, attention with a key-padding mask) + Linear on the first token;
      inputs ids (N, 8) int64 and mask (N, 8) int64 (1 = token, 0 = padding), output logits (N, 3)
  encoder_dynamo_dynseq_op18.onnx  the same with a dynamic sequence length "seq" as well
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "models"


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand, act=nn.ReLU6, se=False):
        super().__init__()
        mid = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), act()]
        layers += [nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), act()]
        self.body = nn.Sequential(*layers)
        self.se = None
        if se:
            sq = max(4, mid // 4)
            self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(mid, sq, 1), nn.ReLU(),
                                    nn.Conv2d(sq, mid, 1), nn.Hardsigmoid())
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        if self.se is not None:
            y = y * self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class MobileNetV2Like(nn.Module):
    def __init__(self, num_classes=10, w=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(w, w, 1, 1), InvertedResidual(w, 2 * w, 2, 4),
                                    InvertedResidual(2 * w, 2 * w, 1, 4), InvertedResidual(2 * w, 3 * w, 2, 4),
                                    InvertedResidual(3 * w, 3 * w, 1, 4))
        self.head = nn.Sequential(nn.Conv2d(3 * w, 8 * w, 1, bias=False), nn.BatchNorm2d(8 * w), nn.ReLU6())
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        x = x.view(x.size(0), -1)            # Shape -> Gather -> Unsqueeze -> Concat -> Reshape
        return self.fc(x)


class MobileNetV3Like(nn.Module):
    def __init__(self, num_classes=10, w=8):
        super().__init__()
        # asymmetric padding as torch writes it for "same" with even kernels / F.pad
        self.stem = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, w, 3, 2, 0, bias=False),
                                  nn.BatchNorm2d(w), nn.Hardswish())
        self.blocks = nn.Sequential(InvertedResidual(w, w, 1, 1, nn.ReLU, se=True),
                                    InvertedResidual(w, 2 * w, 2, 3, nn.Hardswish, se=True),
                                    InvertedResidual(2 * w, 2 * w, 1, 3, nn.Hardswish, se=True))
        self.head = nn.Sequential(nn.Conv2d(2 * w, 6 * w, 1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(6 * w, 4 * w), nn.Hardswish(), nn.Dropout(0.2),
                                nn.Linear(4 * w, num_classes))

    def forward(self, x):
        return self.fc(self.head(self.blocks(self.stem(x))))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNetLike(nn.Module):
    def __init__(self, num_classes=10, w=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        self.layers = nn.Sequential(BasicBlock(w, w, 1), BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 4 * w, 2))
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class FPNLike(nn.Module):
    """Detection/segmentation-style head: LeakyReLU, F.interpolate (size from another tensor's
    shape, and scale_factor bilinear), PReLU, chunk + cat, flatten(2).transpose(1, 2).softmax."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, 2, 1)
        self.c2 = nn.Conv2d(8, 16, 3, 2, 1)
        self.lat = nn.Conv2d(16, 8, 1)
        self.head = nn.Conv2d(8, 4, 3, 1, 1)
        self.act = nn.LeakyReLU(0.1)
        self.prelu = nn.PReLU(8)

    def forward(self, x):
        a = self.act(self.c1(x))
        b = self.act(self.c2(a))
        up = F.interpolate(self.lat(b), size=a.shape[-2:], mode="nearest")
        up2 = F.interpolate(self.lat(b), scale_factor=2.0, mode="bilinear", align_corners=False)
        y = self.prelu(a + up + up2)
        s1, s2 = y.chunk(2, dim=1)
        return self.head(torch.cat([s2, s1], 1)).flatten(2).transpose(1, 2).softmax(-1)


def export_fpn(exporter, opset, seed=0):
    torch.manual_seed(seed)
    model = FPNLike().eval()
    x = torch.randn(2, 3, 32, 32)
    path = OUT / f"fpn_{exporter}_op{opset}.onnx"
    names = dict(input_names=["input"], output_names=["out"])
    if exporter == "torchscript":
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, **names,
                          dynamic_axes={"input": {0: "batch"}, "out": {0: "batch"}})
    else:
        b = torch.export.Dim("batch", min=1, max=64)
        prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=opset, **names, dynamic_shapes={"x": {0: b}})
        prog.save(str(path), external_data=False)
    return path


class TinyEncoder(nn.Module):
    def __init__(self, vocab=50, d=16, heads=2, ff=32, num_classes=3):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="gelu", batch_first=True)
        self.fc = nn.Linear(d, num_classes)

    def forward(self, ids, mask):
        h = self.layer(self.emb(ids), src_key_padding_mask=(mask == 0))
        return self.fc(h[:, 0])


def export_encoder(exporter, opset, seed=0, dynamic_seq=False):
    torch.manual_seed(seed)
    model = TinyEncoder().eval()
    ids = torch.randint(0, 50, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    path = OUT / f"encoder_{exporter}{'_dynseq' if dynamic_seq else ''}_op{opset}.onnx"
    names = dict(input_names=["ids", "mask"], output_names=["logits"])
    if exporter == "torchscript":
        torch.onnx.export(model, (ids, mask), str(path), dynamo=False, opset_version=opset, **names,
                          dynamic_axes={"ids": {0: "batch"}, "mask": {0: "batch"}, "logits": {0: "batch"}})
    else:
        b = torch.export.Dim("batch", min=1, max=64)
        dims = {0: b, 1: torch.export.Dim("seq", min=2, max=64)} if dynamic_seq else {0: b}
        prog = torch.onnx.export(model, (ids, mask), dynamo=True, opset_version=opset, **names,
                                 dynamic_shapes={"ids": dims, "mask": dims})
        prog.save(str(path), external_data=False)
    return path


def _randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(1.0 + 0.3 * torch.rand(m.num_features, generator=gen))
                m.weight.copy_(1.0 + 0.1 * torch.randn(m.num_features, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=gen))


def build(kind, seed):
    torch.manual_seed(seed)
    model = {"mbv2": MobileNetV2Like, "mbv3": MobileNetV3Like, "resnet": ResNetLike}[kind]()
    _randomize_bn(model, torch.Generator().manual_seed(seed + 100))
    return model.eval()


def export_torchscript(kind, opset, seed=0, fold=True):
    model = build(kind, seed)
    x = torch.randn(2, 3, 32, 32)
    path = OUT / f"{kind}_torchscript{'' if fold else '_nofold'}_op{opset}.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["input"],
                      do_constant_folding=fold,
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def export_dynamo(kind, opset, seed=0, optimize=True):
    model = build(kind, seed)
    x = torch.randn(2, 3, 32, 32)
    path = OUT / f"{kind}_dynamo{'' if optimize else '_noopt'}_op{opset}.onnx"
    batch = torch.export.Dim("batch", min=1, max=64)
    prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=opset, input_names=["input"], optimize=optimize,
                             output_names=["logits"], dynamic_shapes={"x": {0: batch}}, external_data=False)
    prog.save(str(path), external_data=False)
    return path


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    ok = True
    jobs = [(export_torchscript, "mbv2", 13), (export_torchscript, "mbv3", 17), (export_torchscript, "resnet", 15),
            (export_dynamo, "mbv2", 18), (export_dynamo, "resnet", 18), (export_dynamo, "mbv3", 20)]
    jobs = [(fn, kind, opset, {}) for fn, kind, opset in jobs]
    # raw exports: unfolded BatchNormalization and shape chains (TorchScript without constant
    # folding, opset 11 HardSwish spelled out), unoptimised dynamo graphs (Expand/CastLike chains)
    jobs += [(export_torchscript, "mbv2", 13, {"fold": False}), (export_torchscript, "mbv3", 11, {"fold": False}),
             (export_dynamo, "mbv3", 18, {"optimize": False})]
    jobs += [(export_fpn, "torchscript", 13, {}), (export_fpn, "dynamo", 18, {})]
    jobs += [(export_encoder, "torchscript", 17, {}), (export_encoder, "dynamo", 18, {}),
             (export_encoder, "dynamo", 18, {"dynamic_seq": True})]
    for fn, kind, opset, kw in jobs:
        try:
            p = fn(kind, opset, **kw)
            print(f"wrote {p.relative_to(OUT.parents[2])} ({p.stat().st_size / 1024:.0f} KiB)")
        except Exception as e:  # report and continue: one exporter failing must not hide the others
            ok = False
            print(f"FAILED {fn.__name__}({kind}, opset {opset}): {type(e).__name__}: {str(e).splitlines()[0][:300]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
