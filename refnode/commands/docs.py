"""``refnode docs build [--quick] [--out DIR]``: build the documentation site, offline.

The site (mkdocs + material; see :mod:`refnode.commands.docs_site` for what it holds and
why) is the README as landing page, the tutorials executed with their figures, the guides
in ``docs/``, the benchmark tables and an API reference from the docstrings. It needs the
optional extra ``pip install -e '.[docs]'`` and a source checkout.

Without ``--out`` the site goes to a new temporary directory, never into the repository.
``--quick`` runs the tutorials in their quick mode (``REFNODE_QUICK=1``): minutes instead of
the full runs. Tutorial figures are written to a temporary directory, not over ``figures/``.
``--strict`` fails the build on any mkdocs warning (a broken link, a missing image, a
docstring griffe cannot parse), as the tests build it.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import docs_site
from ..errors import InputError
from ..experiments.common_cli import check_output_dir, path_object

HELP = "build the documentation site (tutorials executed, API from docstrings) offline"

#: Python packages the build needs, with the extra that installs them.
REQUIRED = ("mkdocs", "material", "mkdocs_jupyter", "mkdocstrings", "mkdocstrings_handlers.python",
            "nbconvert", "ipykernel", "jupytext")


def configure(parser):
    actions = parser.add_subparsers(dest="docs_action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="build the site into --out (default: a new "
                               "temporary directory)")
    build.add_argument("--quick", action="store_true",
                       help="execute the tutorials in quick mode (REFNODE_QUICK=1)")
    build.add_argument("--out", metavar="DIR", type=path_object, default=None,
                       help="directory for the site: new, empty, or a previous refnode site")
    build.add_argument("--tutorials", nargs="+", metavar="NN", default=None,
                       help="execute only the tutorials whose names start with these (e.g. 00 "
                       "04); the others are shown without outputs")
    build.add_argument("--strict", action="store_true",
                       help="fail on any mkdocs warning (broken link, unparsable docstring)")


def missing_packages():
    """The packages of :data:`REQUIRED` that cannot be imported."""
    import importlib.util
    missing = []
    for name in REQUIRED:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


def output_problem(out):
    """Why ``out`` cannot receive the site (None if it can). mkdocs empties its site
    directory before writing, so only a new, empty, or earlier refnode site is accepted;
    whether it can be created and written is checked next (:func:`check_arguments`)."""
    if out.exists() and not out.is_dir():
        return f"--out {out} exists and is not a directory"
    if out.is_dir() and any(out.iterdir()) and not (out / docs_site.SITE_MARKER).exists():
        return (f"--out {out} is a non-empty directory that is not a refnode docs site; "
                "mkdocs would delete its contents. Pass a new or empty directory")
    return None


def kernel_environment(quick, figures):
    """The environment for mkdocs and the notebook kernels it starts."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)     # the kernels take Jupyter's inline backend
    env["NO_MKDOCS_2_WARNING"] = "1"    # material's banner about its successor
    env["REFNODE_FIGURES"] = str(figures)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(docs_site.REPO),
                                                      env.get("PYTHONPATH")]))
    if quick:
        env["REFNODE_QUICK"] = "1"
    else:
        env.pop("REFNODE_QUICK", None)
    return env


def build(out, quick=False, tutorials=None, strict=False):
    """Build the site into ``out``; returns (exit status, seconds, mkdocs' output)."""
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    # Marked first, so that a failed build can be rebuilt into the same directory.
    (out / docs_site.SITE_MARKER).write_text("built by refnode docs build\n")
    with tempfile.TemporaryDirectory(prefix="refnode-docs-src-") as work:
        work = Path(work)
        staging, figures = work / "src", work / "figures"
        staging.mkdir()
        figures.mkdir()
        config = docs_site.write_config(staging, out, tutorials=tutorials)
        command = [sys.executable, "-m", "mkdocs", "build", "--clean", "-f", str(config)]
        result = subprocess.run(command + (["--strict"] if strict else []), cwd=work,
                                env=kernel_environment(quick, figures), capture_output=True,
                                text=True)
    if not (out / docs_site.SITE_MARKER).exists():    # mkdocs' --clean removed it
        (out / docs_site.SITE_MARKER).write_text("built by refnode docs build\n")
    return result.returncode, time.perf_counter() - start, result.stdout + result.stderr


def check_arguments(args):
    """Refuse what would stop the build, before any work (an InputError: one line, exit 2)."""
    missing = missing_packages()
    if missing:
        raise InputError(f"missing {', '.join(missing)}; install the optional extra: "
                         "pip install -e '.[docs]'")
    if not (docs_site.REPO / "tutorials").is_dir():
        raise InputError(f"no tutorials/ next to the package ({docs_site.REPO}); the site is "
                         "built from a source checkout")
    if args.tutorials and not docs_site.tutorial_paths(names=args.tutorials):
        raise InputError(f"--tutorials: no tutorial starts with {' or '.join(args.tutorials)}; "
                         "`refnode tutorials` lists them")
    if args.out is not None:
        problem = output_problem(args.out.resolve())
        if problem:
            raise InputError(problem)
        check_output_dir(str(args.out), "--out")


def run(args):
    check_arguments(args)
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="refnode-docs-"))
    out = out.resolve()
    print(f"building the site into {out}{' (quick mode)' if args.quick else ''} ...", flush=True)
    status, seconds, log = build(out, quick=args.quick, tutorials=args.tutorials,
                                 strict=args.strict)
    if status != 0:
        print(log[-6000:])
        print(f"refnode docs: mkdocs failed (exit {status}) after {seconds:.0f} s; its output "
              "is above.")
        return 1
    warnings = [line for line in log.splitlines() if line.startswith("WARNING")]
    for line in warnings:
        print(line)
    print(f"built in {seconds:.0f} s ({len(warnings)} mkdocs warnings): open "
          f"{(out / 'index.html').as_uri()}")
    return 0
