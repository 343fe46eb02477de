"""Held-out NLL against training iterations and wall time (paper §4.1, Figure 5's models).

``refnode reproduce cnf`` trains the maximum-likelihood models for a fixed budget and
reports one held-out NLL each. This experiment follows each model's held-out NLL along its
training, so that a comparison can be read where it has settled rather than where a budget
happened to end:

* the planar NF, the planar CNF and the FFJORD-style CNF of :mod:`refnode.experiments.cnf`
  (same models, same solver tolerances) on two circles and two moons;
* Adam at a *constant* rate (no decay: a decay would tie the curve to the budget);
* every ``eval_every`` iterations, the NLL on ``n_eval`` held-out samples drawn once per
  (seed, data set) from their own stream, and a checkpoint (resumed from), so a run can be
  extended by asking for more iterations;
* the gradient of the CNFs: the continuous adjoint with the seminorm on the reverse solve
  (the error of the ∂L/∂θ and ∂L/∂t parts not controlled), which takes fewer reverse steps
  than the full norm on these models (docs/cnf.md measures both).

The command is :mod:`refnode.commands.reproduce_cnf_curves`.
"""

import os

import numpy as np

from ..data import toy2d
from ..device import to_device
from ..optim import Adam
from ..options import Adjoint
from . import cnf
from .common import summarize, train

#: The CNFs' solver: cnf.SOLVER's dopri5 tolerances, adjoint with the seminorm.
SOLVER = dict(cnf.SOLVER, gradient=Adjoint(seminorm=True))
#: Checkpoint layout version: a checkpoint of another version is refused, not misread.
CHECKPOINT_FORMAT = 1
#: Stream of the held-out samples: default_rng([seed, HELD_OUT_STREAM, data set index]).
HELD_OUT_STREAM = 7

CONFIGS = {
    "full": dict(iterations=3000, nf_iterations=30000, eval_every=100, nf_eval_every=1000,
                 lr=1e-2, mle_batch=256, ffjord_hidden=(32, 32), n_eval=2000,
                 data_sets=cnf.DATA_SETS, models=cnf.LIKELIHOOD_MODELS),
    "quick": dict(iterations=4, nf_iterations=8, eval_every=2, nf_eval_every=4, lr=1e-2,
                  mle_batch=32, ffjord_hidden=(4,), n_eval=64, data_sets=("two_circles",),
                  models=cnf.LIKELIHOOD_MODELS),
}


def budget(model, cfg):
    """(iterations, eval_every) of ``model``: the NF is cheap, so it gets its own."""
    if model == "planar_nf":
        return cfg["nf_iterations"], cfg["nf_eval_every"]
    return cfg["iterations"], cfg["eval_every"]


def held_out(name, cfg, seed):
    """The held-out samples of data set ``name`` for ``seed`` (n_eval, 2)."""
    index = list(toy2d.TOY_DATASETS).index(name)
    return toy2d.sample(name, cfg["n_eval"], np.random.default_rng([seed, HELD_OUT_STREAM,
                                                                    index]))


def curve(model, name, cfg, seed, checkpoint=None, show_progress=False, device="cpu"):
    """Train ``model`` on data set ``name`` and record its held-out NLL as it goes.

    The model trains and is evaluated on ``device`` (:mod:`refnode.device`); the
    checkpoint holds host copies, so a run resumes on either device.

    Returns
    -------
    dict
        ``model, data, seed, iterations, curve, best_nll, best_iteration, final_nll,
        seconds_per_iteration, training_s``: ``curve`` is ``[[iteration, training seconds
        so far, held-out NLL], ...]`` from iteration 0; ``seconds_per_iteration`` is the
        mean over the first and the last tenth of the iterations (the cost of a CNF step
        grows as its dynamics are learned); ``training_s`` the seconds of all the training
        steps, kept in the checkpoint, so a resumed or re-read run still reports them.
    """
    rng = np.random.default_rng([seed, cnf.LIKELIHOOD_MODELS.index(model)])
    solver = cnf.SOLVER if model == "planar_nf" else SOLVER
    params0, step, log_p = cnf.likelihood_model(model, name, cfg, rng, solver=solver,
                                                device=device)
    x_test = to_device(held_out(name, cfg, seed), device)
    nll = lambda params: cnf.mean_nll(log_p(params), x_test)
    iterations, every = budget(model, cfg)
    meta = {"experiment": "cnf_curves", "format": CHECKPOINT_FORMAT, "model": model,
            "data": name, "seed": int(seed), "lr": cfg["lr"], "batch": cfg["mle_batch"],
            "eval_every": every, "n_eval": cfg["n_eval"],
            "ffjord_hidden": list(cfg["ffjord_hidden"]),
            "solver": {k: repr(v) for k, v in solver.items()}}
    _, history = train(lambda p, i, r: (*step(p, r), {}), params0, Adam(cfg["lr"]), iterations,
                       rng=rng, checkpoint=checkpoint, metadata=meta, checkpoint_every=every,
                       validate=nll, desc=f"seed {seed} {model} {name}",
                       show_progress=show_progress)
    elapsed = np.concatenate([[0.0], np.cumsum(history["seconds"])])
    points = [[0, 0.0, nll(params0)]] + [[int(i), float(elapsed[i]), float(v)]
                                          for i, v in history["validation"]]
    best = min(points, key=lambda p: p[2])
    tenth = max(1, iterations // 10)
    seconds = history["seconds"]
    return dict(model=model, data=name, seed=int(seed), iterations=iterations, curve=points,
                best_nll=best[2], best_iteration=best[0], final_nll=points[-1][2],
                seconds_per_iteration=[float(np.mean(seconds[:tenth])),
                                       float(np.mean(seconds[-tenth:]))],
                training_s=float(elapsed[-1]))


def run_seed(cfg, seed, run_dir=None, show_progress=False, report=None, device="cpu"):
    """Every (data set, model) curve of one seed on ``device``; ``report(record)`` after
    each."""
    records = []
    for name in cfg["data_sets"]:
        for model in cfg["models"]:
            path = run_dir and os.path.join(run_dir, f"seed{seed}_{name}_{model}.npz")
            records.append(curve(model, name, cfg, seed, path, show_progress, device))
            if report is not None:
                report(records[-1])
    return records


def settled(record, fraction=0.25):
    """How much the best held-out NLL improved over the last ``fraction`` of the run
    (nats, >= 0): small means the curve has settled at this budget."""
    cutoff = (1.0 - fraction) * record["iterations"]
    before = min(p[2] for p in record["curve"] if p[0] <= cutoff)
    return float(before - min(before, record["best_nll"]))


def summaries(records):
    """Mean ± sd over seeds of the best and the final held-out NLL, per (data, model)."""
    return {"best_nll": summarize(records, ("data", "model"), "best_nll"),
            "final_nll": summarize(records, ("data", "model"), "final_nll")}
