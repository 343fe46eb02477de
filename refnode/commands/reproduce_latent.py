"""``refnode reproduce latent``: Table 2, latent ODE vs RNNs on irregularly sampled spirals.

The logic is in :mod:`refnode.experiments.latent`; this module runs it over several seeds,
prints mean ± sd beside the paper's numbers, draws the first seed's figures and writes the
JSON. Checkpoints and ``results.json`` go to the run directory (resumed from there).
"""

import os
import time
from dataclasses import asdict, replace

from ..experiments import latent
from ..experiments.common import mean_sd, write_json
from ..experiments.common_cli import (add_device_option, check_device_option, check_output_dir,
                                      check_output_file, nonnegative_int, path_text, positive_int,
                                      run_directory, seed_count)
from ..experiments.latent_figures import plot_interpolation, plot_seeds, plot_spirals

HELP = "Table 2: latent ODE vs RNNs, predictive RMSE on spirals (30/50/100 observations)"


def configure(parser):
    parser.add_argument("--task", choices=latent.TASKS, default="reference",
                        help="reference: Table 2's windows (default); one-turn: the older "
                             "out-of-range extrapolation variant (docs/latent.md)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a few seconds, {latent.QUICK_SEEDS} seeds, tiny data (CI)")
    parser.add_argument("--seeds", type=seed_count, default=None, metavar="N",
                        help=f"number of seeds (default {latent.FULL_SEEDS}, "
                             f"{latent.QUICK_SEEDS} with --quick)")
    parser.add_argument("--first-seed", type=nonnegative_int, default=0, metavar="S",
                        help="seeds S, S+1, ..., S+N-1 (default 0)")
    parser.add_argument("--iterations", type=positive_int, default=None,
                        help="training iterations per model")
    parser.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                        help=f"training windows per iteration (default "
                             f"{latent.Config.batch_size}; at least the number of training "
                             "windows means the full batch, every window every iteration)")
    parser.add_argument("--models", nargs="+", choices=latent.MODELS, default=None,
                        metavar="MODEL", help="train only these models (default all: "
                        + ", ".join(latent.MODELS) + ")")
    parser.add_argument("--gradient", choices=("discrete", "adjoint"), default=None,
                        help="latent ODE: backpropagate through dopri5 (default, ~10x cheaper "
                             "here) or the adjoint (the paper's); docs/latent.md measures both")
    parser.add_argument("--json", metavar="PATH", type=path_text,
                        help="also write the results JSON here")
    parser.add_argument("--run-dir", metavar="DIR", type=path_text,
                        help="checkpoints (resumed), results.json and figures (default "
                             "runs/latent[-one-turn][-quick])")
    parser.add_argument("--out", metavar="DIR", type=path_text,
                        help="figures here instead of the run directory (--out figures replaces "
                        "the committed ones)")
    add_device_option(parser, "the models train and predict there (each minibatch is "
                      "assembled on the host, where its irregular time grid is, and moved)")


def config_from_args(args):
    config = replace(latent.Config(), task=args.task, **(latent.QUICK if args.quick else {}))
    if args.gradient is not None:
        config = replace(config, gradient=args.gradient)
    if args.iterations is not None:
        config = replace(config, iterations=args.iterations)
    if args.batch_size is not None:
        config = replace(config, batch_size=args.batch_size)
    return config


def check_outputs(args, config):
    """(run directory, figure directory); every output path is checked before any work
    (a bad one is an InputError, exit 2)."""
    name = "latent" + ("" if config.task == "reference" else "-" + config.task)
    run_dir = args.run_dir if args.run_dir is not None else run_directory(name, args.quick)
    run_dir = check_output_dir(run_dir, "--run-dir")
    out = check_output_dir(args.out, "--out") if args.out is not None else run_dir
    if args.json is not None:
        check_output_file(args.json, "--json")
    return run_dir, out


def run(args):
    check_device_option(args)
    config = config_from_args(args)
    n_seeds = args.seeds or (latent.QUICK_SEEDS if args.quick else latent.FULL_SEEDS)
    seeds = list(range(args.first_seed, args.first_seed + n_seeds))
    run_dir, out = check_outputs(args, config)
    models = tuple(m for m in latent.MODELS if m in (args.models or latent.MODELS))
    start, records, first = time.perf_counter(), [], None
    for seed in seeds:
        seed_records, fig_data = latent.experiment(replace(config, seed=seed), run_dir,
                                                   models=models, device=args.device)
        records += seed_records
        first = first or fig_data
    wall_s = time.perf_counter() - start
    summary = latent.summarize(records)
    print_table(summary)
    print_failures(records)
    print(f"wall time {wall_s:.0f} s; run directory {run_dir}")
    result = {"config": asdict(config), "models": list(models), "seeds": seeds, "wall_s": wall_s,
              "records": records, "summary": summary}
    extra = [args.json] if args.json is not None else []
    for path in [os.path.join(run_dir, "results.json")] + extra:
        write_json(path, result)
    plot_seeds(records, latent.PAPER_RMSE, os.path.join(out, "latent_rmse_seeds.png"))
    plot_spirals(first, os.path.join(out, "latent_ode_spirals.png"))
    if "latent_ode" in models:                   # the latent trajectory needs a latent ODE
        plot_interpolation(first, os.path.join(out, "latent_ode_interpolation.png"))
    return 0


def print_table(summary):
    """Mean ± sd over seeds beside the paper's numbers."""
    counts = sorted({s["n_obs"] for s in summary})
    print("Predictive RMSE on the next 100 points, mean ± sd over seeds (paper, Table 2)")
    print(f"{'model':<12}" + "".join(f"{f'{n} obs':>26}" for n in counts))
    for name in latent.MODELS:
        cells = []
        for s in (s for s in summary if s["model"] == name):
            paper = f" ({s['paper_rmse']:.4f})" if s["paper_rmse"] else ""
            cells.append(mean_sd(s, 4) + paper)
        if cells:
            print(f"{name:<12}" + "".join(f"{c:>26}" for c in cells))


def print_failures(records):
    """One line per model whose solves failed: skipped steps, or no finite test score."""
    for r in records:
        if r["failed_steps"] or r["rmse"] is None:
            print(f"seed {r['seed']} {r['model']} n_obs={r['n_obs']}: {r['failed_steps']} "
                  "training step(s) skipped (the solve failed)"
                  + ("; its test RMSE is not finite" if r["rmse"] is None else ""))
