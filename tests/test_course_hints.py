"""The grader's hints (issue: first contact with the course kit): a bad --swap is one line,
a wrong VJP shows its hint first, a missing column is called a missing column, and an
exception inside a student's VJP is reported with its line, not as a signature problem."""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from refnode.dynamics import check_vjp_output
from refnode.errors import InputError, describe_call_error, shape_hint
from refnode.nn import ConcatLinear, NetworkDynamics, Sequential, Tanh
from refnode.testing import check_vjp

pytestmark = pytest.mark.vjp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from course import swap as swap_plugin  # noqa: E402

sys.path.remove(str(ROOT))


def concat_linear_check(vjp):
    """check_vjp of ConcatLinear with ``vjp(layer, theta, cache, g)`` in place of its VJP."""
    rng = np.random.default_rng(0)
    layer = ConcatLinear(3, 4)
    theta, x, t = layer.init(rng), rng.standard_normal((5, 3)), np.array(0.7)
    fun = lambda x, theta, t: layer.forward(theta, t, x)[0]                        # noqa: E731
    pullback = lambda g, x, theta, t: vjp(layer, theta, layer.forward(theta, t, x)[1], g)  # noqa: E731
    check_vjp(fun, pullback, (x, theta, t), names=("x", "theta", "t"))


def without_time_column(self, theta, cache, g):
    x, t = cache
    W = theta["W"]
    return g @ W[:, :-1], {"W": g.T @ x, "b": g.sum(0)}, np.sum(g @ W[:, -1])


def not_implemented(self, theta, cache, g):
    raise NotImplementedError("implement the VJP")


def broadcast_error(self, theta, cache, g):
    x, t = cache
    return g + x, {"W": g.T @ x, "b": g.sum(0)}, 0.0


def wrong_arity(self, theta, g):
    return g, theta, 0.0


def test_a_missing_time_column_is_named_as_such():
    with pytest.raises(AssertionError) as info:
        concat_linear_check(without_time_column)
    message = str(info.value)
    assert "shape (4, 3)" in message and "missing 1 column" in message and "time column" in message
    assert "sum" not in message


@pytest.mark.parametrize("got, expected, words", [
    ((4, 3), (4, 4), "missing 1 column"), ((3, 4), (4, 4), "missing 1 row"),
    ((4, 6), (4, 4), "2 columns too many"), ((5, 4, 4), (4, 4), "sum over the batch"),
    ((2, 2), (4, 4), "")])
def test_shape_hint(got, expected, words):
    hint = shape_hint(got, expected)
    assert (words in hint) if words else hint == ""


def test_an_exception_inside_the_vjp_names_its_line_not_the_signature():
    line = not_implemented.__code__.co_firstlineno + 1
    with pytest.raises(AssertionError) as info:
        concat_linear_check(not_implemented)
    message = str(info.value)
    assert f"raised NotImplementedError at line {line} of {__file__}" in message
    assert "Check that" not in message
    with pytest.raises(AssertionError, match=r"raised ValueError at line \d+ .*could not be broadcast"):
        concat_linear_check(broadcast_error)


def test_a_wrong_signature_is_a_signature_problem():
    with pytest.raises(AssertionError, match="calling vjp.* raised TypeError.*Check that the VJP takes"):
        check_vjp(lambda x: 2 * x, lambda x: x, (np.ones(3),))


def test_the_dynamics_check_names_the_line_and_the_missing_column(monkeypatch):
    f = NetworkDynamics(Sequential(ConcatLinear(2, 3), Tanh(), ConcatLinear(3, 2)))
    theta = f.init(np.random.default_rng(0))
    z, a = np.ones((4, 2)), np.ones((4, 2))
    monkeypatch.setattr(ConcatLinear, "vjp", not_implemented)
    with pytest.raises(InputError, match=f"raised NotImplementedError at line "
                                         f"{not_implemented.__code__.co_firstlineno + 1}"):
        check_vjp_output(f, 0.5, z, theta, a)
    monkeypatch.setattr(ConcatLinear, "vjp", without_time_column)
    with pytest.raises(InputError, match="missing 1 column"):
        check_vjp_output(f, 0.5, z, theta, a)


def test_describe_call_error_without_a_frame_of_the_callee():
    try:
        wrong_arity(1, 2, 3, 4)
    except TypeError as err:
        assert describe_call_error(err, "vjp(...)", "it takes four").startswith("calling vjp(...) raised TypeError")


@pytest.mark.parametrize("spec, words", [
    ("refnode.nn.dense:ConcatLinear.vjp=student.py:vjp", "does not exist"),
    ("refnode.nn.dense:ConcatLinaer.vjp=course/example/solution.py:vjp", "has no attribute 'ConcatLinaer'"),
    ("refnode.nn.dens:ConcatLinear.vjp=course/example/solution.py:vjp", "cannot import 'refnode.nn.dens'"),
    ("refnode.nn.dense:ConcatLinear.vjp=course/example/solution.py:vjpp", "defines no 'vjpp'"),
    ("ConcatLinear.vjp", "expects TARGET=FILE:NAME")])
def test_swap_errors_are_usage_errors(spec, words, monkeypatch):
    monkeypatch.chdir(ROOT)
    import refnode.nn.dense
    monkeypatch.setattr(refnode.nn.dense.ConcatLinear, "vjp", refnode.nn.dense.ConcatLinear.vjp)
    with pytest.raises(pytest.UsageError, match=re.escape(words)):
        target, file, name = swap_plugin.parse(spec)
        swap_plugin.swap(target, swap_plugin.load_from_file(file, name))


def run_swap(student, *extra):
    """pytest with a student's VJP swapped in. Its hypothesis database is its own: the wrong
    VJP's failing examples must not be replayed by this suite's own runs of the same tests
    (older hypothesis releases then fail those with a data_too_large health check)."""
    with tempfile.TemporaryDirectory() as database:
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "-p", "course.swap",
                               "--swap", f"refnode.nn.dense:ConcatLinear.vjp={student}:vjp", *extra],
                              cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, HYPOTHESIS_STORAGE_DIRECTORY=database))


def test_a_missing_student_file_is_one_line_not_an_internal_error():
    result = run_swap("student.py", "tests/test_nn_dense.py")
    assert result.returncode == 4
    output = (result.stdout + result.stderr).strip()
    assert "INTERNALERROR" not in output and "Traceback" not in output
    assert output.splitlines() == [l for l in output.splitlines() if l.startswith("ERROR: --swap")], output


def test_a_wrong_vjp_shows_its_hint_first(tmp_path):
    student = tmp_path / "student.py"
    student.write_text("import numpy as np\n\n\n"
                       "def vjp(self, theta, cache, g):\n"
                       "    x, t = cache\n"
                       "    W = theta['W']\n"
                       "    xt = np.concatenate([x, np.full(x.shape[:-1] + (1,), t)], axis=-1)\n"
                       "    g_rows, xt_rows = g.reshape(-1, g.shape[-1]), xt.reshape(-1, xt.shape[-1])\n"
                       "    return -(g @ W[:, :-1]), {'W': g_rows.T @ xt_rows, 'b': g_rows.sum(0)}, "
                       "np.sum(g @ W[:, -1])\n")
    result = run_swap(student, "tests/test_nn_dense.py", "-k", "ConcatLinear and not Squash")
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    first_hint = next(i for i, line in enumerate(lines) if "hint:" in line)
    assert "sign error" in lines[first_hint] and first_hint < 30, "\n".join(lines[:first_hint + 1])
    assert "def check_vjp" not in result.stdout and "def _failure_message" not in result.stdout


@pytest.mark.parametrize("factor, words", [(-1.0, "sign error"), (1 / 5, "missing sum"),
                                           (0.0, "zero everywhere")])
def test_compare_gradients_names_a_likely_cause(factor, words):
    from refnode.testing import compare_gradients
    expected = np.random.default_rng(1).standard_normal((3, 4))
    with pytest.raises(AssertionError, match=f"hint: .*{words}"):
        compare_gradients({"ref": {"W": expected}, "yours": {"W": factor * expected}},
                          raise_on_failure=True)
    with pytest.raises(AssertionError, match="hint: .*transposed"):
        compare_gradients({"ref": {"W": expected[:3, :3]}, "yours": {"W": expected[:3, :3].T}},
                          raise_on_failure=True)
