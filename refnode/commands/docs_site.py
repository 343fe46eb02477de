"""The documentation site: what goes in it, where, and the mkdocs configuration.

The site is built by mkdocs with the material theme. mkdocs-jupyter executes the
percent-format tutorials and renders them with their outputs; mkdocstrings (its Python
handler) writes the API reference from the NumPy-style docstrings. The sources stay where
they are in the repository; :func:`stage` copies them into a temporary directory with the
same relative layout (``README.md``, ``docs/``, ``tutorials/``, ``figures/``,
``benchmarks/README.md``, ``course/README.md``), so every relative link in the README and
in ``docs/*.md`` resolves on the site exactly as it does on a code host, and adds the API
pages and ``mkdocs.yml``.

The site works offline, from ``file://``: no web fonts, no CDN scripts, plain ``.html``
URLs. (Search needs the site served, ``python3 -m http.server -d DIR``: browsers do not run
its web worker from ``file://``, and material's offline plugin would fetch a shim from a
CDN.) Equations are written in Unicode (∂L/∂θ,
aᵀ ∂f/∂z, ‖·‖), so they render as text with no math engine; :func:`on_post_page` drops the
MathJax loader that nbconvert's template would fetch from a CDN.

This module is also the build's mkdocs hook file (``hooks:`` in the generated config), so it
imports nothing heavy at module level.
"""

import re
import shutil
from pathlib import Path

#: The repository root of a source checkout (the site is built from a checkout, not a wheel).
REPO = Path(__file__).resolve().parents[2]

#: Guides in ``docs/``, in the order the navigation lists them; any other ``docs/*.md`` file
#: follows them alphabetically, and a listed one that does not exist is left out.
GUIDE_ORDER = ("design", "verify", "conformance", "table1", "cnf", "latent", "course")

#: The package itself: its own page lists every public name of ``refnode`` (see
#: :func:`package_names`), except those of the exported modules that have a page below.
PACKAGE = "refnode"

#: API pages: (file stem, title, the modules or objects it documents by import path).
#: Every public name of these modules gets an entry; ``tests/test_docs_site.py`` derives the
#: names from the code and checks the built pages.
API_PAGES = (
    ("refnode", "The refnode package", (PACKAGE,)),
    ("methods", "refnode.methods", ("refnode.methods",)),
    ("tableau", "Butcher tableaux, order conditions", ("refnode.tableau",
                                                      "refnode.order_conditions")),
    ("steps", "One step: rk_step, error norm, dense output",
     ("refnode.rk_step", "refnode.step_size", "refnode.dense_output")),
    ("drivers", "Solve loops: drivers, independent steps", ("refnode.drivers",
                                                          "refnode.independent")),
    ("adjoint", "Gradients: adjoint, discrete adjoint",
     ("refnode.adjoint", "refnode.discrete_adjoint", "refnode.grid", "refnode.dynamics")),
    ("nn", "refnode.nn (layers and their VJPs)",
     ("refnode.nn.base", "refnode.nn.dense", "refnode.nn.activations", "refnode.nn.mlp",
      "refnode.nn.conv", "refnode.nn.norm", "refnode.nn.pool", "refnode.nn.losses")),
    ("models", "Models: ODE-Net, CNF, latent ODE",
     ("refnode.models.odenet", "refnode.models.classifier", "refnode.models.cnf",
      "refnode.models.planar_flow", "refnode.models.ffjord", "refnode.models.latent_ode",
      "refnode.models.rnn")),
    ("testing", "refnode.testing", ("refnode.testing",)),
    ("verify", "refnode.verify, refnode.reference", ("refnode.verify", "refnode.reference")),
    ("errors", "refnode.errors", ("refnode.errors",)),
    ("arrays", "Arrays and parameter trees", ("refnode.backend", "refnode.strict",
                                              "refnode.params")),
    ("figures", "refnode.figures", ("refnode.figures",)),
)

#: A MathJax loader from a CDN, as nbconvert's HTML template writes it.
CDN_MATHJAX = re.compile(r'<script src="https?://[^"]*mathjax[^"]*">\s*</script>', re.I)
#: A Sphinx cross-reference role as the docstrings write it (:func:`x`), once rendered.
SPHINX_ROLE = re.compile(r":(?:func|mod|class|meth|attr|data|exc|obj):(?=<code>)")
#: reStructuredText's "::" that introduces a literal block, once rendered ("methods::").
RST_LITERAL_MARK = re.compile(r"::</p>")
#: A markdown link's or image's target that is a local path (no scheme, no anchor-only link).
LOCAL_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s#]+)")
#: Marks a directory as a refnode docs site, so a rebuild may replace its contents.
SITE_MARKER = ".refnode-docs-site"


def tutorial_paths(repo=REPO, names=None):
    """The tutorial scripts to put on the site: all of them, or those whose name starts with
    one of ``names`` (``["04"]`` selects ``04_the_adjoint_method.py``)."""
    paths = sorted((repo / "tutorials").glob("[0-9][0-9]_*.py"))
    if names:
        paths = [p for p in paths if any(p.name.startswith(n) for n in names)]
    return paths


def guide_paths(repo=REPO):
    """``docs/*.md`` in navigation order (see :data:`GUIDE_ORDER`)."""
    found = {p.stem: p for p in (repo / "docs").glob("*.md")}
    ordered = [found.pop(stem) for stem in GUIDE_ORDER if stem in found]
    return ordered + [found[stem] for stem in sorted(found)]


def first_heading(path):
    """The first level-1 heading of a markdown file or a percent-format tutorial."""
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line[2:] if line.startswith("# #") and path.suffix == ".py" else line
        if text.startswith("# "):
            return text[2:].replace("`", "").strip()
    return path.stem


def documented_modules():
    """Every module path that :data:`API_PAGES` documents."""
    return {identifier for _, _, identifiers in API_PAGES for identifier in identifiers}


def package_names():
    """``{name: import path}`` for the package's own page: every public name of ``refnode``
    that is not a module, less those defined in a module with its own API page (the
    exceptions are documented in ``refnode.errors``, ``get_method`` in ``refnode.methods``).
    The path is ``refnode.name``, or where a submodule has the same name (``refnode.odeint``
    the function, ``refnode/odeint.py`` the module) the object's own path."""
    import importlib.util
    import inspect
    package = importlib.import_module(PACKAGE)
    names = {}
    for name, value in vars(package).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        home = getattr(value, "__module__", None)
        if home != PACKAGE and home in documented_modules():
            continue
        shadowed = importlib.util.find_spec(f"{PACKAGE}.{name}") is not None
        names[name] = f"{home}.{value.__qualname__}" if shadowed else f"{PACKAGE}.{name}"
    return names


def api_block(identifier, **options):
    """One mkdocstrings block: ``::: identifier`` with per-block options."""
    lines = [f"::: {identifier}\n"]
    if options:
        lines.append("    options:\n")
        lines.extend(f"      {key}: {str(value).lower() if isinstance(value, bool) else value}\n"
                     for key, value in options.items())
    return "".join(lines)


def api_page(title, identifiers):
    """The markdown of one API page: a heading and a mkdocstrings block per object; the
    package's page is its docstring and then each of :func:`package_names`."""
    blocks = [f"# {title}\n"]
    for identifier in identifiers:
        if identifier != PACKAGE:
            blocks.append(api_block(identifier))
            continue
        blocks.append(api_block(PACKAGE, members=False, show_source=False))
        blocks.extend(api_block(path, heading_level=3, toc_label=name)
                      for name, path in package_names().items())
    return "\n".join(blocks)


def copy(source, repo, staging):
    """Copy ``repo/source`` to the same relative path under ``staging``."""
    target = staging / source.relative_to(repo)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return target.relative_to(staging).as_posix()


def copy_linked_files(page, repo, staging):
    """Copy the local files (images, data) that the markdown file ``repo/page`` links to,
    so that the site holds whatever the page shows (``benchmarks/README.md`` shows the
    work-precision plots next to it, the README ``figures/``). Pages and tutorials are staged
    on their own; a link to a file that does not exist is left for mkdocs to report."""
    source = repo / page
    for target in LOCAL_LINK.findall(source.read_text(encoding="utf-8")):
        path = (source.parent / target).resolve()
        if path.suffix in (".md", ".py") or not path.is_file() or not path.is_relative_to(repo):
            continue
        copy(path, repo, staging)


def stage(staging, repo=REPO, tutorials=None):
    """Lay out the site's sources under ``staging``; returns the navigation.

    Every tutorial is on the site (the README links each one); those selected by
    ``tutorials`` are executed, see :func:`unexecuted_tutorials`.

    Parameters
    ----------
    staging : Path
        An empty directory (the mkdocs ``docs_dir``).
    repo : Path
        The source checkout.
    tutorials : list of str or None
        Name prefixes of the tutorials to execute (None: all).

    Returns
    -------
    list
        The mkdocs ``nav`` entries.
    """
    pages = [copy(repo / "README.md", repo, staging)]
    nav = [{"Home": pages[0]}]
    nav.append({"Tutorials": [{first_heading(p): copy(p, repo, staging)}
                              for p in tutorial_paths(repo)]})
    guides = [{first_heading(p): copy(p, repo, staging)} for p in guide_paths(repo)]
    nav.append({"Guides": guides})
    pages += [page for entry in guides for page in entry.values()]
    for name, source in (("Benchmarks", repo / "benchmarks" / "README.md"),
                         ("Course kit", repo / "course" / "README.md")):
        if source.exists():
            pages.append(copy(source, repo, staging))
            nav.append({name: pages[-1]})
    for page in pages:
        copy_linked_files(page, repo, staging)
    api = []
    for stem, title, identifiers in API_PAGES:
        target = staging / "api" / f"{stem}.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(api_page(title, identifiers), encoding="utf-8")
        api.append({title: f"api/{stem}.md"})
    nav.append({"API reference": api})
    return nav


def unexecuted_tutorials(repo=REPO, tutorials=None):
    """The staged paths of the tutorials that ``tutorials`` (name prefixes) leaves out:
    they are rendered without running (mkdocs-jupyter's ``execute_ignore``)."""
    chosen = set(tutorial_paths(repo, tutorials))
    return [f"tutorials/{p.name}" for p in tutorial_paths(repo) if p not in chosen]


def mkdocs_config(staging, site_dir, nav, repo=REPO, tutorials=None):
    """The mkdocs configuration (a dict, written as ``mkdocs.yml``); ``tutorials`` as in
    :func:`stage`."""
    return {
        "site_name": "refnode",
        "site_description": "A readable NumPy reference implementation of Neural ODEs",
        "docs_dir": str(staging),
        "site_dir": str(site_dir),
        "use_directory_urls": False,          # plain .html links: the site reads from file://
        "nav": nav,
        "hooks": [str(Path(__file__).resolve())],
        "theme": {"name": "material", "font": False,        # system fonts, nothing fetched
                  "features": ["navigation.sections", "navigation.top", "toc.integrate",
                               "content.code.copy"],
                  "palette": {"scheme": "default", "primary": "indigo"}},
        "markdown_extensions": ["tables", "admonition", "attr_list", "md_in_html",
                                {"toc": {"permalink": True}},
                                "pymdownx.superfences", "pymdownx.highlight"],
        "extra_css": ["refnode.css"],
        "plugins": [
            "search",
            {"mkdocs-jupyter": {"include": ["tutorials/*.py"], "execute": True,
                                "allow_errors": False, "include_source": True,
                                "execute_ignore": unexecuted_tutorials(repo, tutorials),
                                "kernel_name": "python3", "cache": False,
                                "ignore_h1_titles": False}},
            {"mkdocstrings": {"default_handler": "python", "handlers": {"python": {
                "paths": [str(repo)],
                "options": {"extensions": [str(Path(__file__).with_name("docs_griffe.py"))
                                           + ":DocstringTables"],
                            "docstring_style": "numpy", "show_source": True,
                            "show_root_heading": True, "show_root_full_path": True,
                            "heading_level": 2, "members_order": "source",
                            "show_if_no_docstring": True, "filters": ["!^_"],
                            "separate_signature": True, "line_length": 80,
                            "show_signature_annotations": True,
                            "docstring_section_style": "table"}}}}},
        ],
    }


#: Extra styles: a wider page (code and tutorials' printed tables are up to ~100 characters
#: wide), equations in code blocks and wide tables scroll instead of wrapping.
SITE_CSS = """\
.md-grid { max-width: 80rem; }
.md-typeset pre > code { white-space: pre; }
.md-typeset table:not([class]) { display: block; overflow-x: auto; }
.jupyter-wrapper .jp-OutputArea-output.jp-RenderedText pre { white-space: pre !important;
  word-break: normal !important; overflow-wrap: normal !important; overflow-x: auto; }
.jupyter-wrapper .jp-OutputArea-output img { max-width: 100%; height: auto; }
"""


def write_config(staging, site_dir, repo=REPO, tutorials=None):
    """Stage the sources and write ``staging/../mkdocs.yml``; returns the config path."""
    import yaml
    nav = stage(staging, repo, tutorials)
    (staging / "refnode.css").write_text(SITE_CSS, encoding="utf-8")
    path = staging.parent / "mkdocs.yml"
    config = mkdocs_config(staging, site_dir, nav, repo, tutorials)
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return path


def on_post_page(output, page, config):
    """mkdocs hook: drop the CDN MathJax loader (the site's equations are Unicode text), and
    the reStructuredText marks that mkdocstrings leaves in docstrings (``:func:`` before
    code, ``::`` before a literal block)."""
    output = CDN_MATHJAX.sub("", output)
    return RST_LITERAL_MARK.sub(":</p>", SPHINX_ROLE.sub("", output))
