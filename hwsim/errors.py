"""Named exceptions. Every error a user can cause is a :class:`HwsimError`.

The CLI prints ``str(error)`` as one line and exits with status 2; it never shows a
traceback for these. Messages say *where* (file, key path, node name) and *what is
allowed*.

Examples
--------
>>> from hwsim.errors import ProfileError
>>> str(ProfileError("cpu.yaml", "arithmetic.overflow", "got 'clip'; allowed: wrap, saturate"))
"cpu.yaml: arithmetic.overflow: got 'clip'; allowed: wrap, saturate"
"""
from __future__ import annotations

__all__ = [
    "HwsimError",
    "ProfileError",
    "ModelError",
    "UnsupportedOpError",
    "DataError",
    "ConfigError",
    "GroupError",
    "KernelError",
]


class HwsimError(Exception):
    """Base class: an error caused by the user's input, reported in one line."""


class ProfileError(HwsimError):
    """A hardware profile is malformed: names the file, the key path and what is allowed."""

    def __init__(self, file: str, key_path: str, message: str):
        self.file = str(file)
        self.key_path = key_path
        self.detail = message
        super().__init__(f"{self.file}: {key_path}: {message}" if key_path else f"{self.file}: {message}")

    def __reduce__(self):  # picklable (errors cross process boundaries in hwsim.parallel)
        return type(self), (self.file, self.key_path, self.detail)


class ModelError(HwsimError):
    """A model cannot be read or is inconsistent (missing file, bad graph, bad shapes)."""


class UnsupportedOpError(ModelError):
    """A node's op type (or attribute combination) is not supported; names the node and the supported list."""

    def __init__(self, node_name: str, op_type: str, supported, reason: str = ""):
        self.node_name = node_name
        self.op_type = op_type
        self.supported = tuple(sorted(supported))
        why = f" ({reason})" if reason else ""
        self.reason = reason
        super().__init__(
            f"node '{node_name}': op {op_type} is not supported{why}; supported ops: {', '.join(self.supported)}"
        )

    def __reduce__(self):
        return type(self), (self.node_name, self.op_type, self.supported, self.reason)


class DataError(HwsimError):
    """Input or calibration data is unusable (NaN/Inf, wrong shape, dtype or name, empty)."""


class ConfigError(HwsimError):
    """A per-layer precision config or a command-line choice is invalid."""


class GroupError(HwsimError):
    """Quantizer groups cannot be formed (e.g. no bit-width pair is allowed by every member)."""


class KernelError(HwsimError):
    """A kernel was called with parameters it cannot honour (e.g. unsupported pair or scheme)."""
