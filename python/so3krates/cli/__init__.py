"""`so3krates` command line: one entry point, one module per subcommand."""
import argparse
import sys
from importlib.metadata import entry_points
from typing import List, Optional

from . import bench, doctor, import_so3lr, info, init, md

COMMANDS = {"init": init, "info": info, "md": md, "bench": bench, "import-so3lr": import_so3lr,
            "doctor": doctor}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="so3krates",
        description="SO3krates machine-learned force fields for OpenMM: create or inspect model files and "
                    "run molecular dynamics with them. Lengths are in Å and energies in eV inside model "
                    "files; OpenMM sees nm and kJ/mol.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands().values():
        module.add_parser(sub)
    return parser


def commands():
    """Built-in commands plus those other installed packages (the training package) register
    under the `so3krates.commands` entry point group; the runtime never imports them itself."""
    found = dict(COMMANDS)
    for entry in entry_points(group="so3krates.commands"):
        found[entry.name] = entry.load()
    return found


def main(argv: Optional[List[str]] = None) -> int:
    """Run a subcommand; expected errors are printed as one line, not a traceback."""
    from ..elements import UnsupportedElementError
    from ..model_file import ModelFileError

    args = build_parser().parse_args(argv)
    try:
        return commands()[args.command].run(args) or 0
    except (ModelFileError, UnsupportedElementError, ValueError, FileNotFoundError) as err:
        print(f"so3krates {args.command}: error: {err}", file=sys.stderr)
        return 2
