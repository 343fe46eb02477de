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

One sweep serves both batch modes. With a step size per sample
(``batch="independent"``) the time channel t̄ has shape (B,), each sample takes its own
reverse steps, and θ̄ — which cannot be carried per sample without a B × P array — is
accumulated outside the state by the interval solver that :mod:`refnode.independent`
passes in (``solve_interval``).

On GPU arrays the augmented state stays on the device; each reverse step reads one host
value, the largest channel error ratio (:func:`channel_norm`), plus one per output time
for ∂L/∂t_i.
"""

from typing import NamedTuple

import numpy as np

from .backend import array_module, to_float
from .drivers import solve_adaptive, solve_fixed
from .dynamics import value_and_vjp
from .errors import NonFiniteStateError
from .options import StepControl
from .params import tree_add, tree_leaves, tree_map, tree_scale, tree_zeros_like
from .rk_step import dot
from .step_size import rms, scaled_error


class AugmentedState(NamedTuple):
    """The state of Algorithm 2's reverse solve.

    Attributes
    ----------
    z : array, shape like z0
        The state z(t), reconstructed backwards.
    a : array, shape like z0
        The adjoint a(t) = ∂L/∂z(t).
    theta_bar : tree like theta (``()`` when theta is None, or per-sample steps)
        ∂L/∂θ accumulated from the last time down to t.
    t_bar : array, shape () (or (B,) per sample)
        The time channel: −∂L/∂t_1 at the start, ∂L/∂t_0 at the end.
    """

    z: object
    a: object
    theta_bar: object
    t_bar: object


def augmented_dynamics(f, theta_channel=True):
    """Algorithm 2's ``aug_dynamics``: [f, −aᵀ∂f/∂z, −aᵀ∂f/∂θ, −aᵀ∂f/∂t].

    One call costs one forward evaluation and one VJP of f. ``theta_channel=False``
    leaves θ̄ out of the state (``()``), for per-sample steps.
    """
    def aug_dynamics(t, s, theta):
        dz, a_z, a_theta, a_t = value_and_vjp(f, t, s.z, theta, s.a)
        theta_part = () if theta is None or not theta_channel else tree_scale(-1.0, a_theta)
        return AugmentedState(dz, -a_z, theta_part, -a_t)

    return aug_dynamics


class channel_norm:
    """Error ratio of the augmented state: the largest RMS ratio over ``channels``.

    Taking the maximum over channels, rather than one RMS over every scalar, keeps the
    many parameter scalars from drowning out the state and adjoint (torchdiffeq's mixed
    norm does the same). ``channels=("z", "a")`` is the seminorm of Kidger et al. (2021),
    "Hey, that's not an ODE": the θ̄ and t̄ channels only accumulate integrals, nothing
    feeds back from them, so their error need not limit the step. ``per_sample=True``
    gives one ratio per sample, shape (B,).
    """

    def __init__(self, rtol, atol, channels, per_sample=False):
        self.rtol, self.atol, self.channels, self.per_sample = rtol, atol, channels, per_sample

    def __call__(self, error, y0, y1):
        ratios = [rms(scaled_error(getattr(error, name), getattr(y0, name), getattr(y1, name),
                                   self.rtol, self.atol), self.per_sample)
                  for name in self.channels if not _empty(getattr(error, name))]
        if self.per_sample:
            return array_module(*ratios).max(array_module(*ratios).stack(ratios), axis=0)
        xp = array_module(*ratios)
        return to_float(xp.max(xp.stack(ratios)))   # one host sync per step, not one per channel


def _empty(channel):
    return isinstance(channel, tuple) and not channel


#: Start each reverse interval with the step the previous one ended on, instead of
#: Hairer's starting-step estimate (measured in benchmarks/README.md: fewer backward
#: NFE with many output times, the same gradient error).
CARRY_STEP = True


def solve_shared_interval(aug, s, segment, theta, k1, settings, norm, first_step=None):
    """One reverse interval with one step size: fixed grid or adaptive.

    ``first_step`` is the step carried over from the previous interval (None: estimate).
    Returns the Solution and the θ̄ accumulated outside the state (None: it is inside).
    """
    method = settings.method
    if settings.step_size is not None or settings.n_steps is not None:
        return solve_fixed(aug, method, s, segment, theta, k1, settings.step_size,
                           settings.n_steps, keep_grid=False), None
    control = StepControl(max_steps=settings.max_steps,
                          first_step=abs(first_step) if first_step else None)
    direction = float(np.sign(segment[1] - segment[0]))
    return solve_adaptive(aug, method, s, segment, direction, theta, k1, norm, control,
                          keep_grid=False), None


def adjoint_sweep(f, t, zs, g, theta, settings, solve_interval=solve_shared_interval,
                  per_sample=False):
    """Run Algorithm 2 backwards over every output interval.

    Parameters
    ----------
    f : dynamics with ``.vjp``
    t : ndarray, shape (N,), N >= 2
    zs : array, shape (N, *z0.shape)
        The forward states at the output times.
    g : array, shape (N, *z0.shape)
        ∂L/∂z(t_i), the loss gradient at each output time.
    theta : tree or None
    settings : Adjoint
        Resolved (no ``None`` left): method, tolerances, seminorm, reset, max_steps,
        fixed grid of the reverse solves (see :class:`refnode.Adjoint`).
    solve_interval : callable
        ``solve_interval(aug, s, segment, theta, k1, settings, norm, first_step) ->
        (Solution, θ̄ part or None)``; per-sample steps pass their own
        (:mod:`refnode.independent`). ``first_step`` is the previous interval's
        ``Solution.next_step`` (:data:`CARRY_STEP`).
    per_sample : bool
        Times, t̄ and the error ratio per sample (f then takes t of shape (B,)).

    Returns
    -------
    dz0 : array like z0
    dtheta : tree like theta, or None
    dt : ndarray, shape (N,)
    stats : dict
        nfe, n_steps, n_accepted, n_rejected of all reverse solves together.
    """
    aug = augmented_dynamics(f, theta_channel=not per_sample)
    xp = array_module(zs)
    channels = ("z", "a") if settings.seminorm else AugmentedState._fields
    norm = channel_norm(settings.rtol, settings.atol, channels, per_sample)
    time = (lambda t_i: xp.zeros(zs.shape[1]) + t_i) if per_sample else float
    inside = () if theta is None or per_sample else tree_zeros_like(theta)
    s = AugmentedState(zs[-1], g[-1], inside, xp.zeros(zs.shape[1] if per_sample else (),
                                                        dtype=zs.dtype))
    theta_bar, dt, stats, carried = None, np.zeros(len(t)), None, None
    for i in range(len(t) - 1, 0, -1):
        s = s._replace(z=zs[i]) if settings.reset else s
        k1 = aug(time(float(t[i])), s, theta)
        direct = dot(g[i], k1.z, per_sample)      # ∂L/∂t_i = ∂L/∂z(t_i)ᵀ f(t_i, z(t_i))
        dt[i] = to_float(xp.sum(direct) + 0.0 * tree_sum(k1))   # NaN if any channel is
        if not np.isfinite(dt[i]):
            raise NonFiniteStateError(f"the adjoint's dynamics are non-finite (NaN or inf) at the "
                                      f"output time t = {float(t[i])!r}: f or f.vjp returned "
                                      "non-finite values there. Check the VJP for overflow.",
                                      t=float(t[i]))
        s = s._replace(t_bar=s.t_bar - direct)
        sol, theta_part = solve_interval(aug, s, np.array([t[i], t[i - 1]]), theta, k1, settings,
                                         norm, carried)
        carried = sol.next_step if CARRY_STEP else None
        if theta_part is not None:
            theta_bar = theta_part if theta_bar is None else tree_add(theta_bar, theta_part)
        stats = dict(sol.stats) if stats is None else {k: stats[k] + sol.stats[k] for k in stats}
        s = tree_map(lambda leaf: leaf[-1], sol.z)
        s = s._replace(a=s.a + g[i - 1])
    dt[0] = to_float(xp.sum(s.t_bar))
    if theta is not None and not per_sample:
        theta_bar = s.theta_bar
    elif theta is not None and theta_bar is None:
        theta_bar = tree_zeros_like(theta)
    return s.a, theta_bar, dt, stats



def tree_sum(tree):
    """Σ of every entry of every leaf (a device scalar): non-finite if any entry is."""
    return sum(array_module(leaf).sum(leaf) for leaf in tree_leaves(tree))
