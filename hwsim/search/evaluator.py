"""The bridge between the search algorithm and a real model: :class:`ModelProblem`.

It implements the :class:`~hwsim.search.problem.SearchProblem` protocol for a float
:class:`~hwsim.graph.Graph` on a :class:`~hwsim.profile.HardwareProfile`:

* groups from :func:`hwsim.groups.build_groups`;
* calibration **once** (:func:`hwsim.quant.calibrate`), then per evaluation only
  :func:`hwsim.quant.quantize_graph` (cheap: per-bit-width parameters are cached);
* ``score(choice)``: the **integer** executor (:func:`hwsim.quant.run_int`) on the scoring
  data, either the SQNR (dB) of all outputs against the float model, or a user metric
  ``metric(outputs) -> float`` (higher is better; e.g. top-1 accuracy against labels);
* prefix cache: integer tensors of the all-highest run (and of the previous evaluation)
  whose value cannot change under the new config (:func:`hwsim.quant.reusable_values`,
  which compares per-tensor dependency keys) are passed as ``values=``, so the unchanged
  prefix of the graph is not recomputed. :attr:`cache_stats` counts nodes run vs skipped;
* ``cost(choice)``: :class:`hwsim.cost.CostModel` in the profile's metric (or the one
  given), precision conversions between neighbouring groups included.

Examples
--------
>>> from hwsim.demo_data import demo_model_path, load_demo_data
>>> from hwsim.onnx_import import load_model
>>> from hwsim.profile import shipped_profile
>>> calib, _, _ = load_demo_data()
>>> p = ModelProblem(load_model(demo_model_path()), shipped_profile("cpu_onnxruntime"), calib[:32])
>>> p.score((0,) * len(p.groups)) > p.score(p.uniform_choice("W4A8")[0])
True
"""
from __future__ import annotations

import hashlib
import math
import threading
from typing import Callable, Mapping

import numpy as np

from ..bits import BitPair
from ..errors import ConfigError, DataError
from ..graph import Graph
from ..groups import QuantizerGroups, build_groups
from .problem import Choice, GroupSpec

__all__ = ["ModelProblem", "sqnr_db", "top1_accuracy"]


def sqnr_db(reference: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray]) -> float:
    """SQNR in dB of ``test`` against ``reference`` over all outputs together (inf if identical)."""
    sig = noise = 0.0
    for k, r in reference.items():
        r = np.asarray(r, np.float64)
        t = np.asarray(test[k], np.float64)
        sig += float(np.sum(r * r))
        noise += float(np.sum((r - t) ** 2))
    if noise == 0.0:
        return math.inf
    if sig == 0.0:
        return -math.inf
    return 10.0 * math.log10(sig / noise)


def top1_accuracy(labels: np.ndarray, output: str | None = None) -> Callable[[Mapping[str, np.ndarray]], float]:
    """A user metric: top-1 accuracy (in %) of ``output`` (default: the first output) against ``labels``."""
    labels = np.asarray(labels).reshape(-1)

    def metric(outputs: Mapping[str, np.ndarray]) -> float:
        y = outputs[output] if output is not None else next(iter(outputs.values()))
        y = np.asarray(y).reshape(len(labels), -1)
        return float(np.mean(np.argmax(y, axis=1) == labels) * 100.0)

    metric.__name__ = "top1_accuracy"
    return metric


def _fingerprint(graph: Graph, profile, data: Mapping[str, np.ndarray], extra: str) -> str:
    h = hashlib.sha256()
    h.update(graph.name.encode())
    for n in graph.nodes:
        h.update(repr((n.name, n.op, n.inputs, n.outputs, sorted(map(str, n.attrs.items())))).encode())
    for k in sorted(graph.constants):
        h.update(k.encode())
        h.update(np.ascontiguousarray(graph.constants[k]).tobytes())
    h.update(repr(profile).encode())
    for k in sorted(data):
        h.update(k.encode())
        h.update(np.ascontiguousarray(data[k]).tobytes())
    h.update(extra.encode())
    return h.hexdigest()[:24]


class ModelProblem:
    """A search problem over a real model (see the module docstring).

    Parameters
    ----------
    graph : float graph (``hwsim.onnx_import.load_model``).
    profile : HardwareProfile.
    calib : calibration inputs (array for a single-input model, or name -> array).
    score_data : inputs the score is computed on (default: ``calib``).
    metric : user metric ``metric(outputs: dict) -> float`` (higher is better); None = SQNR (dB)
        of the integer outputs against the float outputs on ``score_data``.
    cost_metric : ``latency``, ``bops``, ``energy`` or ``memory`` (default: the profile's).
    observer : calibration observer (minmax, percentile, mse, entropy).
    prefix_cache : reuse unaffected integer tensors between evaluations.
    """

    def __init__(self, graph: Graph, profile, calib, *, score_data=None, metric: Callable | None = None,
                 cost_metric: str | None = None, observer: str = "minmax", prefix_cache: bool = True,
                 groups: QuantizerGroups | None = None):
        from ..cost import CostModel
        from ..float_exec import run_float
        from ..profile import MetricName
        from ..quant import calibrate

        self.graph = graph
        self.profile = profile
        self.calib = self._feeds(calib, "calibration data")
        self.data = self.calib if score_data is None else self._feeds(score_data, "scoring data")
        self.user_metric = metric
        self.score_name = "sqnr_db" if metric is None else getattr(metric, "__name__", "metric")
        self.combine = "noise" if metric is None else "additive"
        self.qgroups = groups if groups is not None else build_groups(graph, profile)
        self.groups = tuple(GroupSpec(g.name, g.candidates, g.first_node, {"ops": g.ops})
                            for g in self.qgroups)
        calib_outputs: dict = {}
        self.stats = calibrate(graph, self.calib, observer=observer, progress=False, outputs=calib_outputs)
        if self.data is self.calib and all(t in calib_outputs for t in graph.outputs):
            self.float_outputs = calib_outputs      # the calibration pass already ran the float model on it
        else:
            self.float_outputs = run_float(graph, self.data)
        self.reference_score = None if metric is None else float(metric(self.float_outputs))
        self.cost_model = CostModel(graph, profile)
        try:
            self.cost_metric = MetricName(cost_metric) if cost_metric else profile.metric.name
        except ValueError:
            raise ConfigError(f"cost metric must be one of {', '.join(m.value for m in MetricName)}, "
                              f"got {cost_metric!r}") from None
        self.cost_unit = {"latency": "s", "bops": "BOPs", "energy": "J", "memory": "bytes"}[self.cost_metric.value]
        if self.cost_metric.value == "energy" and not profile.cost_model.has_energy:
            raise ConfigError(f"profile '{profile.name}' has no energy data; choose another cost metric")
        self.prefix_cache = bool(prefix_cache)
        self.fingerprint = _fingerprint(graph, profile, self.data,
                                        f"{observer}|{self.score_name}|{self.cost_metric.value}|"
                                        f"{[(g.ops, tuple(map(str, g.candidates))) for g in self.qgroups]}|"
                                        f"{sorted((k, v.shape) for k, v in self.calib.items())}")
        self._lock = threading.Lock()
        self._base = None               # (qgraph, integer values) of the all-highest run
        self.cache_stats = {"evaluations": 0, "nodes_run": 0, "nodes_skipped": 0}
        self._neighbours = None

    # -- inputs -------------------------------------------------------------------------------
    def _feeds(self, data, what: str) -> dict[str, np.ndarray]:
        names = self.graph.input_names
        if isinstance(data, Mapping):
            feeds = {k: np.asarray(v) for k, v in data.items()}
        else:
            if len(names) != 1:
                raise DataError(f"{what}: the model has inputs {list(names)}; pass a dict keyed by input name")
            feeds = {names[0]: np.asarray(data)}
        for k, v in feeds.items():
            if v.size == 0:
                raise DataError(f"{what}: input '{k}' is empty")
            if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
                raise DataError(f"{what}: input '{k}' has NaN/Inf values")
        return feeds

    # -- configs --------------------------------------------------------------------------------
    def config(self, choice: Choice) -> dict[str, BitPair]:
        """The precision config (node -> pair) of a choice."""
        return self.qgroups.config_for(choice)

    def describe(self, choice: Choice) -> dict[str, str]:
        return {k: str(v) for k, v in self.config(choice).items()}

    def uniform_choice(self, pair) -> tuple[Choice, bool]:
        return self.qgroups.uniform_choice(pair)

    def quantized(self, choice: Choice):
        from ..quant import quantize_graph
        return quantize_graph(self.graph, self.profile, self.stats, self.config(choice))

    # -- protocol --------------------------------------------------------------------------------
    def score(self, choice: Choice) -> float:
        outputs = self.run(choice)
        if self.user_metric is not None:
            return float(self.user_metric(outputs))
        return sqnr_db(self.float_outputs, outputs)

    def cost(self, choice: Choice) -> float:
        from ..cost import metric_value
        return metric_value(self.cost_model.evaluate(self.config(choice)), self.cost_metric.value)

    def cost_report(self, choice: Choice):
        return self.cost_model.evaluate(self.config(choice))

    def run(self, choice: Choice) -> dict[str, np.ndarray]:
        """Integer outputs (dequantized) of ``choice`` on the scoring data, using the prefix cache."""
        from ..quant import run_int
        from ..quant.int_exec import reusable_values

        qg = self.quantized(choice)
        n_nodes = len(self.graph.nodes)
        if not self.prefix_cache:
            outs, _ = run_int(qg, self.data)
            with self._lock:
                self.cache_stats["evaluations"] += 1
                self.cache_stats["nodes_run"] += n_nodes
            return {k: outs[k] for k in self.graph.outputs}
        base = self._base_run()
        values = reusable_values(qg, base[0], base[1])
        skipped = sum(1 for n in self.graph.nodes if all((not t) or t in values for t in n.outputs))
        outs, _ = run_int(qg, self.data, values=values)
        with self._lock:
            self.cache_stats["evaluations"] += 1
            self.cache_stats["nodes_run"] += n_nodes - skipped
            self.cache_stats["nodes_skipped"] += skipped
        return {k: outs[k] for k in self.graph.outputs}

    def release_cache(self) -> None:
        """Drop the cached integer tensors (they are rebuilt on the next evaluation)."""
        with self._lock:
            self._base = None

    def _base_run(self):
        with self._lock:
            if self._base is None:
                from ..quant import run_int
                qg = self.quantized((0,) * len(self.groups))
                values: dict = {}
                run_int(qg, self.data, values=values)
                for v in values.values():
                    if isinstance(v, np.ndarray):
                        v.setflags(write=False)
                self._base = (qg, values)
            return self._base

    # -- locality of the cost (phase-2 speed) ------------------------------------------------------
    def neighbours(self) -> list[frozenset] | None:
        """For each group, the groups whose candidate can change the cost saved by lowering it.

        Cost terms are per node (its pair and the widths of the tensors it reads and writes)
        and per precision conversion (a tensor between two nodes): both only involve groups
        joined by a producer -> consumer edge. ``memory`` (peak activation bytes over the
        schedule) is not local: None.
        """
        if self.cost_metric.value == "memory":
            return None
        if self._neighbours is None:
            g = self.graph
            owner: dict[str, int] = {}
            for grp in self.qgroups:
                for op in grp.ops:
                    owner[op] = grp.index
                for t in grp.activations:
                    for c in g.consumers(t):
                        owner.setdefault(c.name, grp.index)
            nb = [set() for _ in self.qgroups]
            for n in g.nodes:
                a = owner.get(n.name)
                for t in n.outputs:
                    for c in g.consumers(t) if t else ():
                        b = owner.get(c.name)
                        if a is not None and b is not None and a != b:
                            nb[a].add(b)
                            nb[b].add(a)
            # two hops: a node's cost depends on its input and output widths, which belong to
            # the groups on either side of it
            two = [set(s) for s in nb]
            for i, s in enumerate(nb):
                for j in s:
                    two[i] |= nb[j]
                two[i].discard(i)
            self._neighbours = [frozenset(s) for s in two]
        return self._neighbours
