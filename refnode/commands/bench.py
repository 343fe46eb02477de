"""``refnode bench [--quick] [--only NAME] [--list]``: run the benchmark scripts, print their tables.

``refnode bench workprecision [--quick] [--json PATH] [--out DIR]`` instead runs the
work-precision diagrams of :mod:`refnode.workprecision` (part of the package, so it runs
without the source tree): figures go to ``--out`` (default runs/workprecision, a run
directory; pass ``--out benchmarks`` to replace the committed figures), records to ``--json``
(default: workprecision.json in the same directory).

The scripts are ``benchmarks/bench_*.py`` in the source tree (``--dir`` to point
elsewhere). Each runs as a subprocess, as ``python benchmarks/bench_x.py`` would, and its
output (the ratio tables) is printed as it comes. With ``--quick`` a script gets its own
``--quick`` flag if it has one, else ``--repeats 1`` if it takes ``--repeats``, else
nothing. The exit status is the number of scripts that failed (0: all ran).
"""

import os
import subprocess
import sys
from pathlib import Path

HELP = "run the benchmark scripts in benchmarks/ and print their ratio tables"

#: Where the benchmarks live in a source checkout: next to the refnode package.
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


#: Where ``bench workprecision`` writes unless told otherwise (ignored by git).
WORKPRECISION_DIR = Path("runs") / "workprecision"


def configure(parser):
    parser.add_argument("what", nargs="?", choices=("workprecision",),
                        help="workprecision: the work-precision diagrams instead of the scripts")
    parser.add_argument("--json", metavar="PATH", type=Path,
                        help="workprecision: where to write the records")
    parser.add_argument("--out", metavar="DIR", type=Path,
                        help=f"workprecision: directory for the figures (default {WORKPRECISION_DIR})")
    parser.add_argument("--repeats", type=int, default=3, metavar="N",
                        help="workprecision: best of N timings (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="each script's quick flag (or --repeats 1) for a smoke run")
    parser.add_argument("--only", action="append", metavar="NAME", default=None,
                        help="run only this benchmark (e.g. solvers or bench_solvers); repeatable")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help=f"directory of the bench_*.py scripts (default: {DEFAULT_DIR})")
    parser.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                        help="seconds allowed to each script (default 1800)")


def discover(directory):
    """The benchmark scripts: ``bench_*.py`` in ``directory``, sorted by name."""
    return sorted(Path(directory).glob("bench_*.py"))


def short_name(path):
    return path.stem[len("bench_"):]


def description(path):
    """The first line of a script's docstring."""
    text = path.read_text(encoding="utf-8")
    for quote in ('"""', "'''"):
        if text.lstrip().startswith(quote):
            return text.lstrip()[3:].strip().splitlines()[0]
    return ""


def quick_arguments(path):
    """The arguments that make ``path`` a quick run (module docstring)."""
    text = path.read_text(encoding="utf-8")
    if '"--quick"' in text:
        return ["--quick"]
    if '"--repeats"' in text:
        return ["--repeats", "1"]
    return []


def run_workprecision(args):
    """The work-precision run: JSON records and two figures."""
    from ..errors import InputError
    try:
        from ..workprecision import run as run_diagrams, write_json
        from ..workprecision.plot import write_figures
    except ImportError as exc:                    # SciPy: the test extra, not a runtime dep
        print(f"refnode bench workprecision needs SciPy (pip install 'refnode[test]'): {exc}")
        return 2
    if args.repeats < 1:
        raise InputError(f"--repeats must be >= 1; got {args.repeats}")
    out = args.out or WORKPRECISION_DIR
    result = run_diagrams(quick=args.quick, repeats=args.repeats)
    json_path = write_json(result, args.json or out / "workprecision.json")
    print(f"records: {json_path}")
    for path in write_figures(result, out):
        print(f"figure: {path}")
    failed = [r for r in result["records"] if "failed" in r]
    for r in failed:
        print(f"not reached: {r['library']} {r['method']} on {r['problem']} at tol {r['tol']:g} "
              f"(more than the step cap)")
    return 0


def run(args):
    if args.what == "workprecision":
        return run_workprecision(args)
    if args.json or args.out:
        print("refnode bench: --json and --out belong to `refnode bench workprecision`")
        return 2
    scripts = discover(args.dir)
    if not scripts:
        print(f"refnode bench: no bench_*.py in {args.dir}; pass --dir (benchmarks ship with "
              "the source tree, not the installed package).")
        return 2
    if args.only:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in args.only}
        unknown = wanted - {short_name(p) for p in scripts}
        if unknown:
            print(f"refnode bench: unknown benchmark(s) {sorted(unknown)}; choose from "
                  f"{', '.join(short_name(p) for p in scripts)}")
            return 2
        scripts = [p for p in scripts if short_name(p) in wanted]
    if args.list:
        for path in scripts:
            print(f"{short_name(path):<12} {description(path)}")
        return 0
    failed = 0
    for path in scripts:
        command = [sys.executable, str(path)] + (quick_arguments(path) if args.quick else [])
        print(f"=== {short_name(path)}: {' '.join(command[1:])}", flush=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            filter(None, [str(path.parent.parent), os.environ.get("PYTHONPATH")])))
        try:
            status = subprocess.run(command, env=env, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            print(f"=== {short_name(path)}: timed out after {args.timeout:g} s")
            status = 1
        if status != 0:
            print(f"=== {short_name(path)}: FAILED (exit status {status})")
            failed += 1
    return failed
