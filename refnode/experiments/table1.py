"""Table 1 of the paper ("Replacing residual networks with ODEs for supervised learning").

Trains the 1-layer MLP, ResNet, RK-Net and ODE-Net of :mod:`refnode.models.odenet` on
MNIST or Fashion-MNIST under one budget (the same training examples, batches and steps)
and prints test error, parameters, peak memory of a training step, the ODE-Net's forward
and backward function evaluations and seconds per epoch, beside the paper's numbers.

    refnode reproduce table1 --quick
    refnode reproduce table1 --dataset fashion --train-size 6000 --epochs 1 --dtype float32

``--quick`` uses a small subset (or, when no data set is installed, a synthetic IDX data
set generated in code) and finishes in a minute or two on two cores.
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np

from ..data.idx import FASHION_MNIST_DIR, MNIST_FILES, load_mnist, normalize
from ..errors import InputError
from ..models.classifier import TrainConfig, test_error, train
from ..models.odenet import MODELS, build_model, count_parameters
from .table1_memory import memory_sweeps, peak_step_memory, plot_memory

HELP = "Table 1: ODE-Net vs ResNet vs RK-Net vs MLP on (Fashion-)MNIST"

#: The paper's Table 1 (MNIST test error, parameters, memory, time), quoted, never tuned to.
PAPER = {
    "mlp": dict(test_error=0.0160, params="0.24M", memory="-", time="-"),
    "resnet": dict(test_error=0.0041, params="0.60M", memory="O(L)", time="O(L)"),
    "rknet": dict(test_error=0.0047, params="0.22M", memory="O(L̃)", time="O(L̃)"),
    "odenet": dict(test_error=0.0042, params="0.22M", memory="O(1)", time="O(L̃)"),
}
LABELS = {"mlp": "1-layer MLP", "resnet": "ResNet", "rknet": "RK-Net", "odenet": "ODE-Net"}
#: Budgets of the quick and tiny runs: (train size, test size, batch, epochs, channels).
QUICK = dict(train_size=128, test_size=256, batch_size=32, epochs=1.0, channels=64)
TINY = dict(train_size=48, test_size=32, batch_size=16, epochs=1.0, channels=8)
#: Examples in the synthetic stand-in for MNIST (train, test) and its image side.
SYNTHETIC_SIZES, SYNTHETIC_SIDE = (1024, 512), 28
JSON_KEYS = ("model", "test_error", "params", "peak_memory_mb", "nfe_forward", "nfe_backward",
             "seconds_per_epoch")


def configure(parser):
    parser.add_argument("--quick", action="store_true", help="a small subset, one short epoch")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", choices=("mnist", "fashion"), default="mnist")
    parser.add_argument("--data", metavar="DIR", help="directory with the four IDX files")
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    parser.add_argument("--epochs", type=float, help="epochs (may be fractional)")
    parser.add_argument("--train-size", type=int, help="use the first N training examples")
    parser.add_argument("--test-size", type=int, help="use the first N test examples")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lr", type=float, help="constant learning rate (default: the paper's "
                        "schedule for SGD, 1e-3 for Adam)")
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--downsampling", choices=("conv", "res"), default="conv")
    parser.add_argument("--odenet-gradient", choices=("adjoint", "discrete"), default="adjoint",
                        help="ODE-Net's gradient: the continuous adjoint (the paper) or backprop "
                        "through the dopri5 steps (torchdiffeq's odenet_mnist.py default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="write one record per model")
    parser.add_argument("--out", default=os.environ.get("REFNODE_FIGURES", "figures"),
                        help="directory for figures")
    parser.add_argument("--no-figures", dest="figures", action="store_false")
    parser.add_argument("--runs", help="directory for checkpoints, resumed when they exist "
                        "(default runs/table1; none for --quick)")


# --- data -----------------------------------------------------------------------------------


def write_idx(path, array):
    """Write a uint8 array as an IDX file (magic 0x00 0x00 0x08 ndim, big-endian sizes)."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    with open(path, "wb") as f:
        f.write(header + array.tobytes())


def write_synthetic_idx(directory, sizes=SYNTHETIC_SIZES, side=SYNTHETIC_SIDE, seed=0):
    """Four MNIST-format files of a learnable toy problem: class k is a bright square at
    one of ten places, jittered by a few pixels, on noise. Returns ``directory``."""
    rng = np.random.default_rng(seed)
    corners = [(4 + 6 * (k % 4), 4 + 8 * (k // 4)) for k in range(10)]   # (row, col) of class k
    for kind, n in zip(("train", "test"), sizes):
        labels = rng.integers(0, 10, size=n)
        images = rng.integers(0, 60, size=(n, side, side))
        for i, k in enumerate(labels):
            r, c = corners[k][0] + rng.integers(-2, 3), corners[k][1] + rng.integers(-2, 3)
            images[i, max(r, 0):r + 8, max(c, 0):c + 8] = 255
        image_name, label_name = MNIST_FILES[kind]
        write_idx(os.path.join(directory, image_name), images)
        write_idx(os.path.join(directory, label_name), labels)
    return directory


def data_directory(args):
    """(directory, description) of the data, or (None, reason) if none is installed."""
    if args.data:
        return args.data, f"{args.dataset} from {args.data}"
    if args.dataset == "fashion":
        if os.path.isdir(FASHION_MNIST_DIR):
            return FASHION_MNIST_DIR, f"Fashion-MNIST from {FASHION_MNIST_DIR}"
        return None, f"no Fashion-MNIST at {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)"
    return None, "no MNIST directory given (--data DIR; refnode.data.download_mnist(DIR) fetches it)"


def load_data(args, dtype, tmp):
    """(x_train, y_train, x_test, y_test, description), subsets as the budget asks."""
    directory, description = data_directory(args)
    if directory is None:
        if not (args.quick or args.tiny):
            raise InputError(f"{description}; or run with --quick to use a synthetic data set")
        directory = write_synthetic_idx(tmp, seed=args.seed)
        description = f"SYNTHETIC stand-in data ({description})"
    x_train, y_train = load_mnist(directory, "train")
    x_test, y_test = load_mnist(directory, "test")
    n_train, n_test = args.train_size or len(x_train), args.test_size or len(x_test)
    return (normalize(x_train[:n_train], dtype), y_train[:n_train],
            normalize(x_test[:n_test], dtype), y_test[:n_test], description)


# --- the experiment ---------------------------------------------------------------------------


def _budget(args):
    """Fill unset options from the quick/tiny budgets (or the paper's batch of 128)."""
    preset = TINY if args.tiny else QUICK if args.quick else dict(batch_size=128, epochs=1.0,
                                                                    channels=64)
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.runs is None and not (args.quick or args.tiny):
        args.runs = os.path.join("runs", "table1")


def run_model(name, args, data):
    """Train and evaluate one model; its JSON record and training history."""
    x_train, y_train, x_test, y_test = data
    options = {} if name == "mlp" else dict(channels=args.channels, downsampling=args.downsampling)
    if name == "odenet":
        options["gradient"] = args.odenet_gradient
    model = build_model(name, **options)
    theta = model.init(np.random.default_rng(args.seed), x_train.dtype)
    config = TrainConfig(batch_size=args.batch_size, epochs=args.epochs, optimizer=args.optimizer,
                         lr=args.lr, augment=args.augment, seed=args.seed)
    checkpoint = os.path.join(
        args.runs, f"{args.dataset}-{name}-{len(x_train)}-{x_train.dtype}"
        f"{'-' + args.odenet_gradient if name == 'odenet' else ''}.npz") if args.runs else None
    theta, history = train(model, theta, x_train, y_train, config, checkpoint, name=name,
                           show_progress=not args.tiny)
    memory, _ = peak_step_memory(model, theta, x_train[:args.batch_size], y_train[:args.batch_size])
    per_epoch = len(x_train) // args.batch_size
    record = dict(model=name, test_error=test_error(model, theta, x_test, y_test),
                  params=count_parameters(theta), peak_memory_mb=memory,
                  nfe_forward=float(np.mean(history["nfe_forward"])) if name == "odenet" else None,
                  nfe_backward=(float(np.mean(history["nfe_backward"]))
                                if name == "odenet" and args.odenet_gradient == "adjoint" else None),
                  seconds_per_epoch=float(np.mean(history["seconds"]) * per_epoch))
    return record, history


def format_table(records):
    """The measured table beside the paper's."""
    head = (f"{'model':<12} {'test err':>8} {'(paper)':>8} {'params':>9} {'(paper)':>7} "
            f"{'mem MB':>7} {'(paper)':>7} {'NFE-F':>6} {'NFE-B':>6} {'s/epoch':>8}")
    lines = [head, "-" * len(head)]
    for r in records:
        paper = PAPER[r["model"]]
        nfe = [f"{r[k]:6.1f}" if r[k] is not None else f"{'-':>6}" for k in ("nfe_forward", "nfe_backward")]
        lines.append(f"{LABELS[r['model']]:<12} {100 * r['test_error']:7.2f}% "
                     f"{100 * paper['test_error']:7.2f}% {r['params'] / 1e6:8.3f}M "
                     f"{paper['params']:>7} {r['peak_memory_mb']:7.1f} {paper['memory']:>7} "
                     f"{nfe[0]} {nfe[1]} {r['seconds_per_epoch']:8.1f}")
    return "\n".join(lines)


def write_json(path, records):
    """Write the records atomically (temporary file in the same directory, then replace)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(records, f, indent=2)
    os.replace(tmp, path)


def plot_nfe(history, path):
    """ODE-Net's forward and backward NFE per training step (they rise as it trains)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history["nfe_forward"], label="forward NFE (dopri5)")
    ax.plot(history["nfe_backward"], label="backward NFE (adjoint)")
    ax.set_xlabel("training step")
    ax.set_ylabel("function evaluations")
    ax.set_title("ODE-Net: adaptive NFE during training (tol 1e-3)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args):
    _budget(args)
    dtype = np.dtype(args.dtype)
    if args.runs:
        os.makedirs(args.runs, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        *data, description = load_data(args, dtype, tmp)
    print(f"Table 1 on {description}: {len(data[0])} training / {len(data[2])} test examples, "
          f"batch {args.batch_size}, {args.epochs} epoch(s), {args.optimizer}, {args.dtype}")
    records, histories = [], {}
    for name in args.models:
        start = time.perf_counter()
        record, histories[name] = run_model(name, args, data)
        records.append(record)
        print(f"{LABELS[name]}: done in {time.perf_counter() - start:.1f} s", flush=True)
    print(format_table(records))
    print("Paper: MNIST, 160 epochs on all 60000 images; memory and time there are asymptotic.")
    if args.json:
        write_json(args.json, records)
    if args.figures:
        os.makedirs(args.out, exist_ok=True)
        if "odenet" in histories:
            plot_nfe(histories["odenet"], os.path.join(args.out, "table1_nfe.png"))
        batch = min(args.batch_size, 8)
        x, y = data[0][:batch], data[1][:batch]
        plot_memory(memory_sweeps(x, y, channels=args.channels, seed=args.seed),
                    os.path.join(args.out, "table1_memory.png"), batch)
    return 0
