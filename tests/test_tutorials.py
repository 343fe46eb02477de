"""Every tutorial runs top to bottom in quick mode and writes its figures.

Tutorials are discovered by glob (``tutorials/[0-9]*.py``), so a new one is tested as soon
as it exists. Each runs in a fresh interpreter, as a reader would run it, with
``REFNODE_QUICK=1`` (shrinks heavy cells), ``MPLBACKEND=Agg`` and ``REFNODE_FIGURES`` set
to a temporary directory.
"""

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
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


def tutorial(number):
    """The tutorial script whose name starts with ``number`` ("03")."""
    (path,) = [p for p in TUTORIALS if p.name.startswith(number + "_")]
    return path


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """``quick_run(path)`` -> (CompletedProcess, figure directory) of the tutorial at ``path``,
    run once per test session in a fresh interpreter (cwd and ``REFNODE_FIGURES`` a new
    temporary directory) and shared by the tests that read its output."""
    runs = {}

    def run(path):
        if path not in runs:
            workdir = tmp_path_factory.mktemp(path.stem)
            env = dict(os.environ, REFNODE_QUICK="1", MPLBACKEND="Agg",
                       REFNODE_FIGURES=str(workdir), PYTHONPATH=os.pathsep.join(
                           filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
            result = subprocess.run([sys.executable, str(path)], cwd=workdir, env=env,
                                    capture_output=True, text=True, timeout=TIMEOUT_S)
            assert result.returncode == 0, (f"{path.name} exited with {result.returncode}\n"
                                            f"--- stdout (tail)\n{result.stdout[-3000:]}\n"
                                            f"--- stderr (tail)\n{result.stderr[-3000:]}")
            runs[path] = result, workdir
        return runs[path]

    return run


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_runs_in_quick_mode_and_writes_figures(path, quick_run):
    _, workdir = quick_run(path)
    figures = [p for p in workdir.rglob("*") if p.suffix in FIGURE_SUFFIXES]
    assert figures, f"{path.name} wrote no figure into REFNODE_FIGURES={workdir}"
    assert all(p.stat().st_size > 0 for p in figures)


#: Tutorial 03's timing lines: medians over repeated rounds, and the ratio's range.
VJP_TIMING = re.compile(r"VJP / forward on this machine, (\d+) rounds of (\d+) calls: "
                        r"median (\S+)x, range (\S+)–(\S+)x")


def test_tutorial_03_times_the_vjp_over_repeated_rounds_and_promises_no_number(quick_run):
    result, _ = quick_run(tutorial("03"))
    found = VJP_TIMING.search(result.stdout)
    assert found, "tutorial 03 prints no VJP/forward timing line:\n" + result.stdout[-2000:]
    rounds, calls = int(found[1]), int(found[2])
    median, low, high = (float(x) for x in found.groups()[2:])
    assert rounds >= 5 and calls >= 10, "a timing shown to learners needs repeated rounds"
    assert all(np.isfinite([median, low, high])) and 0 < low <= median <= high
    text = tutorial("03").read_text(encoding="utf-8")
    assert "timeit" in text and "warm-up" in text
    assert not re.search(r"expect (about|around|roughly) \d", text), \
        "the text promises a timing the machine decides"


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
    temporary = tmp_path / "tmp"                 # the temporary directories go here, and go
    temporary.mkdir()                            # with tmp_path: none left in the system's
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    default = Path(figure_directory())
    assert default.is_dir() and not any(default.iterdir())
    assert default.resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert Path(figure_directory()) != default
    assert len(list(temporary.iterdir())) == 2


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


#: Tutorial 08's Monte Carlo check of Hutchinson's variance: measured ± standard error, formula.
HUTCHINSON = re.compile(r"(rademacher|gaussian): Monte Carlo +(\S+) ± (\S+) \((\d+) draws\); "
                        r"formula +([-+0-9.e]+)")


def test_tutorial_08_checks_the_general_hutchinson_variance_on_a_nonsymmetric_jacobian(
        quick_run):
    result, _ = quick_run(tutorial("08"))
    found = {m[1]: m for m in HUTCHINSON.finditer(result.stdout)}
    assert sorted(found) == ["gaussian", "rademacher"], result.stdout[:2000]
    for distribution, m in found.items():
        measured, standard_error, draws, formula = float(m[2]), float(m[3]), int(m[4]), float(m[5])
        assert draws >= 10_000 and 0 < standard_error < 0.05 * formula, distribution
        assert abs(measured - formula) < 5 * standard_error, distribution
    assert found["rademacher"][5] != found["gaussian"][5]     # the diagonal term matters


def test_hutchinson_variance_formula_of_the_tutorial():
    """The tutorial's formula: exact for Rademacher noise (enumerate all 2^D signs), and the
    symmetric-J special cases; J = [[0, 1], [0, 0]] has variance 1."""
    import itertools
    source = tutorial("08").read_text(encoding="utf-8")
    start = source.index("def hutchinson_variance")
    namespace = {"np": np}
    exec(source[start:source.index("\n\n\n", start)], namespace)
    variance = namespace["hutchinson_variance"]
    J = np.array([[0.5, 2.0, 0.0], [-1.0, 1.5, 0.3], [0.7, 0.0, -2.0]])
    signs = [np.array(s) for s in itertools.product((-1.0, 1.0), repeat=3)]
    assert np.isclose(variance(J, "rademacher"), np.var([e @ J @ e for e in signs]), rtol=1e-12)
    nilpotent = np.array([[0.0, 1.0], [0.0, 0.0]])
    assert variance(nilpotent, "gaussian") == variance(nilpotent, "rademacher") == 1.0
    S = J + J.T
    assert np.isclose(variance(S, "gaussian"), 2 * np.sum(S ** 2))
    assert np.isclose(variance(S, "rademacher"), 2 * (np.sum(S ** 2) - np.sum(np.diag(S) ** 2)))


#: Tutorial 04's check of ∂L/∂t0 with many observation times (no direct term at t0).
T0_CHECK = re.compile(r"∂L/∂t0 by central differences (\S+): the time channel (\S+); "
                      r"with g₀ᵀf\(t0, z0\) also subtracted at t0 it would be (\S+)")


def test_tutorial_04_explains_and_checks_why_t0_gets_no_direct_term(quick_run):
    result, _ = quick_run(tutorial("04"))
    found = T0_CHECK.search(result.stdout)
    assert found, result.stdout[-2000:]
    fd, channel, corrected = (float(x) for x in found.groups())
    assert abs(channel - fd) <= 1e-6 * max(1.0, abs(fd))
    assert abs(corrected - fd) > 1e-3                    # the correction would be wrong
    text = tutorial("04").read_text(encoding="utf-8")
    assert "Why not at t₀" in text and "adjoint_sweep" in text


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_says_where_its_figures_go_and_names_no_figures_path(path):
    """Figures go to $REFNODE_FIGURES or a temporary directory, never figures/ by default:
    the text must not name ``figures/NAME.png`` as the output, and must say where they go."""
    text = path.read_text(encoding="utf-8")
    named = re.findall(r"figures/[\w.-]+\.(?:png|pdf|svg)", text)
    assert not named, f"{path.name} names {named} as its output; figures go to $REFNODE_FIGURES"
    assert "`$REFNODE_FIGURES`" in text and "temporary directory" in text, \
        f"{path.name} does not say where its figures go"


def test_tutorial_01_convergence_plot_gives_every_method_its_own_style(monkeypatch, tmp_path):
    """Run tutorial 01 (quick) in this process, keep the figures it shows, and check that no
    two lines of the convergence plot share (colour, line style, marker)."""
    import runpy

    import matplotlib
    import matplotlib.pyplot as plt

    import refnode as rn
    import refnode.figures
    shown = {}
    monkeypatch.setattr(refnode.figures, "show", lambda fig, path, dpi=100:
                        shown.setdefault(os.path.basename(path), fig))
    monkeypatch.setenv("REFNODE_QUICK", "1")
    monkeypatch.setenv("REFNODE_FIGURES", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with matplotlib.rc_context(), contextlib.redirect_stdout(io.StringIO()):
        runpy.run_path(str(tutorial("01")), run_name="__main__")
    try:
        (ax,) = shown["convergence.png"].axes
        lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
        styles = [(matplotlib.colors.to_hex(line.get_color()), line.get_linestyle(),
                   line.get_marker()) for line in lines]
        assert len(lines) == len(rn.METHODS)
        repeated = {s for s in styles if styles.count(s) > 1}
        assert not repeated, f"methods drawn alike: {repeated}"
    finally:
        for fig in shown.values():
            plt.close(fig)
