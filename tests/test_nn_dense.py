"""Dense layers, activations and the MLP dynamics: hand-derived VJPs against two references.

1. autograd differentiating the very same forward code: agreement to rounding (~1e-12);
2. the dot-product test against central differences (refnode.testing.check_vjp, ~1e-6).
"""

import numpy as np
import pytest
from autograd import make_vjp
from hypothesis import given
from hypothesis import strategies as st

from refnode.dynamics import AutogradDynamics
from refnode.errors import InputError
from refnode.nn import (ELU, ConcatLinear, ConcatSquashLinear, Cube, Linear, NetworkDynamics,
                        ReLU, Sequential, Sigmoid, Softplus, Tanh, mlp_dynamics)
from refnode.params import tree_leaves
from refnode.testing import check_vjp, compare_gradients

pytestmark = pytest.mark.vjp

# Hand VJP vs autograd on the same float64 computation: both round differently only in
# the order of a few sums of at most ~64 O(1) terms, so 1e-12 relative is ample; the
# absolute floor covers a leaf whose exact value is zero or cancels to rounding level.
AUTOGRAD_RTOL, AUTOGRAD_ATOL = 1e-12, 1e-14

widths = st.integers(min_value=1, max_value=8)
batch_shapes = st.sampled_from([(), (1,), (3,), (2, 3)])
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def make_layer(kind, n_in, n_out):
    """One of every layer type; elementwise layers keep the width n_in."""
    return {"Linear": lambda: Linear(n_in, n_out),
            "ConcatLinear": lambda: ConcatLinear(n_in, n_out),
            "ConcatSquashLinear": lambda: ConcatSquashLinear(n_in, n_out),
            "Tanh": Tanh, "Softplus": Softplus, "Sigmoid": Sigmoid, "ReLU": ReLU,
            "ELU": lambda: ELU(alpha=0.7), "Cube": Cube}[kind]()


# Every kind gets its own hypothesis run (a drawn kind could be skipped by chance).
LAYER_KINDS = ["Linear", "ConcatLinear", "ConcatSquashLinear", "Tanh", "Softplus", "Sigmoid",
               "ReLU", "ELU", "Cube"]
ACTIVATIONS = ["tanh", "softplus", "sigmoid", "relu", "elu"]


def layer_problem(kind, n_in, n_out, batch, seed):
    """A layer, its parameters, a time and an input; the functions under test."""
    rng = np.random.default_rng(seed)
    layer = make_layer(kind, n_in, n_out)
    theta = layer.init(rng)
    x = rng.standard_normal(batch + (n_in,))
    t = np.float64(rng.uniform(-1.0, 1.0))

    def fun(x, theta, t):
        return layer.forward(theta, t, x)[0]

    def vjp(g, x, theta, t):
        g_x, g_theta, g_t = layer.vjp(theta, layer.forward(theta, t, x)[1], g)
        return g_x, g_theta, g_t

    return fun, vjp, (x, theta, t), rng


@pytest.mark.parametrize("kind", LAYER_KINDS)
@given(n_in=widths, n_out=widths, batch=batch_shapes, seed=seeds)
def test_layer_vjp_matches_autograd(kind, n_in, n_out, batch, seed):
    fun, vjp, args, rng = layer_problem(kind, n_in, n_out, batch, seed)
    y = fun(*args)
    g = rng.standard_normal(y.shape)
    autograd_vjp, _ = make_vjp(lambda a: fun(*a))(args)
    names = ("x", "theta", "t")
    compare_gradients({"autograd": dict(zip(names, autograd_vjp(g))),
                       "hand": dict(zip(names, vjp(g, *args)))},
                      rtol=AUTOGRAD_RTOL, atol=AUTOGRAD_ATOL, raise_on_failure=True)


@pytest.mark.parametrize("kind", LAYER_KINDS)
@given(n_in=widths, n_out=widths, batch=batch_shapes, seed=seeds)
def test_layer_vjp_dot_product_test(kind, n_in, n_out, batch, seed):
    fun, vjp, args, _ = layer_problem(kind, n_in, n_out, batch, seed)
    report = check_vjp(fun, vjp, args, seed=seed)
    assert report.names == ("x", "theta", "t")


@pytest.mark.parametrize("activation", ACTIVATIONS)
@given(hidden=st.lists(widths, min_size=0, max_size=2), d=widths,
       time_dependent=st.booleans(), cube=st.booleans(), batch=st.sampled_from([(), (1,), (4,)]),
       seed=seeds)
def test_network_dynamics_vjp_matches_autograd_dynamics(hidden, d, activation, time_dependent,
                                                        cube, batch, seed):
    rng = np.random.default_rng(seed)
    f = mlp_dynamics((d, *hidden, d), activation, time_dependent,
                     input_layer=Cube() if cube else None)
    theta = f.init(rng)
    z, a = rng.standard_normal(batch + (d,)), rng.standard_normal(batch + (d,))
    t = np.float64(rng.uniform(0.0, 2.0))
    a_z, a_theta, a_t = f.vjp(t, z, theta, a)
    assert np.shape(a_t) == ()  # parameter and time parts are summed over the batch
    reference = AutogradDynamics(f.__call__).vjp(t, z, theta, a)
    compare_gradients({"autograd": dict(zip(("z", "theta", "t"), reference)),
                       "hand": {"z": a_z, "theta": a_theta, "t": a_t}},
                      rtol=AUTOGRAD_RTOL, atol=AUTOGRAD_ATOL, raise_on_failure=True)


@given(n_in=widths, n_out=widths, seed=seeds)
def test_concat_linear_is_linear_on_x_with_t_appended(n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    theta = ConcatLinear(n_in, n_out).init(rng)
    x, t = rng.standard_normal((3, n_in)), 0.37
    y, _ = ConcatLinear(n_in, n_out).forward(theta, t, x)
    xt = np.concatenate([x, np.full((3, 1), t)], axis=1)
    y_ref, _ = Linear(n_in + 1, n_out).forward(theta, None, xt)
    np.testing.assert_allclose(y, y_ref, rtol=1e-14, atol=1e-15)


def test_batched_forward_is_the_unbatched_forward_row_by_row():
    rng = np.random.default_rng(3)
    f = mlp_dynamics((3, 6, 3), "softplus", time_dependent=True)
    theta = f.init(rng)
    z = rng.standard_normal((5, 3))
    rows = np.stack([f(0.4, z_i, theta) for z_i in z])
    np.testing.assert_allclose(f(0.4, z, theta), rows, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("layer, shapes, fan_in", [
    (Linear(3, 5), {"W": (5, 3), "b": (5,)}, 3),
    (ConcatLinear(3, 5), {"W": (5, 4), "b": (5,)}, 4),
    (ConcatSquashLinear(3, 5),
     {"W": (5, 3), "b": (5,), "w_g": (5,), "b_g": (5,), "w_b": (5,)}, None),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_parameter_names_shapes_dtypes_and_init_bounds(layer, shapes, fan_in, dtype):
    theta = layer.init(np.random.default_rng(0), dtype)
    assert {k: v.shape for k, v in theta.items()} == shapes
    assert all(v.dtype == dtype for v in theta.values())
    if fan_in is not None:  # PyTorch default: U(±1/sqrt(fan_in))
        bound = 1.0 / np.sqrt(fan_in)
        assert all(np.all(np.abs(v) <= bound) for v in theta.values())
        assert max(np.max(np.abs(v)) for v in theta.values()) > 0.5 * bound


def test_mlp_dynamics_layout():
    f = mlp_dynamics((2, 50, 2), "tanh", input_layer=Cube())
    assert isinstance(f, NetworkDynamics) and isinstance(f.net, Sequential)
    assert [type(layer).__name__ for layer in f.net.layers] == ["Cube", "Linear", "Tanh", "Linear"]
    theta = f.init(np.random.default_rng(0))
    assert sum(leaf.size for leaf in tree_leaves(theta)) == 2 * 50 + 50 + 50 * 2 + 2
    f_t = mlp_dynamics((2, 8, 8, 2), ELU(alpha=0.5), time_dependent=True)
    kinds = [type(layer).__name__ for layer in f_t.net.layers]
    assert kinds == ["ConcatLinear", "ELU", "ConcatLinear", "ELU", "ConcatLinear"]


@pytest.mark.parametrize("call, match", [
    (lambda: Linear(3, 2).forward(Linear(3, 2).init(np.random.default_rng(0)), 0.0,
                                  np.ones((4, 2))), r"shape \(\.\.\., 3\)"),
    (lambda: Linear(0, 2), "positive integer"),
    (lambda: Linear(3, 2).init(0), "numpy.random.Generator"),
    (lambda: mlp_dynamics((2,)), "at least two"),
    (lambda: mlp_dynamics((2, 2.5, 2)), "positive integers"),
    (lambda: mlp_dynamics((2, 4, 2), "swish"), "unknown activation"),
])
def test_bad_input_raises_input_error(call, match):
    with pytest.raises(InputError, match=match):
        call()
