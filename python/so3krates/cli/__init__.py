"""`so3krates` command line: one entry point, one module per subcommand."""
import argparse
import sys
from typing import List, Optional

from . import info, init, md

COMMANDS = {"init": init, "info": info, "md": md}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="so3krates",
        description="SO3krates machine-learned force fields for OpenMM: create or inspect model files and "
                    "run molecular dynamics with them. Lengths are in Å and energies in eV inside model "
                    "files; OpenMM sees nm and kJ/mol.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run a subcommand; expected errors are printed as one line, not a traceback."""
    from ..elements import UnsupportedElementError
    from ..model_file import ModelFileError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args) or 0
    except (ModelFileError, UnsupportedElementError, ValueError, FileNotFoundError) as err:
        print(f"so3krates {args.command}: error: {err}", file=sys.stderr)
        return 2
