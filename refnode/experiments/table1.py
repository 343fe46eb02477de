"""Table 1 of the paper ("Replacing residual networks with ODEs for supervised learning"):
the experiment's logic.

Trains the 1-layer MLP, ResNet, RK-Net and ODE-Net of :mod:`refnode.models.odenet` on
MNIST or Fashion-MNIST under one budget (the same training examples, batches and steps)
and measures test error, parameters, peak memory of a training step, the ODE-Net's forward
and backward function evaluations and seconds per epoch, beside the paper's numbers.
The command (``refnode reproduce table1``) is :mod:`refnode.commands.reproduce_table1`.
"""

import dataclasses
import hashlib
import os

import numpy as np

from ..data.idx import FASHION_MNIST_DIR, MNIST_FILES, load_mnist, normalize
from ..device import to_device, to_host
from ..errors import InputError
from ..models.classifier import TrainConfig, test_error, train
from ..models.odenet import MODELS, build_model, count_parameters
from .common import save_figure
from .table1_memory import peak_step_memory

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


@dataclasses.dataclass(frozen=True)
class Settings:
    """One Table 1 run. ``None`` sizes mean "all"; ``runs`` is the checkpoint directory
    (None: no checkpoints). ``synthetic_if_missing``: stand in generated data when no data
    set is installed (the quick runs). ``device``: where training runs (:mod:`refnode.device`;
    not part of a checkpoint's identity, so a run moves between devices)."""

    dataset: str = "mnist"
    data: str = None
    models: tuple = tuple(MODELS)
    epochs: float = 1.0
    train_size: int = None
    test_size: int = None
    batch_size: int = 128
    channels: int = 64
    optimizer: str = "sgd"
    lr: float = None
    augment: bool = True
    dtype: str = "float32"
    downsampling: str = "conv"
    odenet_gradient: str = "adjoint"
    seed: int = 0
    runs: str = None
    synthetic_if_missing: bool = False
    show_progress: bool = True
    device: str = "cpu"


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


def data_directory(dataset, data=None):
    """(directory, description) of the data, or (None, reason) if none is installed."""
    if data:
        return data, f"{dataset} from {data}"
    if dataset == "fashion":
        if os.path.isdir(FASHION_MNIST_DIR):
            return FASHION_MNIST_DIR, f"Fashion-MNIST from {FASHION_MNIST_DIR}"
        return None, f"no Fashion-MNIST at {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)"
    return None, "no MNIST directory given (--data DIR; refnode.data.download_mnist(DIR) fetches it)"


def load_data(settings, tmp):
    """(x_train, y_train, x_test, y_test, description), subsets as the settings ask.

    Raises InputError when no data set is installed (unless ``synthetic_if_missing``) or a
    requested subset is larger than the data set.
    """
    directory, description = data_directory(settings.dataset, settings.data)
    if directory is None:
        if not settings.synthetic_if_missing:
            raise InputError(f"{description}; or run with --quick to use a synthetic data set")
        directory = write_synthetic_idx(tmp, seed=settings.seed)
        description = f"SYNTHETIC stand-in data ({description})"
    x_train, y_train = load_mnist(directory, "train")
    x_test, y_test = load_mnist(directory, "test")
    n_train = _subset_size(settings.train_size, len(x_train), "--train-size", "training")
    n_test = _subset_size(settings.test_size, len(x_test), "--test-size", "test")
    if settings.batch_size > n_train:
        raise InputError(f"--batch-size {settings.batch_size} is larger than the {n_train} "
                         "training examples; use a smaller batch or more examples")
    dtype = np.dtype(settings.dtype)
    return (normalize(x_train[:n_train], dtype), y_train[:n_train],
            normalize(x_test[:n_test], dtype), y_test[:n_test], description)


def _subset_size(requested, available, flag, kind):
    if requested is None:
        return available
    if requested > available:
        raise InputError(f"{flag} {requested}: the data set has only {available} {kind} "
                         f"examples; ask for at most {available}")
    return requested


# --- the experiment ---------------------------------------------------------------------------


def run_model(name, settings, data, on_device=None):
    """Train and evaluate one model; its JSON record and training history.

    Parameters
    ----------
    name : str
        A key of :data:`~refnode.models.odenet.MODELS`.
    settings : Settings
    data : (x_train, y_train, x_test, y_test), NumPy arrays
    on_device : the same four on ``settings.device`` (:func:`refnode.device.to_device`,
        done once by the caller for every model); default: ``data``, which must then be
        there already. Training and the test error run on them; the checkpoint's identity
        (a hash of the host data) and the peak memory of one step (tracemalloc: host
        memory, so measured on the CPU) use ``data``.
    """
    s = settings
    x_train, y_train, x_test, y_test = data
    on_device = to_device(data, s.device) if on_device is None else on_device
    options = {} if name == "mlp" else dict(channels=s.channels, downsampling=s.downsampling)
    if name == "odenet":
        options["gradient"] = s.odenet_gradient
    model = build_model(name, **options)
    theta_host = model.init(np.random.default_rng(s.seed), x_train.dtype)
    config = TrainConfig(batch_size=s.batch_size, epochs=s.epochs, optimizer=s.optimizer,
                         lr=s.lr, augment=s.augment, seed=s.seed)
    checkpoint = os.path.join(
        s.runs, f"{s.dataset}-{name}-{len(x_train)}-{x_train.dtype}"
        f"{'-' + s.odenet_gradient if name == 'odenet' else ''}.npz") if s.runs else None
    theta, history = train(model, to_device(theta_host, s.device), on_device[0], on_device[1],
                           config, checkpoint, name=name, show_progress=s.show_progress,
                           identity=identity(name, options, s, x_train, y_train))
    memory, _ = peak_step_memory(model, to_host(theta), x_train[:s.batch_size],
                                 y_train[:s.batch_size])
    per_epoch = len(x_train) // s.batch_size
    record = dict(model=name, test_error=test_error(model, theta, on_device[2], on_device[3]),
                  params=count_parameters(theta), peak_memory_mb=memory,
                  nfe_forward=float(np.mean(history["nfe_forward"])) if name == "odenet" else None,
                  nfe_backward=(float(np.mean(history["nfe_backward"]))
                                if name == "odenet" and s.odenet_gradient == "adjoint" else None),
                  seconds_per_epoch=float(np.mean(history["seconds"]) * per_epoch))
    return record, history


def identity(name, options, settings, x_train, y_train):
    """What a checkpoint of model ``name`` depends on beyond its training settings: the
    model and its architecture options, the data set's name, the dtype, and a SHA-256 of
    the training images and labels used (so another data set, subset or generated stand-in
    is another run). Stored in the checkpoint; resuming with anything different is refused.
    """
    digest = hashlib.sha256()
    for array in (x_train, y_train):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data)
    return {"model": name, "architecture": dict(options), "dataset": settings.dataset,
            "dtype": str(x_train.dtype), "training_data_sha256": digest.hexdigest()}


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
    return save_figure(fig, path, dpi=120)
