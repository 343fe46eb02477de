"""Optimizers and learning-rate schedules for the experiments.

Each optimizer is a small object with two methods, in the functional style of optax:

    state = opt.init(theta)
    theta, state = opt.update(theta, grad, state, lr=schedule(epoch))

``theta`` and ``grad`` are parameter pytrees (an array, or nested tuples/lists/dicts of
arrays, see :mod:`refnode.params`); ``update`` returns *new* trees and never writes into
the old ones. The state is a plain dict of pytrees and a step count, so
:func:`refnode.checkpoint.save_checkpoint` can store it and training resumes exactly.

Schedules are functions ``epoch -> lr``; pass their value as ``lr=`` to ``update``.
"""

import math
import numbers

from .backend import array_module
from .errors import InputError
from .params import tree_map, tree_zeros_like

# Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", Algorithm 1 defaults.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
ADAM_LR = 1e-3

# ODE-Net on MNIST (torchdiffeq examples/odenet_mnist.py): SGD with momentum 0.9,
# lr 0.1 for a batch of 128 (scaled linearly with the batch), divided by 10 at epochs
# 60, 100 and 140, 160 epochs in all.
ODENET_MOMENTUM = 0.9
ODENET_BASE_LR = 0.1
ODENET_BASE_BATCH = 128
ODENET_BOUNDARIES = (60, 100, 140)
ODENET_DECAY = 0.1


def _check_lr(lr):
    if isinstance(lr, bool) or not (isinstance(lr, numbers.Real) and math.isfinite(lr) and lr > 0):
        raise InputError(f"learning rate must be a positive finite number, got {lr!r}")
    return float(lr)


class SGD:
    """Stochastic gradient descent with (Nesterov) momentum and L2 weight decay.

    With ``g = grad + weight_decay * theta``, the update is (PyTorch's convention)::

        v     <- momentum * v + g
        d      = g + momentum * v     if nesterov else v
        theta <- theta - lr * d

    Parameters
    ----------
    lr : float
        Learning rate used when ``update`` is not given one.
    momentum : float in [0, 1)
    weight_decay : float >= 0
    nesterov : bool
        Nesterov momentum (needs ``momentum > 0``).
    """

    def __init__(self, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        self.lr = _check_lr(lr)
        if not 0.0 <= momentum < 1.0:
            raise InputError(f"momentum must be in [0, 1), got {momentum!r}")
        if weight_decay < 0.0:
            raise InputError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if nesterov and momentum == 0.0:
            raise InputError("nesterov=True needs momentum > 0; set momentum (e.g. 0.9)")
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)

    def init(self, theta):
        """State for ``theta``: ``{"step": 0, "velocity": zeros like theta}``."""
        return {"step": 0, "velocity": tree_zeros_like(theta)}

    def update(self, theta, grad, state, lr=None):
        """One step. Returns ``(new_theta, new_state)``; the inputs are not modified."""
        lr = self.lr if lr is None else _check_lr(lr)
        mu, wd = self.momentum, self.weight_decay
        g = tree_map(lambda th, gr: gr + wd * th, theta, grad) if wd else grad
        velocity = tree_map(lambda v, gi: mu * v + gi, state["velocity"], g)
        if self.nesterov:
            direction = tree_map(lambda gi, v: gi + mu * v, g, velocity)
        else:
            direction = velocity
        new_theta = tree_map(lambda th, d: th - lr * d, theta, direction)
        return new_theta, {"step": state["step"] + 1, "velocity": velocity}


class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1).

    With step count ``k`` (starting at 1)::

        m     <- beta1 * m + (1 - beta1) * g
        v     <- beta2 * v + (1 - beta2) * g**2
        theta <- theta - lr * (m / (1 - beta1**k)) / (sqrt(v / (1 - beta2**k)) + eps)

    Parameters
    ----------
    lr : float
    betas : (float, float), each in [0, 1)
    eps : float > 0
    """

    def __init__(self, lr=ADAM_LR, betas=ADAM_BETAS, eps=ADAM_EPS):
        self.lr = _check_lr(lr)
        beta1, beta2 = betas
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise InputError(f"betas must both be in [0, 1), got {betas!r}")
        if not eps > 0.0:
            raise InputError(f"eps must be > 0, got {eps!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def init(self, theta):
        """State for ``theta``: ``{"step": 0, "m": zeros, "v": zeros}`` (trees like theta)."""
        return {"step": 0, "m": tree_zeros_like(theta), "v": tree_zeros_like(theta)}

    def update(self, theta, grad, state, lr=None):
        """One step. Returns ``(new_theta, new_state)``; the inputs are not modified."""
        lr = self.lr if lr is None else _check_lr(lr)
        b1, b2, eps = self.beta1, self.beta2, self.eps
        step = state["step"] + 1
        m = tree_map(lambda mi, g: b1 * mi + (1.0 - b1) * g, state["m"], grad)
        v = tree_map(lambda vi, g: b2 * vi + (1.0 - b2) * g * g, state["v"], grad)
        m_correction = 1.0 - b1**step
        v_correction = 1.0 - b2**step

        def step_leaf(th, mi, vi):
            xp = array_module(th, mi, vi)
            return th - lr * (mi / m_correction) / (xp.sqrt(vi / v_correction) + eps)

        new_theta = tree_map(step_leaf, theta, m, v)
        return new_theta, {"step": step, "m": m, "v": v}


def constant(lr):
    """The schedule ``epoch -> lr`` that never changes."""
    lr = _check_lr(lr)
    return lambda epoch: lr


def step_schedule(lr, boundaries, factor):
    """Piecewise-constant decay: ``lr * factor**(number of boundaries <= epoch)``.

    Parameters
    ----------
    lr : float
        Initial learning rate.
    boundaries : sequence of float, increasing
        Epochs (or any step unit, the same one the schedule is called with) at which the
        rate is multiplied by ``factor``. A fractional epoch ``iteration / batches_per_epoch``
        works too.
    factor : float in (0, 1]

    Returns
    -------
    callable
        ``schedule(epoch) -> float``.
    """
    lr = _check_lr(lr)
    boundaries = tuple(float(b) for b in boundaries)
    if any(b1 >= b2 for b1, b2 in zip(boundaries, boundaries[1:])):
        raise InputError(f"boundaries must be strictly increasing, got {boundaries}")
    if not 0.0 < factor <= 1.0:
        raise InputError(f"factor must be in (0, 1], got {factor!r}")

    def schedule(epoch):
        n_passed = sum(1 for b in boundaries if epoch >= b)
        return lr * factor**n_passed

    return schedule


def odenet_schedule(batch_size):
    """The ODE-Net MNIST schedule: ``0.1 * batch_size / 128``, divided by 10 at 60, 100, 140."""
    if not (isinstance(batch_size, int) and batch_size > 0):
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    lr = ODENET_BASE_LR * batch_size / ODENET_BASE_BATCH
    return step_schedule(lr, ODENET_BOUNDARIES, ODENET_DECAY)
