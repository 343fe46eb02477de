"""Collect the records of several ``refnode reproduce latent`` runs into one document.

Each run directory holds ``results.json`` (the config and one record per model and
observation count) and the checkpoints, whose training history has the wall time and the
evaluation counts of every step. A collected record carries its run's full config (with
the number of training windows spelled out) and what its history says about cost::

    python -m refnode.experiments.latent_records OUT.json RUN_DIR [RUN_DIR ...]

``train_seconds`` is the sum of the steps' wall times (validation excluded);
``seconds_per_iteration`` and ``nfe_forward`` / ``nfe_backward`` are the means over the
first and the last tenth of the iterations: how the cost of a step changed in training.
"""

import json
import os
import sys

import numpy as np

from ..checkpoint import load_checkpoint
from ..errors import InputError
from .common import summarize, write_json
from .latent import Config, splits


def first_and_last_tenth(values):
    """[mean of the first tenth, mean of the last tenth] of ``values`` (None if empty)."""
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return None
    tenth = max(1, len(values) // 10)
    return [float(np.mean(values[:tenth])), float(np.mean(values[-tenth:]))]


def cost(history):
    """Wall time and evaluation counts of one model's training, from its history."""
    out = {"train_seconds": float(np.sum(history["seconds"])),
           "seconds_per_iteration": first_and_last_tenth(history["seconds"])}
    for key, name in (("nfe_f", "nfe_forward"), ("nfe_b", "nfe_backward")):
        if key in history:
            out[name] = first_and_last_tenth(history[key])
    return out


def collect_run(run_dir):
    """The records of one run directory, each with its config and its cost."""
    with open(os.path.join(run_dir, "results.json")) as file:
        result = json.load(file)
    config = result["config"]
    n_train = splits(Config(**{**config, "obs_counts": tuple(config["obs_counts"])}))[0].stop
    records = []
    for record in result["records"]:
        path = os.path.join(run_dir, f"seed{record['seed']}_{record['model']}_"
                                     f"{record['n_obs']}.npz")
        if not os.path.exists(path):
            raise InputError(f"{path}: the checkpoint of a record in {run_dir}/results.json "
                             "is missing; collect only complete run directories")
        state, _ = load_checkpoint(path)
        records.append({**record, **cost(state["history"]),
                        "gradient": config["gradient"] if record["model"] == "latent_ode" else None,
                        "config": {**config, "seed": record["seed"], "n_train": n_train}})
    return records


def collect(run_dirs):
    """One document: every record of ``run_dirs`` and the summary by (model, n_obs, gradient)."""
    records = [r for run_dir in run_dirs for r in collect_run(run_dir)]
    rows = [r for r in records if r["rmse"] is not None]
    summary = summarize(rows, ("model", "n_obs", "gradient"), "rmse")
    return {"runs": [os.path.basename(os.path.normpath(d)) for d in run_dirs],
            "records": records, "summary": summary}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print("usage: python -m refnode.experiments.latent_records OUT.json RUN_DIR "
              "[RUN_DIR ...]", file=sys.stderr)
        return 2
    write_json(argv[0], collect(argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
