"""``hwsim groups``: list the quantizer groups of a model under a profile."""
from __future__ import annotations

from ._common import add_model_arguments, load_graph

DESCRIPTION = """\
List the quantizer groups the mixed-precision search works on: connected components of
the quantizer graph (activation tensors and weights linked by "must share a bit-width"
constraints: a kernel's input and weight, all inputs of one node, pass-through ops, the
profile's shared-scale ops). Each group's candidates are the intersection of the pairs the
profile allows for its nodes, highest first.

example: hwsim groups model.onnx --profile cpu_onnxruntime --graphml groups.graphml
"""


def add_arguments(p):
    add_model_arguments(p)
    p.add_argument("--profile", required=True, help="hardware profile: a shipped name or a YAML file")
    p.add_argument("--graphml", metavar="OUT", help="also write the quantizer graph as GraphML (e.g. for Gephi/yEd)")
    p.add_argument("--json", metavar="OUT", help="also write the groups as JSON")
    p.add_argument("--members", action="store_true", help="print every member quantizer of each group")


def run(args) -> int:
    from hwsim.groups import build_groups
    from hwsim.io import atomic_write_json
    from hwsim.profile import resolve_profile

    graph = load_graph(args)
    profile = resolve_profile(args.profile)
    groups = build_groups(graph, profile)
    print(f"model {graph.name}: {len(graph.nodes)} nodes, {groups.nx_graph.number_of_nodes()} quantizers, "
          f"{groups.nx_graph.number_of_edges()} constraints, {len(groups)} groups (profile {profile.name})")
    w_name = max([len(g.name) for g in groups] + [5])
    print(f"{'#':>3}  {'group':<{w_name}}  {'candidates':<22}  {'acts':>4}  {'wts':>3}  nodes")
    for g in groups:
        cands = " > ".join(map(str, g.candidates))
        print(f"{g.index:>3}  {g.name:<{w_name}}  {cands:<22}  {len(g.activations):>4}  {len(g.weights):>3}  "
              f"{', '.join(g.ops)}")
        if args.members:
            print(f"{'':>5}members: {', '.join(g.members)}")
    if groups.unconfigured:
        print(f"not searched (no configurable node reads them): "
              f"{'; '.join(', '.join(m) for m in groups.unconfigured)}")
    if args.graphml:
        groups.write_graphml(args.graphml)
        print(f"wrote {args.graphml}")
    if args.json:
        atomic_write_json(args.json, groups.to_dict() | {"profile": profile.name})
        print(f"wrote {args.json}")
    return 0
