"""The ``modelops`` command: one entry point that dispatches to each runtime piece.

Each subcommand lives in its own module with a ``main(argv) -> int`` function and is
imported only when asked for, so that ``modelops serve`` never pays for Kopf's import
and ``modelops operator`` never pays for scikit-learn's.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "operator": ("modelops.controller.run", "run the Kopf operator (handlers, timers, webhooks, metrics)"),
    "crds": ("modelops.crdgen", "write the CustomResourceDefinitions generated from the API models"),
    "train": ("modelops.train.cli", "train a model from a run config (the training pod's entrypoint)"),
    "serve": ("modelops.serve.cli", "serve a model with the Open Inference Protocol v2 REST API"),
    "drift": ("modelops.drift.cli", "compute drift statistics between a reference and a current sample"),
}


def number(
    kind: type[int] | type[float], low: float, high: float | None = None, hint: str = ""
) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` in [low, high], with one line saying what is wrong."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value != value or value < low or (high is not None and value > high):  # NaN too
            bounds = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {bounds}{hint}")
        return value

    return parse


class ArgumentParser(argparse.ArgumentParser):
    """argparse, complaining in one line (``<prog>: error: <message> (see --help)``, exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _usage() -> str:
    lines = ["usage: modelops <command> [options]", "", "commands:"]
    width = max(len(name) for name in SUBCOMMANDS)
    for name, (_, text) in SUBCOMMANDS.items():
        lines.append(f"  {name.ljust(width)}  {text}")
    lines.append("")
    lines.append("Run 'modelops <command> --help' for a command's options.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if args[0] == "--version":
        from modelops import __version__

        print(__version__)
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"modelops: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    entry: Callable[[list[str]], int] = module.main
    try:
        return entry(rest)
    except BrokenPipeError:
        # The reader went away (`modelops ... | head`): not an error of ours. Later writes (and the
        # interpreter's final flush) go nowhere, and the status is a shell's for SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13
