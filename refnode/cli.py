"""The ``refnode`` command.

Each subcommand is a module in :mod:`refnode.commands` with three names:

    HELP                  one line for ``refnode --help``
    configure(parser)     adds the subcommand's arguments to an argparse parser
    run(args) -> int      does the work; the return value is the exit status

A listed module that fails to import is an error naming it (never a silently missing
command). A :class:`~refnode.errors.RefnodeError` raised by ``run`` is the user's to fix
(a missing data set, a bad path, a corrupt checkpoint): it is printed as one line and the
command exits with status 2. Any other exception is a bug and keeps its traceback.
"""

import argparse
import importlib
import sys

from . import __version__
from .errors import RefnodeError

#: Subcommands in the order ``refnode --help`` lists them.
COMMANDS = ("demo", "reproduce", "verify", "bench", "tutorials", "docs")


def import_modules(paths):
    """{name: module} for each ``name: "dotted.module.path"`` in ``paths``.

    Raises
    ------
    ImportError
        Naming the module, when one of them is missing or fails to import.
    """
    modules = {}
    for name, path in paths.items():
        try:
            modules[name] = importlib.import_module(path)
        except Exception as err:
            raise ImportError(f"refnode: the module {path!r} (for {name!r}) failed to import: "
                              f"{type(err).__name__}: {err}") from err
    return modules


#: Exit status of a command stopped by bad input (argparse uses the same).
USAGE_ERROR = 2


def available_commands():
    """The subcommand modules, by name (every one in :data:`COMMANDS`)."""
    return import_modules({name: f"refnode.commands.{name}" for name in COMMANDS})


def build_parser():
    parser = argparse.ArgumentParser(
        prog="refnode",
        description="refnode: a readable NumPy reference implementation of Neural ODEs "
                    "(Chen et al., NeurIPS 2018).")
    parser.add_argument("--version", action="version", version=f"refnode {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in available_commands().items():
        module.configure(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return available_commands()[args.command].run(args)
    except RefnodeError as err:
        command = " ".join(filter(None, (args.command, getattr(args, "experiment", None))))
        print(f"refnode {command}: error: {err}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
