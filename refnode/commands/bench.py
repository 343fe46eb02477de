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

``--device gpu`` runs only the scripts with a GPU mode (those that take ``--device``:
``bench_gpu.py``, ``bench_training.py``), each with ``--device gpu``, after checking that CuPy sees a GPU; the
default, ``--device cpu``, runs every script as it is.

Every argument is checked before any work (:func:`check`): a bad one is one line on stderr
and exit status 2.
"""

import os
import subprocess
import sys
from pathlib import Path

from ..errors import InputError
from ..experiments.common_cli import (add_device_option, check_device_option, check_output_dir,
                                      check_output_file, path_object, positive_float,
                                      positive_int)

HELP = "run the benchmark scripts in benchmarks/ and print their ratio tables"

#: Where the benchmarks live in a source checkout: next to the refnode package.
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


#: Where ``bench workprecision`` writes unless told otherwise (ignored by git).
WORKPRECISION_DIR = Path("runs") / "workprecision"
#: Defaults of --repeats (workprecision) and --timeout (seconds per script).
REPEATS, TIMEOUT = 3, 1800.0


def configure(parser):
    parser.add_argument("what", nargs="?", choices=("workprecision",),
                        help="workprecision: the work-precision diagrams instead of the scripts")
    parser.add_argument("--json", metavar="PATH", type=path_object,
                        help="workprecision: where to write the records")
    parser.add_argument("--out", metavar="DIR", type=path_object,
                        help=f"workprecision: directory for the figures (default {WORKPRECISION_DIR})")
    parser.add_argument("--repeats", type=positive_int, default=None, metavar="N",
                        help=f"workprecision: best of N timings (default {REPEATS}; --quick times once)")
    parser.add_argument("--quick", action="store_true",
                        help="each script's quick flag (or --repeats 1) for a smoke run")
    parser.add_argument("--only", action="append", metavar="NAME", default=None,
                        help="run only this benchmark (e.g. solvers or bench_solvers); repeatable")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--dir", type=path_object, default=None, metavar="DIR",
                        help=f"directory of the bench_*.py scripts (default: {DEFAULT_DIR})")
    parser.add_argument("--timeout", type=positive_float, default=None, metavar="S",
                        help=f"seconds allowed to each script (default {TIMEOUT:g})")
    add_device_option(parser, "gpu runs only the benchmarks with a GPU mode (bench_gpu.py, "
                      "bench_training.py), on the GPU")


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


def has_gpu_mode(path):
    """Whether the script takes ``--device`` (its GPU mode)."""
    return '"--device"' in path.read_text(encoding="utf-8")


def check(args):
    """Check every argument before any work; raises InputError (exit 2) naming the bad one.

    Fills in ``args.scripts`` (the scripts to run) or, for workprecision, ``args.out`` and
    ``args.json`` (the paths to write).
    """
    if args.device not in ("cpu", "gpu"):
        raise InputError(f"--device {args.device}: the benchmarks run on cpu or gpu")
    if args.device == "gpu" and args.what == "workprecision":
        raise InputError("--device gpu: the work-precision diagrams run on the CPU; use "
                         "`refnode bench --device gpu` for the GPU benchmarks")
    check_device_option(args)
    if args.what == "workprecision":
        for flag, value in (("--timeout", args.timeout), ("--only", args.only),
                            ("--list", args.list or None), ("--dir", args.dir)):
            if value is not None:
                raise InputError(f"{flag} belongs to the benchmark scripts (`refnode bench`), "
                                 "not to `refnode bench workprecision`")
        args.repeats = args.repeats or REPEATS
        out = args.out if args.out is not None else WORKPRECISION_DIR
        args.out = Path(check_output_dir(str(out), "--out"))
        json_path = args.json if args.json is not None else args.out / "workprecision.json"
        args.json = Path(check_output_file(str(json_path), "--json"))
        return args
    for flag, value in (("--json", args.json), ("--out", args.out), ("--repeats", args.repeats)):
        if value is not None:
            raise InputError(f"{flag} belongs to `refnode bench workprecision`")
    args.timeout = args.timeout or TIMEOUT
    args.dir = args.dir if args.dir is not None else DEFAULT_DIR
    if not args.dir.is_dir():
        raise InputError(f"--dir {args.dir}: not a directory; give the directory of the "
                         "bench_*.py scripts")
    scripts = discover(args.dir)
    if not scripts:
        raise InputError(f"no bench_*.py in {args.dir}; pass --dir (benchmarks ship with the "
                         "source tree, not the installed package)")
    if args.only:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in args.only}
        unknown = wanted - {short_name(p) for p in scripts}
        if unknown:
            raise InputError(f"--only: unknown benchmark(s) {sorted(unknown)}; choose from "
                             f"{', '.join(short_name(p) for p in scripts)}")
        scripts = [p for p in scripts if short_name(p) in wanted]
    if args.device == "gpu":
        scripts = [p for p in scripts if has_gpu_mode(p)]
        if not scripts:
            raise InputError("--device gpu: none of the chosen benchmarks has a GPU mode; "
                             "choose --only gpu")
    args.scripts = scripts
    return args


def run_workprecision(args):
    """The work-precision run: JSON records and two figures."""
    try:
        from ..workprecision import run as run_diagrams, write_json
        from ..workprecision.plot import write_figures
    except ImportError as exc:                    # SciPy: the test extra, not a runtime dep
        raise InputError(f"refnode bench workprecision needs SciPy (pip install "
                         f"'refnode[test]'): {exc}") from None
    result = run_diagrams(quick=args.quick, repeats=args.repeats)
    json_path = write_json(result, args.json)
    print(f"records: {json_path}")
    for path in write_figures(result, args.out):
        print(f"figure: {path}")
    failed = [r for r in result["records"] if "failed" in r]
    for r in failed:
        print(f"not reached: {r['library']} {r['method']} on {r['problem']} at tol {r['tol']:g} "
              f"(more than the step cap)")
    return 0


def run(args):
    check(args)
    if args.what == "workprecision":
        return run_workprecision(args)
    if args.list:
        for path in args.scripts:
            print(f"{short_name(path):<12} {description(path)}")
        return 0
    failed = 0
    for path in args.scripts:
        command = [sys.executable, str(path)] + (quick_arguments(path) if args.quick else [])
        if args.device == "gpu":
            command += ["--device", "gpu"]
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
