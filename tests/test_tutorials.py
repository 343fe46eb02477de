"""Every tutorial runs top to bottom in quick mode and writes its figures.

Tutorials are discovered by glob (``tutorials/[0-9]*.py``), so a new one is tested as soon
as it exists. Each runs in a fresh interpreter, as a reader would run it, with
``REFNODE_QUICK=1`` (shrinks heavy cells), ``MPLBACKEND=Agg`` and ``REFNODE_FIGURES`` set
to a temporary directory.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.tutorial

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9]*.py"))
#: A tutorial in quick mode should finish well within this (seconds).
TIMEOUT_S = 300
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def jupytext_problems(text):
    """Why ``text`` is not a jupytext percent-format script ([] if it is).

    The format: an optional YAML header between ``# ---`` lines, then cells, each opened by
    a line ``# %%`` (optionally ``# %% [markdown]``); nothing but the header may come
    before the first cell marker.
    """
    lines = text.splitlines()
    i = 0
    if lines and lines[0].strip() == "# ---":
        end = next((k for k in range(1, len(lines)) if lines[k].strip() == "# ---"), None)
        if end is None:
            return ["the '# ---' header is never closed"]
        i = end + 1
    rest = [line for line in lines[i:] if line.strip()]
    if not rest or not rest[0].startswith("# %%"):
        return [f"the first cell must start with '# %%', found {rest[0] if rest else 'nothing'!r}"]
    problems = []
    for number, line in enumerate(lines, start=1):
        if line.startswith("# %%"):
            tail = line[4:]
            if tail and not tail.startswith(" "):
                problems.append(f"line {number}: cell marker {line!r} needs a space after '# %%'")
            if "[markdown]" in tail:
                cell_end = next((k for k in range(number, len(lines)) if lines[k].startswith("# %%")),
                                len(lines))
                body = [ln for ln in lines[number:cell_end] if ln.strip()]
                if any(not ln.startswith("#") for ln in body):
                    problems.append(f"line {number}: a markdown cell holds a line of code")
    return problems


def test_tutorials_are_discovered():
    assert len(TUTORIALS) >= 2, f"expected tutorials in {ROOT / 'tutorials'}, found {TUTORIALS}"


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_is_jupytext_percent_format(path):
    problems = jupytext_problems(path.read_text(encoding="utf-8"))
    assert not problems, f"{path.name}: " + "; ".join(problems)


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_runs_in_quick_mode_and_writes_figures(path, tmp_path):
    env = dict(os.environ, REFNODE_QUICK="1", MPLBACKEND="Agg", REFNODE_FIGURES=str(tmp_path),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, (f"{path.name} exited with {result.returncode}\n"
                                    f"--- stdout (tail)\n{result.stdout[-3000:]}\n"
                                    f"--- stderr (tail)\n{result.stderr[-3000:]}")
    figures = [p for p in tmp_path.rglob("*") if p.suffix in FIGURE_SUFFIXES]
    assert figures, f"{path.name} wrote no figure into REFNODE_FIGURES={tmp_path}"
    assert all(p.stat().st_size > 0 for p in figures)


def test_format_check_rejects_code_before_the_first_cell():
    assert jupytext_problems("import numpy\n# %%\nx = 1\n")
    assert jupytext_problems("# %% [markdown]\n# text\nx = 1\n")
    assert jupytext_problems("# ---\n# jupyter: {}\n")
    assert not jupytext_problems("# ---\n# jupyter: {}\n# ---\n\n# %% [markdown]\n# hi\n\n# %%\nx = 1\n")


#: TeX math that would need MathJax or KaTeX: $$…$$, \(…\), or $…$ holding a \command.
#: The documentation site ships no math engine (it builds offline), so equations are Unicode.
TEX_MATH = re.compile(r"\$\$|\\\(|\$[^$`\n]*\\[A-Za-z]+[^$`\n]*\$")


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_forces_no_backend_and_never_defaults_to_committed_figures(path):
    text = path.read_text(encoding="utf-8")
    assert "matplotlib.use(" not in text, f"{path.name} forces a matplotlib backend"
    assert not re.search(r"""REFNODE_FIGURES["']\s*,\s*["']figures""", text), \
        f"{path.name} writes to figures/ when REFNODE_FIGURES is unset"
    assert "figure_directory()" in text, f"{path.name} does not take its directory from " \
        "refnode.figures.figure_directory"


@pytest.mark.parametrize("path", TUTORIALS + sorted((ROOT / "docs").glob("*.md")),
                         ids=lambda p: p.name)
def test_equations_are_unicode_not_tex(path):
    found = TEX_MATH.findall(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name} writes TeX math {found[:3]}; the site renders Unicode only"


def test_tex_check_recognises_tex():
    assert TEX_MATH.search(r"the flow $\partial L / \partial z$")
    assert TEX_MATH.search("$$a = b$$")
    assert not TEX_MATH.search("figures go to `$REFNODE_FIGURES`; ∂L/∂z = aᵀ")


def test_figure_directory_is_the_environment_variable_or_a_new_temporary_directory(
        tmp_path, monkeypatch):
    from refnode.figures import figure_directory
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))   # the new directories go here
    chosen = tmp_path / "chosen"
    monkeypatch.setenv("REFNODE_FIGURES", str(chosen))
    assert figure_directory() == str(chosen) and chosen.is_dir()
    monkeypatch.delenv("REFNODE_FIGURES")
    default = Path(figure_directory())
    assert default.is_dir() and not any(default.iterdir())
    assert default.resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert Path(figure_directory()) != default


def test_show_saves_the_figure_and_prints_its_path_outside_jupyter(tmp_path, capsys):
    import matplotlib.pyplot as plt
    from refnode.figures import show
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "line.png"
    show(fig, str(path))
    assert path.read_bytes().startswith(b"\x89PNG")
    assert not plt.fignum_exists(fig.number)
    assert f"wrote {path}" in capsys.readouterr().out
