"""Latent ODE and RNN baseline: every hand-derived gradient against autograd, finite
differences and closed forms; the ELBO's pieces; the experiment end to end (tiny)."""

import argparse
import json

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from scipy import stats

from refnode.data import generate_spirals, irregular_subsample
from refnode.experiments import latent as experiment
from refnode.models.latent_ode import (LatentODE, gaussian_log_likelihood,
                                       gaussian_log_likelihood_grad, kl_standard_normal,
                                       kl_standard_normal_grad, make_batch, reparameterize,
                                       reparameterize_vjp)
from refnode.models.rnn import RNNBaseline, RNNCell, rnn_forward, rnn_vjp
from refnode.params import flatten, tree_map
from refnode.testing import central_difference, check_vjp

pytestmark = pytest.mark.latent


@pytest.fixture(scope="module")
def tiny():
    """Three spirals, five irregular observations each in the first 8 of 12 grid times."""
    data = generate_spirals(n_spirals=3, n_total=12, seed=0)
    sub = irregular_subsample(data, 5, 0, window=slice(0, 8))
    return data, sub, make_batch(sub.z, sub.t, 0.0)


def tiny_model(solver):
    return LatentODE(rnn_hidden=5, ode_hidden=6, decoder_hidden=7, solver=solver)


def max_rel(a, b):
    a, b = flatten(a)[0], flatten(b)[0]
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


# --- the whole model's gradient ------------------------------------------------------------


def test_latent_ode_gradient_discrete_matches_autograd(tiny):
    _, _, batch = tiny
    model = tiny_model(dict(method="rk4", n_steps=2))
    theta = model.init(np.random.default_rng(0))
    eps = np.random.default_rng(1).standard_normal((3, 4))
    loss, grad, _ = model.loss_and_grad(theta, batch, eps, gradient="discrete")
    expected = autograd.grad(model.loss)(theta, batch, eps)
    assert loss == pytest.approx(model.loss(theta, batch, eps), rel=1e-14)
    assert max_rel(grad, expected) < 1e-10
    assert set(grad) == {"encoder", "dynamics", "decoder"}


def test_latent_ode_gradient_adjoint_and_finite_differences(tiny):
    """Adaptive dopri5: the adjoint agrees with the discrete gradient to about the
    tolerance, and the discrete gradient agrees with central differences of the loss."""
    _, _, batch = tiny
    model = tiny_model(dict(method="dopri5", rtol=1e-9, atol=1e-11))
    theta = model.init(np.random.default_rng(2))
    eps = np.random.default_rng(3).standard_normal((3, 4))
    _, g_discrete, _ = model.loss_and_grad(theta, batch, eps, gradient="discrete")
    _, g_adjoint, _ = model.loss_and_grad(theta, batch, eps, gradient="adjoint")
    assert max_rel(g_adjoint, g_discrete) < 1e-6
    fixed = tiny_model(dict(method="rk4", n_steps=2))  # fixed grid: FD sees no step changes
    _, g_fixed, _ = fixed.loss_and_grad(theta, batch, eps, gradient="discrete")
    direction = tree_map(lambda x: np.random.default_rng(4).standard_normal(x.shape), theta)
    fd = central_difference(lambda th: fixed.loss(th, batch, eps), theta, direction, 1e-6)
    exact = float(flatten(g_fixed)[0] @ flatten(direction)[0])
    assert fd == pytest.approx(exact, rel=1e-6)


# --- the ELBO's pieces -------------------------------------------------------------------


def test_kl_matches_closed_form_and_scipy_integral():
    mu, log_var = np.array([[0.3, -1.2]]), np.array([[-0.5, 0.8]])
    var = np.exp(log_var)
    # KL(N(m, s²) ‖ N(0, 1)) = log(1/s) + (s² + m²)/2 − 1/2, per dimension.
    closed = np.sum(-0.5 * log_var + 0.5 * (var + mu ** 2) - 0.5)
    assert kl_standard_normal(mu, log_var)[0] == pytest.approx(closed, rel=1e-14)
    q = stats.norm(mu[0, 0], np.sqrt(var[0, 0]))
    x = np.linspace(-12, 12, 200001)
    integrand = q.pdf(x) * (q.logpdf(x) - stats.norm.logpdf(x))
    one_dim = kl_standard_normal(mu[:, :1], log_var[:, :1])[0]
    assert np.trapezoid(integrand, x) == pytest.approx(one_dim, rel=1e-8)
    g_mu, g_lv = kl_standard_normal_grad(mu, log_var)
    expected = autograd.grad(lambda m, lv: anp.sum(kl_standard_normal(m, lv)), (0, 1))(mu, log_var)
    np.testing.assert_allclose(g_mu, expected[0], rtol=1e-14)
    np.testing.assert_allclose(g_lv, expected[1], rtol=1e-14)


def test_gaussian_log_likelihood_matches_scipy_and_masks():
    rng = np.random.default_rng(0)
    x, mean = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 2))
    mask = (rng.random((4, 3)) < 0.5).astype(float)
    expected = np.sum(stats.norm.logpdf(x, mean, 0.3) * mask[:, :, None], axis=(0, 2))
    np.testing.assert_allclose(gaussian_log_likelihood(x, mean, 0.3, mask), expected, rtol=1e-13)
    grad = autograd.grad(lambda m: anp.sum(gaussian_log_likelihood(x, m, 0.3, mask)))(mean)
    np.testing.assert_allclose(gaussian_log_likelihood_grad(x, mean, 0.3, mask), grad, rtol=1e-13)


def test_reparameterization_gradient_is_unbiased_by_monte_carlo():
    """For L(z) = aᵀz, E[L] = aᵀμ: ∂/∂μ = a and ∂/∂log_var = 0 exactly. With L(z) = Σ z²,
    E[L] = Σ (μ² + e^{log_var}): the pathwise gradients must average to 2μ and e^{log_var}."""
    rng = np.random.default_rng(0)
    mu, log_var = np.array([[0.5, -1.0, 2.0]]), np.array([[0.2, -0.7, 0.1]])
    eps = rng.standard_normal((200000, 3))
    z = reparameterize(mu, log_var, eps)
    a = np.array([1.0, -2.0, 0.5])
    g_mu, g_lv = reparameterize_vjp(log_var, eps, np.broadcast_to(a, z.shape))
    np.testing.assert_allclose(g_mu.mean(0), a, rtol=1e-14)
    assert np.all(np.abs(g_lv.mean(0)) < 4 * g_lv.std(0) / np.sqrt(len(eps)))
    g_mu, g_lv = reparameterize_vjp(log_var, eps, 2 * z)
    se = g_lv.std(0) / np.sqrt(len(eps))
    np.testing.assert_allclose(g_mu.mean(0), 2 * mu[0], atol=0.02)
    assert np.all(np.abs(g_lv.mean(0) - np.exp(log_var[0])) < 4 * se)


def test_make_batch_lays_observations_on_the_union_of_times(tiny):
    _, sub, batch = tiny
    assert batch.times[0] == 0.0 and np.all(np.diff(batch.times) > 0)
    np.testing.assert_array_equal(batch.mask.sum(0), 5)
    for b in range(3):
        on = batch.mask[:, b] == 1
        np.testing.assert_array_equal(batch.times[on], sub.t[b])
        np.testing.assert_array_equal(batch.x[on, b], sub.z[b])
    # The encoder reads backwards: last observation first, with the gap t_j − t_{j−1}.
    np.testing.assert_array_equal(batch.encoder_inputs[0, :, :2], sub.z[:, -1])
    np.testing.assert_allclose(batch.encoder_inputs[-1, :, 2], sub.t[:, 0])
    np.testing.assert_allclose(batch.encoder_inputs[0, :, 2], sub.t[:, -1] - sub.t[:, -2])


# --- the RNN -------------------------------------------------------------------------------


def test_rnn_cell_vjp_matches_autograd_and_dot_product_test():
    cell = RNNCell(3, 4)
    theta = cell.init(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x, h, g = rng.standard_normal((5, 3)), rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    _, cache = cell.forward(theta, x, h)
    g_x, g_h, g_theta = cell.vjp(theta, cache, g)
    fun = lambda th, x, h: anp.sum(cell.forward(th, x, h)[0] * g)
    expected = autograd.grad(fun, (0, 1, 2))(theta, x, h)
    assert max_rel((g_theta, g_x, g_h), expected) < 1e-13
    vjp = lambda g, th, x, h: (lambda r: (r[2], r[0], r[1]))(
        cell.vjp(th, cell.forward(th, x, h)[1], g))
    check_vjp(lambda th, x, h: cell.forward(th, x, h)[0], vjp, (theta, x, h))


def test_backpropagation_through_time_matches_autograd():
    cell = RNNCell(2, 3)
    theta = cell.init(np.random.default_rng(0))
    rng = np.random.default_rng(2)
    inputs, h0, g = rng.standard_normal((6, 4, 2)), rng.standard_normal((4, 3)), rng.standard_normal((6, 4, 3))
    _, caches = rnn_forward(cell, theta, inputs, h0)
    got = rnn_vjp(cell, theta, caches, g)
    fun = lambda i, h, th: anp.sum(rnn_forward(cell, th, i, h)[0] * g)
    expected = autograd.grad(fun, (0, 1, 2))(inputs, h0, theta)
    assert max_rel(got, expected) < 1e-13


def test_rnn_baseline_gradient_and_extrapolation(tiny):
    data, sub, _ = tiny
    model = RNNBaseline(n_hidden=5)
    theta = model.init(np.random.default_rng(0))
    loss, grad = model.loss_and_grad(theta, sub.z, sub.t)
    assert loss == pytest.approx(model.loss(theta, sub.z, sub.t), rel=1e-14)
    assert max_rel(grad, autograd.grad(model.loss)(theta, sub.z, sub.t)) < 1e-13
    pred = model.extrapolate(theta, sub.z, sub.t, data.t[8:])
    assert pred.shape == (3, 4, 2) and np.all(np.isfinite(pred))


# --- spirals: what tests/test_data.py does not cover ----------------------------------------


def test_subsample_seed_reproducible_and_windows_disjoint():
    data = generate_spirals(n_spirals=50, n_total=30, seed=4)
    a = irregular_subsample(data, 10, np.random.default_rng([0, 10]), window=slice(0, 20))
    b = irregular_subsample(data, 10, np.random.default_rng([0, 10]), window=slice(0, 20))
    np.testing.assert_array_equal(a.index, b.index)
    assert a.index.max() < 20  # nothing leaks into the extrapolation window


# --- the experiment end to end ------------------------------------------------------------


def test_experiment_tiny_run_writes_json_and_figures(tmp_path, monkeypatch):
    tiny_config = dict(n_spirals=12, n_test=4, n_total=15, obs_counts=(4, 10), iterations=2,
                       batch_size=4, checkpoint_every=1)
    monkeypatch.setattr(experiment, "QUICK", tiny_config)
    parser = argparse.ArgumentParser()
    experiment.configure(parser)
    argv = ["--quick", "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "fig"),
            "--checkpoint-dir", str(tmp_path / "ck")]
    assert experiment.run(parser.parse_args(argv)) == 0
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert {(r["model"], r["n_obs"]) for r in results} == {
        (m, n) for m in ("rnn", "latent_ode") for n in (4, 10)}
    assert all(np.isfinite(r["rmse"]) and r["rmse"] > 0 for r in results)
    for name in ("latent_ode_spirals.png", "latent_ode_interpolation.png"):
        assert (tmp_path / "fig" / name).stat().st_size > 10000
    # Resuming from the final checkpoints trains nothing more and gives the same numbers.
    assert experiment.run(parser.parse_args(argv)) == 0
    again = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["rmse"] for r in again] == [r["rmse"] for r in results]
