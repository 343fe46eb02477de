"""``refnode reproduce cnf``: continuous vs planar normalizing flows (paper §4.1, Figs. 4-5).

The logic is in :mod:`refnode.experiments.cnf`; this module runs it over several seeds,
prints mean ± sd beside each other, draws the first seed's figures and writes the JSON.
"""

import os
import time

from ..experiments import cnf
from ..experiments.cnf_figures import plot_density_matching, plot_transformation
from ..experiments.common import mean_sd, save_figure, write_json
from ..experiments.common_cli import (add_device_option, check_device_option, check_output_dir,
                                      check_output_file, nonnegative_int, path_text,
                                      run_directory, seed_count)

HELP = "continuous vs planar normalizing flows: density matching (Fig. 4), likelihood (Fig. 5)"

def configure(parser):
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a small run for CI (minutes)")
    size.add_argument("--tiny", action="store_true", help="smoke test of the code path")
    parser.add_argument("--seeds", type=seed_count, metavar="N",
                        help="number of seeds (default: 3 for a full run, 2 otherwise)")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="first seed; the run uses seed, seed+1, ... (default 0)")
    parser.add_argument("--json", metavar="PATH", type=path_text,
                        help="write the per-seed records and the summary as JSON (rewritten "
                        "after each seed)")
    parser.add_argument("--out", metavar="DIR", type=path_text,
                        help="directory for the figures (default: runs/cnf, runs/cnf-quick for "
                        "--quick and --tiny; --out figures "
                        "replaces the committed ones)")
    parser.add_argument("--no-figures", dest="figures", action="store_false",
                        help="draw no figures (e.g. for the second and later of seeds run "
                        "as separate processes)")
    parser.add_argument("--verbose", action="store_true", help="progress bars")
    add_device_option(parser, "the flows train and are evaluated there (every random number "
                      "is drawn on the host and moved, so the records do not depend on it)")


def run(args):
    check_device_option(args)
    size = "tiny" if args.tiny else "quick" if args.quick else "full"
    cfg = cnf.CONFIGS[size]
    out = check_outputs(args, size)
    seeds = list(range(args.seed, args.seed + (args.seeds or cfg["seeds"])))
    print(f"CNF experiment, {size} run, seeds {seeds}"
          + ("" if args.device == "cpu" else f", device {args.device}")
          + (f"; figures from seed {seeds[0]} in {out}" if args.figures else ""), flush=True)
    start, density, likelihood = time.time(), [], []
    for seed in seeds:
        seed_start = time.time()
        d, l, plots = cnf.run_seed(cfg, seed, figures=args.figures and seed == seeds[0],
                                   show_progress=args.verbose,
                                   report=print_cells if args.verbose else None,
                                   device=args.device)
        density, likelihood = density + d, likelihood + l
        print(f"seed {seed}: {time.time() - seed_start:.0f} s", flush=True)
        if plots:
            draw_figures(cfg, plots, out)
        if args.json is not None:
            write_json(args.json, results(size, cfg, seeds, density, likelihood, start))
    print_tables(cfg, cnf.summaries(density, likelihood))
    print(f"\n{size} run, {len(seeds)} seed(s): {time.time() - start:.0f} s")
    return 0


def check_outputs(args, size):
    """The figure directory (``--out``, else the run directory); every output path is
    checked before any work (a bad one is an InputError, exit 2)."""
    out = args.out if args.out is not None else run_directory("cnf", quick=size != "full")
    if args.figures or args.out is not None:
        check_output_dir(out, "--out")
    if args.json is not None:
        check_output_file(args.json, "--json")
    return out


def results(size, cfg, seeds, density, likelihood, start):
    """The JSON document: settings, per-seed records, summary; ``complete`` once every seed ran."""
    done = sorted({r["seed"] for r in density})
    return dict(config=size, settings=cfg, seeds=seeds, seeds_done=done,
                complete=done == seeds, solver={k: str(v) for k, v in cnf.SOLVER.items()},
                density_matching=density, likelihood=likelihood,
                summary=cnf.summaries(density, likelihood), seconds=time.time() - start)


def print_cells(records):
    for r in records:
        print(f"  {r['model']:>10} {r['target']} size {r['size']:>2} {r['iterations']:>5} it: "
              f"{r['final_loss']:.4f} ({r['seconds']:.0f} s)", flush=True)


def print_tables(cfg, summary):
    """Density matching and held-out NLL, mean ± sd over the seeds."""
    rows = {(r["model"], r["target"], r["size"], r["iterations"]): r
            for r in summary["density_matching"]}
    n = max(r["n"] for r in summary["density_matching"])
    print(f"\nDensity matching: final E_q[log q - log p~] = KL(q||p) - log Z, lower is better; "
          f"mean ± sd over {n} seed(s)")
    columns = [("planar_nf", cfg["nf_iters"]), ("planar_nf", cfg["cnf_iters"]),
               ("planar_cnf", cfg["cnf_iters"])]
    labels = [f"{'NF' if m == 'planar_nf' else 'CNF'} {it} it" for m, it in columns]
    print(f"{'target':>6} {'K=M':>4} " + " ".join(f"{label:>17}" for label in labels))
    for target in cfg["targets"]:
        for size in cfg["sizes"]:
            cells = [mean_sd(rows[model, target, size, it]) for model, it in columns]
            print(f"{target:>6} {size:>4} " + " ".join(f"{c:>17}" for c in cells))
    print("\nMaximum likelihood: held-out negative log-likelihood (nats, lower is better)")
    for r in summary["likelihood"]:
        print(f"{r['data']:>12} {r['model']:>11} {mean_sd(r, 4):>17}  (n = {r['n']})")


# --- figures -----------------------------------------------------------------------------------


def draw_figures(cfg, plots, out):
    for path in (plot_density_matching(cfg, plots["samples"],
                                       os.path.join(out, "cnf_density_matching.png")),
                 plot_transformation(plots["trajectories"],
                                     os.path.join(out, "cnf_transformation.png"))):
        print(f"wrote {path}", flush=True)
