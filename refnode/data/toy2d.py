"""2-D toy densities: samplers for maximum-likelihood training, log densities for matching.

Samplers (``sample(name, n, rng) -> (n, 2)``) give the data sets continuous normalizing
flows are trained on by maximum likelihood: the paper's Figure 5 uses "two circles" and
"two moons"; the others are the usual companions from FFJORD (Grathwohl et al. 2019, its
``lib/toy_data.py``), written here from their description with our own constants.

Targets for density matching (Figure 4 of the paper: a flow q is fitted to an unnormalized
density p by minimising KL(q || p)) are the four energies of Rezende & Mohamed (2015,
"Variational Inference with Normalizing Flows", Table 1), ``p(z) ∝ exp(-U(z))``::

    w1(z) = sin(2 pi z1 / 4)
    w2(z) = 3 exp(-((z1 - 1) / 0.6)^2 / 2)
    w3(z) = 3 sigma((z1 - 1) / 0.3)
    U1(z) = ((|z| - 2) / 0.4)^2 / 2 - ln(exp(-((z1 - 2)/0.6)^2/2) + exp(-((z1 + 2)/0.6)^2/2))
    U2(z) = ((z2 - w1) / 0.4)^2 / 2
    U3(z) = -ln(exp(-((z2 - w1)/0.35)^2/2) + exp(-((z2 - w1 + w2)/0.35)^2/2))
    U4(z) = -ln(exp(-((z2 - w1)/0.4)^2/2)  + exp(-((z2 - w1 + w3)/0.35)^2/2))

The log densities take the array module from their input, so autograd (and CuPy) can run
them; ``ln(exp(a) + exp(b))`` is computed as ``logaddexp(a, b)``, finite far from the modes.
"""

import numpy as np

from ..backend import array_module
from ..errors import InputError

# --- samplers --------------------------------------------------------------------------------

CIRCLES_RADII = (3.0, 1.5)  # outer, inner: scikit-learn make_circles(factor=0.5), scaled by 3
CIRCLES_NOISE = 0.2
MOONS_NOISE = 0.1  # scikit-learn make_moons' moons: upper (cos s, sin s), lower (1 - cos s, 1/2 - sin s)
MOONS_SCALE = 2.0
MOONS_CENTRE = (0.5, 0.25)
EIGHT_GAUSSIANS_RADIUS = 4.0 / np.sqrt(2.0)  # FFJORD: centres at radius 4, all divided by 1.414
EIGHT_GAUSSIANS_STD = 0.5 / np.sqrt(2.0)
PINWHEEL_ARMS = 5  # Johnson et al. (2016) pinwheel as used by FFJORD
PINWHEEL_RADIAL_STD = 0.3
PINWHEEL_TANGENTIAL_STD = 0.1
PINWHEEL_RATE = 0.25  # how fast an arm turns with radius
PINWHEEL_SCALE = 2.0
CHECKERBOARD_SQUARES = 4  # a 4 x 4 board on [-4, 4]^2, points uniform on its 8 dark squares
CHECKERBOARD_SQUARE_SIZE = 2.0
RINGS_RADII = (0.75, 1.5, 2.25, 3.0)
RINGS_NOISE = 0.08


def _uniform_angle(rng, n):
    return rng.uniform(0.0, 2.0 * np.pi, size=n)


def two_circles(n, rng):
    """Two concentric noisy circles, each point on either with probability 1/2."""
    radius = np.asarray(CIRCLES_RADII)[rng.integers(2, size=n)]
    angle = _uniform_angle(rng, n)
    circle = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return circle + CIRCLES_NOISE * rng.standard_normal((n, 2))


def two_moons(n, rng):
    """Two interleaved half circles, centred near the origin and scaled by 2."""
    lower = rng.integers(2, size=n).astype(bool)
    s = rng.uniform(0.0, np.pi, size=n)
    x = np.where(lower, 1.0 - np.cos(s), np.cos(s))
    y = np.where(lower, 0.5 - np.sin(s), np.sin(s))
    moons = np.stack([x, y], axis=1) + MOONS_NOISE * rng.standard_normal((n, 2))
    return MOONS_SCALE * (moons - np.asarray(MOONS_CENTRE))


def eight_gaussians(n, rng):
    """A mixture of 8 equal Gaussians with centres evenly spaced on a circle."""
    angle = 2.0 * np.pi * rng.integers(8, size=n) / 8
    centre = EIGHT_GAUSSIANS_RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centre + EIGHT_GAUSSIANS_STD * rng.standard_normal((n, 2))


def pinwheel(n, rng):
    """Five curved arms: a stretched Gaussian bent by an angle growing like exp(radius)."""
    arm = rng.integers(PINWHEEL_ARMS, size=n)
    radial = 1.0 + PINWHEEL_RADIAL_STD * rng.standard_normal(n)
    tangential = PINWHEEL_TANGENTIAL_STD * rng.standard_normal(n)
    angle = 2.0 * np.pi * arm / PINWHEEL_ARMS + PINWHEEL_RATE * np.exp(radial)
    c, s = np.cos(angle), np.sin(angle)
    rotated = np.stack([c * radial - s * tangential, s * radial + c * tangential], axis=1)
    return PINWHEEL_SCALE * rotated


def checkerboard(n, rng):
    """Uniform on the dark squares ((row + column) even) of a 4 x 4 board on [-4, 4]^2."""
    k = CHECKERBOARD_SQUARES
    row = rng.integers(k, size=n)
    column = 2 * rng.integers(k // 2, size=n) + row % 2  # same parity as the row
    corner = np.stack([column, row], axis=1) - k / 2
    return CHECKERBOARD_SQUARE_SIZE * (corner + rng.random((n, 2)))


def rings(n, rng):
    """Four concentric noisy circles, each point on one of them with probability 1/4."""
    radius = np.asarray(RINGS_RADII)[rng.integers(len(RINGS_RADII), size=n)]
    angle = _uniform_angle(rng, n)
    ring = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return ring + RINGS_NOISE * rng.standard_normal((n, 2))


TOY_DATASETS = {
    "two_circles": two_circles,
    "two_moons": two_moons,
    "eight_gaussians": eight_gaussians,
    "pinwheel": pinwheel,
    "checkerboard": checkerboard,
    "rings": rings,
}


def sample(name, n, rng):
    """Draw ``n`` points from the toy data set ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`TOY_DATASETS`.
    n : int >= 1
    rng : numpy.random.Generator or int seed

    Returns
    -------
    ndarray, shape (n, 2), float64
    """
    if name not in TOY_DATASETS:
        raise InputError(f"unknown toy data set {name!r}; choose one of {sorted(TOY_DATASETS)}")
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise InputError(f"n must be an int >= 1, got {n!r}")
    return TOY_DATASETS[name](int(n), np.random.default_rng(rng))


# --- unnormalized log densities (Rezende & Mohamed 2015, Table 1) ------------------------------


def _w1(z1, xp):
    return xp.sin(2.0 * np.pi * z1 / 4.0)


def _w2(z1, xp):
    return 3.0 * xp.exp(-0.5 * ((z1 - 1.0) / 0.6) ** 2)


def _w3(z1, xp):
    return 3.0 * 0.5 * (1.0 + xp.tanh(0.5 * (z1 - 1.0) / 0.3))  # 3 sigma(x), sigma(x) = (1 + tanh(x/2))/2


def _split(z):
    xp = array_module(z)
    if z.ndim != 2 or z.shape[1] != 2:
        raise InputError(f"z must have shape (N, 2), got {z.shape}")
    return z[:, 0], z[:, 1], xp


def log_density_u1(z):
    """``-U1(z)``: a ring of radius 2 with two lobes on the z1 axis. (N, 2) -> (N,)."""
    z1, z2, xp = _split(z)
    norm = xp.sqrt(z1**2 + z2**2)
    lobes = xp.logaddexp(-0.5 * ((z1 - 2.0) / 0.6) ** 2, -0.5 * ((z1 + 2.0) / 0.6) ** 2)
    return -0.5 * ((norm - 2.0) / 0.4) ** 2 + lobes


def log_density_u2(z):
    """``-U2(z)``: a sine-shaped ridge ``z2 = w1(z1)``. (N, 2) -> (N,)."""
    z1, z2, xp = _split(z)
    return -0.5 * ((z2 - _w1(z1, xp)) / 0.4) ** 2


def log_density_u3(z):
    """``-U3(z)``: the sine ridge and a copy split off by the bump ``w2``. (N, 2) -> (N,)."""
    z1, z2, xp = _split(z)
    ridge = z2 - _w1(z1, xp)
    return xp.logaddexp(-0.5 * (ridge / 0.35) ** 2, -0.5 * ((ridge + _w2(z1, xp)) / 0.35) ** 2)


def log_density_u4(z):
    """``-U4(z)``: the sine ridge and a copy shifted by the step ``w3``. (N, 2) -> (N,)."""
    z1, z2, xp = _split(z)
    ridge = z2 - _w1(z1, xp)
    return xp.logaddexp(-0.5 * (ridge / 0.4) ** 2, -0.5 * ((ridge + _w3(z1, xp)) / 0.35) ** 2)


TARGET_LOG_DENSITIES = {
    "u1": log_density_u1,
    "u2": log_density_u2,
    "u3": log_density_u3,
    "u4": log_density_u4,
}


def target_log_density(name):
    """The unnormalized log density ``name`` (a key of :data:`TARGET_LOG_DENSITIES`)."""
    if name not in TARGET_LOG_DENSITIES:
        raise InputError(f"unknown target density {name!r}; choose one of {sorted(TARGET_LOG_DENSITIES)}")
    return TARGET_LOG_DENSITIES[name]


# --- their scores ∇ log p̃(z), derived by hand ---------------------------------------------------
#
# With r = z2 − w1(z1) and the mixture weights π_a = e^{a − L}, π_b = e^{b − L} of
# L = logaddexp(a, b) (so ∂L = π_a ∂a + π_b ∂b):
#   U1: ∂/∂z = −(|z| − 2)/0.4² · z/|z| + e₁ (π_a ∂a/∂z1 + π_b ∂b/∂z1)
#   U2: ∂/∂z2 = −r/0.4²,  ∂/∂z1 = −∂/∂z2 · w1'
#   U3, U4: a = −(r/σ_a)²/2, b = −((r + w)/σ_b)²/2 (w = w2, w3):
#       ∂/∂z2 = π_a ∂a/∂r + π_b ∂b/∂r,  ∂/∂z1 = −w1' ∂/∂z2 + π_b ∂b/∂r · w'


def _dw1(z1, xp):
    return 0.5 * np.pi * xp.cos(2.0 * np.pi * z1 / 4.0)


def _dw2(z1, xp):
    return -_w2(z1, xp) * (z1 - 1.0) / 0.6 ** 2


def _dw3(z1, xp):
    h = xp.tanh(0.5 * (z1 - 1.0) / 0.3)
    return 1.5 * (1.0 - h * h) * 0.5 / 0.3


def _mixture_weights(a, b, xp):
    total = xp.logaddexp(a, b)
    return xp.exp(a - total), xp.exp(b - total)


def score_u1(z):
    """∇(−U1)(z) (N, 2); not finite at z = 0, where −U1 is not differentiable."""
    z1, z2, xp = _split(z)
    norm = xp.sqrt(z1**2 + z2**2)
    radial = -(norm - 2.0) / 0.4 ** 2 / norm
    a, b = -0.5 * ((z1 - 2.0) / 0.6) ** 2, -0.5 * ((z1 + 2.0) / 0.6) ** 2
    p_a, p_b = _mixture_weights(a, b, xp)
    lobes = -(p_a * (z1 - 2.0) + p_b * (z1 + 2.0)) / 0.6 ** 2
    return xp.stack([radial * z1 + lobes, radial * z2], axis=1)


def score_u2(z):
    """∇(−U2)(z) (N, 2)."""
    z1, z2, xp = _split(z)
    d2 = -(z2 - _w1(z1, xp)) / 0.4 ** 2
    return xp.stack([-d2 * _dw1(z1, xp), d2], axis=1)


def _two_ridges_score(z, w, dw, sigma_a, sigma_b):
    z1, z2, xp = _split(z)
    ridge = z2 - _w1(z1, xp)
    a, b = -0.5 * (ridge / sigma_a) ** 2, -0.5 * ((ridge + w(z1, xp)) / sigma_b) ** 2
    p_a, p_b = _mixture_weights(a, b, xp)
    da = -ridge / sigma_a ** 2
    db = -(ridge + w(z1, xp)) / sigma_b ** 2
    d2 = p_a * da + p_b * db
    return xp.stack([-_dw1(z1, xp) * d2 + p_b * db * dw(z1, xp), d2], axis=1)


def score_u3(z):
    """∇(−U3)(z) (N, 2)."""
    return _two_ridges_score(z, _w2, _dw2, 0.35, 0.35)


def score_u4(z):
    """∇(−U4)(z) (N, 2)."""
    return _two_ridges_score(z, _w3, _dw3, 0.4, 0.35)


TARGET_SCORES = {"u1": score_u1, "u2": score_u2, "u3": score_u3, "u4": score_u4}


def target_score(name):
    """The score ∇ log p̃ of target ``name``, by hand: it runs on any array module (CuPy
    too, which autograd cannot trace); equal to autograd's gradient to rounding."""
    target_log_density(name)                       # the same one-line error for a bad name
    return TARGET_SCORES[name]
