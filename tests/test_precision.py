"""A float32 state stays float32 through every solver and every gradient.

NumPy 2 (NEP 50) promotes float32 arrays when they meet a NumPy float64 *scalar*, but not
a Python float; times and step sizes must therefore reach the arithmetic as Python floats.
"""

import numpy as np
import pytest

import refnode as rn

pytestmark = [pytest.mark.rk, pytest.mark.adjoint]

METHODS = [("rk4", dict(n_steps=3)), ("heun", dict(step_size=0.1))] + [
    (name, dict(rtol=1e-4, atol=1e-4)) for name in rn.methods.ADAPTIVE_METHODS]


@pytest.mark.parametrize("method, grid", METHODS, ids=[m for m, _ in METHODS])
@pytest.mark.parametrize("gradient", rn.GRADIENTS[:2])
def test_float32_state_stays_float32(method, grid, gradient):
    f = rn.nn.mlp_dynamics((3, 8, 3), "tanh", time_dependent=True)
    theta = f.init(np.random.default_rng(0), np.float32)
    z0 = np.ones((4, 3), np.float32)
    t = np.linspace(0.0, 1.0, 5)                    # float64 times, as users pass them
    assert rn.odeint(f, z0, t, theta, method=method, **grid).dtype == np.float32
    z, vjp = rn.odeint_vjp(f, z0, t, theta, method=method, gradient=gradient, **grid)
    dz0, dtheta, _ = vjp(np.ones_like(z))
    assert z.dtype == dz0.dtype == np.float32
    assert all(leaf.dtype == np.float32 for leaf in rn.params.tree_leaves(dtheta))
