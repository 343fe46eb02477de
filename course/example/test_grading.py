"""Grading tests for the exercise in student.py: the VJP of ConcatLinear (topic: vjp).

    python -m pytest course/example                                   # grade student.py
    REFNODE_SUBMISSION=solution.py python -m pytest course/example    # check the solution

REFNODE_SUBMISSION is a file name (relative to this directory) or a path. The grader is
refnode itself: the layer's forward from refnode.nn, the dot-product test and the
gradient comparison from refnode.testing, autograd as an independent derivative, and a
whole ODE solve whose discrete adjoint must match autograd through the solver.
"""

import importlib.util
import os
from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import make_vjp

import refnode as rn
from refnode.nn import ConcatLinear, NetworkDynamics, Sequential, Tanh
from refnode.errors import shape_hint
from refnode.testing import check_vjp, compare_gradients

pytestmark = pytest.mark.vjp

HERE = Path(__file__).resolve().parent


def load_submission():
    path = Path(os.environ.get("REFNODE_SUBMISSION", "student.py"))
    path = path if path.is_absolute() else HERE / path
    spec = importlib.util.spec_from_file_location(f"submission_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def submission_vjp():
    return load_submission().vjp


def setup(seed=0, n_in=3, n_out=4, batch=5):
    rng = np.random.default_rng(seed)
    layer = ConcatLinear(n_in, n_out)
    return layer, layer.init(rng), rng.standard_normal((batch, n_in)), 0.7, rng


def test_returns_gradients_with_the_shapes_of_their_arguments(submission_vjp):
    layer, theta, x, t, rng = setup()
    y, cache = layer.forward(theta, t, x)
    g_x, g_theta, g_t = submission_vjp(layer, theta, cache, rng.standard_normal(y.shape))
    assert np.shape(g_x) == x.shape
    assert set(g_theta) == {"W", "b"}
    for name in ("W", "b"):
        got, want = np.shape(g_theta[name]), theta[name].shape
        assert got == want, f"∂L/∂{name} has shape {got}, {name} has {want}.{shape_hint(got, want)}"
    assert np.ndim(g_t) == 0, "∂L/∂t is a scalar: t is shared by the whole batch"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dot_product_test(submission_vjp, seed):
    layer, theta, x, t, _ = setup(seed)
    fun = lambda x, theta, t: layer.forward(theta, t, x)[0]                      # noqa: E731
    vjp = lambda g, x, theta, t: (lambda gx, gth, gt: (gx, gth, np.asarray(gt)))(  # noqa: E731
        *submission_vjp(layer, theta, layer.forward(theta, t, x)[1], g))
    check_vjp(fun, vjp, (x, theta, np.array(t)), names=("x", "theta", "t"))


def test_matches_autograd(submission_vjp):
    layer, theta, x, t, rng = setup(3)
    y, cache = layer.forward(theta, t, x)
    g = rng.standard_normal(y.shape)
    pullback, _ = make_vjp(lambda a: anp.dot(anp.concatenate([a[0], a[2] * anp.ones((len(x), 1))], 1),
                                             a[1]["W"].T) + a[1]["b"])((x, theta, t))
    g_x, g_theta, g_t = pullback(g)
    mine = submission_vjp(layer, theta, cache, g)
    compare_gradients({"autograd": {"x": g_x, "W": g_theta["W"], "b": g_theta["b"], "t": g_t},
                       "yours": {"x": mine[0], "W": mine[1]["W"], "b": mine[1]["b"],
                                 "t": np.asarray(mine[2])}},
                      rtol=1e-12, atol=1e-12, raise_on_failure=True)


def test_a_neural_ode_with_your_vjp_gets_the_right_gradient(submission_vjp, monkeypatch):
    """Inside an ODE solve: the discrete adjoint (your VJP) vs autograd through the solver."""
    monkeypatch.setattr(ConcatLinear, "vjp", submission_vjp)
    rng = np.random.default_rng(4)
    f = NetworkDynamics(Sequential(ConcatLinear(2, 8), Tanh(), ConcatLinear(8, 2)))
    theta = f.init(rng)
    z0, t = rng.standard_normal((3, 2)), np.array([0.0, 0.5, 1.0])
    g = rng.standard_normal((3, 3, 2))
    results = {}
    for gradient in ("autograd", "discrete"):
        _, vjp = rn.odeint_vjp(f, z0, t, theta, method="rk4", n_steps=4, gradient=gradient)
        dz0, dtheta, dt = vjp(g)
        results[gradient] = {"z0": dz0, "theta": dtheta, "t": dt}
    compare_gradients(results, reference="autograd", rtol=1e-10, atol=1e-12, raise_on_failure=True)
