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

__all__ = ["DEMO_INPUT_NAME", "DEMO_OUTPUT_NAME", "demo_model_path", "load_demo_data", "demo_model_bytes"]

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
