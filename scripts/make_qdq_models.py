"""Write onnxruntime-quantized variants of the demo model, for trying ``hwsim validate``.

Dev-only helper (the tests build the same models on the fly, in under a second each).
Uses ``onnxruntime.quantization.quantize_static`` with per-channel int8 weights, calibrated
on the packaged calibration digits, and writes the packaged test digits as an input file.

Usage::

    python scripts/make_qdq_models.py --out /tmp/qmodels
    hwsim validate /tmp/qmodels/digits_qdq_w8a8_u8.onnx --input /tmp/qmodels/test_x.npy --json /tmp/qmodels/r.json

Writes ``digits_qdq_w8a8_u8.onnx``, ``digits_qdq_w8a8_s8.onnx`` (QDQ, uint8 / int8 activations),
``digits_qop_w8a8_u8.onnx`` (QOperator), ``digits_qdq_w8a16.onnx`` (int16 activations, opset 21),
``digits_qdq_w4a8.onnx`` (int4 weights, opset 21) and ``test_x.npy``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hwsim.demo_data import demo_model_path, load_demo_data  # noqa: E402

VARIANTS = {
    "digits_qdq_w8a8_u8.onnx": (QuantFormat.QDQ, QuantType.QUInt8, QuantType.QInt8, 17),
    "digits_qdq_w8a8_s8.onnx": (QuantFormat.QDQ, QuantType.QInt8, QuantType.QInt8, 17),
    "digits_qop_w8a8_u8.onnx": (QuantFormat.QOperator, QuantType.QUInt8, QuantType.QInt8, 17),
    "digits_qdq_w8a16.onnx": (QuantFormat.QDQ, QuantType.QInt16, QuantType.QInt8, 21),
    "digits_qdq_w4a8.onnx": (QuantFormat.QDQ, QuantType.QUInt8, QuantType.QInt4, 21),
}


class _Reader(CalibrationDataReader):
    def __init__(self, x, batch=32):
        self._it = iter([{"input": x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self._it, None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    calib, test_x, _ = load_demo_data()
    with tempfile.TemporaryDirectory() as tmp:
        src21 = Path(tmp) / "digits_opset21.onnx"
        onnx.save(onnx.version_converter.convert_version(onnx.load(str(demo_model_path())), 21), str(src21))
        for name, (fmt, act, weight, opset) in VARIANTS.items():
            src = demo_model_path() if opset == 17 else src21
            quantize_static(str(src), str(args.out / name), _Reader(calib), quant_format=fmt, per_channel=True,
                            activation_type=act, weight_type=weight)
            print(f"wrote {args.out / name}")
    np.save(args.out / "test_x.npy", test_x)
    print(f"wrote {args.out / 'test_x.npy'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
