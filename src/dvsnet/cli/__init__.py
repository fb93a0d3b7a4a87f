"""The `dvsnet` command: argparse front end only; every subcommand lives in its own module here.

Each subcommand module defines `add_parser(subparsers)`, which registers its parser and sets
`run=<function(args) -> int>` as a default. User mistakes raise `DvsnetError` and come out as one
line on stderr with exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from types import ModuleType

from dvsnet import __version__
from dvsnet.cli import calibrate, demo, evaluate, export, segment, sweep, synth, train
from dvsnet.errors import DvsnetError

# subcommand name -> module that registers it (one line per command; order is the --help order)
COMMANDS: dict[str, ModuleType] = {
    "demo": demo,
    "segment": segment,
    "synth": synth,
    "train": train,
    "calibrate": calibrate,
    "evaluate": evaluate,
    "sweep": sweep,
    "export": export,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dvsnet",
        description="Dynamic Video Segmentation Network: fast semantic segmentation of video.",
    )
    parser.add_argument("--version", action="version", version=f"dvsnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `dvsnet` with `argv` (default: sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except DvsnetError as exc:
        print(f"dvsnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dvsnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
