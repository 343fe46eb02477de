"""The course kit: the example assignment's grading tests fail on the blank template and
pass on the solution; the swap plugin puts a student's function in refnode's place; the
tutorials and bench commands list what exists; every test file carries a topic marker."""

import ast
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from refnode import cli
from refnode.commands import bench, tutorials

pytestmark = [pytest.mark.verify, pytest.mark.tutorial]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "course" / "example"
#: Markers that name a topic (everything registered except the cross-cutting ones).
NON_TOPIC = {"slow", "gpu"}


def pytest_in_subprocess(args, **env):
    """pytest on ``args`` in a new process, with a hypothesis database of its own (a failing
    grading run must not leave examples for this suite's runs to replay)."""
    with tempfile.TemporaryDirectory() as database:
        environment = dict(os.environ, MPLBACKEND="Agg", **env, HYPOTHESIS_STORAGE_DIRECTORY=database,
                           PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                              cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)


def test_grading_fails_on_the_blank_template():
    result = pytest_in_subprocess([str(EXAMPLE)])
    assert result.returncode == 1, result.stdout[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\b[1-9]\d* failed", summary) and "passed" not in summary, summary
    assert "NotImplementedError" in result.stdout


def test_grading_passes_on_the_solution():
    result = pytest_in_subprocess([str(EXAMPLE)], REFNODE_SUBMISSION="solution.py")
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"\b6 passed", result.stdout)


def test_swap_plugin_grades_with_refnodes_own_tests():
    target = "refnode.nn.dense:ConcatLinear.vjp"
    result = pytest_in_subprocess(
        ["-p", "course.swap", "--swap", f"{target}={EXAMPLE / 'solution.py'}:vjp",
         str(ROOT / "tests" / "test_nn_dense.py"), "-k", "ConcatLinear and not Squash"])
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"\b[1-9]\d* passed", result.stdout)


def test_swap_replaces_the_function_and_its_imported_copies(monkeypatch):
    sys.path.insert(0, str(ROOT))
    try:
        from course import swap as swap_plugin
    finally:
        sys.path.remove(str(ROOT))
    import refnode.discrete_adjoint  # noqa: F401  (imports rk_step by name)
    import refnode.rk_step
    importer = sys.modules["refnode.discrete_adjoint"]
    original = refnode.rk_step.rk_step
    assert importer.rk_step is original
    for module in [m for name, m in sys.modules.items() if name.startswith("refnode")]:
        if getattr(module, "rk_step", None) is original:    # every copy restored after the test
            monkeypatch.setattr(module, "rk_step", original)
    replacement = lambda *args: "student"                       # noqa: E731
    assert swap_plugin.swap("refnode.rk_step:rk_step", replacement) is original
    assert refnode.rk_step.rk_step is replacement and importer.rk_step is replacement
    blank = swap_plugin.load_from_file(EXAMPLE / "student.py", "vjp")
    with pytest.raises(NotImplementedError):
        blank(None, None, None, None)


def test_every_test_file_has_a_topic_marker():
    registered = set()
    text = (ROOT / "pyproject.toml").read_text()
    registered.update(re.findall(r'^\s*"(\w+):', text, flags=re.M))
    topics = registered - NON_TOPIC
    missing = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        marks = set(re.findall(r"pytest\.mark\.(\w+)", path.read_text(encoding="utf-8")))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        has_module_mark = any(isinstance(node, ast.Assign) and any(
            getattr(target, "id", None) == "pytestmark" for target in node.targets)
            for node in tree.body)
        if not (has_module_mark and marks & topics):
            missing.append(path.name)
    assert not missing, f"test files without a module-level topic marker: {missing}"


def test_tutorials_command_lists_every_tutorial(capsys):
    assert cli.main(["tutorials"]) == 0
    out = capsys.readouterr().out
    for path in tutorials.discover(tutorials.DEFAULT_DIR):
        assert path.name in out
    assert "00_notation.py" in out and "Notation" in out


def test_tutorials_to_notebooks(tmp_path, capsys):
    try:
        import jupytext  # noqa: F401
    except ImportError:
        assert cli.main(["tutorials", "--notebooks", str(tmp_path)]) == 2
        assert "pip install" in capsys.readouterr().err
        return
    assert cli.main(["tutorials", "--notebooks", str(tmp_path)]) == 0
    import json
    notebooks = sorted(tmp_path.glob("*.ipynb"))
    assert [p.stem for p in notebooks] == [p.stem for p in tutorials.discover(tutorials.DEFAULT_DIR)]
    cells = json.loads((tmp_path / "00_notation.ipynb").read_text())["cells"]
    assert {c["cell_type"] for c in cells} == {"markdown", "code"}


def test_bench_lists_and_chooses_quick_arguments(capsys, tmp_path):
    assert cli.main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for path in bench.discover(bench.DEFAULT_DIR):
        assert bench.short_name(path) in out
    (tmp_path / "bench_a.py").write_text('"""A."""\nimport argparse\np = argparse.ArgumentParser()\n'
                                         'p.add_argument("--quick", action="store_true")\n'
                                         'print("quick" if p.parse_args().quick else "full")\n')
    (tmp_path / "bench_b.py").write_text('"""B."""\nraise SystemExit(3)\n')
    assert bench.quick_arguments(tmp_path / "bench_a.py") == ["--quick"]
    assert bench.quick_arguments(tmp_path / "bench_b.py") == []
    assert cli.main(["bench", "--dir", str(tmp_path), "--only", "a"]) == 0
    assert cli.main(["bench", "--dir", str(tmp_path), "--only", "nope"]) == 2
    assert cli.main(["bench", "--dir", str(tmp_path)]) == 1          # bench_b fails


def test_help_of_the_new_commands(capsys):
    for name in ("verify", "bench", "tutorials"):
        with pytest.raises(SystemExit) as info:
            cli.main([name, "--help"])
        assert info.value.code == 0
        assert "usage: refnode " + name in capsys.readouterr().out
