"""File output that never leaves a half-written result, and input loading with clear errors.

Every result file is written to a temporary file in the same folder and renamed over
the target (atomic on POSIX), so a killed process leaves either the old file or the
new one.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import DataError

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_write_npz",
           "load_array_file", "to_jsonable"]


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename); creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert NumPy scalars/arrays, tuples, dataclass-like objects with ``to_dict`` to JSON types."""
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        obj = float(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_json(path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def atomic_write_npz(path, arrays: Mapping[str, np.ndarray]) -> Path:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write_bytes(path, buf.getvalue())


def load_array_file(path, input_names=None) -> dict[str, np.ndarray]:
    """Load ``.npy`` (one array, for a single-input model) or ``.npz`` (keyed by input name).

    ``input_names`` are the model's inputs; a ``.npy`` file maps to the only input. Raises
    :class:`DataError` with a one-line cause for a missing file, a bad format, NaN/Inf or
    names that do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy raises several types for corrupt files
        raise DataError(f"{path}: cannot read as .npy/.npz ({type(e).__name__}: {e})") from None
    if isinstance(loaded, np.ndarray):
        if input_names is not None and len(input_names) != 1:
            raise DataError(f"{path}: a .npy file feeds a single-input model, but the model has inputs "
                            f"{', '.join(input_names)}; use an .npz keyed by input name")
        name = input_names[0] if input_names else "input"
        arrays = {name: loaded}
    else:
        with loaded:
            arrays = {k: loaded[k] for k in loaded.files}
        if input_names is not None:
            missing = [n for n in input_names if n not in arrays]
            extra = [n for n in arrays if n not in input_names]
            if missing and len(arrays) == 1 and len(input_names) == 1:
                arrays = {input_names[0]: next(iter(arrays.values()))}
            elif missing or extra:
                raise DataError(f"{path}: arrays {sorted(arrays)} do not match the model inputs "
                                f"{list(input_names)} (missing: {missing or 'none'}, unexpected: {extra or 'none'})")
    for k, a in arrays.items():
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
            raise DataError(f"{path}: array '{k}' has {bad} NaN/Inf value(s)")
    return arrays
