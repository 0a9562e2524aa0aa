"""Calibration: one float pass over the data, recording per-tensor statistics.

:func:`calibrate` runs the float model over the calibration batches once and keeps, for
every float tensor (graph inputs and node outputs), a :class:`~hwsim.quant.observers.TensorStats`
(min, max, histogram). Observers turn those into ranges for any bit-width later, so the
mixed-precision search never re-calibrates.

Examples
--------
>>> import numpy as np
>>> from hwsim.graph import Graph, Node, TensorInfo
>>> from hwsim.quant.calibrate import calibrate
>>> g = Graph("g", (TensorInfo("x", (None, 4)),), ("y",), (Node("r", "Relu", ("x",), ("y",)),), {},
...           shapes={"x": (1, 4), "y": (1, 4)})
>>> stats = calibrate(g, {"x": np.linspace(-1, 1, 40, dtype=np.float32).reshape(10, 4)}, progress=False)
>>> stats.num_samples, stats["y"].min, stats["y"].max
(10, 0.0, 1.0)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np

from hwsim.errors import DataError
from hwsim.float_exec import prepare_feeds
from hwsim.graph import Graph

from .observers import DEFAULT_PERCENTILE, OBSERVERS, TensorStats, observe_range

__all__ = ["CalibrationStats", "calibrate", "check_feeds", "iter_batches", "float_dispatch"]


def float_dispatch() -> Mapping:
    """The float op registry (``hwsim.ops.FLOAT_OPS``)."""
    from hwsim.ops import FLOAT_OPS
    return FLOAT_OPS


@dataclass(eq=False)
class CalibrationStats:
    """Per-tensor statistics of one calibration run plus the default observer.

    Use ``stats[tensor]`` for the raw :class:`TensorStats` and :meth:`range` for an
    observer's range at a given format.
    """

    tensors: dict[str, TensorStats]
    observer: str = "minmax"
    num_samples: int = 0
    num_batches: int = 0
    graph_name: str = ""
    percentile: float = DEFAULT_PERCENTILE
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.observer not in OBSERVERS:
            from hwsim.errors import ConfigError
            raise ConfigError(f"calibrator must be one of {', '.join(OBSERVERS)}, got {self.observer!r}")

    def __getstate__(self):
        # the per-(graph, profile) Quantizer caches are rebuilt on demand: keep pickles small
        d = dict(self.__dict__)
        d["_cache"] = {}
        return d

    def __getitem__(self, tensor: str) -> TensorStats:
        return self.tensors[tensor]

    def __contains__(self, tensor: str) -> bool:
        return tensor in self.tensors

    def range(self, tensor: str, *, bits: int, signed: bool, symmetric: bool,
              observer: str | None = None) -> tuple[float, float]:
        """The observer's real range for ``tensor`` quantized to ``bits`` (cached)."""
        return observe_range(self.tensors[tensor], observer or self.observer, bits=bits, signed=signed,
                             symmetric=symmetric, percentile=self.percentile)

    def with_observer(self, observer: str) -> "CalibrationStats":
        """The same statistics with another default observer (shares the histograms)."""
        return CalibrationStats(self.tensors, observer, self.num_samples, self.num_batches, self.graph_name,
                                self.percentile)

    # -- persistence -----------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write to an ``.npz`` atomically (loadable with :meth:`load`)."""
        from hwsim.io import atomic_write_npz
        arrays: dict[str, np.ndarray] = {}
        names = list(self.tensors)
        for i, name in enumerate(names):
            arrays.update(self.tensors[name].to_arrays(f"t{i}"))
        arrays["__names__"] = np.array(names, dtype=np.str_)
        arrays["__meta__"] = np.array([self.observer, str(self.num_samples), str(self.num_batches),
                                       self.graph_name, repr(self.percentile)], dtype=np.str_)
        return atomic_write_npz(path, arrays)

    @classmethod
    def load(cls, path) -> "CalibrationStats":
        try:
            with np.load(path, allow_pickle=False) as z:
                names = z["__names__"].tolist()
                obs, ns, nb, gname, pct = z["__meta__"].tolist()
                tensors = {n: TensorStats.from_arrays(z, f"t{i}") for i, n in enumerate(names)}
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"{path}: not a calibration-statistics file ({e})") from None
        return cls(tensors, obs, int(ns), int(nb), gname, float(pct))


# -- input checking --------------------------------------------------------------------------

check_feeds = prepare_feeds
"""Validate one batch of inputs (:func:`hwsim.float_exec.prepare_feeds`)."""


def iter_batches(graph: Graph, data, batch_size: int = 32) -> tuple[int, Iterator[dict]]:
    """Normalise calibration data to (number of batches, iterator of feed dicts).

    ``data`` is an array (single-input model), a mapping input name -> array with the
    samples along axis 0, a path to an ``.npy`` / ``.npz`` file, or a list of feed dicts.
    """
    from hwsim.io import load_array_file
    if isinstance(data, (str, Path)):
        data = load_array_file(data, graph.input_names)
    if isinstance(data, np.ndarray):
        if len(graph.input_names) != 1:
            raise DataError(f"calibration data: one array given but the model has inputs {list(graph.input_names)}")
        data = {graph.input_names[0]: data}
    if isinstance(data, Mapping):
        arrays = {k: np.asarray(v) for k, v in data.items()}
        ns = {k: (v.shape[0] if v.ndim else 0) for k, v in arrays.items()}
        if len(set(ns.values())) > 1:
            raise DataError(f"calibration data: inputs have different sample counts {ns}")
        n = next(iter(ns.values()), 0)
        if n == 0:
            raise DataError("calibration data is empty (0 samples)")
        bs = max(1, int(batch_size))
        nb = -(-n // bs)
        return nb, ({k: v[i * bs:(i + 1) * bs] for k, v in arrays.items()} for i in range(nb))
    if isinstance(data, Iterable):
        batches = list(data)
        if not batches:
            raise DataError("calibration data is empty (no batches)")
        return len(batches), iter(batches)
    raise DataError(f"calibration data: unsupported type {type(data).__name__}")


def calibrate(graph: Graph, data, observer: str = "minmax", *, batch_size: int = 32,
              percentile: float = DEFAULT_PERCENTILE, progress: bool | None = None,
              outputs: dict | None = None) -> CalibrationStats:
    """Run the float model over ``data`` once and record statistics of every float tensor.

    Parameters
    ----------
    graph : the float model.
    data : calibration inputs (see :func:`iter_batches`).
    observer : default range rule, one of ``minmax``, ``percentile``, ``mse``, ``entropy``
        (any other can still be asked for later: the histograms are kept).
    batch_size : samples per float run when ``data`` holds whole arrays.
    percentile : the percentile used by the ``percentile`` observer.
    progress : show a tqdm bar (None: only when there are several batches and stderr is a tty).
    outputs : if a dict is given, it receives the float model's graph outputs on ``data``
        (batches joined along the batch axis; an output without one is left out), so a caller
        that also needs the float reference on the calibration data need not run it again.

    Raises
    ------
    DataError
        Empty data, NaN/Inf, wrong input names, shapes or dtypes (one line, names the batch).
    """
    if observer not in OBSERVERS:
        from hwsim.errors import ConfigError
        raise ConfigError(f"calibrator must be one of {', '.join(OBSERVERS)}, got {observer!r}")
    from hwsim.execute import run_graph
    from tqdm.auto import tqdm

    dispatch = float_dispatch()
    nb, batches = iter_batches(graph, data, batch_size)
    tensors: dict[str, TensorStats] = {}

    def observe(name, arr):
        if isinstance(arr, np.ndarray) and arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)):
                raise DataError(f"calibration: tensor '{name}' has NaN/Inf values in the float run")
            st = tensors.get(name)
            if st is None:
                st = tensors[name] = TensorStats()
            st.update(arr)

    def after(node, outs):
        for t, v in zip(node.outputs, outs):
            if t:
                observe(t, v)

    n_samples = 0
    sizes: list[int] = []
    collected: dict[str, list] = {}
    bar = tqdm(total=nb, desc="calibrating", unit="batch", leave=False,
               disable=(nb < 2) if progress is None else not progress)
    try:
        for i, batch in enumerate(batches):
            feeds = check_feeds(graph, batch, source=f"calibration batch {i}")
            for k, v in feeds.items():
                observe(k, v)
            outs = run_graph(graph, feeds, dispatch, None, after_node=after)
            for t, v in outs.items():
                if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.all(np.isfinite(v)):
                    raise DataError(f"calibration batch {i}: the float model produced NaN/Inf in output '{t}'")
                if outputs is not None and t in graph.outputs:
                    collected.setdefault(t, []).append(v)
            first = feeds[graph.input_names[0]]
            sizes.append(int(first.shape[0]) if first.ndim else 1)
            n_samples += sizes[-1]
            bar.update(1)
    finally:
        bar.close()
    if n_samples == 0:
        raise DataError("calibration data is empty (0 samples)")
    if outputs is not None:
        for t, parts in collected.items():
            # batches join along axis 0 only where axis 0 is the batch axis of every part
            if all(np.ndim(a) and np.shape(a)[0] == n for a, n in zip(parts, sizes)):
                outputs[t] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    return CalibrationStats(tensors, observer, n_samples, nb, graph.name, percentile)
