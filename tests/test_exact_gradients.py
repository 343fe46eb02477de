"""Gradients against closed forms: the linear ODE dz/dt = A z (refnode.reference.linear).

The reference itself is checked first (its expm and Fréchet derivative against SciPy,
its gradients against central differences of the closed-form loss); then every
gradient method, at tight tolerance, must reproduce it, and the continuous adjoint's
error must fall with the tolerance.
"""

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

import refnode as rn
from refnode.reference import (LinearDynamics, exact_gradients, expm, expm_frechet,
                               linear_loss, linear_solution)
from refnode.testing import check_vjp, relative_error

pytestmark = pytest.mark.adjoint

#: The adjoint at rtol = 1e-10 must reach the exact gradient to this (the brief's 1e-7;
#: the global error of a tolerance-1e-10 solve is ~1e-9 on these O(1) problems).
TIGHT = dict(rtol=1e-10, atol=1e-12)
EXACT_AGREEMENT = 1e-7


def linear_problem(seed, batch=(), D=3, n_times=4, decreasing=False):
    """(A, z0, t, g): a random stable-ish A, times with gaps in [0.2, 0.6], cotangents g."""
    rng = np.random.default_rng(seed)
    A = 0.6 * rng.standard_normal((D, D)) - 0.2 * np.eye(D)
    z0 = rng.standard_normal(batch + (D,))
    t = 0.3 + np.cumsum(rng.uniform(0.2, 0.6, n_times)) - 0.2
    t = t[::-1].copy() if decreasing else t
    g = rng.standard_normal((n_times,) + z0.shape)
    return A, z0, t, g


# ---------------------------------------------------------------- the reference itself

#: expm's relative condition number is at least ‖X‖ (Van Loan, SIAM J. Numer. Anal. 14,
#: 1977), so two good algorithms differ by ~u·‖X‖ times a modest factor; over 3000 random
#: nonnormal X up to ‖X‖ ≈ 60 the measured factor was at most 570 (u = 2.2e-16).
EXPM_AGREEMENT_PER_NORM = 5e-13


@given(st.integers(1, 6), st.floats(1e-3, 40.0), st.integers(0, 10**6))
def test_expm_and_frechet_match_scipy(n, scale, seed):
    rng = np.random.default_rng(seed)
    X, E = scale * rng.standard_normal((n, n)) / np.sqrt(n), rng.standard_normal((n, n))
    tolerance = EXPM_AGREEMENT_PER_NORM * max(1.0, np.abs(X).sum(axis=1).max())
    assert relative_error(expm(X), scipy.linalg.expm(X)) < tolerance
    frechet = scipy.linalg.expm_frechet(X, E, compute_expm=False)
    assert relative_error(expm_frechet(X, E), frechet) < tolerance


def test_expm_of_zero_and_of_a_rotation():
    assert np.array_equal(expm(np.zeros((3, 3))), np.eye(3))
    phi = 2.5
    R = expm(np.array([[0.0, phi], [-phi, 0.0]]))
    np.testing.assert_allclose(R, [[np.cos(phi), np.sin(phi)], [-np.sin(phi), np.cos(phi)]],
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("batch", [(), (2,)])
@pytest.mark.parametrize("decreasing", [False, True])
def test_exact_gradients_pass_the_dot_product_test(batch, decreasing):
    A, z0, t, g = linear_problem(0, batch, decreasing=decreasing)
    loss = lambda z0, A, t: np.array(linear_loss(A, z0, t, g))
    check_vjp(loss, lambda c, z0, A, t: tuple(c * x for x in exact_gradients(A, z0, t, g)),
              (z0, A, t), cotangent=np.array(1.0))


def test_linear_dynamics_vjp():
    A, z0, _, _ = linear_problem(1, (2,))
    f = LinearDynamics()
    vjp = lambda a, t, z, A: (lambda a_z, a_A, a_t: (a_t, a_z, a_A))(*f.vjp(t, z, A, a))
    check_vjp(lambda t, z, A: f(t, z, A), vjp, (np.array(0.3), z0, A))
    np.testing.assert_allclose(linear_solution(A, z0, np.array([0.0, 0.7]))[1],
                               z0 @ scipy.linalg.expm(0.7 * A).T, rtol=1e-13)


# ------------------------------------------------------- every gradient vs the closed form

@pytest.mark.parametrize("variant", [dict(), dict(gradient=rn.Adjoint(seminorm=True)),
                                     dict(gradient=rn.Adjoint(reset=False)),
                                     dict(method="dop853"), dict(method="tsit5")],
                         ids=["default", "seminorm", "no-reset", "dop853", "tsit5"])
@pytest.mark.parametrize("batch", [(), (4,)], ids=["D", "BxD"])
@pytest.mark.parametrize("decreasing", [False, True], ids=["forward", "backward"])
def test_adjoint_reaches_the_exact_gradient(variant, batch, decreasing):
    A, z0, t, g = linear_problem(2, batch, decreasing=decreasing)
    z, vjp = rn.odeint_vjp(LinearDynamics(), z0, t, A, **TIGHT, **variant)
    np.testing.assert_allclose(z, linear_solution(A, z0, t), rtol=1e-8, atol=1e-10)
    for name, got, exact in zip(("dz0", "dA", "dt"), vjp(g), exact_gradients(A, z0, t, g)):
        assert relative_error(got, exact) < EXACT_AGREEMENT, (name, relative_error(got, exact))


@pytest.mark.parametrize("gradient", ["discrete", "autograd"])
def test_discrete_gradients_reach_the_exact_gradient(gradient):
    A, z0, t, g = linear_problem(3, (2,))
    z, vjp = rn.odeint_vjp(LinearDynamics(), z0, t, A, gradient=gradient, **TIGHT)
    for name, got, exact in zip(("dz0", "dA", "dt"), vjp(g), exact_gradients(A, z0, t, g)):
        assert relative_error(got, exact) < EXACT_AGREEMENT, (name, relative_error(got, exact))


@pytest.mark.parametrize("seminorm", [False, True])
def test_adjoint_error_falls_with_the_tolerance(seminorm):
    """Tolerance proportionality: each 100x tighter tolerance, at least 10x more accurate."""
    A, z0, t, g = linear_problem(4, (2,))
    exact = exact_gradients(A, z0, t, g)
    errors = []
    for rtol in (1e-3, 1e-5, 1e-7, 1e-9):
        _, vjp = rn.odeint_vjp(LinearDynamics(), z0, t, A, rtol=rtol, atol=rtol * 1e-2,
                               gradient=rn.Adjoint(seminorm=seminorm))
        errors.append(relative_error(vjp(g), exact))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all(ratios > 10.0), (errors, ratios)


# ------------------------------------------------------------------ time and conservation

def test_time_gradients_are_rates_of_the_loss():
    """∂L/∂t_i = ⟨g_i, f(z(t_i))⟩ for i >= 1, and ∂L/∂t_0 = −Σ_{i>=1} of them (autonomous)."""
    A, z0, t, g = linear_problem(5)
    z, vjp = rn.odeint_vjp(LinearDynamics(), z0, t, A, **TIGHT)
    _, _, dt = vjp(g)
    rates = np.array([np.sum(g[i] * (z[i] @ A.T)) for i in range(1, len(t))])
    np.testing.assert_allclose(dt[1:], rates, rtol=1e-12)
    np.testing.assert_allclose(dt[0], -rates.sum(), rtol=1e-7)


def test_adjoint_times_tangent_is_conserved():
    """d/dt [a(t)ᵀ δz(t)] = −aᵀ(∂f/∂z)δz + aᵀ(∂f/∂z)δz = 0.

    δz(s) is the tangent linear solution (for f = A z, the same ODE); a(s) = ∂L/∂z(s)
    for L = ⟨g, z(t_1)⟩ is what the adjoint returns when the solve starts at s.
    """
    A, z0, t, g = linear_problem(6, n_times=2)
    dz0 = np.random.default_rng(7).standard_normal(z0.shape)
    s_grid = np.linspace(t[0], t[-1], 9)[:-1]
    f = LinearDynamics()
    states = rn.odeint(f, np.stack([z0, dz0]), s_grid, A, **TIGHT)   # [z, δz] as a batch
    products = []
    for s, (z_s, dz_s) in zip(s_grid, states):
        _, vjp = rn.odeint_vjp(f, z_s, np.array([s, t[-1]]), A, **TIGHT)
        a_s = vjp(np.stack([np.zeros_like(g[-1]), g[-1]]))[0]
        products.append(float(a_s @ dz_s))
    np.testing.assert_allclose(products, products[0], rtol=1e-8)
    exact_a0 = g[-1] @ expm(A * (t[-1] - t[0]))
    np.testing.assert_allclose(products[0], exact_a0 @ dz0, rtol=1e-8)
