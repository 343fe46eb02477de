"""Noisy 2-D spirals: the latent-ODE time-series data (Chen et al. 2018, §5.1).

The paper: "We generate a dataset of 1000 2-dimensional spirals, each starting at a
different point, sampled at 100 equally-spaced timesteps. The dataset contains two types
of spirals: half are clockwise while the other half counter-clockwise. To make the task
more realistic, we add gaussian noise to the observations." Models then see an irregular
random subset of each spiral's times (Table 2: 30, 50 or 100 of 100 observations).

Two constructions live here.

**Reference windows** (:func:`reference_curves`, :func:`spiral_windows`; the Table 2 task).
The authors' reference code (torchdiffeq, ``examples/latent_ode.py``) defines two fixed
curves on 1000 equally spaced parameter values τ ∈ [0, 6π] and cuts every series out of
one of them as a window of 100 consecutive points starting at a random index::

    counter-clockwise:  angle  τ,               radius b τ,              centre (+5, 0)
    clockwise:          angle  6π + 1 − τ,      radius 50 b / (6π + 1 − τ),  centre (−5, 0)

with b = 0.3. Both wind outwards as τ grows, one each way round. Time is window-relative:
a window starting at curve index s is observed at t_k = k Δτ, k = 0..99, and its
continuation (the next 100 curve points) at t_k, k = 100..199. The start index is uniform
on a range of indices (the reference draws it from [100, 800)); the noise is Gaussian
(the reference runs with standard deviation 0.3; the paper gives none).

**One-turn spirals** (:func:`generate_spirals`; the ``--task one-turn`` variant).
Archimedean spirals ``r = b * phi`` centred at the origin, each with its own start angle
phi_0 ~ Uniform(start), traversed at one radian per unit time::

    counter-clockwise:  z(t) = r(t) * ( cos phi(t),  sin phi(t)),   phi(t) = phi_0 + t
    clockwise:          z(t) = r(t) * ( cos phi(t), -sin phi(t))   (the mirror image)

:func:`split_windows` splits their common time grid into an observation window and the
held-out rest (extrapolation in time, into radii no training window reaches).
"""

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

SPIRAL_B = 0.3  # r = b * phi; b = 0.3 as in the reference code's demo (latent_ode.py)
DEFAULT_DT = 2 * np.pi / 100  # grid spacing: 100 points make one full turn
DEFAULT_START = (np.pi, 3 * np.pi)  # range of start angles phi_0 (radians), our choice
DEFAULT_NOISE_STD = 0.1  # the reference generator's default; the paper gives none
DEFAULT_TRAIN_FRACTION = 0.5

# The reference code's curves (torchdiffeq examples/latent_ode.py, its __main__ settings).
REFERENCE_N_POINTS = 1000  # points per curve
REFERENCE_T_MAX = 6 * np.pi  # curve parameter τ ∈ [0, 6π]
REFERENCE_B = 0.3  # radius scale b
REFERENCE_CENTRE = 5.0  # counter-clockwise curve centred at (+5, 0), clockwise at (−5, 0)
REFERENCE_NOISE_STD = 0.3  # the reference's run setting
REFERENCE_WINDOW = 100  # observed points per series ("100 equally-spaced timesteps")
REFERENCE_START = (100, 800)  # start index range of the reference, [low, high)


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


# --- reference windows (the Table 2 task) -----------------------------------------------


@dataclass(frozen=True)
class Windows:
    """Series cut from the two reference curves, each with its continuation.

    Attributes
    ----------
    t : ndarray, shape (W,)
        Window-relative observation times ``Δτ * arange(W)``.
    z_obs : ndarray, shape (n, W, 2)
        Noisy observations in the window.
    z_true : ndarray, shape (n, W, 2)
        The noise-free window.
    t_future : ndarray, shape (H,)
        Times of the continuation, ``Δτ * arange(W, W + H)``.
    z_future : ndarray, shape (n, H, 2)
        The noise-free continuation (what extrapolation is scored against).
    clockwise : ndarray of bool, shape (n,)
    start : ndarray of int64, shape (n,)
        Curve index of each window's first point.
    noise_std : float
    """

    t: np.ndarray
    z_obs: np.ndarray
    z_true: np.ndarray
    t_future: np.ndarray
    z_future: np.ndarray
    clockwise: np.ndarray
    start: np.ndarray
    noise_std: float


def reference_curves(n_points=REFERENCE_N_POINTS, t_max=REFERENCE_T_MAX, b=REFERENCE_B):
    """The two reference curves on ``n_points`` equally spaced τ in [0, t_max].

    Returns
    -------
    tau : ndarray, shape (n_points,)
    counter_clockwise, clockwise : ndarray, shape (n_points, 2)
    """
    tau = np.linspace(0.0, t_max, n_points)
    angle = t_max + 1.0 - tau  # clockwise: the angle falls as τ grows; +1 keeps it > 0
    radius = 50.0 * b / angle
    clockwise = np.stack([radius * np.cos(angle) - REFERENCE_CENTRE, radius * np.sin(angle)], -1)
    counter = np.stack([b * tau * np.cos(tau) + REFERENCE_CENTRE, b * tau * np.sin(tau)], -1)
    return tau, counter, clockwise


def spiral_windows(n, start=REFERENCE_START, window=REFERENCE_WINDOW, horizon=REFERENCE_WINDOW,
                   noise_std=REFERENCE_NOISE_STD, seed=0):
    """``n`` windows of ``window`` points plus a noise-free continuation of ``horizon``.

    Each series picks a curve (clockwise with probability 1/2) and a start index
    uniform on ``[start[0], start[1])``; it is observed with Gaussian noise on curve
    indices ``s .. s + window − 1`` and scored on ``s + window .. s + window + horizon − 1``.

    Returns
    -------
    Windows
    """
    low, high = start
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise InputError(f"n must be an int >= 1, got {n!r}")
    if not 0 <= low < high or high - 1 + window + horizon > REFERENCE_N_POINTS:
        raise InputError(f"start range {start!r} with window {window} and horizon {horizon} "
                         f"must lie inside the {REFERENCE_N_POINTS} curve points; lower it")
    if not noise_std >= 0:
        raise InputError(f"noise_std must be >= 0, got {noise_std!r}")
    rng = np.random.default_rng(seed)
    tau, counter, clockwise_curve = reference_curves()
    clockwise = rng.random(n) < 0.5
    starts = rng.integers(low, high, size=n)
    index = starts[:, None] + np.arange(window + horizon)[None, :]  # (n, W + H)
    z = np.where(clockwise[:, None, None], clockwise_curve[index], counter[index])
    z_true, z_future = z[:, :window], z[:, window:]
    z_obs = z_true + noise_std * rng.standard_normal(z_true.shape)
    t_all = tau[:window + horizon]  # window-relative: τ of the window's offset from its start
    return Windows(t=t_all[:window], z_obs=z_obs, z_true=z_true, t_future=t_all[window:],
                   z_future=z_future, clockwise=clockwise, start=starts,
                   noise_std=float(noise_std))
