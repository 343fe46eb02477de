"""Where the latent ODE's remaining RMSE comes from: the error by prediction horizon.

Table 2 scores the 100 points after each test window. This module reloads the kept
parameters of a finished ``refnode reproduce latent`` run (its checkpoints hold them) and
splits that score by how far ahead a point is, beside two references that need no
training: the last observation held constant, and the truth's own noise level::

    python -m refnode.experiments.latent_gap RUN_DIR [--json PATH]

A model whose error is small near the window and grows with the horizon extrapolates the
dynamics imperfectly; one that is already large at the first future point has not
learned to read the window (encoder, observation count, noise).
"""

import argparse
import json
import os
import sys

import numpy as np

from ..checkpoint import load_checkpoint
from ..data.spirals import irregular_subsample
from .common import write_json
from .latent import (Config, initial_parameters, make_data, make_model, predict, rmse,
                     splits)

#: The horizons reported: RMSE over the first H future points.
HORIZONS = (1, 10, 25, 50, 100)


def rmse_by_horizon(pred, truth, horizons=HORIZONS):
    """{H: RMSE over the first H future points} for predictions and truth (B, 100, 2)."""
    return {int(h): rmse(pred[:, :h], truth[:, :h]) for h in horizons if h <= pred.shape[1]}


def last_observation(sub, rows, n_future):
    """The constant predictor: each window's last observation, repeated (B, n_future, 2)."""
    last = sub.z[rows][:, -1:, :]
    return np.repeat(last, n_future, axis=1)


def kept_parameters(record, model, config, path):
    """The parameters a run kept: those of its best validation (the checkpoint holds them),
    or the initial ones where no training iterate beat them (``best_iteration`` 0)."""
    if record["best_iteration"] == 0:
        return initial_parameters(record["model"], model, config, record["n_obs"])
    state, _ = load_checkpoint(path)
    return state["best"]["params"]


def analyse(run_dir):
    """Rows ``{"model", "n_obs", "seed", "rmse_by_horizon"}`` for every checkpoint of the
    run, plus the constant predictor per (seed, n_obs)."""
    with open(os.path.join(run_dir, "results.json")) as file:
        result = json.load(file)
    base = {**result["config"], "obs_counts": tuple(result["config"]["obs_counts"])}
    rows = []
    for seed in result["seeds"]:
        config = Config(**{**base, "seed": seed})
        data = make_data(config)
        test = splits(config)[2]
        truth = data.z_future[test]
        for n_obs in config.obs_counts:
            sub = irregular_subsample(data, n_obs, np.random.default_rng([seed, n_obs]))
            constant = last_observation(sub, test, truth.shape[1])
            rows.append({"model": "last_observation", "n_obs": n_obs, "seed": seed,
                         "rmse_by_horizon": rmse_by_horizon(constant, truth)})
            for record in (r for r in result["records"]
                           if r["seed"] == seed and r["n_obs"] == n_obs):
                name = record["model"]
                path = os.path.join(run_dir, f"seed{seed}_{name}_{n_obs}.npz")
                model = make_model(name, config, data.noise_std)
                theta = kept_parameters(record, model, config, path)
                pred = predict(model, theta, sub.z[test], sub.t[test], data.t_future)
                rows.append({"model": name, "n_obs": n_obs, "seed": seed,
                             "rmse_by_horizon": rmse_by_horizon(pred, truth)})
    return rows


def print_rows(rows):
    print(f"{'model':<17}{'n_obs':>6}{'seed':>5}" + "".join(f"{f'H={h}':>9}" for h in HORIZONS))
    for r in rows:
        cells = "".join(f"{r['rmse_by_horizon'].get(h, float('nan')):>9.4f}" for h in HORIZONS)
        print(f"{r['model']:<17}{r['n_obs']:>6}{r['seed']:>5}{cells}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m refnode.experiments.latent_gap",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    rows = analyse(args.run_dir)
    print_rows(rows)
    if args.json:
        write_json(args.json, {"run_dir": os.path.basename(os.path.normpath(args.run_dir)),
                               "horizons": list(HORIZONS), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
