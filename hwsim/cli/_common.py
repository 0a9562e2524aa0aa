"""Options and input loading shared by the commands that search (``search``, ``compare``)."""
from __future__ import annotations

__all__ = ["add_model_arguments", "load_graph", "parse_dims", "add_budget_arguments", "load_budget_inputs",
           "single_or_dict"]


def add_model_arguments(p) -> None:
    """The positional ONNX model and --dim NAME=SIZE (fix named dynamic dimensions)."""
    p.add_argument("model", metavar="MODEL", help="ONNX model file")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="fix a named dynamic input dimension (e.g. --dim seq=128 or --dim height=224; "
                        "repeatable); the batch dimension may stay dynamic. Costs are computed for these sizes "
                        "(other dynamic dimensions count as 1)")


def parse_dims(items) -> dict[str, int]:
    """``["seq=128", "h=32"]`` -> ``{"seq": 128, "h": 32}``; ConfigError on a malformed entry."""
    from hwsim.errors import ConfigError

    out = {}
    for it in items or ():
        name, sep, val = it.partition("=")
        if not sep or not name.strip() or not val.strip().isdigit() or int(val) <= 0:
            raise ConfigError(f"--dim {it!r}: expected NAME=SIZE with a positive integer size, e.g. seq=128")
        out[name.strip()] = int(val)
    return out


def load_graph(args):
    """Import ``args.model`` with the ``--dim`` sizes."""
    from hwsim.onnx_import import load_model

    return load_model(args.model, fixed_dims=parse_dims(getattr(args, "dim", None)))


def add_budget_arguments(p) -> None:
    """--calib, --target-sqnr | --max-drop, --labels, --eval, --calibrator, --full-curve."""
    p.add_argument("--calib", required=True, metavar="C",
                   help="calibration inputs (.npy for one input, .npz keyed by input name)")
    b = p.add_mutually_exclusive_group()
    b.add_argument("--target-sqnr", type=float, metavar="DB",
                   help="budget: SQNR (dB) of the integer outputs against float on the calibration data")
    b.add_argument("--max-drop", type=float, metavar="X",
                   help="budget: allowed score drop; with --labels, top-1 accuracy points below the float model; "
                        "without, SQNR dB below the all-highest config")
    p.add_argument("--labels", metavar="L", help="integer class labels (.npy) for the --eval data (or the --calib "
                                                 "data): the score becomes top-1 accuracy (%%)")
    p.add_argument("--eval", metavar="E", help="inputs the score is computed on (.npy/.npz; default: --calib)")
    p.add_argument("--full-curve", action="store_true", help="evaluate every point of the Pareto path")
    p.add_argument("--calibrator", default="minmax", choices=("minmax", "percentile", "mse", "entropy"),
                   help="calibration observer (default: minmax)")


def single_or_dict(arrays: dict | None):
    """A single-input model's data as the array itself; several inputs stay a dict."""
    if arrays is None or len(arrays) != 1:
        return arrays
    return next(iter(arrays.values()))


def load_budget_inputs(args, input_names) -> tuple:
    """(calib, eval_data, labels) from the command line, checked; one-line errors."""
    from hwsim.errors import ConfigError, DataError
    from hwsim.io import load_array_file

    if args.target_sqnr is None and args.max_drop is None and not args.full_curve:
        raise ConfigError("give a budget: --target-sqnr DB or --max-drop X (or --full-curve to map the front)")
    if args.target_sqnr is not None and args.labels:
        raise ConfigError("--target-sqnr is an SQNR budget; with --labels use --max-drop")
    names = list(input_names)
    calib = load_array_file(args.calib, names)
    eval_data = load_array_file(args.eval, names) if args.eval else None
    labels = None
    if args.labels:
        labels = next(iter(load_array_file(args.labels, ["labels"]).values()))
        if labels.dtype.kind not in "iu":
            raise DataError(f"{args.labels}: labels must be integers, got dtype {labels.dtype}")
    return single_or_dict(calib), single_or_dict(eval_data), labels
