"""``refnode verify``: compare another implementation's states and gradients with the golden values.

    refnode verify --results FILE --rtol 1e-6          # a results file in the golden layout
    refnode verify --callable mypkg.mod:fn --rtol 1e-6  # fn(problem: dict) -> dict
    refnode verify --library torchdiffeq [--gradient backprop] --rtol 1e-7 --atol 1e-10
    refnode verify --list                               # the reference problems

The logic is in :mod:`refnode.verify`; docs/verify.md documents the formats and the rule
tol = 100 · rtol + golden accuracy; docs/conformance.md the built-in adapters
(:mod:`refnode.reference.adapters`). Exit status (docs/verify.md, "Exit status"):

The report goes to stdout; every error and the interruption notice are one line on stderr.

    0    PASSED: nothing failed, and gradients were verified (or --states-only was given)
    1    FAILED: a quantity failed, or nothing (no gradient) was verified
    2    bad input: tolerances too loose to mean anything, a malformed results file, an
         unknown or missing library, a callable that raised, exited or raised
         KeyboardInterrupt itself, a module that failed to import
    130  interrupted by Ctrl-C (SIGINT): nothing was verified
"""

import argparse
import sys

from .. import verify
from ..errors import InputError
from ..experiments.common_cli import path_text
from ..interrupt import InterruptWatch
from ..reference import adapters
from ..reference.results import check_tolerances
from ..reference.golden_files import load_golden
from ..reference.problems import PROBLEM_NAMES

HELP = "check another ODE implementation's states and gradients against refnode's golden values"

#: The default --rtol: a common solver default (torchdiffeq's is 1e-7, SciPy's 1e-3).
DEFAULT_RTOL = 1e-6


def configure(parser):
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--results", metavar="FILE", type=path_text,
                        help="JSON results in the golden layout (docs/verify.md)")
    source.add_argument("--callable", metavar="MODULE:FUNCTION", dest="function",
                        help="a function fn(problem: dict) -> dict, e.g. mypkg.check:solve; "
                             "refnode.verify:refnode_adjoint verifies refnode itself")
    source.add_argument("--library", metavar="NAME",
                        help="a built-in adapter: " + ", ".join(adapters.LIBRARIES) +
                             " (pip install 'refnode[verify]')")
    source.add_argument("--list", action="store_true", help="list the reference problems and exit")
    parser.add_argument("--gradient", metavar="MODE",
                        help="with --library: the gradient mode, e.g. torchdiffeq: "
                             "adjoint|backprop; diffrax: recursive-checkpoint|backsolve|direct "
                             "(default: the library's first)")
    parser.add_argument("--rtol", type=positive_float, default=DEFAULT_RTOL,
                        help=f"the relative tolerance your solver used (default {DEFAULT_RTOL:g}); "
                             "with --callable, the problem dict asks for it")
    parser.add_argument("--atol", type=positive_float, default=None,
                        help="absolute tolerance passed to --callable and --library "
                             f"(default: {verify.ATOL_FACTOR:g} * --rtol)")
    parser.add_argument("--factor", type=positive_float, default=verify.TOLERANCE_FACTOR,
                        help=f"C in tol = C * rtol + accuracy (default {verify.TOLERANCE_FACTOR:g})")
    parser.add_argument("--problems", type=problem_list, default=PROBLEM_NAMES, metavar="A,B",
                        help=f"comma-separated subset of: {', '.join(PROBLEM_NAMES)}")
    parser.add_argument("--states-only", action="store_true",
                        help="verify the states alone: the gradients are not compared (without "
                             "this flag a run that verifies no gradient fails)")


def positive_float(text):
    """argparse type: a float > 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0.0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def problem_list(text):
    """argparse type: comma-separated reference problem names."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in PROBLEM_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown problem(s) {unknown or text!r}; choose from "
                                         f"{', '.join(PROBLEM_NAMES)}")
    return names


def run(args):
    if args.list:
        for name in PROBLEM_NAMES:
            doc = load_golden(name)
            print(f"{name:<11} {doc['dynamics']['equation'][:70]}\n{'':<11} {doc['description']}")
        return 0
    if args.results is None and args.function is None and args.library is None:
        return error("give --results FILE, --callable MODULE:FUNCTION or --library NAME "
                     "(or --list)")
    with InterruptWatch() as watch:
        try:
            source, report = verification(args)
        except InputError as err:
            return error(err)
        except KeyboardInterrupt:
            if watch.received or not watch.active:
                print("refnode verify: interrupted (Ctrl-C); nothing was verified.",
                      file=sys.stderr)
                return 130
            return error("the verified code raised KeyboardInterrupt itself (no Ctrl-C was "
                         "received); nothing was verified")
    print(f"refnode verify: {source} against the golden values\n")
    print(report)
    return 0 if report.passed else 1


def error(message):
    """Print ``message`` as the command's one error line on stderr; the usage status, 2."""
    print(f"refnode verify: error: {message}", file=sys.stderr)
    return 2


def verification(args):
    """(what was verified, its VerifyReport) for the parsed arguments; InputError on bad input."""
    if args.gradient is not None and args.library is None:
        raise InputError("--gradient goes with --library.")
    check_tolerances(args.rtol, args.factor, args.atol)
    options = dict(names=args.problems, factor=args.factor, states_only=args.states_only)
    if args.results is not None:
        problems = verify.results_from_file(args.results)
        return args.results, verify.verify_results(problems, args.rtol, **options)
    if args.library is not None:
        fn, source = adapters.adapter_callable(args.library, args.gradient)
    else:
        fn, source = verify.load_callable(args.function), args.function
    return source, verify.verify_callable(fn, args.rtol, args.atol, **options)
