"""The discrete adjoint against two independent references, for every method.

* autograd tracing the very same replayed steps: agreement to ~1e-10 relative;
* central differences of the solution map with the step grid held fixed (the dot-product
  test, :func:`refnode.testing.check_vjp`): ~1e-6. Re-running the adaptive solver would
  choose other steps, so the differences replay the recorded grid instead
  (:func:`refnode.discrete_adjoint.replay`), exactly the function being differentiated.

Dynamics, shapes, time grids (increasing and decreasing), cotangents and methods are
drawn by hypothesis.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refnode as rn
from refnode.discrete_adjoint import replay
from refnode.methods import ADAPTIVE_METHODS, FIXED_METHODS
from refnode.nn import mlp_dynamics
from refnode.nn.mlp import ACTIVATIONS
from refnode.testing import check_vjp, relative_error
from refnode.params import tree_add, tree_map

from problems import count_network_calls, mlp_f, mlp_theta

pytestmark = [pytest.mark.adjoint, pytest.mark.vjp]

#: Discrete adjoint vs autograd through the same steps (docs/design.md, "Tolerances in
#: the tests"): both are exact up to roundoff, summed over a few hundred operations.
EXACT_RTOL = 1e-10
#: Adaptive tolerances of the drawn problems: loose, so steps are few and outputs often
#: fall inside steps (dense output); exactness does not depend on them.
LOOSE_RTOL, LOOSE_ATOL = 1e-4, 1e-6


@st.composite
def problems(draw, activations=tuple(sorted(ACTIVATIONS)), methods=tuple(rn.METHODS)):
    """(f, theta, z0, t, method, options, rng) for a random small MLP ODE.

    ``rng`` (seeded by hypothesis) is for drawing cotangents. Also used by test_adjoint.
    """
    D = draw(st.integers(1, 8))
    hidden = draw(st.lists(st.integers(1, 8), min_size=1, max_size=2))
    activation = draw(st.sampled_from(activations))
    time_dependent = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    f = mlp_dynamics((D, *hidden, D), activation, time_dependent)
    theta = f.init(rng)
    batch = draw(st.sampled_from([(), (1,), (3,)]))
    z0 = rng.standard_normal(batch + (D,))
    n_times = draw(st.integers(2, 6))
    t = draw(st.floats(-1.0, 1.0)) + np.cumsum(rng.uniform(0.05, 0.5, n_times)) - 0.05
    t = t if draw(st.booleans()) else t[::-1].copy()
    method = draw(st.sampled_from(methods))
    options = (dict(n_steps=draw(st.integers(1, 3))) if method in FIXED_METHODS
               else dict(rtol=LOOSE_RTOL, atol=LOOSE_ATOL))
    return f, theta, z0, t, method, options, rng


@given(problems())
def test_discrete_matches_autograd_through_the_same_steps(problem):
    f, theta, z0, t, method, options, rng = problem
    z, discrete = rn.odeint_vjp(f, z0, t, theta, method=method, gradient="discrete", **options)
    z_ag, oracle = rn.odeint_vjp(f, z0, t, theta, method=method, gradient="autograd", **options)
    np.testing.assert_allclose(z, z_ag, rtol=1e-13, atol=1e-13)
    g = rng.standard_normal(z.shape)
    got, expected = discrete(g), oracle(g)
    for name, x, y in zip(("dz0", "dtheta", "dt"), got, expected):
        assert relative_error(x, y) < EXACT_RTOL, (name, method, relative_error(x, y))


@given(problems())
def test_discrete_passes_the_dot_product_test_on_the_fixed_grid(problem):
    f, theta, z0, t, method, options, rng = problem
    z, vjp = rn.odeint_vjp(f, z0, t, theta, method=method, gradient="discrete", **options)

    def solution(z0, theta, t):                      # the same steps, grid held fixed
        return replay(vjp.f, vjp.tableau, z0, theta, t, vjp.grid)[0]

    np.testing.assert_allclose(solution(z0, theta, t), z, rtol=1e-13, atol=1e-13)
    check_vjp(solution, lambda g, *args: vjp(g), (z0, theta, t),
              cotangent=rng.standard_normal(z.shape), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("method", ADAPTIVE_METHODS)
def test_dense_outputs_inside_steps(method):
    """Many outputs inside few large steps: the interpolant's reverse (Hermite, the
    methods' continuous extensions, dop853's extra stages) and its time gradient."""
    rng = np.random.default_rng(3)
    theta = mlp_theta(2, 6, rng)
    z0, t = rng.standard_normal(2), np.linspace(0.0, 1.5, 7)
    z, vjp = rn.odeint_vjp(mlp_f, z0, t, theta, method=method, rtol=1e-3, atol=1e-5,
                           gradient="discrete")
    assert not vjp.grid.out_at_end[1:-1].all(), "no output fell inside a step"
    _, oracle = rn.odeint_vjp(mlp_f, z0, t, theta, method=method, rtol=1e-3, atol=1e-5,
                              gradient="autograd")
    g = rng.standard_normal(z.shape)
    assert relative_error(vjp(g), oracle(g)) < EXACT_RTOL
    solution = lambda z0, theta, t: replay(vjp.f, vjp.tableau, z0, theta, t, vjp.grid)[0]
    check_vjp(solution, lambda g, *args: vjp(g), (z0, theta, t), cotangent=g)


@pytest.mark.parametrize("gradient", ["discrete", "autograd"])
def test_dynamics_without_parameters(gradient):
    """theta=None: dtheta is None, and a plain callable gets autograd's VJP."""
    f = lambda t, z, theta: -t * z + 0.5 * z ** 3 / (1.0 + z * z)
    z0, t = np.array([0.3, -1.2]), np.array([0.0, 0.4, 1.0])
    z, vjp = rn.odeint_vjp(f, z0, t, None, gradient=gradient, rtol=1e-5, atol=1e-7)
    _, discrete = rn.odeint_vjp(f, z0, t, None, gradient="discrete", rtol=1e-5, atol=1e-7)
    g = np.ones_like(z)
    dz0, dtheta, dt = vjp(g)
    assert dtheta is None and dt.shape == t.shape
    solution = lambda z0, t: replay(discrete.f, discrete.tableau, z0, None, t, discrete.grid)[0]
    check_vjp(solution, lambda g, *args: (dz0, dt), (z0, t), cotangent=g)


def test_step_size_grid_and_tuple_theta():
    """A fixed step_size (a last short step per interval) and a tuple pytree theta."""
    rng = np.random.default_rng(7)
    theta = mlp_theta(3, 5, rng)
    z0, t = rng.standard_normal((2, 3)), np.array([0.0, 0.35, 1.0])
    z, vjp = rn.odeint_vjp(mlp_f, z0, t, theta, method="rk4", step_size=0.1,
                           gradient="discrete")
    _, oracle = rn.odeint_vjp(mlp_f, z0, t, theta, method="rk4", step_size=0.1,
                              gradient="autograd")
    g = rng.standard_normal(z.shape)
    dz0, dtheta, dt = vjp(g)
    assert isinstance(dtheta, tuple) and len(dtheta) == 4
    assert relative_error((dz0, dtheta, dt), oracle(g)) < EXACT_RTOL


def assert_batch_gradient_is_sum_over_samples(gradient, method, seed):
    """On a fixed grid the samples of a batch are independent ODEs: the batch's dz0 has
    each sample's dz0 as its rows, and dtheta, dt are the sums over samples."""
    rng = np.random.default_rng(seed)
    theta = mlp_theta(2, 4, rng)
    z0, t = rng.standard_normal((3, 2)), np.array([0.0, 0.5, 1.2])
    options = dict(method=method, n_steps=3, gradient=gradient)
    z, vjp = rn.odeint_vjp(mlp_f, z0, t, theta, **options)
    g = rng.standard_normal(z.shape)
    dz0, dtheta, dt = vjp(g)
    rows, theta_sum, dt_sum = [], None, 0.0
    for b in range(3):
        _, single = rn.odeint_vjp(mlp_f, z0[b], t, theta, **options)
        dz0_b, dtheta_b, dt_b = single(g[:, b])
        rows.append(dz0_b)
        theta_sum = dtheta_b if theta_sum is None else tree_add(theta_sum, dtheta_b)
        dt_sum = dt_sum + dt_b
    assert relative_error(dz0, np.stack(rows)) < 1e-13
    assert relative_error(dtheta, theta_sum) < 1e-13
    assert relative_error(dt, dt_sum) < 1e-13
    assert tree_map(np.shape, dtheta) == tree_map(np.shape, theta)


@pytest.mark.batch
@pytest.mark.parametrize("method", ["rk4", "midpoint"])
def test_batch_gradient_is_the_sum_of_sample_gradients(method):
    assert_batch_gradient_is_sum_over_samples("discrete", method, seed=11)


# --- each stage's VJP where its forward was (refnode.dynamics.linearize) -----------------------


@pytest.mark.parametrize("n_steps", [1, 3])
def test_the_reverse_pass_evaluates_each_stage_once_for_its_vjp(n_steps):
    """The reverse of an RK4 step recomputes its 4 stages and takes each stage's VJP from
    that same forward pass (the layer's cache): 4 forward passes and 4 VJPs a step, and
    no other (the first VJP's output is checked as it comes, not by a call of its own)."""
    f = rn.nn.mlp_dynamics((3, 8, 3), "tanh")
    theta = f.init(np.random.default_rng(0))
    calls = count_network_calls(f)
    z, vjp = rn.odeint_vjp(f, np.ones((2, 3)), np.array([0.0, 1.0]), theta, method="rk4",
                           n_steps=n_steps, gradient="discrete")
    calls.update(forward=0, vjp=0)
    vjp(np.ones_like(z))
    assert calls == {"forward": 4 * n_steps, "vjp": 4 * n_steps}
    assert vjp.backward_stats == {"n_steps": n_steps, "nfe": 4 * n_steps}


@pytest.mark.parametrize("options", [dict(method="rk4", n_steps=3),
                                     dict(method="dopri5", rtol=1e-6, atol=1e-8)])
def test_the_forward_solve_keeps_the_states_the_reverse_pass_starts_from(options):
    """A shared solve for a discrete gradient keeps the state at every step point
    (``Solution.states``): no replay of the steps, so the forward solve evaluates f exactly
    its NFE times; the gradient still agrees with autograd through the replayed steps."""
    f = rn.nn.mlp_dynamics((3, 8, 3), "tanh", True)
    theta = f.init(np.random.default_rng(0))
    calls, forward = [0], f.net.forward

    def counted_forward(*args):
        calls[0] += 1
        return forward(*args)
    f.net.forward = counted_forward
    z0, t = np.linspace(-1.0, 1.0, 6).reshape(2, 3), np.array([0.0, 0.4, 1.0])
    z, vjp = rn.odeint_vjp(f, z0, t, theta, gradient="discrete", **options)
    assert calls[0] == vjp.forward_stats["nfe"]
    assert len(vjp.ys) == vjp.grid.n_steps + 1 and vjp.ys[0] is not z0
    f.net.forward = forward
    g = np.random.default_rng(1).standard_normal(z.shape)
    _, oracle = rn.odeint_vjp(f, z0, t, theta, gradient="autograd", **options)
    for ours, theirs in zip(vjp(g)[:2], oracle(g)[:2]):
        assert relative_error(ours, theirs) < EXACT_RTOL


def _dynamics_kinds():
    from refnode.dynamics import AutogradDynamics, CheckedDynamics
    from refnode.independent.loop import SampleTimeDynamics
    import autograd.numpy as anp
    rng = np.random.default_rng(1)
    net = rn.nn.mlp_dynamics((3, 5, 3), "tanh")
    W = rng.standard_normal((3, 3))
    plain = AutogradDynamics(lambda t, z, th: anp.tanh(z @ th["W"]) * t)
    no_theta = AutogradDynamics(lambda t, z, th: anp.sin(z) * t)

    class OnlyVJP:                                   # a user's dynamics: f and f.vjp only
        def __call__(self, t, z, theta):
            return z * theta

        def vjp(self, t, z, theta, a):
            return a * theta, np.sum(a * z), 0.0
    return [(net, net.init(rng)), (plain, {"W": W}), (no_theta, None),
            (CheckedDynamics(net), net.init(rng)), (OnlyVJP(), 0.7),
            (SampleTimeDynamics(net, np.float64), net.init(rng))]


@pytest.mark.parametrize("case", range(6))
def test_linearize_gives_f_and_its_vjp_at_the_same_point(case):
    from refnode.dynamics import linearize
    f, theta = _dynamics_kinds()[case]
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4, 3))
    t = np.full(4, 0.3) if case == 5 else 0.3
    dz, vjp = linearize(f, t, z, theta)
    assert np.array_equal(dz, f(t, z, theta))
    for a in (rng.standard_normal(z.shape), rng.standard_normal(z.shape)):   # reusable
        for got, want in zip(rn.params.tree_leaves(vjp(a)),
                             rn.params.tree_leaves(tuple(f.vjp(t, z, theta, a)))):
            assert np.array_equal(got, want)


def test_the_odenet_function_linearizes_in_the_states_precision():
    """ODEFunction casts an array-scalar t to the state's dtype for linearize too (a float64
    t in ConcatConv2d's time channel would turn a float32 state into float64)."""
    from refnode.dynamics import linearize
    from refnode.models.odenet import ode_function
    f = ode_function(4)
    theta = f.init(np.random.default_rng(0), np.float32)
    z = np.ones((2, 4, 5, 5), np.float32)
    dz, vjp = linearize(f, np.float64(0.5), z, theta)
    assert dz.dtype == np.float32 and vjp(np.ones_like(z))[0].dtype == np.float32
