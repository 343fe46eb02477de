"""The masked accept/reject loop of per-sample steps (see :mod:`refnode.independent`)."""


from dataclasses import dataclass, replace

import numpy as np

from ..backend import array_module, to_numpy
from ..checks import first_derivative
from ..dense_output import extra_stages, interpolate_one, step_fraction
from ..drivers import PENDING_BYTES, first_step_size, stack, state_bytes
from ..dynamics import linearize
from ..errors import InputError
from ..params import tree_leaves, tree_map
from ..per_sample import select
from ..rk_step import rk_step
from ..solution import Solution
from ..step_policy import (OK, carried_step, clip_step, count_nonfinite, end_derivative,
                           evaluations, failure, failure_error, n_extra_stages, next_step,
                           output_inside, outputs_reached, step_end)

#: Gather the running samples into a smaller batch once at most this fraction of the
#: working batch still runs (halving bounds the gathers by log2 B).
COMPACT_FRACTION = 0.5


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
    next_h: object       # the step to carry into a continuing solve (Solution.next_step)

    def take(self, index):
        """The samples ``index`` of every field."""
        return Progress(*(take(getattr(self, name), index) for name in FIELDS))


FIELDS = tuple(Progress.__dataclass_fields__)


def check_independent(z0, fixed, trace, dense):
    """The arguments ``batch="independent"`` needs, checked before any work."""
    if fixed:
        raise InputError("batch='independent' chooses a step size per sample, so it needs an "
                         "adaptive method without step_size/n_steps; a fixed grid is the "
                         "same for every sample: use batch='shared'.")
    if len(getattr(z0, "shape", ())) < 1 or z0.shape[0] < 1:
        raise InputError("batch='independent' needs z0 with a leading batch axis, shape "
                         f"(B, ...) with B >= 1; got shape {getattr(z0, 'shape', None)}.")
    if trace or dense:
        raise InputError("batch='independent' does not record trace or dense (they are "
                         "per-step records of one step size); use Solution.grid, the (B, L+1) "
                         "per-sample step points, or solve single samples.")


def may_compact(theta, batch):
    """Whether rows may be dropped: no leaf of theta could be per-sample data (axis 0 = B)."""
    return not any(getattr(leaf, "ndim", 0) >= 1 and leaf.shape[0] == batch
                   for leaf in tree_leaves(theta) if leaf is not None)


def solve_independent(f, tableau, y0, t, direction, theta, norm, control, on_step=None, k1=None,
                      first_step=None):
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
    theta : tree
    norm : callable
        ``norm(error, y0, y1) -> (B,)`` per-sample error ratios.
    control : StepControl
    on_step : callable, optional
        ``on_step(accepted, t, h, y, k)`` after every iteration, with the (B,) mask of the
        samples whose step was accepted and the step's stages (the adjoint's θ̄ integral).
    k1 : state, optional
        f(t[0], y0) if the caller has it already.
    first_step : array, shape (B,), optional
        Each sample's first |h| (a continuing solve's ``Solution.next_step``).

    Returns
    -------
    Solution
        ``z`` of shape (N, B, ...), per-sample ``stats`` and ``grid`` (module docstring).
    """
    leaf = tree_leaves(y0)[0]
    xp, batch = array_module(leaf), leaf.shape[0]
    f = SampleTimeDynamics(f, leaf.dtype)
    t_n = xp.zeros(batch, dtype=np.float64) + float(t[0])
    if k1 is None:
        k1 = first_derivative(f, t_n, y0, theta)
    if first_step is None:
        h, nfe = first_step_size(f, tableau, t_n, y0, k1, theta, direction, norm, control)
    else:
        h, nfe = direction * xp.abs(first_step), 1
    zero = xp.zeros(batch, dtype=xp.int64)
    p = Progress(t_n, t_n * 0.0 + h, y0, k1, zero + 1, zero > 0, zero, zero + nfe, zero, zero,
                 xp.arange(batch), t_n * 0.0)
    outputs, steps, finished = [y0] * len(t), [], []
    loop = Loop(f, tableau, theta, t, direction, norm, control, on_step)
    batch_nfe, iterations = nfe, 0
    n_running = batch if len(t) > 1 else 0
    if n_running:
        loop.check(p, None, zero > 0, zero > 0, i_before=p.i_out)   # no step taken yet
    compactable = may_compact(theta, batch)
    while n_running:
        p, outputs, n_running, n_calls = loop.iterate(p, outputs, steps)
        batch_nfe, iterations = batch_nfe + n_calls, iterations + 1
        if compactable and 0 < n_running <= COMPACT_FRACTION * p.t.shape[0]:
            p, outputs = compact(p, outputs, finished, len(t))
            loop.compacted = True
    p, outputs = assemble(p, outputs, finished)
    stats = {name: to_numpy(getattr(p, name)) for name in ("nfe", "n_accepted", "n_rejected")}
    stats.update(n_steps=stats["n_accepted"] + stats["n_rejected"], batch_nfe=batch_nfe,
                 iterations=iterations)
    return Solution(t=t, z=stack(outputs), stats=stats, grid=step_grid(t, steps, batch),
                    next_step=p.next_h)


def unstack(block, m):
    """The m rows of a block (m, B, ...) (an array or tree) as a list of m states."""
    if isinstance(block, (tuple, list, dict)):
        return [tree_map(lambda leaf: leaf[r], block) for r in range(m)]
    return list(block)


def take(tree, index):
    """The rows ``index`` of every leaf (axis 0) of an array or tree."""
    return tree_map(lambda leaf: array_module(leaf).take(leaf, index, axis=0), tree)


def compact(p, outputs, finished, n_out):
    """Set the finished samples aside (appended to ``finished``); keep the running ones."""
    xp = array_module(p.i_out)
    running = p.i_out < n_out
    keep, done = xp.nonzero(running)[0], xp.nonzero(~running)[0]
    finished.append((p.take(done), [take(out, done) for out in outputs]))
    return p.take(keep), [take(out, keep) for out in outputs]


def assemble(p, outputs, finished):
    """Put the set-aside samples back, in their original order."""
    if not finished:
        return p, outputs
    parts = finished + [(p, outputs)]
    xp = array_module(p.rows)
    join = lambda blocks: tree_map(lambda *leaves: xp.concatenate(leaves), *blocks)  # noqa: E731
    order = xp.argsort(join([q.rows for q, _ in parts]))
    p = Progress(*(take(join([getattr(q, name) for q, _ in parts]), order) for name in FIELDS))
    return p, [take(join([outs[i] for _, outs in parts]), order) for i in range(len(outputs))]


class SampleTimeDynamics:
    """f seen with per-sample times: t of shape (B, 1, ..., 1), a_t of shape (B,).

    t has one time per row and as many axes as the state z (B, ...), so ``t * z`` pairs
    row b with time b whatever the other axes are (a (B,) time would broadcast along
    z's last axis, silently wrong when it also has length B). The driver keeps times in
    float64; a float64 time array would promote a float32 state (shared mode passes a
    Python float, which never does), so t is cast. ``a_t`` of t's shape, of shape (B,),
    or a scalar (time-independent dynamics return 0) comes back with shape (B,).
    """

    def __init__(self, f, dtype):
        self.f, self.dtype = f, dtype

    def _time(self, t, z):
        t = t if t.dtype == self.dtype else t.astype(self.dtype)
        if t.ndim == 1 and getattr(z, "ndim", 1) > 1:       # a tree state keeps t (B,)
            t = array_module(t).reshape(t, (t.shape[0],) + (1,) * (z.ndim - 1))
        return t

    def __call__(self, t, z, theta):
        return self.f(self._time(t, z), z, theta)

    def vjp(self, t, z, theta, a):
        return self.value_and_vjp(t, z, theta, a)[1:]

    def value_and_vjp(self, t, z, theta, a):
        dz, vjp = self.linearize(t, z, theta)
        return (dz,) + vjp(a)

    def linearize(self, t, z, theta):
        dz, f_vjp = linearize(self.f, self._time(t, z), z, theta)

        def vjp(a):
            a_z, a_theta, a_t = f_vjp(a)
            xp = array_module(a_z)
            if getattr(a_t, "ndim", 0) > 1:
                a_t = xp.reshape(a_t, (a_t.shape[0],))
            return a_z, a_theta, a_t + xp.zeros((t.shape[0],), dtype=a_z.dtype)
        return dz, vjp


class Loop:
    """One turn of the masked loop: every running sample tries a step; accept/reject each."""

    def __init__(self, f, tableau, theta, t, direction, norm, control, on_step):
        self.f, self.tableau, self.theta, self.t = f, tableau, theta, t
        self.direction, self.norm, self.control, self.on_step = direction, norm, control, on_step
        self.q, self.compacted, self.t_end = tableau.error_power(), False, float(t[-1])
        self.times = None

    def step(self, t_n, y, h, k1):
        """rk_step on the working batch; a failure of f on a gathered batch is explained
        (a wrong output shape included: the solve's CheckedDynamics refuses it as it comes)."""
        try:
            y1, error, k = rk_step(self.f, self.tableau, t_n, y, h, self.theta, k1)
        except (ValueError, IndexError) as err:
            if not self.compacted:
                raise
            raise InputError(gathered_batch_advice(tree_leaves(y)[0].shape, err)) from err
        return y1, error, k

    def iterate(self, p, outputs, steps):
        """Returns the new Progress, the outputs, the number still running, and f calls made."""
        tableau, xp, n_out, direction = self.tableau, array_module(p.t), len(self.t), self.direction
        if self.times is None:
            self.times = xp.asarray(np.asarray(self.t, dtype=np.float64))
        active = p.i_out < n_out
        h = xp.where(active, clip_step(p.t, p.h, self.t_end, direction), 0.0)
        y1, error, k = self.step(p.t, p.y, h, p.k1)
        ratio = tableau.error_ratio(self.norm, h, error, k, p.y, y1)
        accepted = active & (ratio <= 1.0)
        t_next = step_end(p.t, h, self.t_end)
        i_new = xp.where(accepted, outputs_reached(self.times, t_next, direction), p.i_out)
        inside = accepted & output_inside(self.times, p.i_out, t_next, direction)
        rejected = active & ~accepted
        h_new = next_step(h, ratio, self.q, p.rejected_last)
        new = replace(p, t=xp.where(accepted, t_next, p.t), i_out=i_new,
                      next_h=xp.where(accepted, carried_step(p.h, h, h_new), p.next_h),
                      h=xp.where(active, h_new, 0.0), rejected_last=rejected,
                      nonfinite=xp.where(active, count_nonfinite(p.nonfinite, ratio), 0),
                      nfe=p.nfe + xp.where(active, evaluations(tableau, accepted, inside), 0),
                      n_accepted=p.n_accepted + accepted, n_rejected=p.n_rejected + rejected)
        flags = self.check(new, (error, p.y, y1), accepted, inside, p.i_out)
        f1 = k[-1]
        if flags["any_accepted"]:
            f1 = end_derivative(self.f, tableau, t_next, y1, self.theta, k)
        if flags["any_inside"] and n_extra_stages(tableau):
            k = extra_stages(self.f, tableau, p.t, p.y, h, self.theta, k)
        n_calls = evaluations(tableau, flags["any_accepted"], flags["any_inside"])
        outputs = self.record_outputs(outputs, flags, p, h, y1, k, f1, accepted, i_new, t_next)
        if self.on_step is not None:
            self.on_step(accepted, p.t, h, p.y, k)
        steps.append((accepted, t_next, p.rows))
        new = replace(new, y=select(accepted, y1, p.y), k1=select(accepted, f1, p.k1))
        return new, outputs, flags["n_running"], n_calls

    def check(self, p, last, accepted, inside, i_before):
        """The iteration's one host synchronisation; raises if a running sample cannot go on.

        Each running sample's next step is checked by :func:`refnode.step_policy.failure`;
        also read: whether any step was accepted or has an output inside, the number still
        running and the range of outputs reached (from ``i_before`` to ``p.i_out``).
        """
        xp, n_out = array_module(p.t), len(self.t)
        running = p.i_out < n_out
        h = clip_step(p.t, p.h, self.t_end, self.direction)
        code = xp.where(running, failure(p.t, h, self.t_end, p.n_accepted + p.n_rejected,
                                         p.nonfinite, self.control), OK)
        summary = xp.stack([
            xp.any(code != OK), xp.any(accepted), xp.any(inside), xp.sum(running),
            xp.min(xp.where(accepted, i_before, n_out)), xp.max(xp.where(accepted, p.i_out, 0))])
        s = [int(v) for v in to_numpy(summary)]
        if s[0]:
            raise self.failure(to_numpy(code), p, h, last)
        return dict(any_accepted=bool(s[1]), any_inside=bool(s[2]), n_running=s[3], lo=s[4],
                    hi=s[5])

    def failure(self, code, p, h, last):
        """The error of the first failing sample: the message its own solve would give."""
        b = int(np.flatnonzero(code)[0])
        rows = None if last is None else tuple(take(x, [b]) for x in last)
        return failure_error(int(code[b]), to_numpy(p.t)[b], to_numpy(h)[b],
                             (float(self.t[0]), self.t_end), rows, self.control, self.norm,
                             sample=int(to_numpy(p.rows)[b]))

    def record_outputs(self, outputs, flags, p, h, y1, k, f1, accepted, i_new, t_next):
        """Each output time reached in a sample's accepted step, by its own dense output.

        The outputs from ``lo`` to ``hi`` are made as blocks of m rows (m output times ×
        B samples): θ of shape (m, B), the same arithmetic per entry as one output at a
        time, at most ``PENDING_BYTES`` of states and stages in a block (the shared
        loop's bound, :data:`refnode.drivers.PENDING_BYTES`).
        """
        outputs, xp = list(outputs), array_module(p.t)
        m = max(1, PENDING_BYTES // (state_bytes(y1) * (len(k) + 3)))
        y1_row = tree_map(lambda leaf: leaf[None], y1)          # (1, B, ...): every row
        for lo in range(flags["lo"], flags["hi"], m):
            hi = min(lo + m, flags["hi"])
            i, t_i = xp.arange(lo, hi)[:, None], self.times[lo:hi, None]        # (m, 1)
            hit = accepted & (p.i_out <= i) & (i_new > i)                       # (m, B)
            value = y1_row
            if flags["any_inside"]:
                fraction = step_fraction(t_i, p.t, h, t_next)
                value = select(t_next == t_i, y1_row,
                               interpolate_one(self.tableau, fraction, h, p.y, y1, k, f1))
            block = select(hit, value, stack(outputs[lo:hi]))
            outputs[lo:hi] = unstack(block, hi - lo)
        return outputs


def gathered_batch_advice(shape, cause):
    return (f"f failed on a working batch of shape {shape} ({cause}). In batch='independent' "
            "mode finished samples are dropped from the batch, so f must treat rows "
            "independently and accept any batch size: pass per-sample constants in theta "
            "(leaves with leading axis B keep the batch whole, aligned with the rows) or in "
            "the state, not in a closure of fixed size B.")


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
