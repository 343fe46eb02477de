"""Grading: the hand VJPs of an ODE function's layers, by the dot-product test
(refnode.testing.check_vjp) and inside a neural ODE's discrete adjoint."""

import numpy as np
import refnode as rn
from refnode.errors import shape_hint
from refnode.nn import ConcatLinear, NetworkDynamics, Sequential, Tanh
from refnode.testing import check_vjp, compare_gradients


def layer_check(layer, vjp, x_shape=(5, 3), seed=0):
    """check_vjp of ``layer`` with ``vjp(layer, theta, cache, g)`` as its VJP."""
    rng = np.random.default_rng(seed)
    theta, x, t = layer.init(rng), rng.standard_normal(x_shape), np.array(0.7)
    fun = lambda x, theta, t: layer.forward(theta, t, x)[0]                          # noqa: E731
    pullback = lambda g, x, theta, t: tuple(                                           # noqa: E731
        np.asarray(v) if k == 2 else v
        for k, v in enumerate(vjp(layer, theta, layer.forward(theta, t, x)[1], g)))
    check_vjp(fun, pullback, (x, theta, t), names=("x", "theta", "t"))


def test_concat_linear_returns_one_gradient_per_argument(submission):
    layer = ConcatLinear(3, 4)
    rng = np.random.default_rng(0)
    theta, x = layer.init(rng), rng.standard_normal((5, 3))
    y, cache = layer.forward(theta, 0.7, x)
    g_x, g_theta, g_t = submission.concat_linear_vjp(layer, theta, cache, rng.standard_normal(y.shape))
    assert np.shape(g_x) == x.shape, f"g_x has shape {np.shape(g_x)}, x has {x.shape}"
    for name in ("W", "b"):
        got, want = np.shape(g_theta[name]), theta[name].shape
        assert got == want, f"∂L/∂{name} has shape {got}, {name} has {want}.{shape_hint(got, want)}"
    assert np.ndim(g_t) == 0, "∂L/∂t is a scalar: t is shared by the whole batch (sum over it)"


def test_concat_linear_dot_product_test(submission):
    for seed in range(3):
        layer_check(ConcatLinear(3, 4), submission.concat_linear_vjp, seed=seed)


def test_tanh_dot_product_test(submission):
    layer_check(Tanh(), submission.tanh_vjp, x_shape=(5, 4))


def test_mlp_chain_rule(submission, monkeypatch):
    """Your sequential_vjp over refnode's layers (so only the chain rule is graded here)."""
    monkeypatch.setattr(Sequential, "vjp", submission.sequential_vjp)
    layer_check(Sequential(ConcatLinear(3, 5), Tanh(), ConcatLinear(5, 4), Tanh()),
                Sequential.vjp)


def test_a_neural_ode_with_your_vjps_gets_the_right_gradient(submission, monkeypatch):
    """The discrete adjoint through RK4 with your three VJPs vs autograd through the solver."""
    rng = np.random.default_rng(4)
    f = NetworkDynamics(Sequential(ConcatLinear(2, 8), Tanh(), ConcatLinear(8, 2)))
    theta = f.init(rng)
    z0, t, g = rng.standard_normal((3, 2)), np.array([0.0, 0.5, 1.0]), rng.standard_normal((3, 3, 2))
    results = {}
    for gradient in ("autograd", "discrete"):
        if gradient == "discrete":
            monkeypatch.setattr(ConcatLinear, "vjp", submission.concat_linear_vjp)
            monkeypatch.setattr(Tanh, "vjp", submission.tanh_vjp)
            monkeypatch.setattr(Sequential, "vjp", submission.sequential_vjp)
        _, vjp = rn.odeint_vjp(f, z0, t, theta, method="rk4", n_steps=4, gradient=gradient)
        dz0, dtheta, dt = vjp(g)
        results[gradient] = {"z0": dz0, "theta": dtheta, "t": dt}
    compare_gradients(results, reference="autograd", rtol=1e-10, atol=1e-12, raise_on_failure=True)

