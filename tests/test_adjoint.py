"""The continuous adjoint (Algorithm 2) against the discrete gradients, and odeint_vjp's
contract: input errors, time gradients, batches, statistics.

The continuous adjoint solves the adjoint ODE; the discrete adjoint differentiates the
computed solution. Both converge to the true gradient, so on a fixed grid their gap
shrinks at the method's order p as the step h halves: we measure log2(gap(h) / gap(h/2))
(docs/design.md, "Tolerances in the tests").
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refnode as rn
from refnode.errors import InputError
from refnode.nn import mlp_dynamics
from refnode.testing import relative_error

from problems import count_network_calls
from test_discrete_adjoint import assert_batch_gradient_is_sum_over_samples, problems

pytestmark = pytest.mark.adjoint

#: Steps per output interval for the order measurement, and how far the last measured
#: slope may sit from the order (the measured slopes are within 0.15 of p; see
#: test_gap_shrinks_at_the_method_order).
N_STEPS = (4, 8, 16)
SLOPE_SLACK = 0.3


def small_mlp(seed=0, D=2, H=8, time_dependent=True):
    rng = np.random.default_rng(seed)
    f = mlp_dynamics((D, H, D), "tanh", time_dependent)
    return f, f.init(rng), rng


def gap(method, n_steps, f, theta, z0, t, g):
    """Relative gap between the continuous and the discrete adjoint on the same grid."""
    grads = {}
    for gradient in ("adjoint", "discrete"):
        _, vjp = rn.odeint_vjp(f, z0, t, theta, method=method, gradient=gradient,
                               n_steps=n_steps)
        grads[gradient] = vjp(g)
    return relative_error(grads["adjoint"], grads["discrete"])


@pytest.mark.parametrize("method", [m for m in rn.METHODS if m != "dop853"])
def test_gap_shrinks_at_the_method_order(method):
    f, theta, rng = small_mlp()
    z0, t = rng.standard_normal(2), np.array([0.0, 0.5, 1.0])
    g = rng.standard_normal((3, 2))
    gaps = np.array([gap(method, n, f, theta, z0, t, g) for n in N_STEPS])
    slopes = np.log2(gaps[:-1] / gaps[1:])
    order = rn.get_method(method).order
    assert abs(slopes[-1] - order) < SLOPE_SLACK, (gaps, slopes)


def test_gap_of_dop853_is_at_roundoff():
    """8th order with 4 steps per interval already puts the gap at roundoff level."""
    f, theta, rng = small_mlp()
    z0, t = rng.standard_normal(2), np.array([0.0, 0.5, 1.0])
    assert gap("dop853", 4, f, theta, z0, t, rng.standard_normal((3, 2))) < 1e-13


#: Adaptive adjoint at rtol = 1e-9 vs a near-exact reference (dop853's discrete gradient
#: at rtol = 1e-13): measured worst over 150 draws 6.2e-10 (dopri5, tsit5, bosh3, dop853),
#: 3.6e-8 (cash_karp) and 1.3e-7 (fehlberg45, which propagates its 4th-order solution).
ADJOINT_RTOL = 1e-9
ADJOINT_AGREEMENT = 1e3 * ADJOINT_RTOL


@given(problems(activations=("tanh", "softplus", "sigmoid"),
                methods=("bosh3", "fehlberg45", "cash_karp", "dopri5", "tsit5", "dop853")))
def test_adaptive_adjoint_matches_a_near_exact_gradient(problem):
    """Smooth dynamics only: across a ReLU kink the adjoint ODE has a discontinuous
    right-hand side and neither gradient converges at the method's order (the discrete
    tests cover ReLU and ELU). heun_euler needs ~1e4 steps at this tolerance: it is
    covered by the fixed-step order test."""
    f, theta, z0, t, method, _, rng = problem
    z, vjp = rn.odeint_vjp(f, z0, t, theta, method=method, rtol=ADJOINT_RTOL,
                           atol=ADJOINT_RTOL * 1e-2)
    _, exact = rn.odeint_vjp(f, z0, t, theta, method="dop853", gradient="discrete",
                             rtol=1e-13, atol=1e-15)
    g = rng.standard_normal(z.shape)
    assert relative_error(vjp(g), exact(g)) < ADJOINT_AGREEMENT


# ------------------------------------------------------------------------ time gradients

@given(problems(activations=("tanh", "softplus"), methods=("rk4", "dopri5", "bosh3")))
def test_last_time_gradient_is_a_dot_f(problem):
    """∂L/∂t_N = a(t_N)ᵀ f(t_N, z(t_N)) with a(t_N) = ∂L/∂z(t_N): the adjoint computes it
    so (to roundoff); the discrete gradient differentiates the last RK step w.r.t. its
    end point, which equals f only up to the truncation error (tight tolerance here),
    relative to |g_N||f_N|.

    The discrete check puts the cotangent at t_N alone: the replayed step points move with
    t_N (they keep their fractions of [t_0, t_N]), so an earlier output inside a step also
    moves with t_N by the derivative of its discretization error, and a cotangent there
    adds that to ∂L/∂t_N (measured: 1.7e-8 per unit of g_1 at rtol 1e-10 on a drawn MLP).
    The identity is about the last step."""
    f, theta, z0, t, method, options, rng = problem
    z, adjoint = rn.odeint_vjp(f, z0, t, theta, method=method, **options)
    g = rng.standard_normal(z.shape)
    a_dot_f = np.sum(g[-1] * f(t[-1], z[-1], theta))
    np.testing.assert_allclose(adjoint(g)[2][-1], a_dot_f, rtol=1e-12, atol=1e-14)
    z, discrete = rn.odeint_vjp(f, z0, t, theta, gradient="discrete", rtol=1e-10, atol=1e-12)
    g = np.concatenate([np.zeros_like(g[:-1]), g[-1:]])          # the cotangent at t_N alone
    f_N = f(t[-1], z[-1], theta)
    # The last step's ∂z_N/∂t_N is f(t_N, z_N) plus a truncation error of f's size, so the
    # error bound scales with |g_N||f_N|, not with the dot product (which may cancel).
    bound = 1e-6 * np.linalg.norm(g[-1]) * np.linalg.norm(f_N)
    assert abs(discrete(g)[2][-1] - np.sum(g[-1] * f_N)) <= bound


@pytest.mark.parametrize("gradient, agreement", [("adjoint", 1e-8), ("discrete", 1e-12),
                                                 ("autograd", 1e-12)])
@pytest.mark.parametrize("method, options", [("dopri5", dict(rtol=1e-9, atol=1e-11)),
                                             ("rk4", dict(n_steps=10))])
def test_autonomous_shift_in_time(gradient, agreement, method, options):
    """Autonomous f, loss at the last time only: shifting t_0 and t_1 together changes
    nothing, so ∂L/∂t_0 = −∂L/∂t_1. The discrete gradients hold it to roundoff (their
    step points move with both ends); the adjoint to its tolerance."""
    f, theta, rng = small_mlp(time_dependent=False)
    z0, t = rng.standard_normal((3, 2)), np.array([0.2, 1.4])
    z, vjp = rn.odeint_vjp(f, z0, t, theta, method=method, gradient=gradient, **options)
    g = np.stack([np.zeros_like(z0), rng.standard_normal(z0.shape)])
    dt = vjp(g)[2]
    np.testing.assert_allclose(dt[0], -dt[1], rtol=agreement)


# ------------------------------------------------------------------------------ batches

@pytest.mark.batch
def test_fixed_step_adjoint_of_a_batch_is_the_sum_over_samples():
    assert_batch_gradient_is_sum_over_samples("adjoint", "rk4", seed=5)


# ---------------------------------------------------------------------------- options

@pytest.mark.parametrize("variant", [dict(method="dop853"), dict(rtol=1e-11, atol=1e-13),
                                     dict(seminorm=True), dict(reset=False)])
def test_adjoint_options_keep_the_gradient(variant):
    f, theta, rng = small_mlp(3)
    z0, t = rng.standard_normal(2), np.array([0.0, 0.3, 0.9, 1.5])
    z, vjp = rn.odeint_vjp(f, z0, t, theta, rtol=1e-9, atol=1e-11,
                           gradient=rn.Adjoint(**variant))
    _, exact = rn.odeint_vjp(f, z0, t, theta, method="dop853", gradient="discrete",
                             rtol=1e-13, atol=1e-15)
    g = rng.standard_normal(z.shape)
    assert relative_error(vjp(g), exact(g)) < ADJOINT_AGREEMENT
    stats = vjp.backward_stats
    assert stats["nfe"] > 0 and stats["n_accepted"] + stats["n_rejected"] == stats["n_steps"]


def test_seminorm_takes_fewer_steps_with_many_parameters():
    """Kidger et al. (2021): θ̄ need not limit the step. With 8·64 + ... parameters the
    seminorm's reverse solve is no more expensive, and usually cheaper."""
    f, theta, rng = small_mlp(4, D=4, H=64)
    z0, t = rng.standard_normal((16, 4)), np.array([0.0, 2.0])
    nfe = {}
    for seminorm in (False, True):
        z, vjp = rn.odeint_vjp(f, z0, t, theta, rtol=1e-6, atol=1e-8,
                               gradient=rn.Adjoint(seminorm=seminorm))
        vjp(np.ones_like(z))
        nfe[seminorm] = vjp.backward_stats["nfe"]
    assert nfe[True] <= nfe[False], nfe


def test_stats_are_reported():
    f, theta, rng = small_mlp()
    for gradient in rn.GRADIENTS:
        z, vjp = rn.odeint_vjp(f, rng.standard_normal(2), np.array([0.0, 1.0]), theta,
                               gradient=gradient)
        assert vjp.forward_stats["n_accepted"] >= 1 and vjp.forward_stats["nfe"] > 0


# ------------------------------------------------------------------------- input errors

def test_unknown_gradient_name():
    f, theta, _ = small_mlp()
    with pytest.raises(InputError, match="unknown gradient 'backprop'"):
        rn.odeint_vjp(f, np.zeros(2), np.array([0.0, 1.0]), theta, gradient="backprop")


@pytest.mark.parametrize("gradient", rn.GRADIENTS)
@pytest.mark.parametrize("shape", [(2,), (3, 2), (2, 3), (2, 2, 1)])
def test_cotangent_of_the_wrong_shape(gradient, shape):
    f, theta, _ = small_mlp()
    z, vjp = rn.odeint_vjp(f, np.zeros(2), np.array([0.0, 1.0]), theta, gradient=gradient)
    assert z.shape == (2, 2)
    with pytest.raises(InputError, match=r"dL_dz has shape .* must match"):
        vjp(np.ones(shape))


@pytest.mark.parametrize("gradient", rn.GRADIENTS)
def test_non_finite_cotangent(gradient):
    f, theta, _ = small_mlp()
    z, vjp = rn.odeint_vjp(f, np.zeros(2), np.array([0.0, 1.0]), theta, gradient=gradient)
    with pytest.raises(InputError, match="non-finite"):
        vjp(np.full(z.shape, np.nan))


@pytest.mark.parametrize("t", [np.array([0.5]), 0.5])
def test_a_single_time(t):
    f, theta, _ = small_mlp()
    with pytest.raises(InputError):
        rn.odeint_vjp(f, np.zeros(2), t, theta)


@given(st.integers(1, 3))
def test_cotangent_list_is_refused(n):
    f, theta, _ = small_mlp()
    z, vjp = rn.odeint_vjp(f, np.zeros(2), np.array([0.0, 1.0]), theta, gradient="adjoint")
    with pytest.raises(InputError):
        vjp([[0.0] * n] * 2)


# --- the reverse solve on one vector (refnode.adjoint.packing_of) ------------------------------


def test_packing_round_trips_a_tree_and_unpacks_views():
    from refnode.adjoint import AugmentedState
    from refnode.params import Packing
    rng = np.random.default_rng(0)
    s = AugmentedState(rng.standard_normal((3, 2)), rng.standard_normal((3, 2)),
                       {"W": rng.standard_normal((4, 2)), "b": (rng.standard_normal(4),)},
                       np.array(0.5))
    packing = Packing(s)
    y = packing.pack(s)
    assert y.shape == (6 + 6 + 8 + 4 + 1,)
    back = packing.unpack(y)
    assert isinstance(back, AugmentedState) and isinstance(back.theta_bar["b"], tuple)
    for a, b in zip(rn.params.tree_leaves(back), rn.params.tree_leaves(s)):
        assert a.shape == b.shape and np.array_equal(a, b) and np.shares_memory(a, y)
    reordered = s._replace(theta_bar={"b": s.theta_bar["b"], "W": s.theta_bar["W"]})
    assert np.array_equal(packing.pack(reordered), y)   # dict leaves are matched by key
    rows = np.stack([y, 2 * y])                       # a solution's rows: leaves (2, *shape)
    stacked = packing.unpack(rows)
    assert stacked.theta_bar["W"].shape == (2, 4, 2) and stacked.t_bar.shape == (2,)
    assert np.array_equal(stacked.theta_bar["W"][1], 2 * s.theta_bar["W"])


def test_the_state_is_packed_only_when_every_leaf_shares_one_dtype():
    from refnode.adjoint import AugmentedState, packing_of
    z = np.ones((2, 3))
    same = AugmentedState(z, z, {"W": np.ones(4)}, np.zeros(()))
    assert packing_of(same, same) is not None
    mixed = same._replace(t_bar=np.zeros((), np.float32))
    assert packing_of(mixed, same) is None and packing_of(same, mixed) is None
    assert packing_of(same, same._replace(t_bar=0.0)) is None          # a Python float
    assert packing_of(AugmentedState(z, (), (), ()), AugmentedState(z, (), (), ())) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("adjoint", [rn.Adjoint(), rn.Adjoint(seminorm=True),
                                     rn.Adjoint(method="bosh3"), rn.Adjoint(n_steps=5)],
                         ids=["default", "seminorm", "bosh3", "fixed"])
def test_the_packed_reverse_solve_gives_the_tree_solves_numbers_bit_for_bit(dtype, adjoint,
                                                                           monkeypatch):
    """Packing changes how many array operations a stage sum takes, not one bit of any
    gradient or count (every entry sees the same arithmetic; the norm sees the tree)."""
    import refnode.adjoint as adjoint_module
    rng = np.random.default_rng(3)
    f = mlp_dynamics((3, 16, 3), "tanh")
    theta = rn.params.tree_map(lambda p: p.astype(dtype), f.init(rng))
    z0 = rng.standard_normal((5, 3)).astype(dtype)
    t = np.array([0.0, 0.4, 1.0])
    g = rng.standard_normal((3, 5, 3)).astype(dtype)

    def gradients():
        z, vjp = rn.odeint_vjp(f, z0, t, theta, rtol=1e-6, atol=1e-6, gradient=adjoint)
        return rn.params.tree_leaves(vjp(g)), vjp.backward_stats

    used, original = [], adjoint_module.packing_of
    monkeypatch.setattr(adjoint_module, "packing_of",
                        lambda s, k1: used.append(original(s, k1)) or used[-1])
    packed, packed_stats = gradients()
    assert used and all(p is not None for p in used)      # every reverse solve was packed
    calls = []
    monkeypatch.setattr(adjoint_module, "packing_of", lambda s, k1: calls.append(1))
    as_tree, tree_stats = gradients()
    assert calls and packed_stats == tree_stats
    for a, b in zip(packed, as_tree):
        assert np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b)


def test_the_reverse_solve_evaluates_f_and_its_vjp_exactly_its_nfe_times():
    """Each evaluation of the augmented dynamics is one forward pass of the network and one
    VJP, and nothing else calls them: the first VJP's output is checked as it comes, not
    by a probe of its own, so the backward NFE counts every call."""
    f = rn.nn.mlp_dynamics((3, 8, 3), "tanh")
    theta = f.init(np.random.default_rng(0))
    calls = count_network_calls(f)
    z, vjp = rn.odeint_vjp(f, np.ones((2, 3)), np.array([0.0, 0.5, 1.0]), theta)
    calls.update(forward=0, vjp=0)
    vjp(np.ones_like(z))
    assert calls == {"forward": vjp.backward_stats["nfe"], "vjp": vjp.backward_stats["nfe"]}
