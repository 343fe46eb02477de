"""Property-based tests (hypothesis): random linear systems, MLP dynamics, grids, batches.

Profiles are registered in conftest.py (``ci`` by default, ``thorough`` for local runs).
"""

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

import refnode as rn
from refnode.methods import ADAPTIVE_METHODS, METHODS

from problems import mlp_f, mlp_theta

pytestmark = pytest.mark.adaptive

seeds = st.integers(0, 2 ** 32 - 1)
adaptive_methods = st.sampled_from(sorted(set(ADAPTIVE_METHODS) - {"heun_euler"}))
fixed_methods = st.sampled_from(sorted(METHODS))


@st.composite
def time_grids(draw, max_points=8):
    """Strictly monotonic grids, increasing or decreasing, spanning at most 3 time units."""
    t0 = draw(st.floats(-2.0, 2.0))
    gaps = draw(st.lists(st.floats(0.05, 1.0), min_size=1, max_size=max_points - 1))
    t = t0 + np.cumsum([0.0] + gaps) * (3.0 / max(3.0, sum(gaps)))
    return t[::-1].copy() if draw(st.booleans()) else t


def stable_matrix(rng, D):
    """A random matrix with eigenvalues in the left half-plane: S - (Q Qᵀ/D + 0.1 I), S skew."""
    Q, S = rng.standard_normal((D, D)), rng.standard_normal((D, D))
    return (S - S.T) / 2 - Q @ Q.T / D - 0.1 * np.eye(D)


@given(seed=seeds, D=st.integers(1, 5), t=time_grids(), method=adaptive_methods)
def test_linear_system_matches_matrix_exponential(seed, D, t, method):
    rng = np.random.default_rng(seed)
    A = stable_matrix(rng, D)
    z0 = rng.standard_normal(D)
    f = lambda t_, z, A_: A_ @ z
    tol = 1e-9
    z = rn.odeint(f, z0, t, A, method=method, rtol=tol, atol=tol)
    exact = np.stack([scipy.linalg.expm(A * (t_i - t[0])) @ z0 for t_i in t])
    # Backwards in time the stable system grows by at most e^(|A| Δt); allow for it.
    growth = np.exp(np.linalg.norm(A, 2) * abs(t[-1] - t[0]))
    assert np.max(np.abs(z - exact)) <= 1e3 * tol * growth * max(1.0, np.abs(z0).max())


@given(seed=seeds, t=time_grids(), method=adaptive_methods, batch=st.integers(1, 4))
def test_mlp_dynamics_forward_then_backward_returns_to_the_start(seed, t, method, batch):
    rng = np.random.default_rng(seed)
    theta = mlp_theta(3, 8, rng)
    z0 = rng.standard_normal((batch, 3))
    tol = 1e-9
    forward = rn.odeint(mlp_f, z0, t, theta, method=method, rtol=tol, atol=tol)
    back = rn.odeint(mlp_f, forward[-1], t[::-1].copy(), theta, method=method, rtol=tol, atol=tol)
    np.testing.assert_allclose(back[-1], z0, rtol=0, atol=1e4 * tol)
    np.testing.assert_allclose(back[::-1], forward, rtol=0, atol=1e4 * tol)


@given(seed=seeds, t=time_grids(), method=adaptive_methods)
def test_output_grid_equals_dense_evaluation(seed, t, method):
    """Asking for outputs never changes the steps: the outputs are the interpolant's values."""
    rng = np.random.default_rng(seed)
    theta = mlp_theta(2, 6, rng)
    z0 = rng.standard_normal(2)
    grid_sol = rn.solve(mlp_f, z0, t, theta, method=method, rtol=1e-6, atol=1e-6)
    ends = rn.solve(mlp_f, z0, t[[0, -1]], theta, method=method, rtol=1e-6, atol=1e-6, dense=True)
    assert grid_sol.grid == ends.grid
    np.testing.assert_allclose(grid_sol.z, ends.dense(t), rtol=0, atol=1e-12)


@pytest.mark.batch
@given(seed=seeds, t=time_grids(max_points=4), method=fixed_methods,
       batch=st.integers(2, 5), n_steps=st.integers(1, 6))
def test_batched_fixed_grid_equals_per_sample_solves(seed, t, method, batch, n_steps):
    rng = np.random.default_rng(seed)
    theta = mlp_theta(3, 8, rng)
    z0 = rng.standard_normal((batch, 3))
    together = rn.odeint(mlp_f, z0, t, theta, method=method, n_steps=n_steps)
    for i in range(batch):
        alone = rn.odeint(mlp_f, z0[i], t, theta, method=method, n_steps=n_steps)
        np.testing.assert_allclose(together[:, i], alone, rtol=1e-13, atol=1e-13)


@given(seed=seeds, t=time_grids(max_points=4), method=fixed_methods)
def test_fixed_grid_forward_then_backward_is_close_to_the_start(seed, t, method):
    """A method of order p, run back over the same grid, returns within O(h^p) of z0."""
    rng = np.random.default_rng(seed)
    A = stable_matrix(rng, 2)
    f = lambda t_, z, A_: z @ A_.T
    z0 = rng.standard_normal(2)
    n = 40
    forward = rn.odeint(f, z0, t, A, method=method, n_steps=n)
    back = rn.odeint(f, forward[-1], t[::-1].copy(), A, method=method, n_steps=n)
    h = np.max(np.abs(np.diff(t))) / n * np.linalg.norm(A, 2)
    bound = 10 * h ** METHODS[method].order * abs(t[-1] - t[0]) * np.exp(2 * np.linalg.norm(A, 2) * 3)
    assert np.max(np.abs(back[-1] - z0)) <= bound * np.abs(z0).max() + 1e-13
