"""Quantizer groups: constraints derived from op properties, candidates, errors, CLI."""
from __future__ import annotations

import json

import networkx as nx
import numpy as np
import onnx
import pytest

from hwsim.bits import BitPair
from hwsim.errors import GroupError
from hwsim.graph import Graph, Node, TensorInfo
from hwsim.groups import build_groups, precision_key
from hwsim.onnx_import import load_model
from hwsim.opset import OPS
from hwsim.profile import shipped_profile
from hwsim.quant.config import config_nodes
from tests.onnx_models import build_mobilenet_like

W4A8, W8A8, W8A16 = BitPair(4, 8), BitPair(8, 8), BitPair(8, 16)


class FakeProfile:
    def __init__(self, cands=(W4A8, W8A8, W8A16), overrides=None, shared=()):
        self.cands, self.overrides, self.shared = tuple(cands), dict(overrides or {}), set(shared)
        self.name = "fake"

    def candidates_for(self, op):
        return self.overrides.get(op, self.cands)

    def shares_scale(self, op):
        return op in self.shared


def _chain(op, extra_const=True):
    """conv1 -> op -> conv2 (the op's extra inputs are constants)."""
    w = np.ones((2, 2, 1, 1), np.float32)
    consts = {"w1": w, "w2": w.copy(), "k": np.array([1], np.int64)}
    ins = ("t1", "k") if extra_const else ("t1",)
    nodes = (Node("conv1", "Conv", ("x", "w1"), ("t1",)), Node("mid", op, ins, ("t2",)),
             Node("conv2", "Conv", ("t2", "w2"), ("y",)))
    return Graph("chain", (TensorInfo("x", (1, 2, 4, 4)),), ("y",), nodes, consts)


@pytest.mark.parametrize("op", sorted(o for o, s in OPS.items() if s.passthrough))
def test_every_passthrough_op_joins_its_input_and_output(op):
    groups = build_groups(_chain(op), FakeProfile())
    comp = groups.group_of("conv2").members
    assert "act:t1" in comp and "act:t2" in comp and "w:w2" in comp
    assert groups.nx_graph.edges["act:t1", "act:t2"]["reason"] == "pass-through"
    assert len(groups) == 2


@pytest.mark.parametrize("op", ["Sigmoid", "HardSwish", "Tanh"])
def test_compute_op_separates_groups(op):
    groups = build_groups(_chain(op, extra_const=False), FakeProfile())
    assert len(groups) == 3
    assert groups.group_of("mid").members == ("act:t1",)
    assert groups.group_of("mid").has_weights is False
    # activation-only group: one pair per activation width (W4A8 == W8A8 for it)
    assert groups.group_of("mid").candidates == (W8A16, W8A8)


def _mobilenet():
    return load_model(build_mobilenet_like())


def test_mobilenet_groups_cover_config_nodes_and_respect_constraints():
    g = _mobilenet()
    prof = shipped_profile("cpu_onnxruntime")
    groups = build_groups(g, prof)
    ops = [op for grp in groups for op in grp.ops]
    assert sorted(ops) == sorted(config_nodes(g)) and len(ops) == len(set(ops))
    assert [grp.index for grp in groups] == list(range(len(groups)))
    # each group is one connected component of the quantizer graph
    comps = {frozenset(c) for c in nx.connected_components(groups.nx_graph)}
    for grp in groups:
        assert frozenset(grp.members) in comps
        assert list(grp.candidates) == sorted(grp.candidates, key=precision_key, reverse=True)
    # every consumer of a tensor is in the tensor's group; a node's weight is with its input
    for node in g.nodes:
        if node.name in set(ops):
            grp = groups.group_of(node.name)
            for t in node.inputs:
                if t and not g.is_constant(t):
                    assert f"act:{t}" in grp.members
            if node.op == "Conv":
                assert f"w:{node.inputs[1]}" in grp.members
    # the residual Add joins its two inputs (one pair per node)
    add = next(n for n in g.nodes if n.op == "Add")
    assert groups.nx_graph.edges[f"act:{add.inputs[0]}", f"act:{add.inputs[1]}"]["reason"] == "node-inputs"
    # first_node: every node before it is unaffected by the group
    index = {n.name: i for i, n in enumerate(g.nodes)}
    for grp in groups:
        assert grp.first_node <= min(index[o] for o in grp.ops)


def test_config_round_trip_and_uniform_choice():
    g = _mobilenet()
    prof = shipped_profile("cpu_onnxruntime")
    groups = build_groups(g, prof)
    choice = tuple(i % len(grp.candidates) for i, grp in enumerate(groups))
    cfg = groups.config_for(choice)
    assert list(cfg) == list(config_nodes(g))
    assert groups.choice_for_config(cfg) == choice
    ch, exact = groups.uniform_choice("W4A8")
    assert exact
    for grp, i in zip(groups, ch):
        assert grp.candidates[i] == (W4A8 if grp.has_weights else W8A8)
    ch, exact = groups.uniform_choice("W8A16")
    assert exact and set(ch) == {0}


def test_shared_scale_concat_joins_output():
    w = np.ones((2, 2, 1, 1), np.float32)
    nodes = (Node("c1", "Conv", ("x", "w1"), ("a",)), Node("c2", "Conv", ("x", "w2"), ("b",)),
             Node("cat", "Concat", ("a", "b"), ("c",), {"axis": 1}), Node("c3", "Conv", ("c", "w3"), ("y",)))
    g = Graph("cat", (TensorInfo("x", (1, 2, 4, 4)),), ("y",), nodes, {"w1": w, "w2": w, "w3": np.ones((2, 4, 1, 1), np.float32)})
    shared = build_groups(g, FakeProfile(shared={"Concat"}))
    assert shared.group_of("cat") is shared.group_of("c3")
    assert shared.nx_graph.edges["act:a", "act:b"]["reason"] == "shared-scale"
    plain = build_groups(g, FakeProfile())
    assert plain.group_of("cat") is not plain.group_of("c3")
    assert plain.nx_graph.edges["act:a", "act:b"]["reason"] == "node-inputs"


def test_empty_intersection_is_a_group_error_naming_members_and_pairs():
    g = _mobilenet()
    prof = FakeProfile(overrides={"Add": (W8A16,), "Conv": (W4A8, W8A8)})
    with pytest.raises(GroupError) as e:
        build_groups(g, prof)
    msg = str(e.value)
    assert "no bit-width pair" in msg and "(Add): W8A16" in msg and "(Conv): W4A8, W8A8" in msg
    assert "members act:" in msg and "\n" not in msg


def test_overrides_narrow_candidates():
    g = _mobilenet()
    groups = build_groups(g, FakeProfile(overrides={"Gemm": (W8A8, W8A16)}))
    gemm = next(n.name for n in g.nodes if n.op == "Gemm")
    assert groups.group_of(gemm).candidates == (W8A16, W8A8)


def test_cli_groups_lists_and_writes_graphml(tmp_path, capsys):
    from hwsim.cli import main
    mp = tmp_path / "m.onnx"
    onnx.save(build_mobilenet_like(), mp)
    rc = main(["groups", str(mp), "--profile", "cpu_onnxruntime", "--graphml", str(tmp_path / "g.graphml"),
               "--json", str(tmp_path / "g.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "groups (profile cpu_onnxruntime)" in out and "W8A16 > W8A8 > W4A8" in out
    gml = nx.read_graphml(tmp_path / "g.graphml")
    data = json.loads((tmp_path / "g.json").read_text())
    assert gml.number_of_nodes() == data["num_quantizers"]
    assert {d["group"] for _, d in gml.nodes(data=True)} >= {grp["name"] for grp in data["groups"]}
    rc = main(["groups", str(tmp_path / "missing.onnx"), "--profile", "cpu_onnxruntime"])
    assert rc == 2
