"""Losses, each returning its value and its gradient: ``loss, grad = loss_fn(y, target)``.

``grad`` is ∂loss/∂y with the shape of y: the cotangent that starts a network's VJP.
Losses are means over the batch, so gradients carry the factor 1/N.
"""

import numpy as np

from ..backend import array_module, to_float, to_numpy
from ..errors import InputError


def log_softmax(logits):
    """log softmax along the last axis, computed stably.

    log p_k = z_k − log Σ_j exp(z_j) with z = logits − max(logits): the shift cancels
    exactly, and after it every exp(z_j) ≤ 1, so nothing overflows.

    Parameters
    ----------
    logits : array, shape (N, K)

    Returns
    -------
    array, shape (N, K)
    """
    xp = array_module(logits)
    z = logits - xp.max(logits, axis=-1, keepdims=True)
    return z - xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))


def _check_labels(logits, labels):
    if np.ndim(logits) != 2:
        raise InputError(f"logits must have shape (N, K); got {np.shape(logits)}")
    if np.shape(labels) != np.shape(logits)[:1]:
        raise InputError(f"labels must have shape (N,) = {np.shape(logits)[:1]}; "
                         f"got {np.shape(labels)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must be integer class indices; got dtype {labels.dtype}")
    n_classes = np.shape(logits)[1]
    if labels.size == 0:
        return
    bounds = array_module(labels).stack([labels.min(), labels.max()])
    low, high = (int(v) for v in to_numpy(bounds))                 # one explicit host sync
    if not (0 <= low and high < n_classes):
        raise InputError(f"labels must lie in [0, {n_classes}); "
                         f"got values from {low} to {high}")


def one_hot(labels, n_classes, dtype=np.float64):
    """(N,) integer labels -> (N, K) array with a 1 in each row at the label's column."""
    xp = array_module(labels)
    return (labels[:, None] == xp.arange(n_classes)[None, :]).astype(dtype)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    loss = −(1/N) Σ_n log softmax(logits_n)[labels_n],
    ∂loss/∂logits = (softmax(logits) − onehot(labels)) / N.

    Parameters
    ----------
    logits : array, shape (N, K)
    labels : integer array, shape (N,), values in [0, K)

    Returns
    -------
    loss : 0-d array
    grad : array, shape (N, K)
    """
    _check_labels(logits, labels)
    xp = array_module(logits)
    n, n_classes = logits.shape
    log_p = log_softmax(logits)
    y = one_hot(labels, n_classes, dtype=logits.dtype)
    loss = -xp.sum(y * log_p) / n
    grad = (xp.exp(log_p) - y) / n
    return loss, grad


def mean_squared_error(prediction, target):
    """Mean over all entries of (prediction − target)², and its gradient.

    loss = (1/M) Σ_i (prediction_i − target_i)²,
    ∂loss/∂prediction = 2 (prediction − target) / M,
    with M the number of entries (PyTorch's MSELoss with reduction="mean").

    Parameters
    ----------
    prediction, target : arrays of the same shape

    Returns
    -------
    loss : 0-d array
    grad : array, shape of ``prediction``
    """
    if np.shape(prediction) != np.shape(target):
        raise InputError(f"prediction and target must have the same shape; "
                         f"got {np.shape(prediction)} and {np.shape(target)}")
    xp = array_module(prediction, target)
    residual = prediction - target
    m = residual.size
    return xp.sum(residual ** 2) / m, 2.0 * residual / m


def accuracy(logits, labels):
    """Fraction of rows whose largest logit is at the label: a Python float in [0, 1]."""
    _check_labels(logits, labels)
    xp = array_module(logits)
    return to_float(xp.mean(xp.argmax(logits, axis=-1) == labels))
