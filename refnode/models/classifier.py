"""Training and evaluating an image classifier built from refnode layers, resumably.

One training step is the whole hand-derived chain: forward through the layers, the
cross-entropy's gradient, and the layers' VJPs backwards (for an ODE block, its
``odeint_vjp`` pullback). The optimizer then moves θ.

Randomness is derived, not carried: epoch e shuffles with ``default_rng([seed, e])`` and
batch b of it crops with ``default_rng([seed, e, b])``. A checkpoint therefore needs only
θ, the optimizer state, the step count and the history; a run killed anywhere and resumed
from its last checkpoint repeats exactly the steps the uninterrupted run would take.
"""

import dataclasses
import os
import time

import numpy as np

from ..backend import array_module, to_float
from ..checkpoint import check_same_run, load_checkpoint, save_checkpoint
from ..device import device_of, to_device
from ..errors import InputError
from ..nn import accuracy, softmax_cross_entropy
from ..optim import SGD, Adam, ODENET_MOMENTUM, odenet_schedule, constant
from ..progress import progress
from ..data.batches import minibatches, random_crop
from .odenet import ode_blocks

#: Per-step quantities kept in the training history.
HISTORY_KEYS = ("loss", "accuracy", "nfe_forward", "nfe_backward", "seconds")


@dataclasses.dataclass
class TrainConfig:
    """How to train.

    ``epochs`` may be fractional: training stops after ``ceil(epochs · batches per epoch)``
    steps. ``optimizer="sgd"`` is the paper's SGD with momentum 0.9 and the schedule
    lr = 0.1·batch/128, ÷10 at epochs 60, 100, 140; ``"adam"`` uses ``lr`` (default 1e-3).
    """

    batch_size: int = 128
    epochs: float = 1.0
    optimizer: str = "sgd"
    lr: float = None
    augment: bool = True
    seed: int = 0
    checkpoint_every: int = 50


def make_optimizer(config):
    """(optimizer, schedule(epoch) -> lr) for ``config``."""
    if config.optimizer == "sgd":
        schedule = (odenet_schedule(config.batch_size) if config.lr is None
                    else constant(config.lr))
        return SGD(schedule(0.0), momentum=ODENET_MOMENTUM), schedule
    if config.optimizer == "adam":
        optimizer = Adam() if config.lr is None else Adam(config.lr)
        return optimizer, constant(optimizer.lr)
    raise InputError(f"optimizer must be 'sgd' or 'adam'; got {config.optimizer!r}")


def ode_stats(model, caches):
    """(forward NFE, backward NFE) summed over the model's ODE blocks; (0, 0) without any.

    A discrete-adjoint block reports no backward NFE (it reverses recorded steps).
    """
    forward = backward = 0
    for i, _ in ode_blocks(model):
        pullback = caches[i]["pullback"]
        forward += pullback.forward_stats["nfe"]
        backward += (pullback.backward_stats or {}).get("nfe", 0)
    return forward, backward


def train_step(model, theta, x, labels):
    """Loss, accuracy, ∂loss/∂θ and the ODE blocks' NFE of one minibatch.

    Returns
    -------
    loss : float
    acc : float
    grad : tree like theta
    nfe : (int, int)
        Forward and backward function evaluations of the ODE blocks.
    """
    logits, caches = model.forward(theta, 0.0, x)
    loss, g_logits = softmax_cross_entropy(logits, labels)
    _, grad, _ = model.vjp(theta, caches, g_logits)
    return to_float(loss), accuracy(logits, labels), grad, ode_stats(model, caches)


def predict(model, theta, x, batch_size=500):
    """Logits (N, 10), in batches, without setting up any gradient."""
    out = []
    for i in range(0, len(x), batch_size):
        h = x[i:i + batch_size]
        for layer, theta_i in zip(model.layers, theta):
            h = layer.predict(theta_i, h) if hasattr(layer, "predict") else layer.forward(theta_i, 0.0, h)[0]
        out.append(h)
    return array_module(out).concatenate(out)


def test_error(model, theta, x, labels):
    """Fraction of misclassified examples."""
    return 1.0 - accuracy(predict(model, theta, x), labels)


def _batch(x, labels, index, config, epoch, b):
    index = array_module(x).asarray(index)      # host indices -> x's device (no-op on NumPy)
    xb = x[index]
    if config.augment:
        xb = random_crop(xb, np.random.default_rng([config.seed, epoch, b]))
    return xb, labels[index]


def _fresh_state(theta, optimizer):
    return {"theta": theta, "opt_state": optimizer.init(theta), "step": 0,
            "history": {key: [] for key in HISTORY_KEYS}}


def _resume(path, theta, optimizer, metadata):
    """The saved state, its arrays moved to the device of ``theta`` (a checkpoint holds host
    arrays: one written on the GPU resumes on the CPU and back), or a fresh state."""
    if path is None or not os.path.isfile(path):
        return _fresh_state(theta, optimizer)
    state, saved = load_checkpoint(path)
    check_same_run(path, saved, metadata, "use another --runs DIR, or delete the checkpoint "
                   "to train that model afresh")
    return to_device(state, device_of(theta))


def train(model, theta, x, labels, config, checkpoint=None, name="train", stop_after=None,
          show_progress=True, identity=None):
    """Train with minibatches, checkpointing to ``checkpoint`` and resuming from it.

    Parameters
    ----------
    model : layer (e.g. a Sequential from :mod:`refnode.models.odenet`)
    theta : tree
        Initial parameters (ignored when resuming from an existing checkpoint).
    x : array, shape (N, 1, H, W);  labels : int array, shape (N,)
    config : TrainConfig
    checkpoint : str, optional
        Path of the checkpoint, written atomically every ``config.checkpoint_every`` steps
        and at the end of each epoch; resumed from if it exists and was written by the
        same run (the same ``name``, ``config``, number of examples and ``identity``), else
        an InputError names what differs.
    stop_after : int, optional
        Stop after this many steps in total (to simulate an interrupted run).
    identity : dict, optional
        JSON-serialisable identity of what the result depends on beyond ``config``: the
        data (a content hash), the model's architecture, the dtype.

    Returns
    -------
    theta : tree
    history : dict of lists, one entry per step (keys :data:`HISTORY_KEYS`)
    """
    optimizer, schedule = make_optimizer(config)
    per_epoch = len(minibatches(len(x), config.batch_size, np.random.default_rng(0)))
    total = int(np.ceil(config.epochs * per_epoch))
    metadata = {"name": name, "config": dataclasses.asdict(config), "n_train": len(x),
                **({"identity": identity} if identity is not None else {})}
    state = _resume(checkpoint, theta, optimizer, metadata)
    last = total if stop_after is None else min(total, stop_after)
    bar = progress(range(state["step"], last), desc=name, enabled=show_progress)
    for step in bar:
        epoch, b = divmod(step, per_epoch)
        index = minibatches(len(x), config.batch_size, np.random.default_rng([config.seed, epoch]))[b]
        xb, yb = _batch(x, labels, index, config, epoch, b)
        start = time.perf_counter()
        loss, acc, grad, (nfe_f, nfe_b) = train_step(model, state["theta"], xb, yb)
        theta_new, opt_state = optimizer.update(state["theta"], grad, state["opt_state"],
                                                lr=schedule(step / per_epoch))
        seconds = time.perf_counter() - start
        for key, value in zip(HISTORY_KEYS, (loss, acc, nfe_f, nfe_b, seconds)):
            state["history"][key].append(value)
        state.update(theta=theta_new, opt_state=opt_state, step=step + 1)
        bar.set(loss=loss, acc=acc, **({"nfe_f": nfe_f, "nfe_b": nfe_b} if nfe_f else {}))
        if checkpoint and ((step + 1) % config.checkpoint_every == 0 or (step + 1) % per_epoch == 0
                           or step + 1 == last):
            save_checkpoint(checkpoint, state, metadata)
    return state["theta"], state["history"]
