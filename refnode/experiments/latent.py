"""``refnode reproduce latent``: Table 2, latent ODE vs RNNs on irregularly sampled spirals.

Setup (paper §5.1; the reference code is torchdiffeq's ``examples/latent_ode.py``; the
choices the paper does not state are marked * and argued in ``docs/latent.md``):

* Data (task ``reference``): windows of 100 points cut from the two reference curves
  (1000 points on τ ∈ [0, 6π], one clockwise, one counter-clockwise), window-relative time,
  noise std 0.3 (the reference's run setting*). Training windows start uniformly in curve
  indices [100, 800) (the reference's range); validation and test windows in [100, 700)*,
  so that every scored continuation lies on curve points that training windows cover.
  800 training, 100 validation, 100 test windows*.
* Each window is seen at n ∈ {30, 50, 100} of its 100 times, drawn without replacement.
* Score: predictive RMSE on the next 100 curve points against the noise-free curve,
  ``sqrt(mean over test windows, points and both coordinates of (prediction − truth)²)``,
  in data units, nothing normalised.
* Latent ODE: latent 4, encoder RNN 25 hidden run backwards, f and decoder one hidden
  layer of 20 (ELU*), likelihood std = the data's noise; dopri5 with rtol 1e-5, atol 1e-6*,
  gradient by backpropagation through the solver* (the adjoint with --gradient adjoint);
  predictions from the posterior mean.
* RNNs: 25 hidden, input (x_j, t_{j+1} − t_j); ``rnn`` by teacher forcing, ``rnn_ss`` with
  scheduled sampling*; both extrapolate by feeding back their predictions, each step with
  the gap to the next time asked for.
* All models: Adam with lr 0.01 (the reference code's default; the paper gives none),
  the same minibatches of 100 windows* and the same iteration count*; the parameters
  kept are those with the lowest validation RMSE at the evaluation points*.
"""

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..checkpoint import load_checkpoint, save_checkpoint
from ..data.spirals import (Windows, generate_spirals, irregular_subsample, spiral_windows,
                            split_windows)
from ..errors import InputError, SolverError
from ..models.latent_ode import LatentODE, make_batch
from ..models.rnn import RNNBaseline
from ..optim import Adam
from ..progress import progress
from . import latent_figures as figures
from .latent_figures import plot_interpolation, plot_spirals

HELP = "Table 2: latent ODE vs RNNs, predictive RMSE on spirals (30/50/100 observations)"

#: Chen et al. (2018), Table 2: predictive RMSE on the test set, by observation count.
PAPER_RMSE = {"rnn": {30: 0.3937, 50: 0.3202, 100: 0.1813},
              "latent_ode": {30: 0.1642, 50: 0.1502, 100: 0.1346}}
MODELS = ("rnn", "rnn_ss", "latent_ode")
TASKS = ("reference", "one-turn")
#: Start-index ranges [low, high): training as the reference code; evaluation windows end
#: their continuation at index 699 + 199 = 898 < 900, inside the training coverage [100, 900).
TRAIN_START, EVAL_START = (100, 800), (100, 700)
FULL_SEEDS, QUICK_SEEDS = 5, 2


@dataclass(frozen=True)
class Config:
    """One seed's settings; every field is recorded with the results and checkpoints."""

    task: str = "reference"
    n_spirals: int = 1000
    n_val: int = 100
    n_test: int = 100
    obs_counts: tuple = (30, 50, 100)
    iterations: int = 500
    batch_size: int = 100
    lr: float = 0.01  # Adam; the reference code's default, the paper states none
    rtol: float = 1e-5  # dopri5, the latent ODE's solves (docs/latent.md measures the error)
    atol: float = 1e-6
    gradient: str = "discrete"  # of the ODE solve: "discrete" or "adjoint" (docs/latent.md)
    eval_every: int = 25  # validation RMSE and a checkpoint every this many iterations
    sampling_max: float = 0.5  # rnn_ss: final probability of reading its own prediction
    seed: int = 0


#: --quick: the whole pipeline in seconds (CI); its numbers mean nothing.
QUICK = dict(n_spirals=40, n_val=10, n_test=10, iterations=2, batch_size=10, eval_every=1,
             rtol=1e-3, atol=1e-4)


# --- data ---------------------------------------------------------------------------------


def make_data(config):
    """The task's windows, training ones first, then validation, then test: a Windows."""
    n_train = config.n_spirals - config.n_val - config.n_test
    if n_train < 1 or config.n_val < 1 or config.n_test < 1:
        raise InputError(f"n_spirals={config.n_spirals} must exceed n_val + n_test = "
                         f"{config.n_val + config.n_test}, and both must be >= 1.")
    if config.task == "reference":
        train = spiral_windows(n_train, TRAIN_START, seed=[config.seed, 0])
        held_out = spiral_windows(config.n_val + config.n_test, EVAL_START, seed=[config.seed, 1])
        return concatenate_windows(train, held_out)
    # one-turn: 150 grid times, the first 100 observed, the last 50 scored (out of range).
    data = generate_spirals(n_spirals=config.n_spirals, n_total=150, seed=config.seed)
    window, future = split_windows(150, 2 / 3)
    return Windows(data.t[window], data.z_obs[:, window], data.z_true[:, window],
                   data.t[future], data.z_true[:, future], data.clockwise,
                   np.zeros(config.n_spirals, dtype=np.int64), data.noise_std)


def concatenate_windows(first, second):
    """The windows of ``first`` followed by those of ``second`` (same times and noise)."""
    rows = {name: np.concatenate([getattr(first, name), getattr(second, name)])
            for name in ("z_obs", "z_true", "z_future", "clockwise", "start")}
    return Windows(t=first.t, t_future=first.t_future, noise_std=first.noise_std, **rows)


def splits(config):
    """Row slices (train, validation, test) of :func:`make_data`'s windows."""
    n_train = config.n_spirals - config.n_val - config.n_test
    return (slice(0, n_train), slice(n_train, n_train + config.n_val),
            slice(n_train + config.n_val, config.n_spirals))


def rmse(pred, truth):
    """sqrt(mean of (pred − truth)²) over windows, points and coordinates: (B, H, 2) each."""
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


# --- models -------------------------------------------------------------------------------


def make_model(name, config, noise_std):
    if name == "latent_ode":
        return LatentODE(noise_std=noise_std,
                         solver=dict(method="dopri5", rtol=config.rtol, atol=config.atol))
    return RNNBaseline()


def predict(model, theta, x, t, t_future):
    """Predictions (B, H, 2) at t_future from observations x (B, n, 2) at times t (B, n)."""
    if isinstance(model, RNNBaseline):
        return model.extrapolate(theta, x, t, t_future)
    batch = make_batch(x, t, 0.0)
    t_out = np.concatenate([[0.0], t_future])
    return np.transpose(model.predict(theta, batch.encoder_inputs, t_out)[1:], (1, 0, 2))


def evaluate(model, theta, sub, data, rows):
    """RMSE on rows' continuations; inf if the latent ODE's solve fails (diverged dynamics)."""
    try:
        pred = predict(model, theta, sub.z[rows], sub.t[rows], data.t_future)
    except SolverError:
        return float("inf")
    score = rmse(pred, data.z_future[rows])
    return score if np.isfinite(score) else float("inf")


def sampling_probability(config, iteration):
    """rnn_ss: linear ramp from 0 to ``sampling_max`` over the first half of training."""
    return config.sampling_max * min(1.0, iteration / max(1, config.iterations // 2))


def train_step(name, model, theta, x, t, config, iteration, rng_model):
    """One minibatch: (loss, gradient, metrics for the progress bar)."""
    if name == "latent_ode":
        eps = rng_model.standard_normal((len(x), model.latent_dim))
        loss, grad, stats = model.loss_and_grad(theta, make_batch(x, t, 0.0), eps,
                                                gradient=config.gradient)
        return loss, grad, dict(elbo=-loss, nfe_f=stats["nfe_forward"],
                                nfe_b=stats["nfe_backward"])
    feed_back = None
    if name == "rnn_ss":
        p = sampling_probability(config, iteration)
        feed_back = rng_model.random((x.shape[1] - 1, len(x))) < p
    loss, grad = model.loss_and_grad(theta, x, t, feed_back)
    return loss, grad, dict(mse=loss)


def train(name, model, sub, data, config, n_obs, path):
    """Adam on minibatches; every ``eval_every`` iterations the validation RMSE is
    measured and a checkpoint written (resumed from when its settings match).

    Returns the best parameters on the validation split and ``{"val_rmse",
    "best_iteration", "history"}``.
    """
    train_rows, val_rows, _ = splits(config)
    rng_batches = np.random.default_rng([config.seed, n_obs, 1])  # the same for every model
    rng_model = np.random.default_rng([config.seed, n_obs, 3, MODELS.index(name)])
    theta = model.init(np.random.default_rng([config.seed, n_obs, 2, MODELS.index(name)]))
    opt = Adam(lr=config.lr)
    state = opt.init(theta)
    best = {"theta": theta, "val_rmse": evaluate(model, theta, sub, data, val_rows),
            "iteration": 0}
    history, start, failed = [[0, best["val_rmse"]]], 0, []
    meta = {"config": json.loads(json.dumps(asdict(config))), "model": name, "n_obs": int(n_obs)}
    if path and os.path.exists(path):
        tree, saved = load_checkpoint(path)
        if saved == meta:
            theta, state, start = tree["theta"], tree["state"], int(tree["iteration"])
            rng_batches, rng_model = tree["rng_batches"], tree["rng_model"]
            best = {"theta": tree["best_theta"], "val_rmse": float(tree["best_val"]),
                    "iteration": int(tree["best_iteration"])}
            history = tree["history"].tolist()
            failed = [[int(i), ""] for i in tree["failed"]]
        else:
            print(f"{path}: written with other settings; training from scratch")
    n_train = train_rows.stop
    bar = progress(range(start, config.iterations), total=config.iterations - start,
                   desc=f"seed {config.seed} {name} n_obs={n_obs}")
    for it in bar:
        rows = rng_batches.choice(n_train, size=min(config.batch_size, n_train), replace=False)
        try:
            _, grad, metrics = train_step(name, model, theta, sub.z[rows], sub.t[rows], config,
                                          it, rng_model)
        except SolverError as err:  # diverged dynamics: skip the step, count it, go on
            failed.append([it, str(err)[:200]])
            continue
        theta, state = opt.update(theta, grad, state)
        bar.set(**metrics)
        if (it + 1) % config.eval_every == 0 or it + 1 == config.iterations:
            score = evaluate(model, theta, sub, data, val_rows)
            history.append([it + 1, score])
            if score < best["val_rmse"]:
                best = {"theta": theta, "val_rmse": score, "iteration": it + 1}
            if path:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                save_checkpoint(path, {"theta": theta, "state": state, "iteration": it + 1,
                                       "rng_batches": rng_batches, "rng_model": rng_model,
                                       "best_theta": best["theta"], "best_val": best["val_rmse"],
                                       "best_iteration": best["iteration"],
                                       "history": np.array(history),
                                       "failed": np.array([i for i, _ in failed], dtype=np.int64)},
                                meta)
    for it, why in failed[-3:]:
        print(f"{name} n_obs={n_obs}: step {it} skipped, the solve failed: {why}")
    return best["theta"], {"val_rmse": best["val_rmse"], "best_iteration": best["iteration"],
                           "history": [[int(i), float(s)] for i, s in history],
                           "failed_steps": len(failed)}


# --- one seed, several seeds --------------------------------------------------------------


def experiment(config, checkpoint_dir=None, models=MODELS):
    """Train and evaluate every model at every observation count, for ``config.seed``.

    Returns the records ``{"model", "n_obs", "seed", "rmse", "val_rmse", "best_iteration",
    "failed_steps", "paper_rmse"}`` and what the figures need.
    """
    data = make_data(config)
    _, _, test = splits(config)
    records, trained, subsamples = [], {}, {}
    for n_obs in config.obs_counts:
        sub = irregular_subsample(data, n_obs, np.random.default_rng([config.seed, n_obs]))
        subsamples[n_obs] = sub
        for name in models:
            model = make_model(name, config, data.noise_std)
            path = checkpoint_dir and os.path.join(
                checkpoint_dir, f"seed{config.seed}_{name}_{n_obs}.npz")
            theta, info = train(name, model, sub, data, config, n_obs, path)
            pred = predict(model, theta, sub.z[test], sub.t[test], data.t_future)
            records.append({"model": name, "n_obs": int(n_obs), "seed": int(config.seed),
                            "rmse": rmse(pred, data.z_future[test]),
                            "val_rmse": info["val_rmse"], "best_iteration": info["best_iteration"],
                            "failed_steps": info["failed_steps"],
                            "paper_rmse": PAPER_RMSE.get(name.split("_ss")[0], {}).get(n_obs)})
            trained[name, n_obs] = (model, theta, pred)
    return records, dict(data=data, test=test, trained=trained, subsamples=subsamples)


def summarize(records):
    """Mean, sample standard deviation (ddof 1; 0 for one seed) and n per (model, n_obs)."""
    summary = []
    for name in MODELS:
        for n_obs in sorted({r["n_obs"] for r in records}):
            values = [r["rmse"] for r in records if r["model"] == name and r["n_obs"] == n_obs]
            if values:
                sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                summary.append({"model": name, "n_obs": n_obs, "mean": float(np.mean(values)),
                                "sd": sd, "n": len(values),
                                "paper_rmse": PAPER_RMSE.get(name.split("_ss")[0], {}).get(n_obs)})
    return summary


def print_table(records):
    """Mean ± sd over seeds beside the paper's numbers."""
    summary = summarize(records)
    counts = sorted({s["n_obs"] for s in summary})
    print("Predictive RMSE on the next 100 points, mean ± sd over seeds (paper, Table 2)")
    print(f"{'model':<12}" + "".join(f"{f'{n} obs':>26}" for n in counts))
    for name in MODELS:
        cells = []
        for s in (s for s in summary if s["model"] == name):
            paper = f" ({s['paper_rmse']:.4f})" if s["paper_rmse"] else ""
            cells.append(f"{s['mean']:.4f} ± {s['sd']:.4f}{paper}")
        if cells:
            print(f"{name:<12}" + "".join(f"{c:>26}" for c in cells))


# --- the command --------------------------------------------------------------------------


def configure(parser):
    parser.add_argument("--task", choices=TASKS, default="reference",
                        help="reference: Table 2's windows (default); one-turn: the older "
                             "out-of-range extrapolation variant (docs/latent.md)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a few seconds, {QUICK_SEEDS} seeds, tiny data (CI)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help=f"number of seeds (default {FULL_SEEDS}, {QUICK_SEEDS} with --quick)")
    parser.add_argument("--first-seed", type=int, default=0, metavar="S",
                        help="seeds S, S+1, ..., S+N-1 (default 0)")
    parser.add_argument("--iterations", type=int, default=None, help="training iterations per model")
    parser.add_argument("--gradient", choices=("discrete", "adjoint"), default=None,
                        help="latent ODE: backpropagate through dopri5 (default, ~10x cheaper "
                             "here) or the adjoint (the paper's); docs/latent.md measures both")
    parser.add_argument("--json", metavar="PATH", help="also write the results JSON here")
    parser.add_argument("--run-dir", metavar="DIR",
                        help="checkpoints (resumed), results.json and figures (default "
                             "runs/latent[-TASK]; a new temporary directory with --quick)")
    parser.add_argument("--out", metavar="DIR", help="figures here instead of the run directory")


def config_from_args(args):
    config = replace(Config(), task=args.task, **(QUICK if args.quick else {}))
    if args.gradient is not None:
        config = replace(config, gradient=args.gradient)
    if args.iterations is not None:
        if args.iterations < 1:
            raise InputError(f"--iterations must be >= 1, got {args.iterations}.")
        config = replace(config, iterations=args.iterations)
    return config


def run(args):
    config = config_from_args(args)
    n_seeds = args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick else FULL_SEEDS)
    if n_seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {n_seeds}.")
    run_dir = args.run_dir or (tempfile.mkdtemp(prefix="refnode-latent-quick-") if args.quick
                               else os.path.join("runs", "latent" + ("" if config.task ==
                                                                     "reference" else "-one-turn")))
    os.makedirs(run_dir, exist_ok=True)
    start, records, first = time.perf_counter(), [], None
    for seed in range(args.first_seed, args.first_seed + n_seeds):
        seed_records, fig_data = experiment(replace(config, seed=seed), run_dir)
        records += seed_records
        first = first or fig_data
    wall_s = time.perf_counter() - start
    print_table(records)
    print(f"wall time {wall_s:.0f} s; run directory {run_dir}")
    result = {"config": asdict(config), "seeds": list(range(args.first_seed,
                                                            args.first_seed + n_seeds)),
              "wall_s": wall_s, "records": records, "summary": summarize(records)}
    for path in [os.path.join(run_dir, "results.json")] + ([args.json] if args.json else []):
        write_json(path, result)
    out = args.out or run_dir
    figures.plot_seeds(records, PAPER_RMSE, os.path.join(out, "latent_rmse_seeds.png"))
    plot_spirals(first, os.path.join(out, "latent_ode_spirals.png"))
    plot_interpolation(first, os.path.join(out, "latent_ode_interpolation.png"))
    return 0


def write_json(path, result):
    """Write the result dict atomically (temporary file, then os.replace)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as file:
        json.dump(result, file, indent=2)
    os.replace(tmp, path)
