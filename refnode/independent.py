"""Independent steps for a batch (``batch="independent"``): every sample its own step size.

A batch z0 of shape (B, D) — the leading axis is the batch — is usually solved as one
big state (``batch="shared"``): one error norm over all B·D components, one step size, so
the hardest sample sets the pace for all of them. Here each sample b keeps its own

    t_b, h_b, error ratio r_b = RMS_i(e_bi / (atol + rtol·max(|y0_bi|, |y1_bi|))),
    accept/reject (r_b <= 1), controller state and next output index,

and all samples advance together with masked, vectorized updates (``xp.where``); there is
no Python loop over samples. Each iteration every unfinished sample takes its own trial
step (h is a (B,) array broadcast over the state); accepted samples move on, rejected
ones retry with a smaller h, finished ones stop changing (their h is 0). Output times
reached inside a sample's step are filled in by that sample's dense output.

Per-sample arithmetic is the same as :func:`refnode.odeint.solve_adaptive` on that sample
alone, so each sample's solution and step sequence equal its own single solve (up to
the rounding of batched reductions).

Costs and stats. f is still evaluated on the whole batch at every stage, finished and
rejected samples included, until at most half of the working batch still runs: then
the running samples are gathered into a smaller batch (:func:`compact`). The stats count,
per sample, the evaluations that sample needed while it was active — what its own
solve would spend — as arrays of shape (B,): ``nfe``, ``n_steps``, ``n_accepted``,
``n_rejected``; ``batch_nfe`` counts the batched calls of f and ``iterations`` the loop
turns. ``Solution.grid`` is a (B, L+1) array of each sample's accepted step points,
padded at the end with the final time (L = the most steps any sample took).

The dynamics protocol in this mode: f is called with a per-sample time, ``t`` of shape
(B,), and ``f.vjp`` must return ``a_t`` of that shape (or a scalar 0 for dynamics that
ignore time). Time-independent dynamics need no change; time-dependent layers must
broadcast t over the batch axis (refnode's ConcatLinear and ConcatSquashLinear do).

Synchronisation (GPU). Everything stays on the arrays' device except one small host
transfer per iteration: a handful of flags and two output indices (is anyone still
running, did a failure happen, which output times were reached), fetched with one
:func:`refnode.backend.to_numpy`. The step grid is copied to the host once at the end.

When to use which mode: ``shared`` has less overhead per step (no masks, one norm) and
wins when the samples are alike; ``independent`` wins when their stiffness or time
scales differ, since easy samples stop paying for the hard one's small steps.
"""

from dataclasses import dataclass, replace

import numpy as np

from .backend import array_module, to_numpy
from .checks import check_derivative
from .dynamics import value_and_vjp
from .errors import (InputError, MaxStepsExceededError, NonFiniteStateError,
                     StepSizeUnderflowError)
from .odeint import (DEFAULT_MAX_STEPS, MAX_NONFINITE_RETRIES, MIN_STEP_ULPS, error_power,
                     stack)
from .params import tree_leaves, tree_map
from .solution import Solution
from .independent_step import (batch_dense, batch_extra_stages, batch_rk_step,
                               increment, initial_steps, sample_ratio, select, step_factors)


@dataclass
class Progress:
    """Where every sample stands; each field has shape (B,) (``y``, ``k1`` are states)."""

    t: object            # time reached
    h: object            # next step size to try (0 once finished)
    y: object            # state at t
    k1: object           # f(t, y)
    i_out: object        # index of the next output time not yet reached
    rejected_last: object
    nonfinite: object    # consecutive non-finite trial steps
    nfe: object
    n_accepted: object
    n_rejected: object
    rows: object         # the sample's index in the caller's batch (rows move on compaction)

    FIELDS = ("t", "h", "y", "k1", "i_out", "rejected_last", "nonfinite", "nfe", "n_accepted",
              "n_rejected", "rows")


#: Gather the running samples into a smaller batch once at most this fraction of the
#: working batch still runs (halving bounds the gathers by log2 B).
COMPACT_FRACTION = 0.5


def solve_independent(f, tableau, y0, t, direction, theta, rtol, atol, *, first_step=None,
                      max_steps=DEFAULT_MAX_STEPS, min_step=0.0, norm=None, on_step=None):
    """Adaptive solve with an independent step size per sample (see the module docstring).

    Parameters
    ----------
    f : callable
        ``f(t, y, theta)`` with t of shape (B,).
    tableau : ButcherTableau (adaptive)
    y0 : array, shape (B, ...), or a tree of such arrays
    t : ndarray, shape (N,)
        Output times shared by all samples (checked, host NumPy).
    direction : float
    theta, rtol, atol, first_step, max_steps, min_step
        As in :func:`refnode.solve`.
    norm : callable, optional
        ``norm(error, y0, y1, error3=None) -> (B,)`` per-sample error ratios.
    on_step : callable, optional
        ``on_step(accepted, t, h, Y)`` after every iteration, with the (B,) mask of the
        samples whose step was accepted and the step's stage inputs ``Y`` (the adjoint's
        θ̄ integral).

    Returns
    -------
    Solution
        ``z`` of shape (N, B, ...), per-sample ``stats`` and ``grid`` (module docstring).
    """
    leaf = tree_leaves(y0)[0]
    xp, batch = array_module(leaf), leaf.shape[0]
    q = error_power(tableau)
    if norm is None:
        norm = lambda e, a, b, e3=None: sample_ratio(e, a, b, rtol, atol, e3)
    f = SampleTimeDynamics(f, leaf.dtype)
    times = xp.asarray(np.asarray(t, dtype=np.float64))
    t_n = xp.zeros(batch, dtype=times.dtype) + float(t[0])
    k1 = f(t_n, y0, theta)
    check_derivative(k1, y0, float(t[0]))
    zero = xp.zeros(batch, dtype=xp.int64)
    if first_step is None and len(t) > 1:
        h, nfe = initial_steps(f, t_n, y0, k1, theta, direction, q, norm), zero + 2
    else:
        h, nfe = t_n * 0.0 + direction * abs(first_step or 0.0), zero + 1
    p = Progress(t_n, h, y0, k1, zero + 1, zero > 0, zero, nfe, zero, zero, xp.arange(batch))
    outputs, steps, finished = [y0] * len(t), [], []
    batch_nfe, iterations, n_running = int(to_numpy(nfe[0])), 0, batch if len(t) > 1 else 0
    while n_running:
        p, outputs, n_running, n_calls = iterate(f, tableau, q, theta, times, t, direction, p,
                                                 outputs, norm, max_steps, min_step, on_step,
                                                 steps)
        batch_nfe, iterations = batch_nfe + n_calls, iterations + 1
        if 0 < n_running <= COMPACT_FRACTION * p.t.shape[0]:
            p, outputs = compact(p, outputs, finished, len(t))
    p, outputs = assemble(p, outputs, finished)
    stats = {name: to_numpy(getattr(p, name)) for name in ("nfe", "n_accepted", "n_rejected")}
    stats.update(n_steps=stats["n_accepted"] + stats["n_rejected"], batch_nfe=batch_nfe,
                 iterations=iterations)
    return Solution(t=t, z=stack(outputs), stats=stats, grid=step_grid(t, steps, batch))


def take(tree, index):
    """The rows ``index`` of every leaf (axis 0) of an array or tree."""
    return tree_map(lambda leaf: array_module(leaf).take(leaf, index, axis=0), tree)


def compact(p, outputs, finished, n_out):
    """Set the finished samples aside (appended to ``finished``); keep the running ones.

    f is evaluated on the working batch at every stage, so once most samples are done it
    pays to gather the rest into a smaller batch. This needs f to treat rows
    independently and accept any batch size, as refnode's layers do (per-sample
    constants belong in the state, not in a closure of fixed size B).
    """
    xp = array_module(p.i_out)
    running = p.i_out < n_out
    keep, done = xp.nonzero(running)[0], xp.nonzero(~running)[0]
    finished.append((Progress(*(take(getattr(p, name), done) for name in Progress.FIELDS)),
                     [take(out, done) for out in outputs]))
    return (Progress(*(take(getattr(p, name), keep) for name in Progress.FIELDS)),
            [take(out, keep) for out in outputs])


def assemble(p, outputs, finished):
    """Put the set-aside samples back, in their original order."""
    if not finished:
        return p, outputs
    parts = finished + [(p, outputs)]
    xp = array_module(p.rows)
    join = lambda blocks: tree_map(lambda *leaves: xp.concatenate(leaves), *blocks)  # noqa: E731
    order = xp.argsort(join([q.rows for q, _ in parts]))
    p = Progress(*(take(join([getattr(q, name) for q, _ in parts]), order)
                   for name in Progress.FIELDS))
    return p, [take(join([outs[i] for _, outs in parts]), order) for i in range(len(outputs))]


class SampleTimeDynamics:
    """f seen with per-sample times: t of shape (B,) in the state's dtype, a_t of shape (B,).

    The driver keeps times in float64; a float64 time array would promote a float32
    state (shared mode passes a Python float, which never does), so t is cast. A VJP
    whose ``a_t`` is a scalar (time-independent dynamics return 0) is broadcast to (B,).
    """

    def __init__(self, f, dtype):
        self.f, self.dtype = f, dtype

    def _time(self, t):
        return t if t.dtype == self.dtype else t.astype(self.dtype)

    def __call__(self, t, z, theta):
        return self.f(self._time(t), z, theta)

    def vjp(self, t, z, theta, a):
        return self.value_and_vjp(t, z, theta, a)[1:]

    def value_and_vjp(self, t, z, theta, a):
        dz, a_z, a_theta, a_t = value_and_vjp(self.f, self._time(t), z, theta, a)
        return dz, a_z, a_theta, a_t + array_module(a_z).zeros(t.shape, dtype=a_z.dtype)


def iterate(f, tableau, q, theta, times, t, direction, p, outputs, norm, max_steps, min_step,
            on_step, steps):
    """One turn of the loop: every running sample tries a step; accept/reject each.

    Returns the new Progress, the outputs, whether any sample still runs, and the number
    of batched f calls made.
    """
    xp, n_out, t_end = array_module(p.t), len(t), float(t[-1])
    active = p.i_out < n_out
    h = xp.where(active, clip_steps(p.t, p.h, t_end, direction), 0.0)
    y1, error, k, Y = batch_rk_step(f, tableau, p.t, p.y, h, theta, p.k1)
    if tree_leaves(k[-1])[0].shape != tree_leaves(p.y)[0].shape:
        raise InputError(f"f returned shape {tree_leaves(k[-1])[0].shape} for a working batch of "
                         f"shape {tree_leaves(p.y)[0].shape}: in batch='independent' mode f must "
                         "treat rows independently and accept any batch size (finished samples "
                         "are dropped); put per-sample constants into the state.")
    error3 = increment(h, [(w, k_i) for w, k_i in zip(tableau.e3_float, k) if w]) if q == 8 else None
    ratio = norm(error, p.y, y1, error3) if q == 8 else norm(error, p.y, y1)
    accepted = active & (ratio <= 1.0)
    snap = (p.t + h == t_end) | (xp.abs(t_end - p.t - h) <= xp.abs(h) * 1e-14)
    t_next = xp.where(snap, t_end, p.t + h)
    i_new = xp.where(accepted, xp.searchsorted(direction * times, direction * t_next, side="right"),
                     p.i_out)
    inside = accepted & (p.i_out < n_out) & (
        (xp.take(times, xp.minimum(p.i_out, n_out - 1)) - t_next) * direction < 0)
    nonfinite = xp.where(active & ~xp.isfinite(ratio), p.nonfinite + 1, 0)
    flags = decide(xp, active, h, p, t_end, max_steps, min_step, nonfinite, accepted, i_new,
                   inside, n_out)
    raise_failures(flags, p, h, t_end, max_steps)
    n_calls = tableau.stages - 1
    f1 = k[-1]
    if not tableau.fsal and flags["any_accepted"]:
        f1, n_calls = f(t_next, y1, theta), n_calls + 1
    extra = len(tableau.dense.A_extra) if tableau.dense is not None else 0
    if extra and flags["any_inside"]:
        k, n_calls = batch_extra_stages(f, tableau, p.t, p.y, h, theta, k), n_calls + extra
    outputs = list(outputs)
    for i in range(flags["lo"], flags["hi"]):
        hit = accepted & (p.i_out <= i) & (i_new > i)
        value = y1
        if flags["any_inside"]:
            fraction = (float(t[i]) - p.t) / xp.where(h == 0.0, 1.0, h)
            value = select(t_next == float(t[i]), y1,
                           batch_dense(tableau, fraction, h, p.y, y1, k, f1))
        outputs[i] = select(hit, value, outputs[i])
    if on_step is not None:
        on_step(accepted, p.t, h, Y)
    steps.append((accepted, t_next, p.rows))
    rejected = active & ~accepted
    nfe = (p.nfe + xp.where(active, tableau.stages - 1, 0)
           + xp.where(accepted & (not tableau.fsal), 1, 0) + xp.where(inside, extra, 0))
    factor = step_factors(ratio, q, p.rejected_last | rejected)
    p = replace(p, t=xp.where(accepted, t_next, p.t), y=select(accepted, y1, p.y),
                k1=select(accepted, f1, p.k1), i_out=i_new, h=xp.where(active, h * factor, 0.0),
                rejected_last=rejected, nonfinite=nonfinite, nfe=nfe,
                n_accepted=p.n_accepted + accepted, n_rejected=p.n_rejected + rejected)
    return p, outputs, flags["n_running"], n_calls


def clip_steps(t_n, h, t_end, direction):
    """Shorten each sample's h so that its step does not pass t_end."""
    return array_module(t_n).where((t_n + h - t_end) * direction > 0, t_end - t_n, h)


def decide(xp, active, h, p, t_end, max_steps, min_step, nonfinite, accepted, i_new, inside,
           n_out):
    """The iteration's one host synchronisation: failure flags and the outputs reached."""
    ulps = MIN_STEP_ULPS * xp.abs(xp.nextafter(p.t, p.t + xp.where(h >= 0, 1.0, -1.0)) - p.t)
    underflow = active & (xp.abs(h) < xp.maximum(min_step, ulps)) & (p.t + h != t_end)
    too_many = active & (p.n_accepted + p.n_rejected >= max_steps)
    summary = xp.stack([
        xp.any(underflow), xp.any(too_many), xp.any(nonfinite > MAX_NONFINITE_RETRIES),
        xp.any(accepted), xp.any(inside), xp.sum(i_new < n_out),
        xp.min(xp.where(accepted, p.i_out, n_out)), xp.max(xp.where(accepted, i_new, 0))])
    s = [int(v) for v in to_numpy(summary)]
    return dict(underflow=bool(s[0]), too_many=bool(s[1]), nonfinite=bool(s[2]),
                any_accepted=bool(s[3]), any_inside=bool(s[4]), n_running=s[5],
                lo=s[6], hi=s[7], masks=(underflow, too_many, nonfinite))


def raise_failures(flags, p, h, t_end, max_steps):
    """Raise the solver error a flagged sample hit, naming the sample (host copies only here)."""
    if not (flags["underflow"] or flags["too_many"] or flags["nonfinite"]):
        return
    underflow, too_many, nonfinite = (to_numpy(m) for m in flags["masks"])
    t_host, h_host, rows = to_numpy(p.t), to_numpy(h), to_numpy(p.rows)
    if too_many.any():
        b = int(np.flatnonzero(too_many)[0])
        raise MaxStepsExceededError(
            f"sample {rows[b]} reached max_steps = {max_steps} attempted steps at t = {t_host[b]!r} "
            f"(h = {h_host[b]!r}). Raise max_steps, loosen rtol/atol, or check that sample "
            "for stiffness.", t=float(t_host[b]))
    if underflow.any():
        b = int(np.flatnonzero(underflow)[0])
        raise StepSizeUnderflowError(
            f"the step size of sample {rows[b]} underflowed at t = {t_host[b]!r} (h = {h_host[b]!r}). "
            "Its solution may blow up near this time, or the tolerances are too tight for "
            "the precision: loosen rtol/atol or check the dynamics.", t=float(t_host[b]))
    b = int(np.flatnonzero(nonfinite > MAX_NONFINITE_RETRIES)[0])
    raise NonFiniteStateError(
        f"the state of sample {rows[b]} became non-finite at every trial step from t = "
        f"{t_host[b]!r} (after {MAX_NONFINITE_RETRIES} shrinks). Check the dynamics for "
        "overflow or a singularity near this time.", t=float(t_host[b]))


def step_grid(t, steps, batch):
    """Each sample's accepted step points, shape (B, L+1), padded with t[-1] (host NumPy)."""
    grid = np.full((batch, 1), float(t[0]))
    if not steps:
        return grid
    xp = array_module(steps[0][1])
    sizes = [a.shape[0] for a, _, _ in steps]                     # the working batch shrinks
    iteration = np.repeat(np.arange(len(steps)), sizes)
    rows = to_numpy(xp.concatenate([r for _, _, r in steps]))
    accepted = np.zeros((len(steps), batch), dtype=bool)          # (iterations, B)
    accepted[iteration, rows] = to_numpy(xp.concatenate([a for a, _, _ in steps]))
    t_next = np.zeros((len(steps), batch))
    t_next[iteration, rows] = to_numpy(xp.concatenate([tn for _, tn, _ in steps]))
    position = np.cumsum(accepted, axis=0)                        # 1-based step index
    grid = np.full((batch, int(position[-1].max()) + 1), float(t[-1]))
    grid[:, 0] = float(t[0])
    it, b = np.nonzero(accepted)
    grid[b, position[it, b]] = t_next[it, b]
    return grid


def check_independent(batch, z0, fixed, trace, dense):
    """The arguments ``batch="independent"`` needs, checked before any work."""
    if batch not in ("shared", "independent"):
        raise InputError(f"batch must be 'shared' or 'independent'; got {batch!r}.")
    if fixed:
        raise InputError("batch='independent' chooses a step size per sample, so it needs an "
                         "adaptive method without step_size/n_steps; a fixed grid is the "
                         "same for every sample: use batch='shared'.")
    if len(getattr(z0, "shape", ())) < 1:
        raise InputError("batch='independent' needs z0 with a leading batch axis, shape "
                         f"(B, ...); got shape {getattr(z0, 'shape', None)}.")
    if trace or dense:
        raise InputError("batch='independent' does not record trace= or dense= (they are "
                         "per-step records of one step size); use Solution.grid, the (B, L+1) "
                         "per-sample step points, or solve single samples.")
