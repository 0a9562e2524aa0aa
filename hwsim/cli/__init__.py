"""The ``hwsim`` command: a thin layer over the Python API.

Each subcommand lives in its own module ``hwsim/cli/<name>.py`` defining ``HELP`` (one
line), ``add_arguments(parser)`` and ``run(args) -> int``; adding a command is one file
plus one entry in :data:`COMMANDS`. Errors derived from :class:`hwsim.errors.HwsimError`
(and missing files) print one line on stderr and exit with status 2; never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

__all__ = ["main", "COMMANDS"]

COMMANDS = ("demo", "inspect", "run", "validate", "groups", "search", "compare", "bench")
"""Subcommands in the order ``--help`` lists them. A module that does not exist yet is skipped."""

EXIT_USER_ERROR = 2


def _load_commands():
    mods = {}
    for name in COMMANDS:
        try:
            mods[name] = importlib.import_module(f"hwsim.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"hwsim.cli.{name}":
                continue
            raise
    return mods


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    mods = _load_commands()
    parser = argparse.ArgumentParser(
        prog="hwsim",
        description="Hardware simulation of quantized neural-network inference: bit-exact integer "
                    "execution, mixed-precision search and accelerator comparison.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'hwsim COMMAND --help' for the options of a command.",
    )
    from hwsim import __version__
    parser.add_argument("--version", action="version", version=f"hwsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in mods.items():
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser, mods


def main(argv=None) -> int:
    from hwsim.errors import HwsimError

    parser, _ = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args._run(args) or 0)
    except HwsimError as e:
        print(f"hwsim {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"hwsim {args.command}: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"hwsim {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
