"""The ``refnode`` command.

Each subcommand is a module in :mod:`refnode.commands` with three names:

    HELP                  one line for ``refnode --help``
    configure(parser)     adds the subcommand's arguments to an argparse parser
    run(args) -> int      does the work; the return value is the exit status

A listed module that fails to import is an error naming it (never a silently missing
command). Exit statuses, each failure one line on stderr without a traceback:

    0     done (``bench`` and ``verify`` return their own counts and verdicts)
    2     bad input, found before any work: an argument, a path, a data set, a checkpoint
          of another run (a :class:`~refnode.errors.RefnodeError`)
    74    a file could not be written: disk full, read-only, ... (EX_IOERR of sysexits.h;
          :class:`refnode.files.WriteError`); no half-written file is left under its name
    130   interrupted by Ctrl-C (128 + SIGINT, as a shell reports it), also when the signal
          arrived inside a finalizer, where Python itself would only print it and go on
          (:mod:`refnode.interrupt`)
    141   stdout was closed by its reader (``refnode bench --list | head -1``): 128 + SIGPIPE,
          what a shell reports for a command the closed pipe stopped; nothing is printed, as
          for the tools that die of SIGPIPE (the recipe of Python's ``signal`` docs)

Any other exception is a bug and keeps its traceback.
"""

import argparse
import errno
import importlib
import os
import signal
import sys

from . import __version__
from .errors import RefnodeError
from .files import WriteError
from .interrupt import InterruptWatch, raise_if_lost

#: Subcommands in the order ``refnode --help`` lists them.
COMMANDS = ("demo", "reproduce", "verify", "bench", "tutorials", "course", "docs")


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
#: Exit status when a file could not be written (EX_IOERR of sysexits.h).
WRITE_FAILED = 74
#: Exit status after Ctrl-C: 128 + SIGINT, what a shell reports for an interrupted command.
INTERRUPTED = 130
#: Exit status when the reader of stdout went away: 128 + SIGPIPE, as a shell reports it.
CLOSED_STDOUT = 128 + getattr(signal, "SIGPIPE", 13)
#: OSError numbers that are the file system's state, not a bug: reported in one line.
FILE_SYSTEM_ERRORS = frozenset(getattr(errno, name) for name in
                               ("ENOSPC", "EDQUOT", "EROFS", "EIO", "EFBIG", "EACCES", "EPERM")
                               if hasattr(errno, name))


def available_commands():
    """The subcommand modules, by name (every one in :data:`COMMANDS`)."""
    return import_modules({name: f"refnode.commands.{name}" for name in COMMANDS})


def build_parser():
    parser = argparse.ArgumentParser(
        prog="refnode",
        description="refnode: a readable NumPy reference implementation of Neural ODEs "
                    "(Chen et al., NeurIPS 2018).",
        epilog=f"exit status: 0 done, {USAGE_ERROR} bad input (found before any work), "
               f"{WRITE_FAILED} a file could not be written (disk full, read-only), "
               f"{INTERRUPTED} interrupted (Ctrl-C), {CLOSED_STDOUT} stdout closed by its reader "
               "(| head); bench and verify also report failures")
    parser.add_argument("--version", action="version", version=f"refnode {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in available_commands().items():
        module.configure(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv=None):
    try:
        with InterruptWatch():
            parser = build_parser()
            args = parser.parse_args(argv)
            if args.command is None:
                parser.print_help()
                status = 0
            else:
                status = run_command(args)
            raise_if_lost()         # a Ctrl-C Python lost in a finalizer is still one
        sys.stdout.flush()              # a closed pipe shows here, not at interpreter exit
        return status
    except KeyboardInterrupt:
        print("refnode: interrupted (Ctrl-C); files being written were left as they were "
              "before", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        silence_stdout()
        return CLOSED_STDOUT


def silence_stdout():
    """Point stdout at the null device, so that the interpreter's last flush of what is left
    in its buffer finds no closed pipe (which would print an exception at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):     # stdout is no file (captured in a test)
        pass


def run_command(args):
    """``run(args)`` of the chosen command; a user's error becomes one line and a status."""
    command = " ".join(filter(None, (args.command, getattr(args, "experiment", None))))
    try:
        return available_commands()[args.command].run(args)
    except WriteError as err:
        print(f"refnode {command}: error: {err}", file=sys.stderr)
        return WRITE_FAILED
    except RefnodeError as err:
        print(f"refnode {command}: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as err:
        if err.errno not in FILE_SYSTEM_ERRORS:
            raise
        where = f"{err.filename!r}: " if err.filename else ""
        print(f"refnode {command}: error: {where}{err.strerror or err}; free space or choose "
              "another path", file=sys.stderr)
        return WRITE_FAILED


if __name__ == "__main__":
    sys.exit(main())
