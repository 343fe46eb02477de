"""Every tutorial, executed as a notebook in a real Jupyter kernel, shows its figures inline.

Each tutorial script is read with jupytext and run cell by cell by nbclient in an ipykernel
(quick mode, ``REFNODE_QUICK=1``). The kernel starts with ``MPLBACKEND`` removed from its
environment, as a Jupyter user's kernel would, so matplotlib takes the kernel's inline
backend. Every code cell that makes a figure must carry an ``image/png`` output.

One representative tutorial runs by default; the whole set is marked ``slow``. The
notebooks ``refnode tutorials --notebooks DIR`` writes are checked too: each names a kernel
Jupyter can find, and a bad DIR is one line and exit 2 before anything is written. The tools
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


# --- refnode tutorials --notebooks DIR ----------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Every tutorial converted by the command: {name: notebook JSON}."""
    import json

    from refnode.cli import main
    out = tmp_path_factory.mktemp("notebooks")
    assert main(["tutorials", "--notebooks", str(out)]) == 0
    return {path.stem: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(out.glob("*.ipynb"))}


def test_every_notebook_names_a_kernel_jupyter_can_find(converted):
    from jupyter_client.kernelspec import KernelSpecManager
    assert sorted(converted) == [path.stem for path in TUTORIALS]
    manager = KernelSpecManager()
    for name, notebook in converted.items():
        kernelspec = notebook["metadata"].get("kernelspec")
        assert kernelspec, f"{name}.ipynb names no kernel"
        assert kernelspec["name"] == "python3" and kernelspec["language"] == "python"
        assert kernelspec["display_name"], name
        assert manager.get_kernel_spec(kernelspec["name"]).language == "python"
        assert notebook["metadata"]["language_info"]["name"] == "python", name


def test_notebooks_are_written_readable_as_any_new_file(tmp_path):
    from refnode.cli import main
    from refnode.files import current_umask
    assert main(["tutorials", "--notebooks", str(tmp_path)]) == 0
    modes = {path.stat().st_mode & 0o777 for path in tmp_path.glob("*.ipynb")}
    assert modes == {0o666 & ~current_umask()}
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".ipynb"], "temporary files left"


def notebooks_error(argv, capsys):
    """(exit status, stderr lines) of ``refnode tutorials`` with ``argv``."""
    from refnode.cli import main
    status = main(["tutorials", *argv])
    return status, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("kind", ["file", "under a file"])
def test_notebooks_into_a_file_is_one_line_and_exit_2(kind, tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    target = a_file if kind == "file" else a_file / "sub"
    status, err = notebooks_error(["--notebooks", str(target)], capsys)
    assert status == 2
    assert len(err) == 1 and err[0].startswith("refnode tutorials: error: --notebooks")
    assert "is a file" in err[0]
    assert a_file.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_notebooks_into_an_uncreatable_directory_is_one_line_and_exit_2(capsys):
    status, err = notebooks_error(["--notebooks", "/proc/x"], capsys)
    assert status == 2
    assert len(err) == 1 and err[0].startswith("refnode tutorials: error: --notebooks /proc/x")
    assert "cannot create" in err[0]
