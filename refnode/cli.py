"""The ``refnode`` command.

Each subcommand is a module in :mod:`refnode.commands` with three names:

    HELP                  one line for ``refnode --help``
    configure(parser)     adds the subcommand's arguments to an argparse parser
    run(args) -> int      does the work; the return value is the exit status
"""

import argparse
import importlib
import sys

#: Subcommands in the order ``refnode --help`` lists them.
COMMANDS = ("demo", "reproduce", "verify", "bench", "tutorials", "docs")


def import_available(package, names):
    """{name: module} for each ``package.name`` that exists in this installation."""
    found = {}
    for name in names:
        try:
            found[name] = importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{package}.{name}":
                raise
    return found


def available_commands():
    """The subcommand modules that exist in this installation, by name."""
    return import_available("refnode.commands", COMMANDS)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="refnode",
        description="refnode: a readable NumPy reference implementation of Neural ODEs "
                    "(Chen et al., NeurIPS 2018).")
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
    return available_commands()[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
