"""Continuous normalizing flows and the planar NF: traces, VJPs, densities, gradients.

References, each independent of the code under test:
* the trace of the full Jacobian assembled from D vector-Jacobian products;
* autograd differentiating the same forward code (~1e-12), and the dot-product test;
* linear dynamics, where the change in log-density is −t·tr(A) in closed form;
* quadrature: a density integrates to 1;
* the four gradients of the CNF loss (adjoint, discrete, autograd, central differences).
"""

import argparse
import json

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad, make_vjp
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import refnode as rn
from refnode.data import toy2d
from refnode.errors import InputError
from refnode.commands import reproduce_cnf as command
from refnode.experiments import cnf as experiment
from refnode.models import planar_flow as pf
from refnode.models.cnf import (CNFDynamics, ConcatSquashField, PlanarField, augment, cnf_kl,
                                cnf_nll, draw_noise)
from refnode.params import tree_map, tree_vdot
from refnode.testing import central_difference, check_vjp, compare_gradients, relative_error

pytestmark = pytest.mark.cnf

AUTOGRAD_RTOL = 1e-12   # same float64 computation, rounding differs only in sum order
B, D, T = 4, 2, 0.8

FIELDS = {
    "planar": lambda: PlanarField(D, 3, hidden=5),
    "concatsquash-tanh": lambda: ConcatSquashField(D, (6, 5), "tanh"),
    "concatsquash-softplus": lambda: ConcatSquashField(D, (6,), "softplus"),
}


def point(seed=0):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((B, D + 1)), rng.standard_normal((B, D + 1))


def jacobian_trace(field, theta, t, z):
    """tr ∂f/∂z from the full Jacobian: row i is e_iᵀ ∂f/∂z, one VJP each."""
    _, _, cache = field.forward(theta, t, z)
    rows = [field.vjp(theta, cache, np.tile(np.eye(D)[i], (B, 1)), np.zeros(B))[0]
            for i in range(D)]
    return np.trace(np.stack(rows, axis=1), axis1=1, axis2=2)


@pytest.mark.parametrize("name", FIELDS)
def test_exact_trace_equals_trace_of_jacobian(name):
    rng, s, _ = point()
    field = FIELDS[name]()
    theta = field.init(rng)
    _, trace, _ = field.forward(theta, 0.3, s[:, :D])
    np.testing.assert_allclose(trace, jacobian_trace(field, theta, 0.3, s[:, :D]),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_mean_converges_to_trace(distribution):
    """n draws of εᵀJε: the mean is within 5 standard errors (from the sample variance)."""
    n, rng = 4000, np.random.default_rng(1)
    exact = ConcatSquashField(D, (8, 8))
    theta = exact.init(rng)
    z = np.tile(rng.standard_normal((1, D)), (n, 1))       # one point, n noise draws
    noisy = ConcatSquashField(D, (8, 8), estimator="hutchinson").with_noise(
        draw_noise(rng, (n, D), distribution))
    estimates = noisy.forward(theta, 0.5, z)[1]
    true = exact.forward(theta, 0.5, z[:1])[1][0]
    standard_error = estimates.std(ddof=1) / np.sqrt(n)
    assert standard_error > 0.0
    assert abs(estimates.mean() - true) < 5.0 * standard_error


def linear_field(rng, estimator="exact"):
    """One ConcatSquashLinear layer with w_g = w_b = b = 0: f = σ(b_g) ⊙ (z Wᵀ) = A z."""
    field = ConcatSquashField(D, (), estimator=estimator)
    theta = field.init(rng)
    theta[0] = {**theta[0], "w_g": np.zeros(D), "w_b": np.zeros(D), "b": np.zeros(D)}
    A = theta[0]["W"] * (1.0 / (1.0 + np.exp(-theta[0]["b_g"])))[:, None]
    return field, theta, A


def test_linear_dynamics_change_in_log_density_is_minus_t_trace():
    rng = np.random.default_rng(2)
    field, theta, A = linear_field(rng)
    z0 = rng.standard_normal((B, D))
    states = rn.odeint(CNFDynamics(field), augment(z0), np.array([0.0, T]), theta,
                       rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(states[-1][:, -1], -T * np.trace(A), rtol=1e-12)


def test_hutchinson_noise_is_fixed_within_a_solve():
    """Linear f = A z: with ε held fixed ℓ(T) = −T εᵀAε exactly, whatever the steps."""
    rng = np.random.default_rng(3)
    field, theta, A = linear_field(rng, estimator="hutchinson")
    eps = draw_noise(rng, (B, D))
    fixed = field.with_noise(eps)
    assert field.noise is None and fixed.noise is eps
    states = rn.odeint(CNFDynamics(fixed), augment(rng.standard_normal((B, D))),
                       np.array([0.0, T]), theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(states[-1][:, -1], -T * np.einsum("bi,ij,bj->b", eps, A, eps),
                               rtol=1e-12)
    with pytest.raises(InputError, match="with_noise"):
        field.forward(theta, 0.0, rng.standard_normal((B, D)))


@pytest.mark.parametrize("name", list(FIELDS) + ["hutchinson"])
def test_cnf_dynamics_vjp_matches_autograd_and_dot_product_test(name):
    rng, s, a = point(4)
    if name == "hutchinson":
        field = ConcatSquashField(D, (5, 4), estimator="hutchinson").with_noise(
            draw_noise(rng, (B, D), "gaussian"))
    else:
        field = FIELDS[name]()
    f = CNFDynamics(field)
    theta = f.init(rng)
    t = np.array(0.4)
    mine = f.value_and_vjp(t, s, theta, a)
    oracle = rn.dynamics.AutogradDynamics(f).value_and_vjp(t, s, theta, a)
    for got, want in zip(mine, oracle):
        assert relative_error(got, want) < AUTOGRAD_RTOL
    check_vjp(lambda t, s, theta: f(t, s, theta),
              lambda g, t, s, theta: (lambda a_s, a_th, a_t: (a_t, a_s, a_th))(
                  *f.vjp(t, s, theta, g)), (t, s, theta))


def test_planar_nf_vjp_matches_autograd_and_dot_product_test():
    rng = np.random.default_rng(5)
    theta = pf.init_planar_flow(rng, D, 3)
    z = rng.standard_normal((B, D))
    g_z, g_ld = rng.standard_normal((B, D)), rng.standard_normal(B)
    _, _, caches = pf.flow_forward(theta, z)
    mine = pf.flow_vjp(theta, caches, g_z, g_ld)
    joint = lambda args: (lambda out: anp.concatenate([out[0], out[1][:, None]], axis=1))(
        pf.flow_forward(args[1], args[0]))
    oracle = make_vjp(joint)((z, theta))[0](np.concatenate([g_z, g_ld[:, None]], axis=1))
    assert relative_error(mine, oracle) < AUTOGRAD_RTOL
    fun = lambda z, theta: joint((z, theta))
    vjp = lambda g, z, theta: pf.flow_vjp(theta, pf.flow_forward(theta, z)[2], g[:, :D], g[:, D])
    check_vjp(fun, vjp, (z, theta))
    w, u = theta[0]["w"], theta[0]["u"]
    check_vjp(lambda w, u: np.concatenate([pf.constrained_u(w, u)[0], [pf.constrained_u(w, u)[1]]]),
              lambda g, w, u: pf.constrained_u_vjp(w, u, g[:D], g[D]), (w, u))


finite = st.floats(-10.0, 10.0, allow_nan=False)


@given(w=arrays(np.float64, D, elements=finite), u=arrays(np.float64, D, elements=finite),
       b=finite, z=arrays(np.float64, (3, D), elements=st.floats(-1e3, 1e3)))
def test_planar_nf_constrained_u_keeps_log_det_finite(w, u, b, z):
    """1 + wᵀû = softplus(wᵀu) > 0, so 1 + ûᵀψ > 0 for every input (w = 0 leaves û undefined).

    |entries| ≤ 10 keeps wᵀu ≥ −200, where softplus(wᵀu) ≈ e^{−200} has not underflowed.
    """
    assume(np.sum(w * w) > 1e-6)
    u_hat, s = pf.constrained_u(w, u)
    assert s > 0.0
    scale = np.dot(u, u) * np.dot(w, w)          # rounding in wᵀû grows with |w|·|u|
    assert np.dot(w, u_hat) == pytest.approx(s - 1.0, rel=1e-9, abs=1e-12 * scale)
    _, logdet, cache = pf.layer_forward({"w": w, "u": u, "b": np.asarray(b)}, z)
    assert np.all(cache[-1] > 0.0) and np.all(np.isfinite(logdet))


def density_on_grid(log_p, limit=7.0, n=121):
    """∫ p over [−limit, limit]² by the trapezoidal rule on an n × n grid."""
    x = np.linspace(-limit, limit, n)
    z = np.stack(np.meshgrid(x, x), axis=-1).reshape(-1, 2)
    p = np.exp(log_p(z)).reshape(n, n)
    return np.trapezoid(np.trapezoid(p, x, axis=1), x)


def test_learned_densities_integrate_to_one():
    rng = np.random.default_rng(6)
    cfg = dict(experiment.CONFIGS["tiny"], mle_iters=4, ffjord_hidden=(6,))
    log_p, _ = experiment.train_likelihood_models("two_moons", cfg, rng)
    for model, fn in log_p.items():
        assert density_on_grid(fn) == pytest.approx(1.0, abs=0.01), model


def loss_problem(seed=7, hutchinson=False):
    """A small CNF likelihood problem: (dynamics, theta, x)."""
    rng = np.random.default_rng(seed)
    if hutchinson:
        field = ConcatSquashField(D, (4,), estimator="hutchinson")
        field = field.with_noise(draw_noise(rng, (3, D)))
    else:
        field = PlanarField(D, 2, hidden=4)
    f = CNFDynamics(field)
    return f, f.init(rng), toy2d.sample("two_moons", 3, rng)


@pytest.mark.parametrize("hutchinson", [False, True])
def test_cnf_loss_gradients_discrete_autograd_finite_differences(hutchinson):
    """Fixed-step rk4: discrete == autograd to rounding; both == central differences."""
    f, theta, x = loss_problem(hutchinson=hutchinson)
    fixed = dict(method="rk4", n_steps=8)
    grads = {}
    for gradient in ("discrete", "autograd"):
        _, g_theta, g_T = cnf_nll(f, theta, T, x, dict(fixed, gradient=gradient))
        grads[gradient] = {"theta": g_theta, "T": np.array(g_T)}
    compare_gradients(grads, rtol=1e-10, atol=1e-13, raise_on_failure=True)

    loss = lambda p: cnf_nll(f, p["theta"], float(p["T"]), x, dict(fixed, gradient="discrete"))[0]
    params, rng = {"theta": theta, "T": np.array(T)}, np.random.default_rng(8)
    direction = tree_map(lambda leaf: rng.standard_normal(np.shape(leaf)), params)
    only_T = {"theta": tree_map(np.zeros_like, theta), "T": np.array(1.0)}
    for v in (direction, only_T):                 # a random direction, and T alone
        central = central_difference(loss, params, v, eps=1e-6)
        assert tree_vdot(grads["discrete"], v) == pytest.approx(central, rel=1e-6)


def test_cnf_adjoint_gradient_matches_discrete_including_T():
    """Adaptive dopri5 at tight tolerance: the continuous adjoint == the discrete gradient."""
    f, theta, x = loss_problem()
    tight = dict(method="dopri5", rtol=1e-10, atol=1e-10)
    log_p = toy2d.target_log_density("u1")
    score = elementwise_grad(log_p)
    for objective, args in ((cnf_nll, (x,)), (cnf_kl, (x, log_p, score))):
        grads = {}
        for gradient in ("discrete", "adjoint"):
            _, g_theta, g_T = objective(f, theta, T, *args, solver=dict(tight, gradient=gradient))
            grads[gradient] = {"theta": g_theta, "T": np.array(g_T)}
        compare_gradients(grads, rtol=1e-6, atol=1e-9, raise_on_failure=True)
        assert grads["adjoint"]["T"] != 0.0


def test_reproduce_cnf_tiny_runs_and_writes_results(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    command.configure(parser)
    args = parser.parse_args(["--tiny", "--seeds", "2", "--seed", "3", "--out", str(tmp_path),
                              "--json", str(tmp_path / "cnf.json")])
    assert command.run(args) == 0
    results = json.loads((tmp_path / "cnf.json").read_text())
    assert results["complete"] and results["seeds"] == [3, 4]
    density, likelihood = results["density_matching"], results["likelihood"]
    assert {"model", "size", "target", "final_loss", "seed"} <= set(density[0])
    assert {r["seed"] for r in density} == {r["seed"] for r in likelihood} == {3, 4}
    assert np.isfinite([r["final_loss"] for r in density]).all()
    assert {r["model"] for r in likelihood} == {"planar_nf", "planar_cnf", "ffjord_cnf"}
    for row in results["summary"]["likelihood"]:
        values = [r["test_nll"] for r in likelihood
                  if (r["model"], r["data"]) == (row["model"], row["data"])]
        assert row["n"] == 2 and row["mean"] == pytest.approx(np.mean(values))
        assert row["sd"] == pytest.approx(np.std(values, ddof=1))
    for name in ("cnf_density_matching.png", "cnf_transformation.png"):
        assert (tmp_path / name).stat().st_size > 0
    out = capsys.readouterr().out
    assert "held-out negative log-likelihood" in out and " ± " in out


def test_a_seed_gives_the_same_numbers_alone_or_after_another_and_with_figures():
    """Seeds run in separate processes can be pooled: seed s depends on s alone."""
    cfg = experiment.CONFIGS["tiny"]
    measured = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]
    alone = experiment.run_seed(cfg, 4, figures=False)
    with_figures = experiment.run_seed(cfg, 4, figures=True)
    for part in (0, 1):
        assert measured(alone[part]) == measured(with_figures[part])
