"""Every tutorial, executed as a notebook in a real Jupyter kernel, shows its figures inline.

Each tutorial script is read with jupytext and run cell by cell by nbclient in an ipykernel
(quick mode, ``REFNODE_QUICK=1``). The kernel starts with ``MPLBACKEND`` removed from its
environment, as a Jupyter user's kernel would, so matplotlib takes the kernel's inline
backend. Every code cell that makes a figure must carry an ``image/png`` output.

One representative tutorial runs by default; the whole set is marked ``slow``. The tools
(nbclient, ipykernel, jupytext) come with the ``[test]`` extra, and with ``[notebooks]``;
without them these tests skip.
"""

import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.tutorial

nbclient = pytest.importorskip("nbclient")
jupytext = pytest.importorskip("jupytext")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9]*.py"))
#: The tutorial of the default run: one of the fastest (about 3 s of CPU in quick mode),
#: and the one whose figure (the adjoint along a trajectory) a learner most needs to see.
REPRESENTATIVE = "04_the_adjoint_method.py"
#: Seconds one cell may take in quick mode before the run is called hung.
CELL_TIMEOUT_S = 300
#: A call in a code cell that writes a figure: refnode.figures' show/show_file, a direct
#: savefig, or an experiment's plot_* function.
FIGURE_CALL = re.compile(r"\b(show|show_file|savefig|plot_\w+)\(")


def figure_cells(notebook):
    """The code cells whose source makes a figure."""
    return [cell for cell in notebook.cells
            if cell.cell_type == "code" and FIGURE_CALL.search(cell.source)]


def has_image(cell):
    return any("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def execute(path, workdir, monkeypatch):
    """The tutorial at ``path`` as an executed notebook (cwd ``workdir``, quick mode)."""
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("REFNODE_QUICK", "1")
    monkeypatch.setenv("REFNODE_FIGURES", str(workdir / "figures"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = jupytext.read(path, fmt="py:percent")
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return notebook


def check_figures_inline(path, workdir, monkeypatch):
    notebook = execute(path, workdir, monkeypatch)
    cells = figure_cells(notebook)
    assert cells, f"{path.name}: no cell makes a figure"
    missing = [cell.source.splitlines()[-1] for cell in cells if not has_image(cell)]
    assert not missing, (f"{path.name}: {len(missing)} of {len(cells)} figure cells show no "
                         f"image inline; their last lines: {missing}")


def test_figure_cells_are_recognised():
    notebook = jupytext.reads("# %%\nx = 1\n\n# %%\nshow(fig, path)\n\n# %%\n"
                              "experiment.plot_spirals(data, path)\n", fmt="py:percent")
    assert [c.source.split("(")[0] for c in figure_cells(notebook)] == \
        ["show", "experiment.plot_spirals"]


def test_representative_tutorial_shows_its_figures_inline(tmp_path, monkeypatch):
    check_figures_inline(ROOT / "tutorials" / REPRESENTATIVE, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_every_tutorial_shows_its_figures_inline(path, tmp_path, monkeypatch):
    check_figures_inline(path, tmp_path, monkeypatch)
