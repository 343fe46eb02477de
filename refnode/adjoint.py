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

:func:`adjoint_sweep` is that loop with one step size; :func:`adjoint_sweep_per_sample`
the same loop with a step size per sample (``batch="independent"``): the time channel t̄
has shape (B,), each sample takes its own reverse steps, and θ̄ — which cannot be carried
per sample without a B × P array — is accumulated outside the state
(:class:`refnode.independent.ThetaIntegral`). Each reverse interval starts with the step
the previous one ended on.

On GPU arrays the augmented state stays on the device; each reverse step reads one host
value, the largest channel error ratio (:func:`channel_norm`), plus one per output time
for ∂L/∂t_i. With one step size the solver carries the augmented state as one vector
(:func:`packing_of`): a stage sum is then one array operation, not one per leaf of
[z, a, θ̄, t̄], which on a GPU is one kernel launch instead of many. The numbers are the
same bit for bit.
"""

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from .backend import array_module, to_float, to_numpy
from .drivers import solve_adaptive, solve_fixed
from .dynamics import value_and_vjp
from .errors import NonFiniteStateError
from .independent import ThetaIntegral, solve_independent
from .options import StepControl
from .params import Packing, tree_add, tree_leaves, tree_map, tree_scale, tree_zeros_like
from .per_sample import dot, is_per_sample
from .step_size import mean_square, scaled_error


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
    """Algorithm 2's ``aug_dynamics``: the time derivative of s = [z, a, θ̄, t̄],

        d/dt [z, a, θ̄, t̄] = [f(t, z, θ),  −aᵀ ∂f/∂z,  −aᵀ ∂f/∂θ,  −aᵀ ∂f/∂t]

    aᵀ∂f/∂z is the row vector a times the Jacobian (the vector-Jacobian product), not
    (∂f/∂z) a. All three products and f itself come from one call of
    ``value_and_vjp(f, t, z, theta, −a) -> (f, −aᵀ∂f/∂z, −aᵀ∂f/∂θ, −aᵀ∂f/∂t)``: one
    forward evaluation and one VJP of f, with the cotangent −a, so that the minus sign is
    one negation of a rather than one of each product (the same numbers: a VJP is linear
    in its cotangent, and negation is exact).

    Parameters
    ----------
    f : dynamics ``f(t, z, theta)`` with ``.vjp``
    theta_channel : bool
        False leaves θ̄ out of the state (``()``), for per-sample steps; so does
        ``theta=None``.

    Returns
    -------
    aug_dynamics : callable
        ``aug_dynamics(t, s, theta) -> ds/dt``, an :class:`AugmentedState` like s
        (θ̄'s derivative a tree like theta).
    """
    def aug_dynamics(t, s, theta):
        dz, da, dtheta_bar, dt_bar = value_and_vjp(f, t, s.z, theta, -s.a)
        theta_part = () if theta is None or not theta_channel else dtheta_bar
        return AugmentedState(dz, da, theta_part, dt_bar)

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
        return self.largest([scaled_error(getattr(error, name), getattr(y0, name),
                                          getattr(y1, name), self.rtol, self.atol)
                             for name in self.channels if not _empty(getattr(error, name))])

    def packed(self, packing):
        """This norm of packed states (:func:`packing_of`): the scaled error of the part
        of the vector that holds the channels, at once, then each channel's RMS over the
        slices of its leaves, summed leaf by leaf as above (the same numbers)."""
        spans = leaf_spans(packing, self.channels)
        low, high = spans[0][0][0], spans[-1][-1][1]

        def norm(error, y0, y1):
            scaled = scaled_error(error[low:high], y0[low:high], y1[low:high], self.rtol,
                                  self.atol)
            parts = [[scaled[start - low:stop - low] for start, stop in leaves] for leaves in spans]
            # A channel of one leaf is its slice, of several the list of their slices.
            return self.largest([part[0] if len(part) == 1 else part for part in parts])
        return norm

    def largest(self, scaled_channels):
        """The largest RMS over the channels' scaled errors: the square root of the
        largest mean square (the root is monotonic, so the two are equal)."""
        squares = [mean_square(scaled, self.per_sample) for scaled in scaled_channels]
        xp = array_module(*squares)
        if self.per_sample:
            return xp.sqrt(xp.max(xp.stack(squares), axis=0))
        return math.sqrt(to_float(xp.max(xp.stack(squares))))   # one host sync per step


def _empty(channel):
    return isinstance(channel, tuple) and not channel


def leaf_spans(packing, channels):
    """For each of ``channels``, in the vector's order, the (start, stop) of its leaves in
    the packed augmented state; a channel without leaves (θ̄ without theta) is left out."""
    sizes, start, spans = iter(packing.sizes), 0, {}
    for name in AugmentedState._fields:
        spans[name] = []
        for _ in tree_leaves(getattr(packing.template, name)):
            spans[name].append((start, start + next(sizes)))
            start = spans[name][-1][1]
    return sorted(spans[name] for name in channels if spans[name])


def adjoint_sweep(f, t, zs, g, theta, settings):
    """Algorithm 2 over every output interval, from the last, with one step size.

    Start at t_N with s = [z(t_N), ∂L/∂z(t_N), 0, 0] (θ̄ zeros like theta, ``()`` without
    theta). Then for each interval, from i = N down to 1:

    1. at t_i, :func:`at_output_time`: t̄ ← t̄ − ∂L/∂t_i (so t̄ starts at −∂L/∂t_N);
    2. :func:`solve_back` the augmented system **backwards** from t_i to t_(i−1), starting
       with the step h the previous interval ended on (``sol.next_step``);
    3. at t_(i−1), the adjoint jumps: a ← a + ∂L/∂z(t_(i−1)).

    At t_0, s = [z(t_0), ∂L/∂z(t_0), ∂L/∂θ, ∂L/∂t_0]: the time channel is ∂L/∂t_0.
    The adaptive solves' error norm is ``channel_norm_of(settings, per_sample=False)``; a
    solve's final state is ``last_state(sol)``, its counts add up with ``add_stats``.

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

    Returns
    -------
    dz0 : array like z0
    dtheta : tree like theta, or None
    dt : ndarray, shape (N,)
    stats : dict
        nfe, n_steps, n_accepted, n_rejected of all reverse solves together.
    """
    aug, norm = augmented_dynamics(f), channel_norm_of(settings, per_sample=False)
    theta_bar = () if theta is None else tree_zeros_like(theta)
    s = AugmentedState(zs[-1], g[-1], theta_bar, array_module(zs).zeros((), dtype=zs.dtype))
    dt, stats, h = np.zeros(len(t)), {}, None
    for i in range(len(t) - 1, 0, -1):             # each interval, from the last
        s, dt[i], k1 = at_output_time(aug, s, zs[i], g[i], float(t[i]), theta, settings.reset)
        sol = solve_back(aug, s, t[i], t[i - 1], theta, k1, settings, norm, h)   # t_i -> t_i-1
        s, h, stats = last_state(sol), sol.next_step, add_stats(stats, sol.stats)
        s = s._replace(a=s.a + g[i - 1])           # a jumps by ∂L/∂z(t_{i-1})
    dt[0] = to_float(s.t_bar)
    return s.a, None if theta is None else s.theta_bar, dt, stats


def adjoint_sweep_per_sample(f, t, zs, g, theta, settings):
    """Algorithm 2 with a step size per sample (``batch="independent"``).

    As :func:`adjoint_sweep`, with the augmented state [z, a, t̄] (t̄ of shape (B,)) solved
    back by the per-sample loop; θ̄ is accumulated outside the state, over each
    iteration's accepted steps (:class:`refnode.independent.ThetaIntegral`). ``f`` takes
    t of shape (B,) (:class:`refnode.independent.SampleTimeDynamics`).
    """
    aug, norm = augmented_dynamics(f, theta_channel=False), channel_norm_of(settings, True)
    xp, batch = array_module(zs), zs.shape[1]
    s = AugmentedState(zs[-1], g[-1], (), xp.zeros(batch, dtype=zs.dtype))
    theta_bar = None if theta is None else tree_zeros_like(theta)
    dt, stats, h = np.zeros(len(t)), {}, None
    for i in range(len(t) - 1, 0, -1):             # each interval, from the last
        t_i = xp.zeros(batch) + float(t[i])
        s, dt[i], k1 = at_output_time(aug, s, zs[i], g[i], t_i, theta, settings.reset)
        sol, theta_part = solve_back_per_sample(aug, f, s, t[i], t[i - 1], theta, k1, settings,
                                                norm, h)
        if theta_part is not None:
            theta_bar = tree_add(theta_bar, tree_scale(-1.0, theta_part))
        s, h, stats = last_state(sol), sol.next_step, add_stats(stats, sol.stats)
        s = s._replace(a=s.a + g[i - 1])           # a jumps by ∂L/∂z(t_{i-1})
    dt[0] = to_float(xp.sum(s.t_bar))
    return s.a, theta_bar, dt, stats


def at_output_time(aug, s, z_i, g_i, t_i, theta, reset):
    """At t_i: ∂L/∂t_i = ∂L/∂z(t_i)ᵀ f(t_i, z(t_i)), and the time channel's jump by it:

        t̄ ← t̄ − ∂L/∂t_i

    (moving t_i later lets the trajectory run longer before it is observed). With
    ``reset`` the state channel first restarts from the forward z(t_i). f(t_i, z(t_i)) is
    the z channel of k1 = aug(t_i, s, theta), which the reverse solve then starts with.

    Parameters
    ----------
    aug : the augmented dynamics (:func:`augmented_dynamics`)
    s : AugmentedState at t_i
    z_i, g_i : arrays like z0
        The forward state z(t_i) and the loss gradient ∂L/∂z(t_i).
    t_i : float, or array (B,) per sample
    theta : tree or None
    reset : bool

    Returns
    -------
    s : AugmentedState
        After the jump of t̄ (and the reset of z).
    dL_dti : float
        ∂L/∂t_i, summed over the batch.
    k1 : AugmentedState
        aug(t_i, s, theta), computed with the state after the reset.
    """
    s = s._replace(z=z_i) if reset else s
    k1 = aug(t_i, s, theta)
    direct = dot(g_i, k1.z, per_sample=is_per_sample(t_i))
    dL_dti = to_float(array_module(direct).sum(direct) + 0.0 * tree_sum(k1))  # NaN if any is
    check_finite_dynamics(dL_dti, t_i)
    return s._replace(t_bar=s.t_bar - direct), dL_dti, k1


def check_finite_dynamics(value, t_i):
    """Raise if f or f.vjp gave a non-finite value at the output time t_i (``value`` is NaN)."""
    if not np.isfinite(value):
        t_i = float(np.min(to_numpy(t_i)))
        raise NonFiniteStateError(f"the adjoint's dynamics are non-finite (NaN or inf) at the "
                                  f"output time t = {t_i!r}: f or f.vjp returned non-finite "
                                  "values there. Check the VJP for overflow.", t=t_i)


def solve_back(aug, s, t_i, t_prev, theta, k1, settings, norm, h=None):
    """The augmented system from t_i back to t_prev, with one step size.

    A fixed grid if the settings give one; else adaptive, starting with ``h``, the step
    the previous interval ended on (None: Hairer's estimate). Carrying the step saves the
    few steps a fresh start needs to grow (measured in benchmarks/README.md). The state is
    solved as one vector where it can be (:func:`packing_of`); the Solution's ``z`` is the
    AugmentedState again, each leaf with the solution's leading axis.
    """
    packing = packing_of(s, k1)
    if packing is not None:                     # the same solve, on one vector
        aug, s, k1, norm = packed_dynamics(aug, packing), packing.pack(s), packing.pack(k1), \
            norm.packed(packing)
    segment = np.array([t_i, t_prev])
    if settings.step_size is not None or settings.n_steps is not None:
        sol = solve_fixed(aug, settings.method, s, segment, theta, k1, settings.step_size,
                          settings.n_steps, keep_grid=False)
    else:
        control = StepControl(max_steps=settings.max_steps, first_step=abs(h) if h else None)
        sol = solve_adaptive(aug, settings.method, s, segment, float(np.sign(t_prev - t_i)),
                             theta, k1, norm, control, keep_grid=False)
    return sol if packing is None else dataclasses.replace(sol, z=packing.unpack(sol.z))


def packing_of(s, k1):
    """The :class:`~refnode.params.Packing` of the augmented state, or None to solve it as
    a tree: when its leaves or its derivative's are not all arrays of one dtype (one
    vector would promote them).

    The solver's stage sums and updates then take one array operation for the whole
    state instead of one per leaf (z, a, t̄ and every leaf of θ̄): on a GPU each is a
    kernel launch. Each entry sees the same arithmetic, the dynamics still see an
    AugmentedState (:func:`packed_dynamics`), and the norm reads its channels from the
    vector (:meth:`channel_norm.packed`).
    """
    leaves = tree_leaves(s)
    dtypes = {getattr(leaf, "dtype", None) for leaf in leaves + tree_leaves(k1)}
    if len(leaves) < 2 or len(dtypes) != 1 or None in dtypes:
        return None
    return Packing(s)


def packed_dynamics(aug, packing):
    """``aug`` on the packed state: unpack, evaluate, pack the derivative."""
    def dynamics(t, y, theta):
        return packing.pack(aug(t, packing.unpack(y), theta))
    return dynamics


def solve_back_per_sample(aug, f, s, t_i, t_prev, theta, k1, settings, norm, h=None):
    """The augmented system [z, a, t̄] from t_i back to t_prev, with a step size per sample.

    Starts each sample with its step ``h`` from the previous interval (None: estimate).
    Returns the Solution and ∫ aᵀ∂f/∂θ over the accepted steps (None without theta),
    accumulated outside the state by one batched VJP per stage (:class:`ThetaIntegral`).
    """
    integral = ThetaIntegral(f, settings.method, theta)
    sol = solve_independent(aug, settings.method, s, np.array([t_i, t_prev]),
                            float(np.sign(t_prev - t_i)), theta, norm,
                            StepControl(max_steps=settings.max_steps),
                            on_step=None if theta is None else integral, k1=k1, first_step=h)
    return sol, integral.total


def channel_norm_of(settings, per_sample):
    """The reverse solves' error norm: over z and a (seminorm), or every channel."""
    channels = ("z", "a") if settings.seminorm else AugmentedState._fields
    return channel_norm(settings.rtol, settings.atol, channels, per_sample)


def last_state(sol):
    """The augmented state at the end of a reverse solve."""
    return tree_map(lambda leaf: leaf[-1], sol.z)


def add_stats(total, stats):
    """The reverse solves' counts added up."""
    return {k: total.get(k, 0) + stats[k] for k in stats}


def tree_sum(tree):
    """Σ of every entry of every leaf (a device scalar): non-finite if any entry is."""
    return sum(array_module(leaf).sum(leaf) for leaf in tree_leaves(tree))
