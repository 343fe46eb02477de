"""``refnode reproduce latent``: Table 2, latent ODE vs RNN on irregularly sampled spirals.

Setup (paper §5.1 and docs/latent.md; our choices marked *):

* 1000 noisy 2-D spirals, half clockwise (:mod:`refnode.data.spirals`, noise std 0.1);
  the last 100 are held out as the test set*.
* Each spiral has 150 grid times*: the first 100 form the observation window, from which
  30, 50 or 100 irregular times are drawn per spiral; the last 50 are the extrapolation
  window*. Predictive RMSE = root mean square distance between the prediction and the
  *noise-free* spiral over the extrapolation window of the test spirals*.
* Latent ODE: latent 4, encoder RNN 25 hidden (backwards in time), ODE function and
  decoder 20 hidden (ELU), likelihood std 0.1; dopri5 with rtol 1e-3, atol 1e-4* and the
  adjoint; predictions start from the posterior mean.
* RNN baseline: 25 hidden, inputs (observation, time gap), next-observation MSE; rolled
  forward on its own predictions to extrapolate.
* Both: Adam lr 0.01, the same minibatches of 100 spirals* and the same iteration count.
"""

import json
import os
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..checkpoint import load_checkpoint, save_checkpoint
from ..data.spirals import generate_spirals, irregular_subsample, split_windows
from ..errors import InputError
from ..models.latent_ode import LatentODE, make_batch
from ..models.rnn import RNNBaseline
from ..optim import Adam
from ..progress import progress

HELP = "Table 2: latent ODE vs RNN, predictive RMSE on spirals (30/50/100 observations)"

#: Chen et al. (2018), Table 2: predictive RMSE on the test set, by observation count.
PAPER_RMSE = {"rnn": {30: 0.3937, 50: 0.3202, 100: 0.1813},
              "latent_ode": {30: 0.1642, 50: 0.1502, 100: 0.1346}}
MODELS = ("rnn", "latent_ode")


@dataclass(frozen=True)
class Config:
    n_spirals: int = 1000
    n_test: int = 100
    n_total: int = 150
    train_fraction: float = 2 / 3  # 100 observable grid times, 50 to extrapolate
    obs_counts: tuple = (30, 50, 100)
    iterations: int = 1500
    batch_size: int = 100
    lr: float = 0.01  # the paper's Adam learning rate
    rtol: float = 1e-3
    atol: float = 1e-4
    checkpoint_every: int = 100
    seed: int = 0


QUICK = dict(n_spirals=300, n_test=50, iterations=80, batch_size=50, obs_counts=(30, 50, 100))


def configure(parser):
    parser.add_argument("--quick", action="store_true", help="small run for CI (a few minutes)")
    parser.add_argument("--iterations", type=int, default=None, help="training iterations per model")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    parser.add_argument("--out", default="figures", help="directory for figures")
    parser.add_argument("--checkpoint-dir", default=os.path.join("runs", "latent"),
                        help="where checkpoints are written and resumed from")
    parser.add_argument("--seed", type=int, default=0)


def run(args):
    config = replace(Config(), **(QUICK if args.quick else {}), seed=args.seed)
    if args.iterations is not None:
        if args.iterations < 1:
            raise InputError(f"--iterations must be >= 1, got {args.iterations}.")
        config = replace(config, iterations=args.iterations)
    results, figure_data = experiment(config, args.checkpoint_dir)
    print_table(results)
    if args.json:
        write_json(args.json, results, config)
    plot_spirals(figure_data, os.path.join(args.out, "latent_ode_spirals.png"))
    plot_interpolation(figure_data, os.path.join(args.out, "latent_ode_interpolation.png"))
    return 0


def experiment(config, checkpoint_dir):
    """Train and evaluate both models at every observation count.

    Returns the result rows ``{"model", "n_obs", "rmse", "paper_rmse"}`` and what the
    figures need (data, trained models and parameters).
    """
    data = generate_spirals(n_spirals=config.n_spirals, n_total=config.n_total, seed=config.seed)
    window, future = split_windows(config.n_total, config.train_fraction)
    test = slice(config.n_spirals - config.n_test, config.n_spirals)
    results, trained, subsamples = [], {}, {}
    for n_obs in config.obs_counts:
        sub = irregular_subsample(data, n_obs, np.random.default_rng([config.seed, n_obs]), window)
        subsamples[n_obs] = sub
        for name in MODELS:
            model = LatentODE(solver=dict(method="dopri5", rtol=config.rtol, atol=config.atol)) \
                if name == "latent_ode" else RNNBaseline()
            path = os.path.join(checkpoint_dir, f"{name}_{n_obs}.npz")
            theta = train(model, sub, config, n_obs, path)
            pred = predict(model, theta, sub.z[test], sub.t[test], data.t[:future.stop], future)
            rmse = float(np.sqrt(np.mean((pred - data.z_true[test, future]) ** 2)))
            results.append({"model": name, "n_obs": int(n_obs), "rmse": rmse,
                            "paper_rmse": PAPER_RMSE[name].get(n_obs)})
            trained[name, n_obs] = (model, theta, pred)
    return results, dict(data=data, test=test, future=future, window=window, trained=trained,
                         subsamples=subsamples)


def predict(model, theta, x, t, t_grid, future):
    """Predictions (B, len(future), 2) on the extrapolation window from observations x at t."""
    if isinstance(model, RNNBaseline):
        return model.extrapolate(theta, x, t, t_grid[future])
    batch = make_batch(x, t, t_grid[0])
    return np.transpose(model.predict(theta, batch.encoder_inputs, t_grid)[future], (1, 0, 2))


def train(model, sub, config, n_obs, path):
    """Adam on minibatches of the training spirals; checkpointed and resumable."""
    rng = np.random.default_rng([config.seed, n_obs, 1])  # same batches for both models
    theta = model.init(np.random.default_rng([config.seed, n_obs, 2]))
    opt = Adam(lr=config.lr)
    state, start = opt.init(theta), 0
    meta = {"config": json.loads(json.dumps(asdict(config))), "n_obs": int(n_obs)}
    if os.path.exists(path):
        tree, saved = load_checkpoint(path)
        if saved == meta:
            theta, state, rng, start = tree["theta"], tree["state"], tree["rng"], tree["iteration"]
        else:
            print(f"{path}: written with other settings; training from scratch (it will be replaced)")
    n_train = config.n_spirals - config.n_test
    name = "latent_ode" if isinstance(model, LatentODE) else "rnn"
    bar = progress(range(start, config.iterations), total=config.iterations - start,
                   desc=f"{name} n_obs={n_obs}")
    for it in bar:
        rows = rng.choice(n_train, size=min(config.batch_size, n_train), replace=False)
        x, t = sub.z[rows], sub.t[rows]
        if name == "latent_ode":
            eps = rng.standard_normal((len(rows), model.latent_dim))
            loss, grad, stats = model.loss_and_grad(theta, make_batch(x, t, 0.0), eps)
            bar.set(elbo=-loss, nfe_f=stats["nfe_forward"], nfe_b=stats["nfe_backward"])
        else:
            loss, grad = model.loss_and_grad(theta, x, t)
            bar.set(mse=loss)
        theta, state = opt.update(theta, grad, state)
        if (it + 1) % config.checkpoint_every == 0 or it + 1 == config.iterations:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            save_checkpoint(path, {"theta": theta, "state": state, "rng": rng,
                                   "iteration": it + 1}, meta)
    return theta


def print_table(results):
    rmse = {(r["model"], r["n_obs"]): r["rmse"] for r in results}
    counts = sorted({r["n_obs"] for r in results})
    print("Predictive RMSE on the extrapolation window (ours | paper, Table 2)")
    print(f"{'model':<12}" + "".join(f"{f'{n} obs':>20}" for n in counts))
    for name in MODELS:
        cells = []
        for n in counts:
            paper = PAPER_RMSE[name].get(n)
            cells.append(f"{rmse[name, n]:.4f} | {paper:.4f}" if paper else f"{rmse[name, n]:.4f}")
        print(f"{name:<12}" + "".join(f"{c:>20}" for c in cells))


def write_json(path, results, config):
    """Write ``{"config": ..., "results": [...]}`` atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as file:
        json.dump({"config": asdict(config), "results": results}, file, indent=2)
    os.replace(tmp, path)


# --- figures ------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_spirals(fig_data, path):
    """Test spirals: truth, observations, latent ODE fit + extrapolation, RNN extrapolation."""
    plt = _pyplot()
    data, test, future = (fig_data[k] for k in ("data", "test", "future"))
    counts = sorted({n for _, n in fig_data["trained"]})
    examples = [test.start, test.start + 1]
    fig, axes = plt.subplots(len(examples), len(counts), figsize=(4 * len(counts), 8),
                             squeeze=False)
    for col, n_obs in enumerate(counts):
        sub = fig_data["subsamples"][n_obs]
        model, theta, _ = fig_data["trained"]["latent_ode", n_obs]
        rnn, rnn_theta, _ = fig_data["trained"]["rnn", n_obs]
        for row, i in enumerate(examples):
            ax = axes[row, col]
            x, t = sub.z[i:i + 1], sub.t[i:i + 1]
            batch = make_batch(x, t, 0.0)
            ode = model.predict(theta, batch.encoder_inputs, data.t[:future.stop])[:, 0]
            rnn_pred = rnn.extrapolate(rnn_theta, x, t, data.t[future])[0]
            ax.plot(*data.z_true[i].T, color="0.7", lw=3, label="true")
            ax.plot(*x[0].T, "k.", ms=4, label="observed")
            ax.plot(*ode[:future.start].T, "C0", label="latent ODE (fit)")
            ax.plot(*ode[future].T, "C0--", label="latent ODE (extrapolation)")
            ax.plot(*rnn_pred.T, "C3--", label="RNN (extrapolation)")
            ax.set_title(f"test spiral {i - test.start}, {n_obs} observations")
            ax.set_aspect("equal")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    _save(fig, path)


def plot_interpolation(fig_data, path):
    """A latent trajectory on a fine time grid, between sparse observations."""
    plt = _pyplot()
    data, test, future = (fig_data[k] for k in ("data", "test", "future"))
    n_obs = min(n for _, n in fig_data["trained"])
    model, theta, _ = fig_data["trained"]["latent_ode", n_obs]
    sub = fig_data["subsamples"][n_obs]
    i = test.start
    batch = make_batch(sub.z[i:i + 1], sub.t[i:i + 1], 0.0)
    mu, _, _ = model.encode(theta, batch.encoder_inputs)
    t_fine = np.linspace(0.0, data.t[future.stop - 1], 400)
    z = model.latent_trajectory(theta, mu, t_fine)[:, 0]
    x = model.decode_latent(theta, z)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for k in range(z.shape[1]):
        left.plot(t_fine, z[:, k], label=f"$z_{k + 1}(t)$")
    for t_j in sub.t[i]:
        left.axvline(t_j, color="0.85", lw=0.6, zorder=0)
    left.axvline(data.t[future.start], color="k", ls=":", label="extrapolation starts")
    left.set_xlabel("t")
    left.set_title(f"latent z(t); grey: the {n_obs} observation times")
    left.legend(fontsize=7)
    right.plot(*data.z_true[i].T, color="0.7", lw=3, label="true")
    right.plot(*sub.z[i].T, "k.", label="observed")
    right.plot(*x.T, "C0", label="decoded z(t), fine grid")
    right.set_aspect("equal")
    right.legend(fontsize=7)
    right.set_title("decoded z(t) on a fine time grid")
    _save(fig, path)


def _save(fig, path):
    """Save atomically: a temporary file in the same directory, then os.replace."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, ".tmp-" + os.path.basename(path))
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    os.replace(tmp, path)
    _pyplot().close(fig)
