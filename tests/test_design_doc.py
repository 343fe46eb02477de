"""docs/design.md stays true: its paths exist, its tolerance tables match the tests, its
worked example reproduces, and nothing in the repository cites a design document it lacks.
"""

import ast
import importlib
import re
from pathlib import Path

import numpy as np
import pytest

import refnode as rn

pytestmark = pytest.mark.adjoint

ROOT = Path(__file__).resolve().parent.parent
DOC_NAME = "design" + ".md"           # spelled apart, so this file does not cite itself
UPPER_NAME = "DESIGN" + ".md"
DESIGN = ROOT / "docs" / DOC_NAME
#: Top-level folders (and files) whose paths the design names, and which may cite it.
TOP = ("refnode", "tests", "tutorials", "docs", "benchmarks", "course", "examples")
CITING = TOP[:-1] + ("examples", "README.md")
#: The worked example's values are stated to 10 decimals: agreement to one unit of the last.
STATED_DIGITS_ATOL = 1e-10


def text():
    return DESIGN.read_text(encoding="utf-8")


def section(title, level="###"):
    """The text of the Markdown section ``title``, up to the next heading of its level."""
    body = text()
    start = body.index(f"{level} {title}\n")
    rest = body[start + len(title) + len(level) + 2:]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, flags=re.M)
    return rest[:end.start()] if end else rest


def table_rows(markdown):
    """The body rows of the first Markdown table in ``markdown``, as lists of cells."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_design_doc_exists_with_its_four_parts():
    body = text()
    for heading in ("## 1. Architecture", "## 2. Conventions", "## 3. Tolerances in the tests",
                    "## 4. Recipes", "### When the discrete gradient is a gradient of the ODE"):
        assert heading in body, heading


def test_the_gradient_docstring_points_to_an_existing_section():
    docstring = " ".join(rn.gradients.__doc__.split()).lower()
    assert "docs/design.md" in docstring
    assert "when the discrete gradient is a gradient of the ode" in docstring
    section("When the discrete gradient is a gradient of the ODE")


def test_every_path_named_exists():
    pattern = rf"(?<![\w/.])((?:{'|'.join(TOP)})/[\w./-]*[\w/])"
    paths = set(re.findall(pattern, text()))
    assert len(paths) > 20
    missing = [p for p in sorted(paths) if not (ROOT / p).exists()]
    assert not missing, missing


def test_every_cited_test_exists():
    cited = set(re.findall(r"(tests/\w+\.py)::(\w+)", text()))
    assert cited
    for path, name in sorted(cited):
        defined = {node.name for node in ast.parse((ROOT / path).read_text()).body
                   if isinstance(node, ast.FunctionDef)}
        assert name in defined, f"{path}::{name}"


def test_every_dotted_name_resolves():
    """``refnode.x.y`` names in the text: the longest importable module, then attributes."""
    names = set(re.findall(r"\brefnode(?:\.\w+)+", text()))
    assert names
    for name in sorted(names):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
                break
            except ModuleNotFoundError:
                continue
        for attribute in parts[cut:]:
            assert hasattr(obj, attribute), name
            obj = getattr(obj, attribute)


# ----------------------------------------------------------------- the tolerance tables

def module_constants(path):
    """{NAME: value} for the module-level assignments of a test file that evaluate alone."""
    namespace, constants = {"np": np, "dict": dict}, {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not isinstance(node, ast.Assign):
            continue
        try:
            value = eval(compile(ast.Expression(node.value), str(path), "eval"), namespace)
        except Exception:            # an expression that needs the test's imports
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                namespace[target.id] = constants[target.id] = value
            elif isinstance(target, ast.Tuple):
                for element, item in zip(target.elts, value):
                    namespace[element.id] = constants[element.id] = item
    return constants


def lookup(constants, reference):
    """``NAME``, ``NAME["key"]`` or ``NAME[dtype_name]`` from a test file's constants."""
    match = re.fullmatch(r"(\w+)(?:\[(.+)\])?", reference)
    value = constants[match.group(1)]
    if match.group(2) is None:
        return value
    key = match.group(2)
    if key.startswith(('"', "'")):
        return value[ast.literal_eval(key)]
    return next(v for k, v in value.items() if getattr(k, "__name__", k) == key)


def same(actual, stated):
    if isinstance(stated, dict):
        return set(actual) == set(stated) and all(same(actual[k], stated[k]) for k in stated)
    return np.shape(actual) == np.shape(stated) and np.allclose(actual, stated, rtol=1e-12, atol=0)


def named_rows():
    return table_rows(section("Named tolerance constants"))


def test_named_tolerance_table_covers_the_gradient_tests():
    files = {row[0] for row in named_rows()}
    for name in ("test_nn_conv.py", "test_nn_dense.py", "test_discrete_adjoint.py",
                 "test_adjoint.py", "test_exact_gradients.py", "test_independent.py",
                 "test_one_core.py", "test_cnf.py"):
        assert f"tests/{name}" in files, name
    assert all(len(row) == 4 and row[3] for row in named_rows())


@pytest.mark.parametrize("row", named_rows(), ids=lambda row: f"{row[0]}:{row[1]}")
def test_named_tolerance_has_the_stated_value(row):
    path, reference, value, _ = row
    constants = module_constants(ROOT / path)
    assert same(lookup(constants, reference), ast.literal_eval(value)), (path, reference)


def inline_rows():
    return table_rows(section("Tolerances written inline"))


@pytest.mark.parametrize("row", inline_rows(), ids=lambda row: f"{row[0]}:{row[1]}")
def test_inline_tolerance_appears_in_the_named_test(row):
    path, name, value, reason = row
    source = (ROOT / path).read_text(encoding="utf-8")
    lines = source.splitlines()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            body = "\n".join(lines[first - 1:node.end_lineno])
            assert re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", body), (path, name, value)
            assert reason
            return
    pytest.fail(f"{path} defines no function {name}")


# ------------------------------------------------------------ the worked example's numbers

def worked_example_rows():
    body = section("When the discrete gradient is a gradient of the ODE")
    return [row for row in table_rows(body) if row[0].startswith("1e-")]


def test_worked_example_reproduces_as_stated():
    """A = [[1, 0], [0, 0]], z0 = [0, 1], t = [0, 3], L = z_1(3): the discrete gradient
    misses e³ by ~0.028 at every rtol; the adjoint's error falls with rtol."""
    A = np.array([[1.0, 0.0], [0.0, 0.0]])
    f = lambda t, z, A: z @ A.T                      # noqa: E731
    z0, t = np.array([0.0, 1.0]), np.array([0.0, 3.0])
    g = np.zeros((2, 2))
    g[-1, 0] = 1.0
    rows = worked_example_rows()
    assert len(rows) == 4
    for rtol, discrete, _, adjoint, _ in rows:
        rtol = float(rtol)
        for gradient, stated in (("discrete", discrete), ("autograd", discrete),
                                 ("adjoint", adjoint)):
            _, vjp = rn.odeint_vjp(f, z0, t, A, rtol=rtol, atol=rtol * 1e-2, gradient=gradient)
            got = vjp(g)[0][0]
            assert got == pytest.approx(float(stated), rel=0, abs=STATED_DIGITS_ATOL), (rtol, gradient)
        assert abs(float(discrete) - np.exp(3.0)) > 0.02
        assert abs(float(adjoint) - np.exp(3.0)) < 100 * rtol * np.exp(3.0)


# ------------------------------------------------------------------------- citations

def citing_files():
    for top in CITING:
        path = ROOT / top
        files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for file in files:
            if file.is_file() and file.suffix in (".py", ".md", ".ipynb", ".txt", ".toml", ".cfg",
                                                  ".yml", ".yaml", ".json", ".rst"):
                yield file


def test_no_file_cites_a_design_document_outside_the_repository():
    """The design lives in docs/design.md: an upper-case name, or a bare one outside docs/,
    points at a file a user of the repository does not have."""
    offenders = []
    for file in citing_files():
        content = file.read_text(encoding="utf-8", errors="replace").replace(f"docs/{DOC_NAME}", "")
        in_docs = file.parent == ROOT / "docs"
        if UPPER_NAME in content or (not in_docs and DOC_NAME in content.lower()):
            offenders.append(str(file.relative_to(ROOT)))
    assert not offenders, offenders


# --------------------------------------------------------------- the layer table

PACKAGE = ROOT / "refnode"


def unit_of(module):
    """The table's name for a module: ``x.py`` at the top, ``pkg/`` for a subpackage."""
    parts = module.split(".")[1:]
    if not parts:
        return None                                   # the package's __init__: left out
    if len(parts) > 1 or (PACKAGE / parts[0]).is_dir():
        return parts[0] + "/"
    return parts[0] + ".py"


def import_units():
    """{unit: set of units it imports at module level}, from the code's own imports (ast)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if parts[-1] == "__init__" else name.rpartition(".")[0]
        unit = unit_of(name)
        if unit is None:
            continue
        deps = graph.setdefault(unit, set())
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = (package.split(".")[:len(package.split(".")) - node.level + 1]
                        if node.level else [])
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target.startswith("refnode."):
                    dep = unit_of(target)
                    if dep and dep != unit and ((PACKAGE / dep).exists()):
                        deps.add(dep)
    return graph


def stated_layers():
    """{unit: layer} from the table "Who imports whom"."""
    stated = {}
    for row in table_rows(section("Who imports whom")):
        for unit in row[1].split(","):
            stated[unit.strip(" `")] = int(row[0])
    return stated


def test_layer_table_matches_the_imports():
    """Each unit sits one layer above the highest layer it imports from: the table and the
    code's imports must say the same, so the document cannot drift."""
    graph, stated = import_units(), stated_layers()
    unknown = sorted(set(stated) - set(graph))
    assert not unknown, f"the layer table names {unknown}, which are not modules of refnode/"
    problems = []
    for unit in sorted(graph):
        below = [stated[d] for d in graph[unit] if d in stated]
        derived = 1 + max(below, default=-1)
        imports = ", ".join(sorted(graph[unit])) or "nothing"
        if unit not in stated:
            problems.append(f"refnode/{unit} is in no row: add `{unit}` to the row of layer "
                            f"{derived} (it imports {imports})")
        elif stated[unit] != derived:
            problems.append(f"refnode/{unit} is in the row of layer {stated[unit]} but imports "
                            f"{imports}: move `{unit}` to the row of layer {derived}")
    assert not problems, "docs/design.md, Who imports whom:\n" + "\n".join(problems)
