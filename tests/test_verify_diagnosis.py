"""``refnode verify`` names the likely cause of a failure where the numbers show one.

Each test plants one bug a real implementation makes and checks the report names it
(docs/verify.md, "Reading a failure"); a correct quantity never gets a hint.
"""

from pathlib import Path

import numpy as np
import pytest

from refnode import verify
from refnode.reference import diagnosis
from refnode.testing import factor_hint, is_transpose

from problems import MeanOverBatch

pytestmark = pytest.mark.verify

ROOT = Path(__file__).resolve().parent.parent
RTOL, ATOL = 1e-7, 1e-10
FEW = ("linear", "decay", "spiral", "mlp", "backward")


def planted(change):
    """refnode's adjoint with ``change(out)`` applied to its results."""
    def fn(problem):
        out = verify.refnode_adjoint(problem)
        change(out)
        return out
    return fn


def failures(fn, names=FEW):
    report = verify.verify_callable(fn, RTOL, ATOL, names=names)
    assert not report.passed
    return report, {(r.problem, r.quantity): r.detail for r in report.failures}


def test_a_sign_error_in_dL_dt0_is_named():
    """Before: 'relative error 0.705 > tolerance' and no hint on 5 problems."""
    def flip(out):
        dt = out["gradients"]["t"]
        out["gradients"]["t"] = np.concatenate([-dt[:1], dt[1:]])
    report, failed = failures(planted(flip))
    assert set(failed) == {(p, "dL/dt[0]") for p in FEW}
    assert all("a sign error" in hint for hint in failed.values()), failed
    assert "likely: got ≈ −expected: a sign error" in str(report)
    assert diagnosis.SEE in str(report)


def test_a_mean_over_the_batch_is_named_with_the_batch_size():
    """Before: 12 quantities failing at 0.5 / 0.667 with no hint."""
    def mean(problem):
        return verify.refnode_adjoint(dict(problem, f=MeanOverBatch(problem["f"])))
    _, failed = failures(mean, names=("linear", "mlp"))
    assert failed[("linear", "dL/dtheta[A]")].startswith("got ≈ expected / 2, the batch size")
    assert failed[("mlp", "dL/dtheta[W1]")].startswith("got ≈ expected / 3, the batch size")
    assert all("mean over the batch where the sum belongs" in h for h in failed.values())


def test_a_transposed_parameter_gradient_is_named_square_or_not():
    def transpose(out):
        theta = out["gradients"]["theta"]
        out["gradients"]["theta"] = {k: np.transpose(v) for k, v in theta.items()}
    _, failed = failures(planted(transpose), names=("linear", "mlp"))
    assert "the transpose of the golden value" in failed[("linear", "dL/dtheta[A]")]
    assert "shape (2, 8), expected (8, 2) (the transpose" in failed[("mlp", "dL/dtheta[W1]")]


def test_states_shifted_by_one_output_time_are_named():
    def shift(out):
        out["states"] = np.concatenate([out["states"][:1], out["states"][:-1]])
    _, failed = failures(planted(shift), names=("decay", "backward"))
    assert failed == {(p, "state"): "shifted by one output time: got[i] = golden[i - 1]"
                      for p in ("decay", "backward")}


def test_a_time_gradient_in_reverse_order_is_named():
    def reverse(out):
        out["gradients"]["t"] = out["gradients"]["t"][::-1]
    _, failed = failures(planted(reverse), names=("backward",))
    assert failed and all(h == "the output times in reverse order" for h in failed.values())


def test_one_wrong_output_time_is_named():
    def one(out):
        out["states"] = out["states"].copy()
        out["states"][2] *= 1.5
    _, failed = failures(planted(one), names=("decay", "backward"))
    assert failed[("decay", "state")] == "wrong only at output time i = 2 of 0..3"
    assert failed[("backward", "state")] == "wrong only at output time i = 2 of 0..24"


def test_a_left_out_first_output_time_is_named():
    def drop(out):
        out["states"] = out["states"][1:]
    _, failed = failures(planted(drop), names=("spiral",))
    assert "the first output time left out" in failed[("spiral", "state")]


def test_states_right_gradients_wrong_and_both_wrong_are_told_apart():
    def wrong_z0(out):
        out["gradients"]["z0"] = out["gradients"]["z0"] + 0.3
    report, failed = failures(planted(wrong_z0), names=("linear", "spiral"))
    assert set(failed) == {("linear", "dL/dz0"), ("spiral", "dL/dz0")}
    assert ("likely, linear, spiral: the states pass and gradients fail: the forward solve is "
            "right") in str(report)

    def loose(problem):
        return verify.refnode_adjoint(dict(problem, rtol=1e-2, atol=1e-2))
    report = verify.verify_callable(loose, 1e-9, names=("spiral",))
    assert "likely, spiral: the states fail too: fix the forward solve first" in str(report)


def test_zero_and_non_finite_gradients_are_named():
    def broken(out):
        out["gradients"]["z0"] = np.zeros_like(out["gradients"]["z0"])
        out["gradients"]["theta"] = {k: np.full_like(v, np.nan)
                                     for k, v in out["gradients"]["theta"].items()}
    _, failed = failures(planted(broken), names=("spiral",))
    assert failed[("spiral", "dL/dz0")] == "all zero: is it computed at all?"
    assert failed[("spiral", "dL/dtheta[A]")] == "not finite (NaN or inf)"


def test_a_correct_result_gets_no_hint_and_an_unexplained_one_gets_none():
    report = verify.verify_callable(verify.refnode_adjoint, RTOL, ATOL, names=FEW)
    assert report.passed and not any(r.detail for r in report.rows if r.status == "ok")
    rng = np.random.default_rng(0)

    def noise(out):
        out["gradients"]["theta"] = {k: v + rng.standard_normal(np.shape(v))
                                     for k, v in out["gradients"]["theta"].items()}
    _, failed = failures(planted(noise), names=("mlp",))
    assert set(failed.values()) == {""}


@pytest.mark.parametrize("factor, batch, words", [
    (-1.0, None, "a sign error"), (-1.0004, None, "a sign error"),
    (1 / 3, 3, "got ≈ expected / 3, the batch size: a mean over the batch"),
    (3.0, 3, "got ≈ expected × 3, the batch size: a sum over the batch"),
    (0.25, 3, "got ≈ expected / 4: a missing sum"), (4.0, None, "got ≈ 4 × expected"),
    (1.7, 3, None), (1.0, 3, None), (0.0, 3, None), (-2.0, 2, None)])
def test_factor_hint_is_shared_with_check_vjp(factor, batch, words):
    hint = factor_hint(factor, batch)
    assert (hint is None) if words is None else (words in hint), hint


def test_is_transpose():
    a = np.arange(6.0).reshape(2, 3)
    assert is_transpose(a.T, a) and not is_transpose(a, a)
    s = np.array([[1.0, 2.0], [2.0, 1.0]])
    assert not is_transpose(s, s)                # symmetric: equal, not "transposed"


def test_the_report_points_at_a_section_that_exists():
    text = (ROOT / "docs" / "verify.md").read_text(encoding="utf-8")
    assert diagnosis.SEE.startswith("docs/verify.md")
    assert "## Reading a failure" in text
