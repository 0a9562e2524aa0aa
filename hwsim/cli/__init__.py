"""The ``hwsim`` command: a thin layer over the Python API.

Each subcommand lives in its own module ``hwsim/cli/<name>.py`` defining an optional
``DESCRIPTION``, ``add_arguments(parser)`` and ``run(args) -> int``; adding a command is one
file plus one entry (its one-line help) in :data:`COMMANDS`. Only the module of the command
being run is imported (a fast start, and one command's trouble never breaks another).
Errors derived from :class:`hwsim.errors.HwsimError` (and missing files) print one line on
stderr and exit with status 2; never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

__all__ = ["main", "COMMANDS"]

COMMANDS = {
    "demo": "compare shipped accelerators on the shipped digits CNN (offline, about a minute)",
    "inspect": "per-layer cost table (MACs, BOPs, bytes, latency, energy) of a model on a profile",
    "run": "execute a model: float, fake-quant or integer (bit-exact), or --compare all three per layer",
    "validate": "check a quantized ONNX model (QDQ/QOperator) bit-exact against onnxruntime",
    "groups": "list the quantizer groups (layers that must share a bit-width) and their candidates",
    "search": "mixed-precision search: cheapest per-layer bit-widths meeting an SQNR or accuracy budget",
    "compare": "compare accelerators: mixed-precision search per profile, side by side at one budget",
    "bench": "benchmark the integer kernels against float BLAS and production int8 runtimes",
}
"""Subcommand -> one-line help, in the order ``--help`` lists them."""

EXIT_USER_ERROR = 2


def _top_parser() -> argparse.ArgumentParser:
    from hwsim import __version__

    lines = "\n".join(f"  {name:<10} {text}" for name, text in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="hwsim",
        usage="hwsim [-h] [--version] COMMAND [options]",
        description="Hardware simulation of quantized neural-network inference: bit-exact integer "
                    "execution, mixed-precision search and accelerator comparison.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"commands:\n{lines}\n\nRun 'hwsim COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"hwsim {__version__}")
    return parser


def build_parser(command: str) -> argparse.ArgumentParser:
    """The argument parser of one subcommand (imports only that command's module)."""
    mod = importlib.import_module(f"hwsim.cli.{command}")
    p = argparse.ArgumentParser(prog=f"hwsim {command}", description=getattr(mod, "DESCRIPTION", COMMANDS[command]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mod.add_arguments(p)
    p.set_defaults(_run=mod.run, command=command)
    return p


def main(argv=None) -> int:
    from hwsim.errors import HwsimError

    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] not in COMMANDS:
        if argv and not argv[0].startswith("-"):
            top.print_usage(sys.stderr)
            print(f"hwsim: error: unknown command '{argv[0]}'; commands: {', '.join(COMMANDS)}", file=sys.stderr)
            return EXIT_USER_ERROR
        top.parse_args(argv)          # --help / --version exit here
        top.print_help()
        return EXIT_USER_ERROR
    args = build_parser(argv[0]).parse_args(argv[1:])
    try:
        return int(args._run(args) or 0)
    except HwsimError as e:
        print(f"hwsim {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        where = e.filename if e.filename is not None else ""
        print(f"hwsim {args.command}: error: {where}: {e.strerror}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"hwsim {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
