"""The demo model and digits data that ship inside the package (used by ``hwsim demo``).

The model is a small CNN trained on scikit-learn's digits (a copy of the UCI optical
recognition of handwritten digits test set, CC BY 4.0; see ``hwsim/data/README.md``)
by ``scripts/train_digits.py``.

Examples
--------
>>> from hwsim.demo_data import demo_model_path, load_demo_data
>>> calib, test_x, test_y = load_demo_data()
>>> calib.shape, test_x.shape[1:], test_y.dtype.kind
((256, 1, 8, 8), (1, 8, 8), 'i')
>>> demo_model_path().name
'digits_cnn.onnx'
"""
from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["DEMO_INPUT_NAME", "DEMO_OUTPUT_NAME", "demo_model_path", "load_demo_data", "demo_model_bytes",
           "demo_accuracy", "demo_qdq_model"]

DEMO_INPUT_NAME = "input"
DEMO_OUTPUT_NAME = "logits"
_MODEL = "digits_cnn.onnx"
_DATA = "digits.npz"


def _resource(name: str):
    res = resources.files("hwsim").joinpath("data", name)
    if not res.is_file():
        raise DataError(f"packaged demo file hwsim/data/{name} is missing (broken installation?)")
    return res


def demo_model_path() -> Path:
    """Path of the packaged demo ONNX model ``digits_cnn.onnx``.

    The package is installed as plain files (wheel or editable), so the resource is a real
    file on disk and its path can be handed to any loader.
    """
    res = _resource(_MODEL)
    return Path(str(res))


def demo_model_bytes() -> bytes:
    """The demo ONNX model as bytes (works even from a zipped installation)."""
    return _resource(_MODEL).read_bytes()


def load_demo_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load the packaged digits: ``(calib, test_x, test_y)``.

    Returns
    -------
    calib : float32 [256, 1, 8, 8], calibration images (from the training split).
    test_x : float32 [540, 1, 8, 8], held-out images, values in [0, 1].
    test_y : int64 [540], their labels 0..9.
    """
    raw = _resource(_DATA).read_bytes()
    with np.load(io.BytesIO(raw)) as z:
        return (np.ascontiguousarray(z["calib"], dtype=np.float32),
                np.ascontiguousarray(z["test_x"], dtype=np.float32),
                np.ascontiguousarray(z["test_y"], dtype=np.int64))


def demo_accuracy(pairs=("W8A8", "W4A8", "W8A16"), profile="cpu_onnxruntime", observer: str = "minmax",
                  test_x: np.ndarray | None = None, test_y: np.ndarray | None = None) -> list[dict]:
    """Float and integer accuracy and output SQNR of the demo model at uniform bit-widths.

    Calibrates once on the packaged calibration images, then for each pair quantizes the
    whole model (:func:`hwsim.quant.quantize_graph`) and runs it with the integer executor
    (:func:`hwsim.quant.run_int`) on the held-out digits.

    Parameters
    ----------
    pairs : bit-width pairs such as ``"W8A8"``.
    profile : shipped profile name or a HardwareProfile.
    observer : calibration observer (minmax, percentile, mse, entropy).
    test_x, test_y : evaluation data (default: the packaged 540 test digits).

    Returns
    -------
    list of dict
        One row per configuration, float first: ``{"bits", "accuracy", "correct", "total",
        "sqnr_db"}`` (``sqnr_db`` of the logits against float; None for the float row).
    """
    from hwsim.float_exec import run_float
    from hwsim.onnx_import import load_model
    from hwsim.profile import shipped_profile
    from hwsim.quant import calibrate, quantize_graph, run_int
    from hwsim.quant.compare import sqnr_db

    calib, tx, ty = load_demo_data()
    if test_x is not None:
        tx, ty = np.asarray(test_x, np.float32), np.asarray(test_y)
    prof = shipped_profile(profile) if isinstance(profile, str) else profile
    graph = load_model(demo_model_path())
    ref = run_float(graph, {DEMO_INPUT_NAME: tx})[DEMO_OUTPUT_NAME]
    rows = [{"bits": "float", "accuracy": float((ref.argmax(1) == ty).mean()),
             "correct": int((ref.argmax(1) == ty).sum()), "total": int(len(ty)), "sqnr_db": None}]
    stats = calibrate(graph, {DEMO_INPUT_NAME: calib}, observer=observer, progress=False)
    for pair in pairs:
        qg = quantize_graph(graph, prof, stats, str(pair))
        out = run_int(qg, {DEMO_INPUT_NAME: tx})[0][DEMO_OUTPUT_NAME]
        pred = out.argmax(1)
        rows.append({"bits": str(pair), "accuracy": float((pred == ty).mean()), "correct": int((pred == ty).sum()),
                     "total": int(len(ty)), "sqnr_db": float(sqnr_db(ref, out))})
    return rows


_ACT = {"uint8": "QUInt8", "int8": "QInt8", "int16": "QInt16", "uint16": "QUInt16"}
_WEIGHT = {"int8": "QInt8", "int4": "QInt4"}


def demo_qdq_model(activation: str = "uint8", weight: str = "int8", fmt: str = "qdq",
                   n_calib: int = 64) -> bytes:
    """The demo model quantized by onnxruntime's own quantizer (``quantize_static``), as bytes.

    A third-party quantized model for ``hwsim validate`` without any download: per-channel
    weights, calibrated on the first ``n_calib`` packaged calibration digits.
    int16/uint16 activations and int4 weights need opset 21; the model is converted first.

    Parameters
    ----------
    activation : "uint8", "int8", "int16" or "uint16".
    weight : "int8" or "int4".
    fmt : "qdq" (QuantizeLinear/DequantizeLinear pairs) or "qoperator" (QLinearConv ...).
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if activation not in _ACT or weight not in _WEIGHT or fmt not in ("qdq", "qoperator"):
        from .errors import ConfigError
        raise ConfigError(f"demo_qdq_model: activation must be one of {sorted(_ACT)}, weight one of "
                          f"{sorted(_WEIGHT)}, fmt qdq or qoperator; got {activation!r}, {weight!r}, {fmt!r}")
    calib = load_demo_data()[0][:n_calib]

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{DEMO_INPUT_NAME: calib[i:i + 32]} for i in range(0, len(calib), 32)])

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "float.onnx"
        m = onnx.load_from_string(demo_model_bytes())
        if activation in ("int16", "uint16") or weight == "int4":
            m = onnx.version_converter.convert_version(m, 21)
        onnx.save(m, str(src))
        dst = Path(tmp) / "q.onnx"
        quantize_static(str(src), str(dst), _Reader(),
                        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                        per_channel=True, activation_type=getattr(QuantType, _ACT[activation]),
                        weight_type=getattr(QuantType, _WEIGHT[weight]))
        return dst.read_bytes()
