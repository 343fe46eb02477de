"""Table 2, latent ODE vs RNNs on irregularly sampled spirals: the experiment's logic.

The command (seeds, tables, figures, JSON) is :mod:`refnode.commands.reproduce_latent`;
the figures (:mod:`refnode.experiments.latent_figures`) are importable from here too.

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

Training is :func:`refnode.experiments.common.train`, resumable from its checkpoints.
"""

import json
import os
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..data.spirals import (Windows, generate_spirals, irregular_subsample, spiral_windows,
                            split_windows)
from ..backend import to_float
from ..device import device_of, to_device, to_host
from ..errors import InputError, SolverError
from ..models.latent_ode import LatentODE, make_batch
from ..models.rnn import RNNBaseline
from ..optim import Adam
from . import common
from .latent_figures import plot_interpolation, plot_seeds, plot_spirals  # noqa: F401

#: Chen et al. (2018), Table 2: predictive RMSE on the test set, by observation count.
PAPER_RMSE = {"rnn": {30: 0.3937, 50: 0.3202, 100: 0.1813},
              "latent_ode": {30: 0.1642, 50: 0.1502, 100: 0.1346}}
MODELS = ("rnn", "rnn_ss", "latent_ode")
TASKS = ("reference", "one-turn")
#: Start-index ranges [low, high): training as the reference code; evaluation windows end
#: their continuation at index 699 + 199 = 898 < 900, inside the training coverage [100, 900).
TRAIN_START, EVAL_START = (100, 800), (100, 700)
FULL_SEEDS, QUICK_SEEDS = 5, 2
#: Stored in each checkpoint's metadata: checkpoints of the earlier training loop lack it
#: and are refused by name (common.train) instead of being misread.
CHECKPOINT_FORMAT = 2


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
    """Predictions (B, H, 2) at t_future from observations x (B, n, 2) at times t (B, n).

    x and t are host arrays, θ is on its device (:mod:`refnode.device`): the inputs move
    there, the model runs there, and the predictions come back as a NumPy array.
    """
    name = device_of(theta)
    if isinstance(model, RNNBaseline):
        return to_host(model.extrapolate(theta, *to_device((x, t), name), t_future))
    batch = make_batch(x, t, 0.0)
    t_out = np.concatenate([[0.0], t_future])
    z = model.predict(theta, to_device(batch.encoder_inputs, name), t_out)
    return np.transpose(to_host(z)[1:], (1, 0, 2))


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
    """One minibatch: (loss, gradient, metrics for the progress bar).

    x (B, n, 2) and t (B, n) are host arrays; the batch is assembled on the host (the
    latent ODE's union of irregular times is the solver's host time grid) and its arrays,
    with the noise drawn on the host, move to θ's device.
    """
    device = device_of(theta)
    if name == "latent_ode":
        eps = to_device(rng_model.standard_normal((len(x), model.latent_dim)), device)
        batch = on_device(make_batch(x, t, 0.0), device)
        loss, grad, stats = model.loss_and_grad(theta, batch, eps, gradient=config.gradient)
        loss = to_float(loss)
        return loss, grad, dict(elbo=-loss, nfe_f=stats["nfe_forward"],
                                nfe_b=stats["nfe_backward"])
    feed_back = None
    if name == "rnn_ss":
        p = sampling_probability(config, iteration)
        feed_back = rng_model.random((x.shape[1] - 1, len(x))) < p
    loss, grad = model.loss_and_grad(theta, *to_device((x, t), device), feed_back)
    loss = to_float(loss)
    return loss, grad, dict(mse=loss)


def on_device(batch, device):
    """A LatentBatch with its arrays on ``device``; its times stay on the host (the grid)."""
    return replace(batch, **to_device(dict(encoder_inputs=batch.encoder_inputs, x=batch.x,
                                           mask=batch.mask), device))


#: The metrics of each model's step; a skipped step reports NaN for each.
METRICS = {"rnn": ("mse",), "rnn_ss": ("mse",), "latent_ode": ("elbo", "nfe_f", "nfe_b")}


def minibatches(config, n_obs):
    """``rows(iteration)``: the training rows of that iteration's minibatch.

    The iteration-th draw of ``default_rng([seed, n_obs, 1])``, the same for every model.
    A resumed run replays the earlier draws (microseconds), so it gets what an
    uninterrupted run would.
    """
    n_train = splits(config)[0].stop
    size = min(config.batch_size, n_train)
    stream = {"rng": None, "drawn": 0}

    def rows(iteration):
        if stream["rng"] is None or stream["drawn"] > iteration:
            stream.update(rng=np.random.default_rng([config.seed, n_obs, 1]), drawn=0)
        while True:
            batch = stream["rng"].choice(n_train, size=size, replace=False)
            stream["drawn"] += 1
            if stream["drawn"] > iteration:
                return batch
    return rows


def make_step(name, model, sub, config, n_obs):
    """``step(theta, iteration, rng)`` for :func:`common.train`; ``rng`` (saved in the
    checkpoints) is the model's own noise: the latent ODE's ε, rnn_ss's feedback coins.

    A step whose solve fails (diverged dynamics) returns a NaN loss and no gradient, and
    :class:`SkipFailed` leaves it out.
    """
    batch_rows = minibatches(config, n_obs)

    def step(theta, iteration, rng):
        rows = batch_rows(iteration)
        try:
            return train_step(name, model, theta, sub.z[rows], sub.t[rows], config,
                              iteration, rng)
        except SolverError:
            return float("nan"), None, dict.fromkeys(METRICS[name], float("nan"))
    return step


class SkipFailed:
    """An optimizer that leaves parameters and state as they are when the gradient is None."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def init(self, theta):
        return self.optimizer.init(theta)

    def update(self, theta, grad, state, lr=None):
        if grad is None:
            return theta, state
        return self.optimizer.update(theta, grad, state, lr=lr)


def initial_parameters(name, model, config, n_obs):
    """The parameters ``name`` starts from: the draw ``default_rng([seed, n_obs, 2, index])``."""
    return model.init(np.random.default_rng([config.seed, n_obs, 2, MODELS.index(name)]))


def train(name, model, sub, data, config, n_obs, path, device="cpu"):
    """Adam on minibatches with :func:`common.train`; every ``eval_every`` iterations the
    validation RMSE is measured and a checkpoint written at ``path`` (resumed from).

    Returns the parameters with the lowest validation RMSE (the initial ones count, as
    iteration 0) and ``{"val_rmse", "best_iteration", "history", "failed_steps"}``;
    ``history`` is ``[[iteration, validation RMSE], ...]``. θ trains on ``device``
    (returned there); the checkpoints hold host copies.
    """
    _, val_rows, _ = splits(config)
    index = MODELS.index(name)
    theta0 = to_device(initial_parameters(name, model, config, n_obs), device)
    val0 = evaluate(model, theta0, sub, data, val_rows)
    meta = {"config": json.loads(json.dumps(asdict(config))), "model": name,
            "n_obs": int(n_obs), "checkpoint_format": CHECKPOINT_FORMAT}
    theta, history = common.train(
        make_step(name, model, sub, config, n_obs), theta0, SkipFailed(Adam(lr=config.lr)),
        config.iterations, rng=np.random.default_rng([config.seed, n_obs, 3, index]),
        checkpoint=path or None, metadata=meta, checkpoint_every=config.eval_every,
        validate=lambda th: evaluate(model, th, sub, data, val_rows),
        desc=f"seed {config.seed} {name} n_obs={n_obs}")
    scores = [[0, val0]] + [[int(i), float(s)] for i, s in history["validation"]]
    best = dict(scores)[history["best_iteration"]]
    if val0 <= best:
        theta, best, best_iteration = theta0, val0, 0
    else:
        best_iteration = int(history["best_iteration"])
    return theta, {"val_rmse": best, "best_iteration": best_iteration, "history": scores,
                   "failed_steps": int(np.sum(np.isnan(history["loss"])))}


# --- one seed, several seeds --------------------------------------------------------------


def experiment(config, checkpoint_dir=None, models=MODELS, device="cpu"):
    """Train and evaluate every model at every observation count, for ``config.seed``.

    ``device`` (:mod:`refnode.device`): where the parameters train and the models run;
    it is not part of the checkpoints' identity, so a run moves between devices.

    Returns the records ``{"model", "n_obs", "seed", "rmse", "val_rmse", "best_iteration",
    "failed_steps", "paper_rmse"}`` (a score that is not finite is None) and what the
    figures need.
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
            theta, info = train(name, model, sub, data, config, n_obs, path, device)
            pred = predict(model, theta, sub.z[test], sub.t[test], data.t_future)
            records.append({"model": name, "n_obs": int(n_obs), "seed": int(config.seed),
                            "rmse": finite_or_none(rmse(pred, data.z_future[test])),
                            "val_rmse": finite_or_none(info["val_rmse"]),
                            "best_iteration": info["best_iteration"],
                            "failed_steps": info["failed_steps"],
                            "paper_rmse": paper_rmse(name, n_obs)})
            trained[name, n_obs] = (model, to_host(theta), pred)
    return records, dict(data=data, test=test, trained=trained, subsamples=subsamples)


def finite_or_none(value):
    """``value``, or None where it is not a finite number (JSON has no inf or NaN)."""
    return float(value) if np.isfinite(value) else None


def paper_rmse(name, n_obs):
    """Table 2's number for the model (rnn_ss is compared with the paper's RNN), or None."""
    return PAPER_RMSE.get(name.split("_ss")[0], {}).get(n_obs)


def summarize(records):
    """Mean, sample sd (ddof 1; None for one seed), n and the paper's number per
    (model, n_obs), in the order of :data:`MODELS` (:func:`common.summarize`)."""
    rows = common.summarize([r for r in records if r["rmse"] is not None],
                            ("model", "n_obs"), "rmse")
    rows.sort(key=lambda row: (MODELS.index(row["model"]), row["n_obs"]))
    return [dict(row, paper_rmse=paper_rmse(row["model"], row["n_obs"])) for row in rows]
