"""Noisy 2-D spirals: the latent-ODE time-series data (Chen et al. 2018, §5.1).

The paper: "We generate a dataset of 1000 2-dimensional spirals, each starting at a
different point, sampled at 100 equally-spaced timesteps. The dataset contains two types
of spirals: half are clockwise while the other half counter-clockwise. To make the task
more realistic, we add gaussian noise to the observations." Models then see an irregular
random subset of each spiral's times (Table 2: 30, 50 or 100 of 100 observations).

The paper does not give the noise level. The authors' reference code
(torchdiffeq, ``examples/latent_ode.py``) defaults its generator to ``noise_std=0.1`` and
runs its demo with ``0.3``; we default to 0.1.

Our spirals are Archimedean, ``r = b * phi``, traversed at one radian per unit time and
centred at the origin::

    phi(t) = phi_0 + t,       phi_0 ~ Uniform(start)        (each spiral its own start)
    counter-clockwise:  z(t) = r(t) * ( cos phi(t),  sin phi(t))
    clockwise:          z(t) = r(t) * ( cos phi(t), -sin phi(t))   (the mirror image)

so both kinds wind outwards and differ only in the sense of rotation: the latent model has
to infer which of two dynamics it is looking at. (The reference code instead moves a window
along one fixed curve of each kind, centred at x = -5 and x = +5; we do not copy that.)

Train/extrapolation split (our choice, see :func:`split_windows`): the first
``train_fraction`` of the time grid is the observation window the model is fitted on; the
rest is held out, and predicting it is extrapolation in time.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

SPIRAL_B = 0.3  # r = b * phi; b = 0.3 as in the reference code's demo (latent_ode.py)
DEFAULT_DT = 2 * np.pi / 100  # grid spacing: 100 points make one full turn
DEFAULT_START = (np.pi, 3 * np.pi)  # range of start angles phi_0 (radians), our choice
DEFAULT_NOISE_STD = 0.1  # the reference generator's default; the paper gives none
DEFAULT_TRAIN_FRACTION = 0.5


@dataclass(frozen=True)
class Spirals:
    """A spiral data set.

    Attributes
    ----------
    t : ndarray, shape (n_total,)
        Observation times ``dt * arange(n_total)``, shared by all spirals.
    z_true : ndarray, shape (n_spirals, n_total, 2)
        Noise-free positions.
    z_obs : ndarray, shape (n_spirals, n_total, 2)
        ``z_true`` plus independent Gaussian noise of standard deviation ``noise_std``.
    clockwise : ndarray of bool, shape (n_spirals,)
    phi0 : ndarray, shape (n_spirals,)
        Start angle of each spiral.
    noise_std : float
    """

    t: np.ndarray
    z_true: np.ndarray
    z_obs: np.ndarray
    clockwise: np.ndarray
    phi0: np.ndarray
    noise_std: float


@dataclass(frozen=True)
class Subsample:
    """Irregular observations of every spiral.

    Attributes
    ----------
    index : ndarray of int64, shape (n_spirals, n_obs)
        Strictly increasing grid indices of each spiral's observations.
    t : ndarray, shape (n_spirals, n_obs)
        Their times, ``data.t[index]``.
    z : ndarray, shape (n_spirals, n_obs, 2)
        The noisy observations there.
    mask : ndarray of bool, shape (n_spirals, n_total)
        True at the observed grid points (for models that solve on the whole grid).
    """

    index: np.ndarray
    t: np.ndarray
    z: np.ndarray
    mask: np.ndarray


def generate_spirals(n_spirals=1000, n_total=100, noise_std=DEFAULT_NOISE_STD,
                     start=DEFAULT_START, dt=DEFAULT_DT, b=SPIRAL_B, seed=0):
    """Generate ``n_spirals`` noisy spirals, exactly half of them clockwise.

    Parameters
    ----------
    n_spirals : int >= 1
    n_total : int >= 2
        Number of equally spaced times.
    noise_std : float >= 0
        Standard deviation of the observation noise.
    start : (float, float)
        Range of the start angle ``phi_0`` in radians (``0 < low <= high``).
    dt : float > 0
        Time between grid points (one radian of rotation per unit time).
    b : float > 0
        Spiral growth: the radius is ``b * phi``.
    seed : int or numpy.random.Generator
        Everything random comes from ``numpy.random.default_rng(seed)``.

    Returns
    -------
    Spirals
    """
    _check_arguments(n_spirals, n_total, noise_std, start, dt, b)
    rng = np.random.default_rng(seed)
    t = dt * np.arange(n_total)
    clockwise = rng.permutation(np.arange(n_spirals) < n_spirals // 2)
    phi0 = rng.uniform(start[0], start[1], size=n_spirals)
    phi = phi0[:, None] + t[None, :]  # (n_spirals, n_total)
    r = b * phi
    sense = np.where(clockwise, -1.0, 1.0)[:, None]  # mirror y for clockwise spirals
    z_true = np.stack([r * np.cos(phi), sense * r * np.sin(phi)], axis=-1)
    z_obs = z_true + noise_std * rng.standard_normal(z_true.shape)
    return Spirals(t=t, z_true=z_true, z_obs=z_obs, clockwise=clockwise, phi0=phi0,
                   noise_std=float(noise_std))


def _check_arguments(n_spirals, n_total, noise_std, start, dt, b):
    if not (isinstance(n_spirals, (int, np.integer)) and n_spirals >= 1):
        raise InputError(f"n_spirals must be an int >= 1, got {n_spirals!r}")
    if not (isinstance(n_total, (int, np.integer)) and n_total >= 2):
        raise InputError(f"n_total must be an int >= 2, got {n_total!r}")
    if not noise_std >= 0:
        raise InputError(f"noise_std must be >= 0, got {noise_std!r}")
    if len(start) != 2 or not 0 < start[0] <= start[1]:
        raise InputError(f"start must be a range (low, high) with 0 < low <= high, got {start!r}")
    if not (dt > 0 and b > 0):
        raise InputError(f"dt and b must be > 0, got dt={dt!r}, b={b!r}")


def split_windows(n_total, train_fraction=DEFAULT_TRAIN_FRACTION):
    """Split the time grid into a training window and a held-out extrapolation window.

    Returns
    -------
    train, extrapolate : slice, slice
        ``slice(0, n_train)`` and ``slice(n_train, n_total)`` with
        ``n_train = round(train_fraction * n_total)``; both are non-empty.
    """
    n_train = int(round(train_fraction * n_total))
    if not 1 <= n_train < n_total:
        raise InputError(f"train_fraction={train_fraction!r} of n_total={n_total} leaves an "
                         "empty window; choose a fraction strictly between 0 and 1")
    return slice(0, n_train), slice(n_train, n_total)


def irregular_subsample(data, n_obs, rng, window=None):
    """For each spiral, a sorted random subset of ``n_obs`` grid times inside ``window``.

    Parameters
    ----------
    data : Spirals
    n_obs : int
        Observations per spiral (e.g. 30, 50 or 100 as in Table 2).
    rng : numpy.random.Generator or int
    window : slice, optional
        Grid indices to draw from, e.g. the training window of :func:`split_windows`;
        the whole grid by default.

    Returns
    -------
    Subsample
    """
    rng = np.random.default_rng(rng)
    n_spirals, n_total = data.z_obs.shape[:2]
    candidates = np.arange(n_total)[slice(None) if window is None else window]
    if not (isinstance(n_obs, (int, np.integer)) and 1 <= n_obs <= len(candidates)):
        raise InputError(f"n_obs must be an int in [1, {len(candidates)}] (the size of the "
                         f"window), got {n_obs!r}")
    # A uniformly random subset per row: the n_obs smallest of independent uniform keys.
    keys = rng.random((n_spirals, len(candidates)))
    chosen = np.argsort(keys, axis=1)[:, :n_obs]
    index = np.sort(candidates[chosen], axis=1)
    rows = np.arange(n_spirals)[:, None]
    mask = np.zeros((n_spirals, n_total), dtype=bool)
    mask[rows, index] = True
    return Subsample(index=index, t=data.t[index], z=data.z_obs[rows, index], mask=mask)
