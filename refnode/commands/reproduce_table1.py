"""``refnode reproduce table1``: ODE-Net vs ResNet vs RK-Net vs MLP on (Fashion-)MNIST.

The logic is in :mod:`refnode.experiments.table1`; this module checks the arguments and
output paths, runs it, prints the table and writes the JSON and figures.

    refnode reproduce table1 --quick
    refnode reproduce table1 --dataset fashion --train-size 6000 --epochs 1 --dtype float32

``--quick`` uses a small subset (or, when no data set is installed, a synthetic IDX data
set generated in code) and finishes in a minute or two on two cores.
"""

import argparse
import os
import tempfile
import time


from ..experiments import table1
from ..experiments.common import write_json
from ..device import to_device
from ..experiments.common_cli import (add_device_option, check_device_option, check_output_dir,
                                      check_output_file, nonnegative_int, path_text,
                                      positive_float, positive_int, run_directory)
from ..experiments.table1_memory import memory_sweeps, plot_memory
from ..models.odenet import MODELS

HELP = "Table 1: ODE-Net vs ResNet vs RK-Net vs MLP on (Fashion-)MNIST"


def configure(parser):
    parser.add_argument("--quick", action="store_true", help="a small subset, one short epoch")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", choices=("mnist", "fashion"), default="mnist")
    parser.add_argument("--data", metavar="DIR", type=path_text,
                        help="directory with the four IDX files")
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    parser.add_argument("--epochs", type=positive_float, help="epochs (may be fractional)")
    parser.add_argument("--train-size", type=positive_int, metavar="N",
                        help="use the first N training examples (default: all)")
    parser.add_argument("--test-size", type=positive_int, metavar="N",
                        help="use the first N test examples (default: all)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lr", type=positive_float, help="constant learning rate (default: "
                        "the paper's schedule for SGD, 1e-3 for Adam)")
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--downsampling", choices=("conv", "res"), default="conv")
    parser.add_argument("--odenet-gradient", choices=("adjoint", "discrete"), default="adjoint",
                        help="ODE-Net's gradient: the continuous adjoint (the paper) or backprop "
                        "through the dopri5 steps (torchdiffeq's odenet_mnist.py default)")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    parser.add_argument("--json", metavar="PATH", type=path_text, help="write one record per model")
    parser.add_argument("--out", metavar="DIR", type=path_text,
                        help="directory for figures (default: runs/table1, runs/table1-quick for "
                        "--quick; --out figures replaces "
                        "the committed ones)")
    parser.add_argument("--no-figures", dest="figures", action="store_false")
    parser.add_argument("--runs", metavar="DIR", type=path_text,
                        help="directory for checkpoints, resumed when they exist (default "
                        "runs/table1; none for --quick)")
    add_device_option(parser, "the models train and are tested there (the peak memory of a "
                      "step is measured on the CPU)")


def settings(args):
    """The run's :class:`~refnode.experiments.table1.Settings`: the arguments given, the
    rest from the quick/tiny budgets (or the paper's batch of 128)."""
    small = args.quick or args.tiny
    preset = table1.TINY if args.tiny else table1.QUICK if args.quick else {}
    chosen = {key: getattr(args, key) for key in ("epochs", "train_size", "test_size",
                                                   "batch_size") if getattr(args, key) is not None}
    runs = args.runs if args.runs is not None or small else run_directory("table1")
    return table1.Settings(
        **{**preset, **chosen}, dataset=args.dataset, data=args.data, models=tuple(args.models),
        optimizer=args.optimizer, lr=args.lr, augment=args.augment, dtype=args.dtype,
        downsampling=args.downsampling, odenet_gradient=args.odenet_gradient, seed=args.seed,
        runs=runs, synthetic_if_missing=small, show_progress=not args.tiny,
        device=args.device)


def check_outputs(args, s):
    """Every output path, before any work (a bad one is an InputError, exit 2)."""
    out = args.out if args.out is not None else run_directory("table1",
                                                              quick=args.quick or args.tiny)
    if args.figures or args.out is not None:
        check_output_dir(out, "--out")
    if args.json is not None:
        check_output_file(args.json, "--json")
    if s.runs:
        check_output_dir(s.runs, "--runs")
    return out


def run(args):
    check_device_option(args)
    s = settings(args)
    out = check_outputs(args, s)
    with tempfile.TemporaryDirectory() as tmp:
        *data, description = table1.load_data(s, tmp)
    print(f"Table 1 on {description}: {len(data[0])} training / {len(data[2])} test examples, "
          f"batch {s.batch_size}, {s.epochs} epoch(s), {s.optimizer}, {s.dtype}"
          f"{'' if s.device == 'cpu' else ', device ' + s.device}")
    on_device = to_device(data, s.device)                  # once, for every model
    records, histories = [], {}
    for name in s.models:
        start = time.perf_counter()
        record, histories[name] = table1.run_model(name, s, data, on_device)
        records.append(record)
        print(f"{table1.LABELS[name]}: done in {time.perf_counter() - start:.1f} s", flush=True)
    print(table1.format_table(records))
    print("Paper: MNIST, 160 epochs on all 60000 images; memory and time there are asymptotic.")
    if args.json is not None:
        write_json(args.json, records)
    if args.figures:
        draw_figures(s, data, histories, out)
    return 0


def draw_figures(s, data, histories, out):
    paths = []
    if "odenet" in histories:
        paths.append(table1.plot_nfe(histories["odenet"], os.path.join(out, "table1_nfe.png")))
    batch = min(s.batch_size, 8)
    x, y = data[0][:batch], data[1][:batch]
    paths.append(plot_memory(memory_sweeps(x, y, channels=s.channels, seed=s.seed),
                             os.path.join(out, "table1_memory.png"), batch))
    for path in paths:
        print(f"wrote {path}")
