"""``hwsim validate``: bit-exact check of hwsim's integer execution of a quantized ONNX model
against onnxruntime."""
from __future__ import annotations

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = """\
Run a third-party quantized ONNX model (QDQ as written by onnxruntime.quantization, or
QOperator: QLinearConv, QLinearMatMul, QGemm, QLinearAdd, ...) with its own scales and zero
points in hwsim's integer executor and in onnxruntime, and compare every output and every
integer intermediate tensor.

onnxruntime runs with session.qdqisint8allowed=1 so that int8-activation QDQ groups use its
integer kernels on x86. Tolerance: 0 LSB where onnxruntime's arithmetic is integer; +-1 LSB
per node (compared in isolation, fed onnxruntime's own inputs) where onnxruntime runs a float
op between DequantizeLinear and QuantizeLinear (int16 activations, int4 weights).

Exit status: 0 within tolerance, 1 outside it, 2 bad input.

example:
  hwsim validate model_qdq.onnx --input x.npz --against onnxruntime --json report.json
"""


def add_arguments(p) -> None:
    p.add_argument("model", metavar="QMODEL", help="quantized ONNX model (QDQ or QOperator)")
    p.add_argument("--input", "-i", required=True, metavar="X",
                   help="input data: .npy (single-input model) or .npz keyed by input name")
    p.add_argument("--against", default="onnxruntime", choices=["onnxruntime"],
                   help="reference runtime (default: onnxruntime)")
    p.add_argument("--profile", metavar="P.yaml",
                   help="optional hardware profile; its requantization must be onnxruntime's")
    p.add_argument("--json", metavar="OUT", help="write the machine-readable report here (atomic write)")
    p.add_argument("--no-int8-kernels", action="store_true",
                   help="do not set session.qdqisint8allowed=1 (onnxruntime then runs int8 QDQ groups in float)")
    p.add_argument("--nodes", action="store_true", help="also print the per-node comparison table")


def run(args) -> int:
    from hwsim.io import atomic_write_json, load_array_file
    from hwsim.quant.qdq_import import _load
    from hwsim.validate import validate

    proto = _load(args.model)
    init = {t.name for t in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in init]
    feeds = load_array_file(args.input, names)
    profile = None
    if args.profile:
        from hwsim.profile import load_profile
        profile = load_profile(args.profile)
    rep = validate(args.model, feeds, against=args.against, profile=profile,
                   int8_kernels=not args.no_int8_kernels)
    if args.nodes and rep.nodes:
        w = max(len(e["node"]) for e in rep.nodes)
        print(f"{'node':<{w}}  {'op':<24}  {'mismatches':>10}  {'max LSB':>7}  {'isolated':>8}  {'iso LSB':>7}  ort")
        for e in rep.nodes:
            iso_m = "-" if e["isolated_mismatches"] is None else e["isolated_mismatches"]
            iso_l = "-" if e["isolated_max_abs_lsb"] is None else f"{e['isolated_max_abs_lsb']:g}"
            print(f"{e['node']:<{w}}  {e['op']:<24}  {e['mismatches']:>10}  {e['max_abs_lsb']:>7g}  "
                  f"{iso_m:>8}  {iso_l:>7}  {'float' if e['ort_float'] else 'int'}")
    for line in rep.summary_lines():
        print(line)
    if args.json:
        atomic_write_json(args.json, rep.to_dict())
    return 0 if rep.within_tolerance else 1
