"""Minibatches and random-crop augmentation for image classifiers.

Both take their randomness from an explicit ``numpy.random.Generator``, so a training run
that derives one generator per epoch (and per batch) from its seed can be stopped and
resumed anywhere and still draw exactly the same batches and crops.

Augmentation follows torchdiffeq's ``examples/odenet_mnist.py`` (``--data_aug True``, the
default): ``transforms.RandomCrop(28, padding=4)`` — pad the 28×28 image with 4 zeros on
every side and cut out a random 28×28 window — and no other transform (pixels in [0, 1]).
"""

import numpy as np

from ..backend import array_module
from ..errors import InputError

#: Zero padding of the random crop (torchdiffeq examples/odenet_mnist.py: RandomCrop(28, padding=4)).
CROP_PADDING = 4


def minibatches(n, batch_size, rng, drop_last=True):
    """Indices of one epoch's minibatches: a random permutation of range(n), cut in pieces.

    Parameters
    ----------
    n : int
        Number of examples.
    batch_size : int
    rng : numpy.random.Generator
        Draws the permutation.
    drop_last : bool
        Leave out the last, smaller batch (the reference code's ``drop_last=True``).

    Returns
    -------
    list of int arrays, each of shape (batch_size,) (the last maybe shorter)
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer; got {batch_size!r}")
    if drop_last and n < batch_size:
        raise InputError(f"batch_size={batch_size} is larger than the {n} training examples; "
                         "use a smaller batch or more data")
    order = rng.permutation(n)
    stop = n - n % batch_size if drop_last else n
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


def random_crop(images, rng, padding=CROP_PADDING):
    """Pad each image with zeros and cut a random window of the original size out of it.

    Parameters
    ----------
    images : array, shape (N, C, H, W)
    rng : numpy.random.Generator
        Draws the offsets, uniform on {0, ..., 2·padding} in each direction.
    padding : int

    Returns
    -------
    array, shape (N, C, H, W)
        ``out[n] = padded[n, :, dy_n : dy_n + H, dx_n : dx_n + W]``.
    """
    if np.ndim(images) != 4:
        raise InputError(f"random_crop expects images of shape (N, C, H, W); got {np.shape(images)}")
    n, _, h, w = images.shape
    xp = array_module(images)                 # the images' device; the offsets are host ints
    padded = xp.pad(images, [(0, 0), (0, 0), (padding, padding), (padding, padding)])
    dy = rng.integers(0, 2 * padding + 1, size=n)
    dx = rng.integers(0, 2 * padding + 1, size=n)
    return xp.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
