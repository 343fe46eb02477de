"""The continuous adjoint: Algorithm 2 of Chen et al. (2018), for many observation times.

With the adjoint a(t) = ∂L/∂z(t), the paper's reverse-mode derivative solves, backwards
in time, the augmented system s = [z, a, ∂L/∂θ, ∂L/∂t] (paper eqs. (4), (5), App. B):

    d/dt [z, a, θ̄, t̄] = [f(t, z, θ),  −aᵀ ∂f/∂z,  −aᵀ ∂f/∂θ,  −aᵀ ∂f/∂t]

from s(t_1) = [z(t_1), ∂L/∂z(t_1), 0, −∂L/∂t_1], ∂L/∂t_1 = ∂L/∂z(t_1)ᵀ f(t_1, z(t_1), θ),
to t_0, where it holds [z(t_0), ∂L/∂z(t_0), ∂L/∂θ, ∂L/∂t_0].

With a loss on every output time t_i the sweep runs interval by interval, from the last
time to the first; at each t_i it adds the direct gradient ∂L/∂z(t_i) to a and
subtracts ∂L/∂t_i = ∂L/∂z(t_i)ᵀ f(t_i, z(t_i)) from the time channel (as JAX's
``odeint`` does). Memory holds one augmented state, whatever the number of steps.

The sign of the time channel: moving t_i later lets the trajectory run longer before it
is observed, so ∂L/∂t_i = +∂L/∂z(t_i) · dz/dt; moving t_0 later starts the same
trajectory later, which shifts it the other way, hence the minus signs (tutorial 04).

On GPU arrays the augmented state stays on the device; each reverse step reads one host
value, the largest channel error ratio (:func:`channel_norm`), plus one per output time
for ∂L/∂t_i.
"""

from typing import NamedTuple

import numpy as np

from .backend import array_module, to_float
from .dynamics import value_and_vjp
from .odeint import solve_adaptive, solve_fixed
from .params import tree_map, tree_scale, tree_zeros_like
from .step_size import error_ratio, rms, scaled_error


class AugmentedState(NamedTuple):
    """The state of Algorithm 2's reverse solve.

    Attributes
    ----------
    z : array, shape like z0
        The state z(t), reconstructed backwards.
    a : array, shape like z0
        The adjoint a(t) = ∂L/∂z(t).
    theta_bar : tree like theta (``()`` when theta is None)
        ∂L/∂θ accumulated from the last time down to t.
    t_bar : array, shape ()
        The time channel: −∂L/∂t_1 at the start, ∂L/∂t_0 at the end.
    """

    z: object
    a: object
    theta_bar: object
    t_bar: object


def augmented_dynamics(f):
    """Algorithm 2's ``aug_dynamics``: [f, −aᵀ∂f/∂z, −aᵀ∂f/∂θ, −aᵀ∂f/∂t].

    One call costs one forward evaluation and one VJP of f.
    """
    def aug_dynamics(t, s, theta):
        dz, a_z, a_theta, a_t = value_and_vjp(f, t, s.z, theta, s.a)
        theta_part = () if theta is None else tree_scale(-1.0, a_theta)
        return AugmentedState(dz, -a_z, theta_part, -a_t)

    return aug_dynamics


def channel_norm(rtol, atol, channels):
    """Error ratio of the augmented state: the largest RMS ratio over ``channels``.

    Taking the maximum over channels, rather than one RMS over every scalar, keeps the
    many parameter scalars from drowning out the state and adjoint (torchdiffeq's mixed
    norm does the same). ``channels=("z", "a")`` is the seminorm of Kidger et al. (2021),
    "Hey, that's not an ODE": the θ̄ and t̄ channels only accumulate integrals, nothing
    feeds back from them, so their error need not limit the step.
    """
    def norm(error, y0, y1, error3=None):
        names = [name for name in channels if not _empty(getattr(error, name))]
        if error3 is not None:          # dop853's combined estimate, channel by channel
            return max(error_ratio(getattr(error, name), getattr(y0, name), getattr(y1, name),
                                   rtol, atol, getattr(error3, name)) for name in names)
        ratios = [rms(scaled_error(getattr(error, name), getattr(y0, name), getattr(y1, name),
                                   rtol, atol)) for name in names]
        xp = array_module(*ratios)
        return to_float(xp.max(xp.stack(ratios)))   # one host sync per step, not one per channel

    return norm


def _empty(channel):
    return isinstance(channel, tuple) and not channel


def adjoint_sweep(f, tableau, t, zs, g, theta, *, rtol, atol, seminorm=False, reset=True,
                  step_size=None, n_steps=None, max_steps=None):
    """Run Algorithm 2 backwards over every output interval.

    Parameters
    ----------
    f : dynamics with ``.vjp``
    tableau : ButcherTableau
        Method of the reverse solves.
    t : ndarray, shape (N,), N >= 2
    zs : array, shape (N, *z0.shape)
        The forward states at the output times.
    g : array, shape (N, *z0.shape)
        ∂L/∂z(t_i), the loss gradient at each output time.
    theta : tree or None
    rtol, atol : float
        Tolerances of the reverse solves (adaptive methods).
    seminorm : bool
        Error control on z and a only (see :func:`channel_norm`).
    reset : bool
        At each t_i restart z from the stored forward z(t_i) (default, as torchdiffeq
        and JAX). False is pure Algorithm 2: z is reconstructed backwards all the way.
    step_size, n_steps : fixed grid of the reverse solves (fixed-step methods).

    Returns
    -------
    dz0 : array like z0
    dtheta : tree like theta, or None
    dt : ndarray, shape (N,)
    stats : dict
        nfe, n_steps, n_accepted, n_rejected of all reverse solves together.
    """
    aug = augmented_dynamics(f)
    xp = array_module(zs)
    norm = channel_norm(rtol, atol, ("z", "a") if seminorm else AugmentedState._fields)
    theta_bar = () if theta is None else tree_zeros_like(theta)
    s = AugmentedState(zs[-1], g[-1], theta_bar, xp.zeros((), dtype=zs.dtype))
    dt = np.zeros(len(t))
    stats = dict(nfe=0, n_steps=0, n_accepted=0, n_rejected=0)
    for i in range(len(t) - 1, 0, -1):
        s = s._replace(z=zs[i]) if reset else s
        k1 = aug(float(t[i]), s, theta)
        dt[i] = to_float(xp.sum(g[i] * k1.z))               # ∂L/∂t_i = ∂L/∂z(t_i)ᵀ f(t_i, z(t_i))
        s = s._replace(t_bar=s.t_bar - float(dt[i]))
        segment = np.array([t[i], t[i - 1]])
        if step_size is not None or n_steps is not None:
            sol = solve_fixed(aug, tableau, s, segment, theta, k1, step_size, n_steps,
                              keep_grid=False)
        else:
            options = {} if max_steps is None else dict(max_steps=max_steps)
            sol = solve_adaptive(aug, tableau, s, segment, float(np.sign(t[i - 1] - t[i])), theta,
                                 k1, rtol, atol, norm=norm, keep_grid=False, **options)
        for key in stats:
            stats[key] += sol.stats[key]
        s = tree_map(lambda leaf: leaf[-1], sol.z)
        s = s._replace(a=s.a + g[i - 1])
    dt[0] = to_float(s.t_bar)
    dtheta = None if theta is None else s.theta_bar
    return s.a, dtheta, dt, stats
