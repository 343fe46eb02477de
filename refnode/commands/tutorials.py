"""``refnode tutorials [--notebooks DIR]``: list the tutorials, or convert them to notebooks.

Tutorials are jupytext percent-format scripts ``tutorials/NN_name.py``. Without flags the
command lists them with the title of each (its first markdown heading). ``--notebooks
DIR`` writes ``DIR/NN_name.ipynb`` for every one with jupytext (the optional extra
``pip install refnode[notebooks]``). Each notebook names the ``python3`` kernel (the one
``ipykernel`` installs), so Jupyter opens it without asking for one; opened in Jupyter, each
tutorial shows its figures under the cell that makes them (:mod:`refnode.figures`).
"""

from pathlib import Path

from ..errors import InputError
from ..files import atomic_write
from ..experiments.common_cli import check_output_dir, path_object

HELP = "list the tutorials, or convert them to Jupyter notebooks with --notebooks DIR"

#: Where the tutorials live in a source checkout: next to the refnode package.
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "tutorials"

#: The kernel every notebook names: ipykernel's Python 3 kernel, under its standard name.
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
#: The language metadata Jupyter writes for that kernel (before any cell has run).
LANGUAGE_INFO = {"name": "python", "file_extension": ".py", "mimetype": "text/x-python",
                 "pygments_lexer": "ipython3", "nbconvert_exporter": "python",
                 "codemirror_mode": {"name": "ipython", "version": 3}}


def configure(parser):
    parser.add_argument("--notebooks", metavar="DIR", type=path_object, default=None,
                        help="write every tutorial as DIR/<name>.ipynb (needs jupytext)")
    parser.add_argument("--dir", metavar="DIR", type=path_object, default=DEFAULT_DIR,
                        help=f"directory of the tutorial scripts (default: {DEFAULT_DIR})")


def discover(directory):
    """``NN_name.py`` files in ``directory``, in order."""
    return sorted(Path(directory).glob("[0-9][0-9]_*.py"))


def title(path):
    """The first markdown heading of a tutorial (``# # 01 — ...`` -> ``01 — ...``)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# #"):
            return line.lstrip("# ").strip()
    return path.stem


def to_notebook(path):
    """The percent script at ``path`` as notebook text (.ipynb JSON) naming the python3 kernel."""
    import jupytext
    notebook = jupytext.read(path, fmt="py:percent")
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.metadata["language_info"] = dict(LANGUAGE_INFO)
    return jupytext.writes(notebook, fmt="ipynb")


def convert(paths, out):
    """Write each percent script as ``out/<name>.ipynb`` (atomically); returns the paths.

    Parameters
    ----------
    paths : list of Path
        Tutorial scripts, as from :func:`discover`.
    out : Path
        An existing, writable directory (checked by :func:`run`).
    """
    written = []
    for path in paths:
        target = out / (path.stem + ".ipynb")
        data = to_notebook(path).encode("utf-8")
        atomic_write(target, lambda file: file.write(data), "wb")
        written.append(target)
    return written


def run(args):
    paths = discover(args.dir)
    if not paths:
        raise InputError(f"--dir {args.dir}: no NN_name.py tutorials there; pass the "
                         "tutorials/ directory of a source checkout (tutorials ship with the "
                         "source tree, not the installed package)")
    if args.notebooks is None:
        for path in paths:
            print(f"{path.name:<42} {title(path)}")
        print(f"\nRun one: python {args.dir.name}/<name>.py   Notebooks: refnode tutorials "
              "--notebooks DIR")
        return 0
    try:
        import jupytext  # noqa: F401
    except ImportError:
        raise InputError("--notebooks needs jupytext, which is not installed: pip install "
                         "'refnode[notebooks]' (or pip install jupytext); the tutorials also "
                         "run as plain scripts") from None
    check_output_dir(str(args.notebooks), "--notebooks")
    for target in convert(paths, args.notebooks):
        print(f"wrote {target}")
    return 0
