"""``refnode reproduce cnf``: continuous vs planar normalizing flows (paper §4.1, Figs. 4-5).

(a) Density matching (Figure 4): fit a flow q to an unnormalized target p̃ = e^{−U}
    (Rezende & Mohamed's U1-U4) by minimising E_q[log q − log p̃] = KL(q‖p) − log Z;
    planar NF of depth K vs planar CNF of width M, K = M ∈ {2, 8, 32}. The CNF gets a
    tenth of the NF's iterations (the paper: 10,000 Adam vs 500,000 RMSprop).
(b) Maximum likelihood (Figure 5) on two circles and two moons: the learned map from noise
    to data at several t, and the held-out negative log-likelihood of the planar NF, the
    planar CNF and an FFJORD-style CNF (Hutchinson trace in training, exact to evaluate).

Both CNFs learn their end time T = τ² (as FFJORD does), with ∂L/∂T from odeint_vjp's dt.
"""

import json
import os
import time

import numpy as np
from autograd import elementwise_grad

from ..data import toy2d
from ..models.cnf import (CNFDynamics, ConcatSquashField, PlanarField, augment, cnf_kl,
                          cnf_log_likelihood, cnf_nll, cnf_sample, draw_noise)
from ..models.planar_flow import (flow_forward, init_planar_flow, nf_kl, nf_log_likelihood,
                                  nf_nll, standard_normal_logpdf)
from ..odeint import odeint
from ..optim import Adam, step_schedule
from ..progress import progress

HELP = "continuous vs planar normalizing flows: density matching (Fig. 4), likelihood (Fig. 5)"

#: Tolerances of torchdiffeq examples/cnf.py (dopri5, rtol = atol = 1e-5); the paper's own
#: runs used an Adams solver, so NFE counts are not comparable.
SOLVER = dict(method="dopri5", rtol=1e-5, atol=1e-5, gradient="adjoint")
T_INIT = 1.0            # initial end time of both CNFs (learned from there)
DATA_SETS = ("two_circles", "two_moons")
TIME_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
DECAY_FRACTION = 0.3    # last 30 % of the iterations at a tenth of the learning rate
PLOT_LIMIT = 4.0        # figures show [-4, 4]², the window of Rezende & Mohamed's Figure 3

#: Run sizes. ``nf_iters`` = 10 × ``cnf_iters`` in each (the paper's ratio is 50).
CONFIGS = {
    "full": dict(targets=("u1", "u2", "u3", "u4"), sizes=(2, 8, 32), cnf_iters=500,
                 nf_iters=5000, batch=256, lr_cnf=1e-2, lr_nf=1e-2, mle_iters=500,
                 ffjord_hidden=(32, 32), mle_batch=256, n_eval=2000, n_plot=20000),
    "quick": dict(targets=("u1", "u2"), sizes=(2, 8, 32), cnf_iters=120, nf_iters=1200,
                  batch=128, lr_cnf=1e-2, lr_nf=1e-2, mle_iters=100, ffjord_hidden=(16, 16),
                  mle_batch=128, n_eval=500, n_plot=4000),
    "tiny": dict(targets=("u1",), sizes=(2,), cnf_iters=3, nf_iters=10, batch=32,
                 lr_cnf=1e-2, lr_nf=1e-2, mle_iters=3, ffjord_hidden=(4,), mle_batch=32,
                 n_eval=64, n_plot=200),
}
MLE_WIDTH = 64          # paper §4.1: 64 hidden units for the CNF, 64 one-unit layers for the NF


def configure(parser):
    parser.add_argument("--quick", action="store_true", help="a small run for CI (minutes)")
    parser.add_argument("--tiny", action="store_true", help="smoke test of the code path")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--out", default="figures", help="directory for the figures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="progress bars")


# --- training ----------------------------------------------------------------------------------

def adam_loop(step, params, n_iters, lr, desc, verbose):
    """Run ``loss, grad = step(params)`` under Adam; return (params, losses).

    The rate drops tenfold for the last :data:`DECAY_FRACTION` of the iterations.
    """
    opt, schedule = Adam(lr), step_schedule(lr, [(1.0 - DECAY_FRACTION) * n_iters], 0.1)
    state, losses = opt.init(params), []
    bar = progress(range(n_iters), desc=desc, enabled=verbose)
    for i in bar:
        loss, grad = step(params)
        params, state = opt.update(params, grad, state, lr=schedule(i))
        losses.append(loss)
        bar.set(loss=loss)
    return params, losses


def end_time(params):
    return float(params["tau"] ** 2)


def cnf_step(f, objective, rng, batch, **kwargs):
    """One CNF training step on {"theta", "tau"}: T = τ², ∂L/∂τ = 2τ ∂L/∂T."""
    def step(params):
        loss, g_theta, g_T = objective(f(), params["theta"], end_time(params),
                                       batch(rng), **kwargs)
        return loss, {"theta": g_theta, "tau": 2.0 * params["tau"] * g_T}
    return step


def train_cnf_density(width, target, cfg, rng, verbose):
    """Planar CNF of width M fitted to target ``target`` by KL; returns (f, params, losses)."""
    log_p = toy2d.target_log_density(target)
    field = PlanarField(2, width)
    params = {"theta": field.init(rng), "tau": np.sqrt(T_INIT)}
    step = cnf_step(lambda: CNFDynamics(field), cnf_kl, rng,
                    lambda r: r.standard_normal((cfg["batch"], 2)),
                    log_p=log_p, score_p=elementwise_grad(log_p), solver=SOLVER)
    params, losses = adam_loop(step, params, cfg["cnf_iters"], cfg["lr_cnf"],
                               f"CNF M={width} {target}", verbose)
    return CNFDynamics(field), params, losses


def train_nf_density(depth, target, n_iters, cfg, rng, verbose):
    """Planar NF of depth K fitted to ``target`` by KL; returns (theta, losses)."""
    log_p = toy2d.target_log_density(target)
    score_p = elementwise_grad(log_p)
    step = lambda theta: nf_kl(theta, rng.standard_normal((cfg["batch"], 2)), log_p, score_p)
    return adam_loop(step, init_planar_flow(rng, 2, depth), n_iters, cfg["lr_nf"],
                     f"NF K={depth} {target}", verbose)


def final_density_loss(sample_and_log_q, target, n):
    """E_q[log q − log p̃] on n fresh samples (the training objective without its noise)."""
    z, log_q = sample_and_log_q(n)
    return float(np.mean(log_q - toy2d.target_log_density(target)(z)))


def cnf_samples_with_log_q(f, params, rng):
    """Sampler of (z(T), log q(z(T))) for a trained CNF: log q = log N(z0) + ℓ(T)."""
    def sample(n):
        z0 = rng.standard_normal((n, 2))
        states = cnf_sample_states(f, params, z0)
        return states[:, :-1], standard_normal_logpdf(z0) + states[:, -1]
    return sample


def cnf_sample_states(f, params, z0):
    """The CNF state [z(T), ℓ(T)] (B, 3) from noise z0 (B, 2)."""
    solver = {k: SOLVER[k] for k in ("method", "rtol", "atol")}
    return odeint(f, augment(z0), np.array([0.0, end_time(params)]), params["theta"],
                  **solver)[-1]


def nf_samples_with_log_q(theta, rng):
    """Sampler of (z_K, log q(z_K)) for a trained planar NF."""
    def sample(n):
        z0 = rng.standard_normal((n, 2))
        z, logdet, _ = flow_forward(theta, z0)
        return z, standard_normal_logpdf(z0) - logdet
    return sample


# --- (a) density matching, Figure 4 -------------------------------------------------------------

def density_matching(cfg, rng, verbose):
    """On every target: the NF (depth K) trained for ``nf_iters`` and for ``cnf_iters``
    (equal iterations), and the CNF (width M); returns (records, samples for plots)."""
    records, samples = [], {}
    for target in cfg["targets"]:
        for size in cfg["sizes"]:
            for n_iters in (cfg["nf_iters"], cfg["cnf_iters"]):
                start = time.time()
                theta, _ = train_nf_density(size, target, n_iters, cfg, rng, verbose)
                sampler = nf_samples_with_log_q(theta, rng)
                records.append(dict(model="planar_nf", size=size, target=target,
                                    final_loss=final_density_loss(sampler, target, cfg["n_eval"]),
                                    iterations=n_iters, seconds=time.time() - start))
                samples.setdefault(("planar_nf", size, target), sampler(cfg["n_plot"])[0])
            start = time.time()
            f, params, _ = train_cnf_density(size, target, cfg, rng, verbose)
            sampler = cnf_samples_with_log_q(f, params, rng)
            records.append(dict(model="planar_cnf", size=size, target=target,
                                final_loss=final_density_loss(sampler, target, cfg["n_eval"]),
                                iterations=cfg["cnf_iters"], seconds=time.time() - start,
                                end_time=end_time(params)))
            samples[("planar_cnf", size, target)] = sampler(cfg["n_plot"])[0]
            if verbose:
                print(*records[-3:], sep="\n", flush=True)
    return records, samples


# --- (b) maximum likelihood, Figure 5 -----------------------------------------------------------

def train_likelihood_models(name, cfg, rng, verbose):
    """NF, planar CNF and FFJORD CNF fitted to samples of ``name``; returns {model: log p}."""
    batch = lambda r: toy2d.sample(name, cfg["mle_batch"], r)
    nf_theta, _ = adam_loop(lambda th: nf_nll(th, batch(rng)), init_planar_flow(rng, 2, MLE_WIDTH),
                            10 * cfg["mle_iters"], cfg["lr_nf"], f"NF {name}", verbose)
    planar = CNFDynamics(PlanarField(2, MLE_WIDTH))
    planar_params, _ = adam_loop(
        cnf_step(lambda: planar, cnf_nll, rng, batch, solver=SOLVER),
        {"theta": planar.init(rng), "tau": np.sqrt(T_INIT)}, cfg["mle_iters"], cfg["lr_cnf"],
        f"planar CNF {name}", verbose)
    hutchinson = ConcatSquashField(2, cfg["ffjord_hidden"], estimator="hutchinson")
    noisy = lambda: CNFDynamics(hutchinson.with_noise(draw_noise(rng, (cfg["mle_batch"], 2))))
    ffjord_params, _ = adam_loop(
        cnf_step(noisy, cnf_nll, rng, batch, solver=SOLVER),
        {"theta": hutchinson.init(rng), "tau": np.sqrt(T_INIT)}, cfg["mle_iters"],
        cfg["lr_cnf"], f"FFJORD {name}", verbose)
    exact = CNFDynamics(ConcatSquashField(2, cfg["ffjord_hidden"], estimator="exact"))
    solver = {k: SOLVER[k] for k in ("method", "rtol", "atol")}
    log_p = {
        "planar_nf": lambda x: nf_log_likelihood(nf_theta, x)[0],
        "planar_cnf": lambda x: cnf_log_likelihood(planar, planar_params["theta"],
                                                   end_time(planar_params), x, solver)[0],
        "ffjord_cnf": lambda x: cnf_log_likelihood(exact, ffjord_params["theta"],
                                                   end_time(ffjord_params), x, solver)[0],
    }
    return log_p, (planar, planar_params)


def maximum_likelihood(cfg, rng, verbose):
    """Held-out NLL of each model on each data set, and the planar CNF's trajectories."""
    records, trajectories = [], {}
    for name in DATA_SETS:
        log_p, (planar, params) = train_likelihood_models(name, cfg, rng, verbose)
        test = toy2d.sample(name, cfg["n_eval"], rng)
        for model, fn in log_p.items():
            records.append(dict(model=model, data=name, test_nll=float(-np.mean(fn(test))),
                                size=MLE_WIDTH if model != "ffjord_cnf" else
                                list(cfg["ffjord_hidden"])))
        z0 = rng.standard_normal((cfg["n_plot"], 2))
        trajectories[name] = (cnf_sample(planar, params["theta"], end_time(params), z0,
                                         TIME_FRACTIONS, SOLVER), end_time(params),
                              toy2d.sample(name, cfg["n_plot"], rng))
    return records, trajectories


# --- figures and output ---------------------------------------------------------------------------

def _histogram(ax, z, bins=100):
    edges = np.linspace(-PLOT_LIMIT, PLOT_LIMIT, bins + 1)
    counts, _, _ = np.histogram2d(z[:, 0], z[:, 1], bins=(edges, edges))
    ax.imshow(counts.T, origin="lower", extent=[-PLOT_LIMIT, PLOT_LIMIT] * 2, cmap="viridis")


def _target_image(ax, target, n=200):
    grid = np.linspace(-PLOT_LIMIT, PLOT_LIMIT, n)
    z = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    density = np.exp(toy2d.target_log_density(target)(z)).reshape(n, n)
    ax.imshow(density, origin="lower", extent=[-PLOT_LIMIT, PLOT_LIMIT] * 2, cmap="viridis")


def plot_density_matching(cfg, samples, path):
    """Rows: targets; columns: the target, NF K = sizes, CNF M = sizes (as Figure 4)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    columns = [("target", None)] + [("planar_nf", k) for k in cfg["sizes"]] \
        + [("planar_cnf", m) for m in cfg["sizes"]]
    fig, axes = plt.subplots(len(cfg["targets"]), len(columns), squeeze=False,
                             figsize=(1.6 * len(columns), 1.6 * len(cfg["targets"])))
    for row, target in enumerate(cfg["targets"]):
        for col, (model, size) in enumerate(columns):
            ax = axes[row, col]
            if model == "target":
                _target_image(ax, target)
            else:
                _histogram(ax, samples[(model, size, target)])
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title("target" if size is None else
                             f"{'NF K' if model == 'planar_nf' else 'CNF M'}={size}", fontsize=9)
        axes[row, 0].set_ylabel(target.upper())
    _save(fig, path)


def plot_transformation(trajectories, path):
    """Rows: data sets; columns: samples at t = fraction·T, then the data (as Figure 5)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(trajectories), len(TIME_FRACTIONS) + 1, squeeze=False,
                             figsize=(2.0 * (len(TIME_FRACTIONS) + 1), 2.0 * len(trajectories)))
    for row, (name, (states, T, data)) in enumerate(trajectories.items()):
        for col, fraction in enumerate(TIME_FRACTIONS):
            _histogram(axes[row, col], states[col], bins=80)
            axes[row, col].set_title(f"t = {fraction * T:.2f}", fontsize=9)
        _histogram(axes[row, -1], data, bins=80)
        axes[row, -1].set_title("data", fontsize=9)
        axes[row, 0].set_ylabel(name.replace("_", " "))
        for ax in axes[row]:
            ax.set_xticks([]), ax.set_yticks([])
    _save(fig, path)


def _save(fig, path):
    """Write the figure atomically (temp file in the same directory, then os.replace)."""
    import matplotlib.pyplot as plt
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.png"
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_json(path, results):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(results, fh, indent=2)
    os.replace(tmp, path)


def print_tables(cfg, density, likelihood):
    print("Density matching: final E_q[log q - log p~] = KL(q||p) - log Z (lower is better)")
    nf_long, nf_equal = f"NF {cfg['nf_iters']} it", f"NF {cfg['cnf_iters']} it"
    print(f"{'target':>6} {'K=M':>4} {nf_long:>11} {nf_equal:>11} "
          f"{'CNF ' + str(cfg['cnf_iters']) + ' it':>11} {'CNF T':>6}")
    loss = {(r["model"], r["target"], r["size"], r["iterations"]): r["final_loss"]
            for r in density}
    for r in (r for r in density if r["model"] == "planar_cnf"):
        key = (r["target"], r["size"])
        print(f"{key[0]:>6} {key[1]:>4} {loss[('planar_nf', *key, cfg['nf_iters'])]:>11.4f} "
              f"{loss[('planar_nf', *key, cfg['cnf_iters'])]:>11.4f} "
              f"{r['final_loss']:>11.4f} {r['end_time']:>6.2f}")
    print("\nMaximum likelihood: held-out negative log-likelihood (nats, lower is better)")
    for r in likelihood:
        print(f"{r['data']:>12} {r['model']:>11} {r['test_nll']:>8.4f}")


def run(args):
    size = "tiny" if args.tiny else "quick" if args.quick else "full"
    cfg = CONFIGS[size]
    rng = np.random.default_rng(args.seed)
    start = time.time()
    density, samples = density_matching(cfg, rng, args.verbose)
    likelihood, trajectories = maximum_likelihood(cfg, rng, args.verbose)
    plot_density_matching(cfg, samples, os.path.join(args.out, "cnf_density_matching.png"))
    plot_transformation(trajectories, os.path.join(args.out, "cnf_transformation.png"))
    print_tables(cfg, density, likelihood)
    results = dict(config=size, seed=args.seed, solver={k: str(v) for k, v in SOLVER.items()},
                   density_matching=density, likelihood=likelihood,
                   seconds=time.time() - start)
    if args.json:
        write_json(args.json, results)
    print(f"\n{size} run: {time.time() - start:.0f} s")
    return 0
