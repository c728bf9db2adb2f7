"""The ``poshw`` command line.

Each subcommand lives in its own module of this package and defines
``register(subparsers) -> None``, adding a parser whose ``func`` default is the
handler ``func(args) -> int``. Modules are discovered, so adding a command never
touches this file. A :class:`~poshw.PoshwError` (a user mistake or a bad file)
prints one line, ``poshw: error: ...``, and exits with status 2; so does a bad
command line (argparse's message, with a pointer to ``--help``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from .. import PoshwError, __version__

#: order of commands in ``poshw --help``; discovered modules not listed here come last
ORDER = ["models", "train", "evaluate", "onnx", "quantize", "export", "simulate", "compile", "verify",
         "synth"]


class Parser(argparse.ArgumentParser):
    """argparse with the house error format: one line ``poshw: error: COMMAND: message``, status 2."""

    def error(self, message: str):
        where = self.prog.removeprefix("poshw").strip()
        self.exit(2, f"poshw: error: {where + ': ' if where else ''}{message} (see `{self.prog} --help`)\n")


def path_arg(text: str) -> str:
    """argparse ``type`` of a file or directory argument: an empty string (an unset shell
    variable in quotes) would mean the current directory, so it is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="poshw",
        description="Product-of-sums neural networks compiled to verified hardware.")
    parser.add_argument("--version", action="version", version=f"poshw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad command line (already reported)
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PoshwError as e:
        print(f"poshw: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("poshw: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into e.g. `head`, which closed early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
