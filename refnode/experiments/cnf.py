"""Continuous vs planar normalizing flows (paper §4.1, Figs. 4-5): the experiment's logic.

(a) Density matching (Figure 4): fit a flow q to an unnormalized target p̃ = e^{−U}
    (Rezende & Mohamed's U1-U4) by minimising E_q[log q − log p̃] = KL(q‖p) − log Z;
    planar NF of depth K vs planar CNF of width M, K = M ∈ {2, 8, 32}. The CNF gets a
    tenth of the NF's iterations (the paper: 10,000 Adam vs 500,000 RMSprop).
(b) Maximum likelihood (Figure 5) on two circles and two moons: the learned map from noise
    to data at several t, and the held-out negative log-likelihood of the planar NF, the
    planar CNF and an FFJORD-style CNF (Hutchinson trace in training, exact to evaluate).

Both CNFs learn their end time T = τ² (as FFJORD does), with ∂L/∂T from odeint_vjp's dt.
:func:`run_seed` runs both parts for one seed; :func:`summaries` gives mean ± sd over seeds.
The figures (:mod:`refnode.experiments.cnf_figures`) are importable from here too.
The command (tables, figures, JSON) is :mod:`refnode.commands.reproduce_cnf`.
"""

import time

import numpy as np
from autograd import elementwise_grad

from ..backend import array_module, to_float
from ..data import toy2d
from ..device import device_of, to_device, to_host
from ..models.cnf import (CNFDynamics, ConcatSquashField, PlanarField, augment, cnf_kl,
                          cnf_log_likelihood, cnf_nll, cnf_sample, draw_noise)
from ..models.planar_flow import (flow_forward, init_planar_flow, nf_kl, nf_log_likelihood,
                                  nf_nll, standard_normal_logpdf)
from ..odeint import odeint
from ..optim import Adam, step_schedule
from .cnf_figures import TIME_FRACTIONS, plot_density_matching, plot_transformation  # noqa: F401
from .common import summarize, train

#: Tolerances of torchdiffeq examples/cnf.py (dopri5, rtol = atol = 1e-5); the paper's own
#: runs used an Adams solver, so NFE counts are not comparable.
SOLVER = dict(method="dopri5", rtol=1e-5, atol=1e-5, gradient="adjoint")
T_INIT = 1.0            # initial end time of both CNFs (learned from there)
DATA_SETS = ("two_circles", "two_moons")
DECAY_FRACTION = 0.3    # last 30 % of the iterations at a tenth of the learning rate
#: The figures' samples come from their own stream, default_rng([seed, PLOT_STREAM]), so
#: drawing them (first seed only) changes no measured number.
PLOT_STREAM = 1

#: Run sizes. ``nf_iters`` = 10 × ``cnf_iters`` in each (the paper's ratio is 50).
#: ``seeds``: how many seeds a run of that size measures by default.
CONFIGS = {
    "full": dict(targets=("u1", "u2", "u3", "u4"), sizes=(2, 8, 32), cnf_iters=500,
                 nf_iters=5000, batch=256, lr_cnf=1e-2, lr_nf=1e-2, mle_iters=500,
                 ffjord_hidden=(32, 32), mle_batch=256, n_eval=2000, n_plot=20000, seeds=3),
    "quick": dict(targets=("u1", "u2"), sizes=(2, 8, 32), cnf_iters=120, nf_iters=1200,
                  batch=128, lr_cnf=1e-2, lr_nf=1e-2, mle_iters=100, ffjord_hidden=(16, 16),
                  mle_batch=128, n_eval=500, n_plot=4000, seeds=2),
    "tiny": dict(targets=("u1",), sizes=(2,), cnf_iters=3, nf_iters=10, batch=32,
                 lr_cnf=1e-2, lr_nf=1e-2, mle_iters=3, ffjord_hidden=(4,), mle_batch=32,
                 n_eval=64, n_plot=200, seeds=2),
}
MLE_WIDTH = 64          # paper §4.1: 64 hidden units for the CNF, 64 one-unit layers for the NF


# --- training ----------------------------------------------------------------------------------

def adam_loop(step, params, n_iters, lr, rng, desc, show_progress):
    """Run ``loss, grad = step(params, rng)`` under Adam; return (params, losses).

    The rate drops tenfold for the last :data:`DECAY_FRACTION` of the iterations.
    """
    schedule = step_schedule(lr, [(1.0 - DECAY_FRACTION) * n_iters], 0.1)
    params, history = train(lambda p, i, r: (*step(p, r), {}), params, Adam(lr), n_iters,
                            schedule=schedule, rng=rng, desc=desc, show_progress=show_progress)
    return params, history["loss"]


def end_time(params):
    return to_float(params["tau"] ** 2)


def target_score(target, device):
    """∇ log p̃ of ``target``: autograd's gradient on the CPU (as it has always been), the
    hand-derived :func:`refnode.data.toy2d.target_score` on a device, whose arrays autograd
    cannot trace; the two agree to rounding (tests/test_cnf.py)."""
    if device == "cpu":
        return elementwise_grad(toy2d.target_log_density(target))
    return toy2d.target_score(target)


def cnf_step(f, objective, batch, **kwargs):
    """One CNF training step on {"theta", "tau"}: T = τ², ∂L/∂τ = 2τ ∂L/∂T.

    ``f(rng)`` gives the step's dynamics (a Hutchinson field draws its noise there);
    ``batch(rng)`` a host array, moved to θ's device (:mod:`refnode.device`). τ stays a
    host number whatever the device: T is the solver's host time grid."""
    def step(params, rng):
        dynamics = f(rng)
        x = to_device(batch(rng), device_of(params["theta"]))
        loss, g_theta, g_T = objective(dynamics, params["theta"], end_time(params), x,
                                       **kwargs)
        return loss, {"theta": g_theta, "tau": 2.0 * params["tau"] * g_T}
    return step


def train_cnf_density(width, target, cfg, rng, show_progress=False, device="cpu"):
    """Planar CNF of width M fitted to target ``target`` by KL; returns (f, params, losses).

    θ trains on ``device`` (returned there); the noise is drawn on the host and moved."""
    log_p = toy2d.target_log_density(target)
    field = PlanarField(2, width)
    params = {"theta": to_device(field.init(rng), device), "tau": np.sqrt(T_INIT)}
    step = cnf_step(lambda r: CNFDynamics(field), cnf_kl,
                    lambda r: r.standard_normal((cfg["batch"], 2)),
                    log_p=log_p, score_p=target_score(target, device), solver=SOLVER)
    params, losses = adam_loop(step, params, cfg["cnf_iters"], cfg["lr_cnf"], rng,
                               f"CNF M={width} {target}", show_progress)
    return CNFDynamics(field), params, losses


def train_nf_density(depth, target, n_iters, cfg, rng, show_progress=False, device="cpu"):
    """Planar NF of depth K fitted to ``target`` by KL; returns (theta, losses), θ on
    ``device``."""
    log_p = toy2d.target_log_density(target)
    score_p = target_score(target, device)
    step = lambda theta, r: nf_kl(theta, to_device(r.standard_normal((cfg["batch"], 2)),
                                                   device), log_p, score_p)
    return adam_loop(step, to_device(init_planar_flow(rng, 2, depth), device), n_iters,
                     cfg["lr_nf"], rng, f"NF K={depth} {target}", show_progress)


def final_density_loss(sample_and_log_q, target, n):
    """E_q[log q − log p̃] on n fresh samples (the training objective without its noise)."""
    z, log_q = sample_and_log_q(n)
    xp = array_module(z)
    return to_float(xp.mean(log_q - toy2d.target_log_density(target)(z)))


def cnf_samples_with_log_q(f, params, rng):
    """Sampler of (z(T), log q(z(T))) for a trained CNF: log q = log N(z0) + ℓ(T).

    The noise is drawn on the host and moved to θ's device; the samples stay there."""
    def sample(n):
        z0 = to_device(rng.standard_normal((n, 2)), device_of(params["theta"]))
        states = cnf_sample_states(f, params, z0)
        return states[:, :-1], standard_normal_logpdf(z0) + states[:, -1]
    return sample


def cnf_sample_states(f, params, z0):
    """The CNF state [z(T), ℓ(T)] (B, 3) from noise z0 (B, 2)."""
    solver = {k: SOLVER[k] for k in ("method", "rtol", "atol")}
    return odeint(f, augment(z0), np.array([0.0, end_time(params)]), params["theta"],
                  **solver)[-1]


def nf_samples_with_log_q(theta, rng):
    """Sampler of (z_K, log q(z_K)) for a trained planar NF (on θ's device, as above)."""
    def sample(n):
        z0 = to_device(rng.standard_normal((n, 2)), device_of(theta))
        z, logdet, _ = flow_forward(theta, z0)
        return z, standard_normal_logpdf(z0) - logdet
    return sample


# --- (a) density matching, Figure 4 -------------------------------------------------------------

def density_matching(cfg, rng, show_progress=False, plot_rng=None, report=None,
                     device="cpu"):
    """On every target and size: the NF (depth K) trained for ``nf_iters`` and for
    ``cnf_iters`` (equal iterations), and the CNF (width M), on ``device``.

    Returns
    -------
    records : list of dict
        ``model, size, target, iterations, final_loss, seconds`` (and ``end_time`` for the CNF).
    samples : dict
        ``{(model, size, target): (n_plot, 2) samples}`` (NumPy arrays) when ``plot_rng``
        is given, else {}.
    """
    records, samples = [], {}
    for target in cfg["targets"]:
        for size in cfg["sizes"]:
            for n_iters in (cfg["nf_iters"], cfg["cnf_iters"]):
                start = time.time()
                theta, _ = train_nf_density(size, target, n_iters, cfg, rng, show_progress,
                                            device)
                loss = final_density_loss(nf_samples_with_log_q(theta, rng), target,
                                          cfg["n_eval"])
                records.append(dict(model="planar_nf", size=size, target=target,
                                    iterations=n_iters, final_loss=loss,
                                    seconds=time.time() - start))
                if plot_rng is not None and n_iters == cfg["nf_iters"]:
                    samples["planar_nf", size, target] = to_host(nf_samples_with_log_q(
                        theta, plot_rng)(cfg["n_plot"])[0])
            start = time.time()
            f, params, _ = train_cnf_density(size, target, cfg, rng, show_progress, device)
            loss = final_density_loss(cnf_samples_with_log_q(f, params, rng), target,
                                      cfg["n_eval"])
            records.append(dict(model="planar_cnf", size=size, target=target,
                                iterations=cfg["cnf_iters"], final_loss=loss,
                                seconds=time.time() - start, end_time=end_time(params)))
            if plot_rng is not None:
                samples["planar_cnf", size, target] = to_host(cnf_samples_with_log_q(
                    f, params, plot_rng)(cfg["n_plot"])[0])
            if report is not None:
                report(records[-3:])
    return records, samples


# --- (b) maximum likelihood, Figure 5 -----------------------------------------------------------

#: The maximum-likelihood models, in the order they are trained and reported.
LIKELIHOOD_MODELS = ("planar_nf", "planar_cnf", "ffjord_cnf")


def likelihood_model(model, name, cfg, rng, solver=SOLVER, device="cpu"):
    """One maximum-likelihood model of data set ``name``: (params, step, log_p).

    ``params`` are drawn from ``rng`` and moved to ``device``; ``step(params, rng) ->
    (loss, grad)`` is one minibatch of ``cfg["mle_batch"]`` samples (drawn on the host,
    moved); ``log_p(params)(x)`` is log p(x) (N,) with the exact trace, x on the device
    (the FFJORD CNF trains with Hutchinson's estimator, its noise drawn from the step's
    ``rng``).
    """
    batch = lambda r: toy2d.sample(name, cfg["mle_batch"], r)
    evaluate = {k: solver[k] for k in ("method", "rtol", "atol")}
    if model == "planar_nf":
        step = lambda theta, r: nf_nll(theta, to_device(batch(r), device))
        return (to_device(init_planar_flow(rng, 2, MLE_WIDTH), device), step,
                lambda theta: lambda x: nf_log_likelihood(theta, x)[0])
    if model == "planar_cnf":
        f = CNFDynamics(PlanarField(2, MLE_WIDTH))
        exact = f
        step = cnf_step(lambda r: f, cnf_nll, batch, solver=solver)
    elif model == "ffjord_cnf":
        hutchinson = ConcatSquashField(2, cfg["ffjord_hidden"], estimator="hutchinson")
        exact = CNFDynamics(ConcatSquashField(2, cfg["ffjord_hidden"], estimator="exact"))
        f = CNFDynamics(hutchinson)
        noisy = lambda r: CNFDynamics(hutchinson.with_noise(
            to_device(draw_noise(r, (cfg["mle_batch"], 2)), device)))
        step = cnf_step(noisy, cnf_nll, batch, solver=solver)
    else:
        raise ValueError(f"unknown likelihood model {model!r}; one of {LIKELIHOOD_MODELS}")
    params = {"theta": to_device(f.init(rng), device), "tau": np.sqrt(T_INIT)}
    log_p = lambda params: lambda x: cnf_log_likelihood(
        exact, params["theta"], end_time(params), x, evaluate)[0]
    return params, step, log_p


def train_likelihood_models(name, cfg, rng, show_progress=False, device="cpu"):
    """NF, planar CNF and FFJORD CNF fitted to samples of ``name`` (the NF for ten times
    the CNFs' iterations) on ``device``.

    Returns ``{model: log p(x)}`` (functions of x, shape (N, 2), on the device) and
    (planar CNF, its params).
    """
    log_p, trained = {}, {}
    for model in LIKELIHOOD_MODELS:
        params, step, log_p_of = likelihood_model(model, name, cfg, rng, device=device)
        n_iters = cfg["mle_iters"] * (10 if model == "planar_nf" else 1)
        lr = cfg["lr_nf"] if model == "planar_nf" else cfg["lr_cnf"]
        trained[model], _ = adam_loop(step, params, n_iters, lr, rng, f"{model} {name}",
                                      show_progress)
        log_p[model] = log_p_of(trained[model])
    return log_p, (CNFDynamics(PlanarField(2, MLE_WIDTH)), trained["planar_cnf"])


def maximum_likelihood(cfg, rng, show_progress=False, plot_rng=None, device="cpu"):
    """Held-out NLL of each model on each data set (``n_eval`` fresh samples), on ``device``.

    Returns
    -------
    records : list of dict
        ``model, data, size, test_nll``.
    trajectories : dict
        ``{data set: (states at TIME_FRACTIONS·T, T, data samples)}`` of the planar CNF when
        ``plot_rng`` is given, else {} (NumPy arrays).
    """
    records, trajectories = [], {}
    for name in DATA_SETS:
        log_p, (planar, params) = train_likelihood_models(name, cfg, rng, show_progress,
                                                          device)
        test = to_device(toy2d.sample(name, cfg["n_eval"], rng), device)
        for model, fn in log_p.items():
            records.append(dict(model=model, data=name, test_nll=mean_nll(fn, test),
                                size=MLE_WIDTH if model != "ffjord_cnf" else
                                list(cfg["ffjord_hidden"])))
        if plot_rng is not None:
            z0 = to_device(plot_rng.standard_normal((cfg["n_plot"], 2)), device)
            states = cnf_sample(planar, params["theta"], end_time(params), z0, TIME_FRACTIONS,
                                SOLVER)
            trajectories[name] = (to_host(states), end_time(params),
                                  toy2d.sample(name, cfg["n_plot"], plot_rng))
    return records, trajectories


def mean_nll(log_p, x):
    """−mean log p(x) as a Python float, for x (N, 2) on any device."""
    return to_float(-array_module(x).mean(log_p(x)))


# --- several seeds ------------------------------------------------------------------------------

def run_seed(cfg, seed, figures=False, show_progress=False, report=None, device="cpu"):
    """Both parts for one seed: every number is drawn from ``default_rng(seed)`` (on the
    host, whatever ``device`` the models train on: the records do not depend on it).

    Returns
    -------
    density, likelihood : lists of records, each with ``seed``
    plots : dict ``{"samples", "trajectories"}`` for the figures (empty unless ``figures``)
    """
    rng = np.random.default_rng(seed)
    plot_rng = np.random.default_rng([seed, PLOT_STREAM]) if figures else None
    density, samples = density_matching(cfg, rng, show_progress, plot_rng, report, device)
    likelihood, trajectories = maximum_likelihood(cfg, rng, show_progress, plot_rng, device)
    for record in density + likelihood:
        record["seed"] = seed
    plots = dict(samples=samples, trajectories=trajectories) if figures else {}
    return density, likelihood, plots


def summaries(density, likelihood):
    """Mean, sd (ddof 1) and number of seeds of every measured cell.

    Returns ``{"density_matching": [...], "likelihood": [...]}``; rows as
    :func:`refnode.experiments.common.summarize` gives them.
    """
    return {"density_matching": summarize(density, ("model", "target", "size", "iterations"),
                                          "final_loss"),
            "likelihood": summarize(likelihood, ("model", "data"), "test_nll")}
