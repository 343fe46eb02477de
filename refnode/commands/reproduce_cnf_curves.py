"""``refnode reproduce cnf-curves``: held-out NLL of the flows against iterations and time.

The logic is in :mod:`refnode.experiments.cnf_curves`; this module runs it over seeds,
prints best and final held-out NLL (mean ± sd over seeds), writes the JSON and draws
``cnf_nll_curves.png``. Checkpoints go to the run directory and are resumed from there,
so a run can be stopped and continued, or extended with more ``--iterations``. In the
JSON, ``wall_s`` is this invocation's wall time (seconds when every record is read back
from a finished checkpoint); each record's ``training_s`` is the training's own.
"""

import os
import time

from ..experiments import cnf_curves
from ..experiments.cnf_figures import plot_nll_curves
from ..experiments.common import mean_sd, write_json
from ..experiments.common_cli import (add_device_option, check_device_option, check_output_dir,
                                      check_output_file, nonnegative_int, path_text, positive_int,
                                      run_directory)
from ..experiments.cnf import DATA_SETS, LIKELIHOOD_MODELS

HELP = "held-out NLL of planar NF, planar CNF, FFJORD CNF against iterations and wall time"


def configure(parser):
    parser.add_argument("--quick", action="store_true", help="a few seconds (CI)")
    parser.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                        help="number of seeds (default 1)")
    parser.add_argument("--first-seed", type=nonnegative_int, default=0, metavar="S",
                        help="seeds S, S+1, ..., S+N-1 (default 0)")
    parser.add_argument("--iterations", type=positive_int, metavar="N",
                        help="CNF iterations (default 3000; the NF gets 10x)")
    parser.add_argument("--data", nargs="+", choices=DATA_SETS, metavar="NAME",
                        help="data sets (default: " + ", ".join(DATA_SETS) + ")")
    parser.add_argument("--models", nargs="+", choices=LIKELIHOOD_MODELS, metavar="MODEL",
                        help="models (default: " + ", ".join(LIKELIHOOD_MODELS) + ")")
    parser.add_argument("--run-dir", metavar="DIR", type=path_text,
                        help="checkpoints (resumed), results.json and the figure (default "
                        "runs/cnf-curves[-quick])")
    parser.add_argument("--json", metavar="PATH", type=path_text,
                        help="also write the results JSON here")
    parser.add_argument("--out", metavar="DIR", type=path_text,
                        help="the figure here instead of the run directory (--out figures "
                        "replaces the committed one)")
    parser.add_argument("--verbose", action="store_true", help="progress bars")
    add_device_option(parser, "the flows train and the held-out NLL is measured there; a run "
                      "resumes on either device")


def config_from_args(args):
    cfg = dict(cnf_curves.CONFIGS["quick" if args.quick else "full"])
    if args.iterations is not None:
        cfg.update(iterations=args.iterations, nf_iterations=10 * args.iterations)
    if args.data:
        cfg["data_sets"] = tuple(d for d in DATA_SETS if d in args.data)
    if args.models:
        cfg["models"] = tuple(m for m in LIKELIHOOD_MODELS if m in args.models)
    return cfg


def run(args):
    check_device_option(args)
    cfg = config_from_args(args)
    run_dir = args.run_dir if args.run_dir is not None else run_directory("cnf-curves",
                                                                          args.quick)
    run_dir = check_output_dir(run_dir, "--run-dir")
    out = check_output_dir(args.out, "--out") if args.out is not None else run_dir
    if args.json is not None:
        check_output_file(args.json, "--json")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    start, records = time.perf_counter(), []
    for seed in seeds:
        records += cnf_curves.run_seed(cfg, seed, run_dir, args.verbose, report=print_record,
                                       device=args.device)
    summary = cnf_curves.summaries(records)
    print_summary(summary)
    result = {"config": cfg, "solver": {k: repr(v) for k, v in cnf_curves.SOLVER.items()},
              "seeds": seeds, "wall_s": time.perf_counter() - start, "records": records,
              "summary": summary}
    extra = [args.json] if args.json is not None else []
    for path in [os.path.join(run_dir, "results.json")] + extra:
        write_json(path, result)
    print(f"wrote {plot_nll_curves(records, os.path.join(out, 'cnf_nll_curves.png'))}")
    return 0


def print_record(r):
    start, end = r["seconds_per_iteration"]
    print(f"seed {r['seed']} {r['data']:>11} {r['model']:>10}: best {r['best_nll']:.4f} at "
          f"{r['best_iteration']}, final {r['final_nll']:.4f} after {r['iterations']} it; "
          f"{start:.3f} -> {end:.3f} s/it; improved {cnf_curves.settled(r):.4f} "
          "in the last quarter", flush=True)


def print_summary(summary):
    print("\nHeld-out NLL (nats, lower is better), mean ± sd over seeds")
    final = {(r["data"], r["model"]): r for r in summary["final_nll"]}
    print(f"{'data':>12} {'model':>11} {'best':>17} {'final':>17}")
    for r in summary["best_nll"]:
        print(f"{r['data']:>12} {r['model']:>11} {mean_sd(r, 4):>17} "
              f"{mean_sd(final[r['data'], r['model']], 4):>17}")
