"""Regenerate the golden files: ``python -m refnode.reference.regenerate [--out DIR] [NAME ...]``.

Computes every problem's golden values (:func:`refnode.reference.golden.reference_values`)
and writes ``DIR/<name>.json`` atomically (default: the package's ``golden/`` directory).
A problem whose two independent computations disagree stops the run with an error:
nothing unverified is written.
"""

import argparse
import sys

from .golden import reference_values
from .golden_files import GOLDEN_DIR, golden_record, write_json
from .problems import PROBLEM_NAMES, get_problem


def regenerate(names=PROBLEM_NAMES, directory=GOLDEN_DIR, **tolerances):
    """Compute and write the golden file of each named problem; returns the paths written.

    ``tolerances`` (rtol, adjoint_rtol, state_check_rtol) go to ``reference_values``.
    """
    from .. import __version__
    paths = []
    for name in names:
        problem = get_problem(name)
        record = golden_record(problem, reference_values(problem, **tolerances), __version__)
        path = directory / f"{name}.json"
        write_json(path, record)
        paths.append(path)
    return paths


def main(argv=None):
    from pathlib import Path
    parser = argparse.ArgumentParser(prog="python -m refnode.reference.regenerate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"problems to regenerate (default: all of {', '.join(PROBLEM_NAMES)})")
    parser.add_argument("--out", type=Path, default=GOLDEN_DIR, metavar="DIR",
                        help=f"directory for the JSON files (default: {GOLDEN_DIR})")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in PROBLEM_NAMES:
            parser.error(f"unknown problem {name!r}; choose from {', '.join(PROBLEM_NAMES)}")
    for path in regenerate(tuple(args.names) or PROBLEM_NAMES, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
