"""The documentation site builds offline, without a warning, and holds what a reader needs.

``refnode docs build --quick --strict`` is run as a user runs it, into a temporary
directory: strict mode makes any mkdocs warning (a broken link, a missing image, a docstring
griffe cannot parse) fail the build. The default run executes one tutorial (04; the others
are rendered without running) and checks the landing page, that tutorial's figures, every
linked image, an API entry for every public name of ``refnode`` and of each documented
module (derived from the code), docstring types shown as written, and that no page fetches
anything from the network. The ``slow`` test builds the site with every tutorial executed
and checks each tutorial page's figures.

Needs the ``[docs]`` extra (mkdocs, material, mkdocs-jupyter, mkdocstrings). Without it
these tests skip, unless ``REFNODE_REQUIRE_DOCS=1`` is set (CI sets it after installing the
extra): then they fail, so a broken install cannot pass as a skip.
"""

import ast
import html
import importlib
import inspect
import logging
import os
import pkgutil
import re
from pathlib import Path

import pytest

from refnode.cli import main
from refnode.commands import docs, docs_site

MISSING = docs.missing_packages()
pytestmark = [pytest.mark.cli, pytest.mark.usefixtures("docs_tools")]

ROOT = Path(__file__).resolve().parent.parent
#: A code cell that writes a figure (as in test_tutorial_notebooks.py).
FIGURE_CALL = re.compile(r"\b(show|show_file|savefig|plot_\w+)\(")
INLINE_IMAGE = re.compile(r'<img[^>]*src="data:image/png;base64,')
IMAGE_SOURCE = re.compile(r'<img[^>]*\ssrc="([^"]+)"')
ANCHOR = re.compile(r'\sid="([^"]+)"')
#: A tutorial's executed output cell, as nbconvert renders it.
OUTPUT_CELL = re.compile(r'class="[^"]*jp-OutputArea-output')
#: A tag that would load something from the network.
EXTERNAL_LOAD = re.compile(r'<(?:script|img|iframe)[^>]*\ssrc="(?:https?:)?//|'
                           r'<link[^>]*\shref="(?:https?:)?//[^"]*"[^>]*rel="stylesheet"|'
                           r'<link[^>]*rel="stylesheet"[^>]*\shref="(?:https?:)?//', re.I)


@pytest.fixture(scope="module")
def docs_tools():
    """Skip without the [docs] extra; fail instead under REFNODE_REQUIRE_DOCS=1."""
    if not MISSING:
        return
    message = f"the [docs] extra is not installed (missing {', '.join(MISSING)})"
    if os.environ.get("REFNODE_REQUIRE_DOCS") == "1":
        pytest.fail(f"{message}, and REFNODE_REQUIRE_DOCS=1 requires it: "
                    "pip install -e '.[docs]'", pytrace=False)
    pytest.skip(message)


def build(out, *extra):
    status = main(["docs", "build", "--quick", "--strict", "--out", str(out), *extra])
    assert status == 0, f"refnode docs build --strict exited {status} (its output is above)"
    return out


def figure_cell_count(tutorial):
    cells = tutorial.read_text(encoding="utf-8").split("\n# %%")
    return sum(1 for cell in cells if not cell.startswith(" [markdown]")
               and FIGURE_CALL.search(cell))


def canonical_path(value):
    """Where an object is defined (``refnode.options.Adjoint``), or None for data."""
    module, name = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    return f"{module}.{name}" if module and name else None


def public_names(module_path):
    """``{path: object}`` of what a documented module must document, derived from the code:
    its own public functions and classes, and whatever its ``__all__`` exports. For the
    package ``refnode``: every public name that is not a module (``rn.Adjoint``,
    ``rn.StepControl``, ``rn.METHODS``, the exceptions, ...)."""
    module = importlib.import_module(module_path)
    exported = set(getattr(module, "__all__", ()))
    names = {}
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        own = ((inspect.isfunction(value) or inspect.isclass(value))
               and value.__module__ == module_path)
        if own or name in exported or module_path == docs_site.PACKAGE:
            names[f"{module_path}.{name}"] = value
    return names


def exported_modules():
    """The submodules ``refnode/__init__.py`` imports by name (``from . import nn``)."""
    tree = ast.parse((ROOT / "refnode" / "__init__.py").read_text(encoding="utf-8"))
    return {f"refnode.{alias.name}" for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None
            for alias in node.names}


def page_text(path):
    """A built page as plain text (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def site(docs_tools, tmp_path_factory):
    return build(tmp_path_factory.mktemp("site"), "--tutorials", "04")


@pytest.fixture(scope="module")
def api_anchors(site):
    return {anchor for page in (site / "api").glob("*.html")
            for anchor in ANCHOR.findall(page.read_text(encoding="utf-8"))}


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


def test_site_builds_strictly_with_one_tutorial_executed(site):
    executed = (site / "tutorials" / "04_the_adjoint_method.html").read_text(encoding="utf-8")
    shown = (site / "tutorials" / "00_notation.html").read_text(encoding="utf-8")
    assert OUTPUT_CELL.search(executed)
    assert not OUTPUT_CELL.search(shown)     # rendered, not run: README's links all resolve


def test_strict_flag_reaches_mkdocs(tmp_path, monkeypatch):
    commands = []

    def record(command, **kwargs):
        commands.append(command)
        return docs.subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(docs.subprocess, "run", record)
    docs.build(tmp_path / "strict", strict=True)
    docs.build(tmp_path / "lenient")
    assert "--strict" in commands[0] and "--strict" not in commands[1]


def test_every_linked_image_is_on_the_site(site):
    missing = {}
    for page in site.rglob("*.html"):
        sources = IMAGE_SOURCE.findall(page.read_text(encoding="utf-8"))
        absent = [src for src in sources if not src.startswith(("data:", "http:", "https:"))
                  and not (page.parent / src).is_file()]
        if absent:
            missing[str(page.relative_to(site))] = absent
    assert (site / "benchmarks" / "workprecision_forward.png").is_file()
    assert (site / "benchmarks" / "workprecision_gradients.png").is_file()
    assert not missing


@pytest.mark.parametrize("module_path", sorted(docs_site.documented_modules()))
def test_every_public_name_has_an_api_entry(api_anchors, module_path):
    """Derived from the code, so a new public name cannot be forgotten: each has an entry
    under its public path (``refnode.Adjoint``) or where it is defined."""
    missing = sorted(path for path, value in public_names(module_path).items()
                     if path not in api_anchors and canonical_path(value) not in api_anchors)
    assert not missing, f"no API entry for {missing}"


def submodules(package):
    return {f"{package}.{info.name}" for info in
            pkgutil.iter_modules(importlib.import_module(package).__path__)}


def test_documented_modules_cover_the_package_and_its_subpackages():
    """Each module the package exports has a page, or (``refnode.nn``) each of its
    submodules has; a package documented module by module has every module documented."""
    documented = docs_site.documented_modules()
    for module in exported_modules():
        assert module in documented or submodules(module) <= documented, module
    assert {"refnode.tableau", "refnode.rk_step", "refnode.models.cnf",
            "refnode.models.latent_ode", "refnode.nn.dense"} <= documented
    for package in {path.rpartition(".")[0] for path in documented} - documented - {"", "refnode"}:
        missing = submodules(package) - documented
        assert not missing, f"{sorted(missing)} of {package} have no API page"


def test_api_pages_show_docstring_types_as_written(site):
    text = page_text(site / "api" / "refnode.html")
    assert '{"adjoint", "discrete", "autograd"} or Adjoint' in text
    assert "array, shape (N, *z0.shape)" in text
    assert "(array, shape" not in text
    page = (site / "api" / "refnode.html").read_text(encoding="utf-8")
    assert 'id="refnode.Adjoint"' in page and 'id="refnode.StepControl"' in page


def test_griffe_parses_every_docstring_without_warnings():
    import griffe
    from refnode.commands.docs_griffe import DocstringTables

    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("griffe")
    logger.addHandler(handler)
    try:
        package = griffe.load("refnode", search_paths=[str(ROOT)], docstring_parser="numpy",
                              extensions=griffe.load_extensions(DocstringTables()))
        objects = [package]
        while objects:
            obj = objects.pop()
            if obj.docstring is not None:
                obj.docstring.parsed
            objects.extend(member for member in obj.members.values() if not member.is_alias)
    finally:
        logger.removeHandler(handler)
    assert not messages


def test_docstring_types_are_kept_as_written():
    import griffe
    from refnode.commands.docs_griffe import DocstringTables

    code = (
        'def f(z0, gradient="adjoint", n=None):\n'
        '    """Solve.\n\n    Parameters\n    ----------\n'
        '    z0 : array, shape (D,) or (B, D)\n        Start.\n'
        '    gradient : {"adjoint", "discrete"} or Adjoint\n        How.\n'
        '    n : int, optional\n        Count.\n\n'
        '    Returns\n    -------\n    z : array, shape (N, *z0.shape)\n    Solution\n'
        '        The rest.\n    """\n')
    with griffe.temporary_pypackage("written", {"types.py": code}) as package:
        module = griffe.load("written.types", search_paths=[package.tmpdir],
                             docstring_parser="numpy",
                             extensions=griffe.load_extensions(DocstringTables()))
        parameters, returns = [section.value for section in module["f"].docstring.parsed[1:]]
    assert [p.annotation for p in parameters[:2]] == [
        "array, shape (D,) or (B, D)", '{"adjoint", "discrete"} or Adjoint']
    assert str(parameters[2].annotation) == "int"      # a plain name stays a linked name
    assert returns[0].annotation == "array, shape (N, *z0.shape)"
    assert not isinstance(returns[1].annotation, str)


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
    assert "non-empty directory" in capsys.readouterr().err
    assert keep.read_text() == "mine"


def test_build_names_an_unknown_tutorial(tmp_path, capsys):
    assert main(["docs", "build", "--tutorials", "99", "--out", str(tmp_path / "s")]) == 2
    assert "no tutorial starts with 99" in capsys.readouterr().err


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
