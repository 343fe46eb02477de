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
from refnode.data.spirals import REFERENCE_CENTRE, reference_curves, spiral_windows
from refnode.errors import InputError
from refnode.experiments import latent as experiment
from refnode.models.latent_ode import (
    LatentODE,
    gaussian_log_likelihood,
    gaussian_log_likelihood_grad,
    kl_standard_normal,
    kl_standard_normal_grad,
    make_batch,
    reparameterize,
    reparameterize_vjp,
)
from refnode.models.rnn import RNNBaseline, RNNCell, gap_inputs, rnn_forward, rnn_vjp
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


def test_training_gradient_matches_the_papers_tight_adjoint_to_about_its_tolerance():
    """What the experiment trains with (backpropagation through dopri5 at rtol 1e-5, atol
    1e-6) against the adjoint at the paper's §6 tolerance 1.5e-8, on ten reference windows
    at initialisation: measured 8.5e-6 relative (docs/latent.md has trained models)."""
    config = experiment.Config()
    windows = spiral_windows(10, seed=0)
    sub = irregular_subsample(windows, 30, 0)
    batch = make_batch(sub.z, sub.t, 0.0)
    eps = np.random.default_rng(1).standard_normal((10, 4))
    theta = LatentODE().init(np.random.default_rng(0))

    def gradient(how, rtol, atol):
        model = LatentODE(noise_std=windows.noise_std,
                          solver=dict(method="dopri5", rtol=rtol, atol=atol))
        return model.loss_and_grad(theta, batch, eps, gradient=how)[1]

    tight = gradient("adjoint", 1.5e-8, 1.5e-8)
    assert max_rel(gradient(config.gradient, config.rtol, config.atol), tight) < 1e-4


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


def test_scheduled_sampling_gradient_is_bptt_over_the_inputs_actually_read(tiny):
    """With feed-back, step j reads readout(h_{j-1}) where chosen; the gradient must equal
    autograd's through the teacher-forced loss on those inputs held constant."""
    _, sub, _ = tiny
    model = RNNBaseline(n_hidden=5)
    theta = model.init(np.random.default_rng(0))
    feed_back = np.random.default_rng(1).random((4, 3)) < 0.5
    feed_back[1:, 0] = True  # series 0 reads only its own predictions after the first step
    loss, grad = model.loss_and_grad(theta, sub.z, sub.t, feed_back)
    _, caches = model.run_inputs(theta, gap_inputs(sub.z, sub.t), feed_back)
    inputs = np.stack([cache[0] for cache in caches])
    h = np.zeros((3, 5))
    for j in range(1, 4):  # the inputs read: predictions where fed back, data elsewhere
        h = model.cell.forward(theta["cell"], inputs[j - 1], h)[0]
        own = model.readout.forward(theta["readout"], 0.0, h)[0]
        expected = np.where(feed_back[j][:, None], own, sub.z[:, j])
        np.testing.assert_allclose(inputs[j, :, :2], expected, rtol=1e-14)
    assert not np.allclose(inputs[1:, 0, :2], np.transpose(sub.z[0:1, 1:4], (1, 0, 2))[:, 0])
    target = np.transpose(sub.z[:, 1:], (1, 0, 2))

    def loss_on(th):
        hs, _ = rnn_forward(model.cell, th["cell"], inputs)
        return anp.mean((model.readout.forward(th["readout"], 0.0, hs)[0] - target) ** 2)

    assert loss == pytest.approx(loss_on(theta), rel=1e-14)
    assert max_rel(grad, autograd.grad(loss_on)(theta)) < 1e-13
    # No feed-back at all is teacher forcing.
    tf_loss, _ = model.loss_and_grad(theta, sub.z, sub.t, np.zeros((4, 3), bool))
    assert tf_loss == pytest.approx(model.loss(theta, sub.z, sub.t), rel=1e-14)


def test_rnn_extrapolation_steps_by_the_gap_to_each_requested_time(tiny):
    """The first step reads the last observation with the gap to the first future time;
    later steps read the previous prediction with the gap between requested times."""
    _, sub, _ = tiny
    model = RNNBaseline(n_hidden=5)
    theta = model.init(np.random.default_rng(0))
    t_future = sub.t[:, -1].max() + np.array([0.3, 0.5, 1.2])
    pred = model.extrapolate(theta, sub.z, sub.t, t_future)
    hs, _ = rnn_forward(model.cell, theta["cell"], gap_inputs(sub.z, sub.t))
    h, x, t_last = hs[-1], sub.z[:, -1], sub.t[:, -1]
    for k, t_next in enumerate(t_future):
        u = np.concatenate([x, (t_next - t_last)[:, None]], axis=1)
        h = model.cell.forward(theta["cell"], u, h)[0]
        x, t_last = model.readout.forward(theta["readout"], 0.0, h)[0], np.full(3, t_next)
        np.testing.assert_allclose(pred[:, k], x, rtol=1e-14)


# --- the reference windows -------------------------------------------------------------------


def test_reference_curves_wind_opposite_ways_and_outwards():
    tau, counter, clockwise = reference_curves()
    assert tau.shape == (1000,) and tau[-1] == pytest.approx(6 * np.pi)
    for curve, centre, sense in ((counter, REFERENCE_CENTRE, 1), (clockwise, -REFERENCE_CENTRE, -1)):
        rel = curve - [centre, 0.0]
        cross = rel[:-1, 0] * rel[1:, 1] - rel[:-1, 1] * rel[1:, 0]
        assert np.all(np.sign(cross[1:]) == sense)  # cross[0] = 0: the counter-clockwise curve starts at its centre
        assert np.all(np.diff(np.hypot(*rel.T)) > 0)  # radius grows with τ


def test_windows_are_consecutive_curve_points_with_window_relative_time():
    w = spiral_windows(50, start=(100, 800), noise_std=0.3, seed=3)
    tau, counter, clockwise = reference_curves()
    assert w.t.shape == (100,) and w.t_future.shape == (100,) and w.t[0] == 0.0
    np.testing.assert_allclose(np.diff(np.concatenate([w.t, w.t_future])), tau[1], rtol=1e-12)
    for i in range(50):
        curve = clockwise if w.clockwise[i] else counter
        s = w.start[i]
        np.testing.assert_array_equal(w.z_true[i], curve[s:s + 100])
        np.testing.assert_array_equal(w.z_future[i], curve[s + 100:s + 200])
    assert 100 <= w.start.min() and w.start.max() < 800 and len(np.unique(w.start)) > 40
    residual = (w.z_obs - w.z_true).ravel()
    assert residual.std() == pytest.approx(0.3, rel=0.05)
    with pytest.raises(InputError, match="curve points"):
        spiral_windows(5, start=(100, 850))


def test_every_test_continuation_lies_where_training_windows_cover_the_curve():
    """Each scored point's curve index (its phase and radius, one-to-one on a fixed curve)
    is covered by the training windows of the same rotation; so is each radius."""
    config = experiment.Config()
    data = experiment.make_data(config)
    train, val, test = experiment.splits(config)
    for cw in (False, True):
        on = data.clockwise[train] == cw
        starts = data.start[train][on]
        covered = np.zeros(1000, bool)
        for s in starts:
            covered[s:s + 100] = True
        for rows in (val, test):
            mine = rows.start + np.flatnonzero(data.clockwise[rows] == cw)
            for i in mine:
                assert covered[data.start[i] + 100:data.start[i] + 200].all()
        centre = [(-1 if cw else 1) * REFERENCE_CENTRE, 0.0]
        r_train = np.hypot(*(data.z_true[train][on] - centre).reshape(-1, 2).T)
        r_test = np.hypot(*(data.z_future[test][data.clockwise[test] == cw] - centre)
                          .reshape(-1, 2).T)
        assert r_train.min() <= r_test.min() and r_test.max() <= r_train.max()


def test_rmse_is_over_windows_points_and_both_coordinates():
    pred, truth = np.zeros((2, 3, 2)), np.zeros((2, 3, 2))
    pred[0, 0] = [3.0, 4.0]  # one point 5 away: squared error 25 over 12 numbers
    assert experiment.rmse(pred, truth) == pytest.approx(np.sqrt(25 / 12), rel=1e-15)


# --- the experiment end to end ------------------------------------------------------------


def test_quick_run_writes_records_summary_and_figures_and_resumes(tmp_path):
    """``refnode reproduce latent --quick --json PATH``: two seeds, every model and count."""
    parser = argparse.ArgumentParser()
    experiment.configure(parser)
    argv = ["--quick", "--json", str(tmp_path / "r.json"), "--run-dir", str(tmp_path / "run")]
    assert experiment.run(parser.parse_args(argv)) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    records = result["records"]
    assert {(r["model"], r["n_obs"], r["seed"]) for r in records} == {
        (m, n, s) for m in ("rnn", "rnn_ss", "latent_ode") for n in (30, 50, 100) for s in (0, 1)}
    assert all(np.isfinite(r["rmse"]) and r["rmse"] > 0 for r in records)
    for row in result["summary"]:
        values = [r["rmse"] for r in records
                  if (r["model"], r["n_obs"]) == (row["model"], row["n_obs"])]
        assert row["n"] == 2 and row["mean"] == pytest.approx(np.mean(values))
        assert row["sd"] == pytest.approx(np.std(values, ddof=1))
    for name in ("latent_rmse_seeds.png", "latent_ode_spirals.png", "latent_ode_interpolation.png"):
        assert (tmp_path / "run" / name).stat().st_size > 10000
    # Resuming from the final checkpoints trains nothing more and gives the same numbers.
    assert experiment.run(parser.parse_args(argv)) == 0
    again = json.loads((tmp_path / "r.json").read_text())["records"]
    assert [r["rmse"] for r in again] == [r["rmse"] for r in records]


def test_kept_parameters_are_the_best_on_validation_not_the_last(monkeypatch):
    """train() returns the evaluated iterate with the lowest validation RMSE."""
    config = replace_config(iterations=6, eval_every=1)
    data = experiment.make_data(config)
    sub = irregular_subsample(data, 30, 0)
    model = RNNBaseline()
    scores = iter([5.0, 4.0, 1.0, 3.0, 2.0, 6.0, 7.0])  # best after iteration 2
    seen = []

    def fake_evaluate(model, theta, sub, data, rows):
        seen.append(theta)
        return next(scores)

    monkeypatch.setattr(experiment, "evaluate", fake_evaluate)
    theta, info = experiment.train("rnn", model, sub, data, config, 30, None)
    assert info["best_iteration"] == 2 and info["val_rmse"] == 1.0
    assert theta is seen[2]
    assert [i for i, _ in info["history"]] == list(range(7))


def replace_config(**changes):
    from dataclasses import replace
    return replace(experiment.Config(), **{**experiment.QUICK, **changes})


def test_bad_seed_count_and_task_data_are_refused():
    parser = argparse.ArgumentParser()
    experiment.configure(parser)
    with pytest.raises(InputError, match="--seeds"):
        experiment.run(parser.parse_args(["--quick", "--seeds", "0"]))
    with pytest.raises(InputError, match="n_spirals"):
        experiment.make_data(replace_config(n_spirals=20))
