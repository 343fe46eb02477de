"""``refnode tutorials [--notebooks DIR]``: list the tutorials, or convert them to notebooks.

Tutorials are jupytext percent-format scripts ``tutorials/NN_name.py``. Without flags the
command lists them with the title of each (its first markdown heading). ``--notebooks
DIR`` writes ``DIR/NN_name.ipynb`` for every one with jupytext (the optional extra
``pip install refnode[notebooks]``). Opened in Jupyter, each tutorial shows its figures under
the cell that makes them (:mod:`refnode.figures`).
"""

from pathlib import Path

HELP = "list the tutorials, or convert them to Jupyter notebooks with --notebooks DIR"

#: Where the tutorials live in a source checkout: next to the refnode package.
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "tutorials"


def configure(parser):
    parser.add_argument("--notebooks", metavar="DIR", type=Path, default=None,
                        help="write every tutorial as DIR/<name>.ipynb (needs jupytext)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
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


def convert(paths, out):
    """Write each percent script as an .ipynb in ``out``; returns the paths written."""
    import jupytext
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        notebook = jupytext.read(path, fmt="py:percent")
        target = out / (path.stem + ".ipynb")
        jupytext.write(notebook, target, fmt="ipynb")
        written.append(target)
    return written


def run(args):
    paths = discover(args.dir)
    if not paths:
        print(f"refnode tutorials: no NN_name.py tutorials in {args.dir}; pass --dir "
              "(tutorials ship with the source tree, not the installed package).")
        return 2
    if args.notebooks is None:
        for path in paths:
            print(f"{path.name:<42} {title(path)}")
        print(f"\nRun one: python {args.dir.name}/<name>.py   Notebooks: refnode tutorials "
              "--notebooks DIR")
        return 0
    try:
        import jupytext  # noqa: F401
    except ImportError:
        print("refnode tutorials: --notebooks needs jupytext, which is not installed.\n"
              "Install the optional extra:  pip install 'refnode[notebooks]'  "
              "(or pip install jupytext).\nThe tutorials also run as plain scripts.")
        return 2
    for target in convert(paths, args.notebooks):
        print(f"wrote {target}")
    return 0
