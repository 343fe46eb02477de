"""Grading: one explicit Runge–Kutta step (HNW I, §II.1) and its measured order.

The grader is refnode: its own rk_step on the same tableaux gives the expected stages,
y1 and error estimate; a fixed-step solve with your rk_step measures the order.
"""

import numpy as np
import pytest

from refnode.methods import METHODS
from refnode.rk_step import rk_step as reference_rk_step

TABLEAUX = ("euler", "midpoint", "heun", "rk4", "rk38", "bosh3", "dopri5")


def recording(f):
    """f, and the list of (t, y) it was called with."""
    calls = []

    def wrapped(t, y, theta):
        calls.append((float(t), np.array(y)))
        return f(t, y, theta)
    return wrapped, calls


def dynamics(t, y, theta):
    """A nonlinear, time-dependent test problem: y' = A tanh(y) + sin(3t)."""
    return theta @ np.tanh(y) + np.sin(3.0 * t)


def one_step(rk_step, name):
    rng = np.random.default_rng(sum(map(ord, name)))
    theta, y, t, h = rng.standard_normal((3, 3)), rng.standard_normal(3), 0.3, 0.25
    f, calls = recording(dynamics)
    out = rk_step(f, METHODS[name], t, y, h, theta, dynamics(t, y, theta))
    return out, calls, (theta, y, t, h)


def test_stages_are_evaluated_at_the_right_times_and_inputs(submission):
    for name in TABLEAUX:
        tableau = METHODS[name]
        _, calls, _ = one_step(submission.rk_step, name)
        _, expected, _ = one_step(reference_rk_step, name)
        assert len(calls) == len(expected), (
            f"{name}: f was called {len(calls)} times in one step; expected s - 1 = {len(expected)} "
            "(k1 = f(t, y) is given: stages 2..s each call f once)")
        for i, ((t_i, Y_i), (t_exp, Y_exp)) in enumerate(zip(calls, expected), start=2):
            assert np.isclose(t_i, t_exp, rtol=1e-14, atol=1e-14), (
                f"{name}: stage {i} evaluated f at t = {t_i:.6g}; expected t + c_{i} h = {t_exp:.6g} "
                f"(c_{i} = {float(tableau.c[i - 1]):.6g}): a wrong stage time")
            assert np.allclose(Y_i, Y_exp, rtol=1e-13, atol=1e-14), (
                f"{name}: stage {i}'s input Y_{i} is wrong (got {Y_i}, expected {Y_exp}): "
                f"Y_i = y + h Σ_(j<i) a_ij k_j, row {i} of A")


def test_the_step_and_its_error_estimate(submission):
    for name in TABLEAUX:
        tableau = METHODS[name]
        (y1, error, k), _, (theta, y, t, h) = one_step(submission.rk_step, name)
        (y1_exp, error_exp, k_exp), _, _ = one_step(reference_rk_step, name)
        assert len(k) == tableau.stages, f"{name}: return all s = {tableau.stages} stages k (k1 first)"
        if not np.allclose(y1, y1_exp, rtol=1e-13, atol=1e-14):
            if tableau.b_hat is not None and np.allclose(
                    y1, y + h * sum(float(w) * k_i for w, k_i in zip(tableau.b_hat, k_exp))):
                raise AssertionError(f"{name}: y1 uses the embedded weights b̂; y1 = y + h Σ b_i k_i")
            if np.allclose(y1, y + sum(float(w) * k_i for w, k_i in zip(tableau.b, k_exp))):
                raise AssertionError(f"{name}: y1 = y + Σ b_i k_i is missing the factor h")
            raise AssertionError(f"{name}: y1 = {y1}, expected {y1_exp}: y1 = y + h Σ b_i k_i")
        if error_exp is None:
            assert error is None, f"{name} has no embedded pair (b_hat is None): return error = None"
            continue
        assert error is not None, f"{name} is an embedded pair: return error = h Σ (b_i - b̂_i) k_i"
        if np.allclose(error, -error_exp, rtol=1e-10):
            raise AssertionError(f"{name}: error has the wrong sign: h Σ (b_i - b̂_i) k_i, not b̂ - b")
        if np.allclose(error, error_exp / h, rtol=1e-10):
            raise AssertionError(f"{name}: the error estimate is missing the factor h")
        assert np.allclose(error, error_exp, rtol=1e-10, atol=1e-15), (
            f"{name}: error = {error}, expected {error_exp}: h Σ (b_i - b̂_i) k_i")


def measured_order(rk_step, tableau):
    """log2 of the ratio of the global errors at t = 1 with 16 and 32 steps (y' = -y + cos t)."""
    f = lambda t, y, theta: -y + np.cos(t)                                    # noqa: E731
    exact = lambda t: 0.5 * (np.cos(t) + np.sin(t)) + 0.5 * np.exp(-t)        # y(0) = 1  # noqa: E731
    errors = []
    for n in (16, 32):
        y, h = np.array([1.0]), 1.0 / n
        for step in range(n):
            y = rk_step(f, tableau, step * h, y, h, None, f(step * h, y, None))[0]
        errors.append(abs(float(y[0]) - exact(1.0)))
    return np.log2(errors[0] / errors[1])


@pytest.mark.parametrize("name", ["euler", "midpoint", "rk4", "dopri5"])
def test_measured_order_is_the_tableaus_order(submission, name):
    tableau = METHODS[name]
    p = measured_order(submission.rk_step, tableau)
    assert abs(p - tableau.order) < 0.35, (
        f"{name}: measured order {p:.2f}, expected {tableau.order}; halving h must divide the "
        f"global error by about 2^{tableau.order}")
