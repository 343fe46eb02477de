"""The documentation site builds offline and holds what a reader needs.

``refnode docs build --quick`` is run as a user runs it, into a temporary directory. The
default run builds the site with one tutorial (04) and checks the landing page, that
tutorial's figures, an API entry for every public function and class of the documented
modules, and that no page fetches anything from the network. The ``slow`` test builds the
site with every tutorial and checks each tutorial page's figures.

Needs the ``[docs]`` extra (mkdocs, material, mkdocs-jupyter, mkdocstrings); without it
these tests skip (with ``REFNODE_REQUIRE_DOCS=1``, as in CI, they fail instead).
"""

import importlib
import inspect
import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.cli

for _module in ("mkdocs", "material", "mkdocs_jupyter", "mkdocstrings_handlers.python",
                "nbconvert", "ipykernel", "jupytext"):
    if os.environ.get("REFNODE_REQUIRE_DOCS") == "1":   # CI: a missing tool fails, never skips
        importlib.import_module(_module)
    else:
        pytest.importorskip(_module, reason="the [docs] extra is not installed")

from refnode.cli import main  # noqa: E402
from refnode.commands import docs_site  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: A code cell that writes a figure (as in test_tutorial_notebooks.py).
FIGURE_CALL = re.compile(r"\b(show|show_file|savefig|plot_\w+)\(")
INLINE_IMAGE = re.compile(r'<img[^>]*src="data:image/png;base64,')
#: A tag that would load something from the network.
EXTERNAL_LOAD = re.compile(r'<(?:script|img|iframe)[^>]*\ssrc="(?:https?:)?//|'
                           r'<link[^>]*\shref="(?:https?:)?//[^"]*"[^>]*rel="stylesheet"|'
                           r'<link[^>]*rel="stylesheet"[^>]*\shref="(?:https?:)?//', re.I)


def build(out, *extra):
    status = main(["docs", "build", "--quick", "--out", str(out), *extra])
    assert status == 0, f"refnode docs build exited {status}"
    return out


def figure_cell_count(tutorial):
    cells = tutorial.read_text(encoding="utf-8").split("\n# %%")
    return sum(1 for cell in cells if not cell.startswith(" [markdown]")
               and FIGURE_CALL.search(cell))


def public_objects(identifier):
    """``{anchor id: object}`` that an API page for ``identifier`` must document: a module's
    own public functions and classes, or the single object a dotted name refers to."""
    try:
        module = importlib.import_module(identifier)
    except ModuleNotFoundError:
        module = None
    if module is None or not inspect.ismodule(module) or identifier == "refnode":
        return {identifier: None}
    return {f"{identifier}.{name}": obj for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and getattr(obj, "__module__", None) == identifier}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build(tmp_path_factory.mktemp("site"), "--tutorials", "04")


def test_landing_page_is_the_readme_with_working_links(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "is a reference implementation of" in index
    assert 'href="tutorials/04_the_adjoint_method.html"' in index
    assert 'href="docs/verify.html"' in index
    assert 'src="figures/demo_spiral.png"' in index and (site / "figures" / "demo_spiral.png").exists()


def test_tutorial_page_holds_its_figures(site):
    tutorial = ROOT / "tutorials" / "04_the_adjoint_method.py"
    page = (site / "tutorials" / "04_the_adjoint_method.html").read_text(encoding="utf-8")
    expected = figure_cell_count(tutorial)
    assert expected >= 1
    assert len(INLINE_IMAGE.findall(page)) >= expected


@pytest.mark.parametrize("stem,title,identifiers", docs_site.API_PAGES,
                         ids=[page[0] for page in docs_site.API_PAGES])
def test_every_public_function_has_an_api_entry(site, stem, title, identifiers):
    page = (site / "api" / f"{stem}.html").read_text(encoding="utf-8")
    wanted = {anchor for identifier in identifiers for anchor in public_objects(identifier)}
    missing = sorted(anchor for anchor in wanted if f'id="{anchor}"' not in page)
    assert not missing, f"api/{stem}.html has no entry for {missing}"
    assert ":func:<code>" not in page and ":mod:<code>" not in page and "::</p>" not in page


def test_public_api_names_are_documented():
    documented = {identifier for _, _, identifiers in docs_site.API_PAGES
                  for identifier in identifiers}
    assert {"refnode.odeint", "refnode.solve", "refnode.odeint_vjp", "refnode.adjoint",
            "refnode.testing", "refnode.verify", "refnode.nn.dense"} <= documented


def test_no_page_loads_anything_from_the_network(site):
    offenders = {}
    for page in site.rglob("*.html"):
        found = EXTERNAL_LOAD.findall(page.read_text(encoding="utf-8"))
        if found:
            offenders[str(page.relative_to(site))] = found[:2]
    assert not offenders


def test_build_refuses_a_directory_that_is_not_a_site(tmp_path, capsys):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    assert main(["docs", "build", "--quick", "--out", str(tmp_path)]) == 2
    assert "non-empty directory" in capsys.readouterr().out
    assert keep.read_text() == "mine"


def test_build_names_an_unknown_tutorial(tmp_path, capsys):
    assert main(["docs", "build", "--tutorials", "99", "--out", str(tmp_path / "s")]) == 2
    assert "no tutorial starts with 99" in capsys.readouterr().out


@pytest.mark.slow
def test_every_tutorial_page_holds_its_figures(tmp_path):
    site = build(tmp_path / "site")
    for tutorial in docs_site.tutorial_paths():
        page = (site / "tutorials" / f"{tutorial.stem}.html").read_text(encoding="utf-8")
        expected = figure_cell_count(tutorial)
        assert len(INLINE_IMAGE.findall(page)) >= expected >= 1, tutorial.name


def test_parameters_documented_together_get_one_row():
    from refnode.commands.docs_griffe import SEE_SIGNATURE, join_shared_entries
    import griffe
    entries = [griffe.DocstringParameter(n, description=d) for n, d in
               (("f", "As in solve."), ("z0", "As in solve."), ("rtol", "As in solve."),
                ("seminorm", "Adjoint only."), ("a", "Other."), ("b", "Other."))]
    rows = join_shared_entries(entries, has_default=lambda name: name == "rtol")
    assert [row.name for row in rows] == ["f, z0, rtol", "seminorm", "a, b"]
    assert rows[0].value == SEE_SIGNATURE and rows[2].value is None
