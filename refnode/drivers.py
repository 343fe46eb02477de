"""The shared drivers: a fixed grid, and an adaptive loop with one step size per solve.

Both run :func:`refnode.rk_step.rk_step`:

* :func:`solve_fixed` — each output interval [t_i, t_{i+1}] is cut into equal steps
  (``n_steps`` of them, or the fewest no longer than ``step_size``), so the output times
  are step points and nothing is interpolated;
* :func:`solve_adaptive` — an embedded pair with error control (:mod:`refnode.step_size`;
  the method computes its own error ratio, ``tableau.error_ratio``); output times
  between step points are filled in by dense output (:mod:`refnode.dense_output`), so
  they never shorten a step.

A state of shape (B, D) is one big state here: one error norm over the whole batch, one
step size (``batch="shared"``). Per-sample steps (``batch="independent"``) are a masked
variant of the adaptive loop in :mod:`refnode.independent`, on the same step arithmetic.

GPU arrays (CuPy): every stage, error estimate and dense output stays on the device; the
loop reads one value on the host per step, the error ratio that decides accept/reject.
Times and step sizes are host floats.
"""

import numpy as np

from .backend import array_module, to_numpy
from .dense_output import extra_stages, interpolate, needs_extra_stages
from .errors import (InputError, MaxStepsExceededError, NonFiniteStateError,
                     StepSizeUnderflowError)
from .params import tree_leaves, tree_map
from .rk_step import rk_step
from .solution import DenseSolution, DenseStep, Solution, StepRecord
from .step_size import initial_step, scaled_error, step_factor

#: Steps shorter than this many float64 spacings at the current t count as underflow
#: (SciPy's ``10 * np.abs(np.nextafter(t, direction * np.inf) - t)``).
MIN_STEP_ULPS = 10
#: Consecutive non-finite trial steps tolerated (each shrinks h by MIN_FACTOR) before
#: the solve gives up and raises NonFiniteStateError.
MAX_NONFINITE_RETRIES = 10


def fixed_grid(t, step_size=None, n_steps=None):
    """Number of equal steps in each output interval: ``n_steps``, or ceil(|Δt| / step_size)."""
    if n_steps is not None:
        return [n_steps] * (len(t) - 1)
    return [max(1, int(np.ceil(abs(t1 - t0) / step_size * (1 - 1e-12)))) for t0, t1 in zip(t[:-1], t[1:])]


def solve_fixed(f, tableau, y0, t, theta, k1, step_size=None, n_steps=None, trace=False,
                keep_grid=True):
    """Fixed-grid driver: equal steps inside each output interval (see :func:`fixed_grid`)."""
    y, ys, grid = y0, [y0], [float(t[0])] if keep_grid else None
    records = [] if trace else None
    nfe, n_total = 1, 0
    times = t.tolist()                  # Python floats: they never promote a float32 state
    for t_i, t_next, n in zip(times[:-1], times[1:], fixed_grid(t, step_size, n_steps)):
        h = (t_next - t_i) / n
        for j in range(n):
            t_n = t_i + j * h
            if n_total > 0:
                k1 = k[-1] if tableau.fsal else f(t_n, y, theta)
                nfe += 0 if tableau.fsal else 1
            y, _, k = rk_step(f, tableau, t_n, y, h, theta, k1)
            nfe += tableau.stages - 1
            n_total += 1
            check_stages(k, y, t_n)
            if not all_finite(y):
                raise NonFiniteStateError(
                    f"the state became non-finite in step {n_total} from t = {float(t_n)!r} to "
                    f"{float(t_n + h)!r} (h = {float(h)!r}). Try a smaller step_size, an adaptive method, "
                    "or check the dynamics for overflow.", t=t_n)
            if keep_grid:
                grid.append(float(t_next) if j == n - 1 else t_n + h)
            if trace:
                records.append(StepRecord(t_n, h, float("nan"), True))
        ys.append(y)
    stats = dict(nfe=nfe, n_steps=n_total, n_accepted=n_total, n_rejected=0)
    return Solution(t=t, z=stack(ys), stats=stats, trace=records, grid=grid)


def check_stages(k, y, t_n):
    """Every stage of a step has the state's shape and dtype (else f changed its output)."""
    if isinstance(y, (tuple, list, dict)):
        return
    for k_i in k:
        if getattr(k_i, "shape", None) != y.shape or k_i.dtype != y.dtype:
            raise InputError(
                f"f(t, z, theta) returned shape {getattr(k_i, 'shape', type(k_i).__name__)} "
                f"dtype {getattr(k_i, 'dtype', '?')} in the step from t = {float(np.min(t_n))!r}, "
                f"for a state of shape {y.shape} dtype {y.dtype}: dz/dt must keep the state's "
                "shape and dtype at every time.")


def all_finite(y):
    """True if every entry of the state (an array or a tree of arrays) is finite."""
    return all(bool(to_numpy(array_module(leaf).all(array_module(leaf).isfinite(leaf))))
               for leaf in tree_leaves(y))


def expand(y):
    """y with a new leading axis of length 1 (arrays or trees): a copy, never a view of z0."""
    return tree_map(lambda leaf: array_module(leaf).stack([leaf]), y)


def concatenate(blocks):
    """Concatenate blocks (m_j, *shape) along the first axis (arrays or trees)."""
    if len(blocks) == 1:
        return blocks[0]
    return tree_map(lambda *leaves: array_module(*leaves).concatenate(leaves), *blocks)


def stack(ys):
    """Stack a list of states (arrays, or trees of arrays) along a new first axis."""
    first = ys[0]
    if isinstance(first, (tuple, list, dict)):
        return tree_map(lambda *leaves: array_module(*leaves).stack(leaves), *ys)
    return array_module(*ys).stack(ys)


def first_step_size(f, tableau, t0, y0, k1, theta, direction, norm, control):
    """The first trial step and the evaluations it cost: control.first_step, or Hairer's."""
    if control.first_step is None:
        q = tableau.error_power()
        return initial_step(f, t0, y0, k1, theta, direction, q, None, None, norm=norm), 2
    return direction * control.first_step, 1


def solve_adaptive(f, tableau, y0, t, direction, theta, k1, norm, control, *, dense=False,
                   keep_grid=True):
    """Adaptive driver: try a step, accept it if its error ratio is <= 1, adapt h.

    Outputs inside an accepted step come from dense output; the last step is shortened
    to land exactly on t[-1].

    Parameters
    ----------
    f, tableau, y0, t, direction, theta
        As checked by :func:`refnode.solve`; ``k1`` = f(t[0], y0).
    norm : callable
        ``norm(error, y0, y1) -> float``, the error norm (:func:`refnode.step_size.rms_norm`).
    control : StepControl
    dense, keep_grid : bool
        Keep every step for ``Solution.dense``; record the accepted step points in
        ``Solution.grid`` (the discrete adjoint replays them).
    """
    q = tableau.error_power()
    t_end = float(t[-1])
    h, nfe = first_step_size(f, tableau, float(t[0]), y0, k1, theta, direction, norm, control)
    t_n, y, blocks, i_out = float(t[0]), y0, [expand(y0)], 1
    grid = [t_n] if keep_grid else None
    records, steps = [] if control.trace else None, [] if dense else None
    n_accepted = n_rejected = nonfinite = 0
    rejected_last, last, last_clipped = False, None, None
    while i_out < len(t):
        proposed = h
        h = guard_step(t_n, h, t_end, direction, control, n_accepted + n_rejected, last, norm)
        clipped = proposed if h != proposed else None
        y1, error, k = rk_step(f, tableau, t_n, y, h, theta, k1)
        nfe += tableau.stages - 1
        check_stages(k, y, t_n)
        ratio = tableau.error_ratio(norm, h, error, k, y, y1)
        last = (error, y, y1, ratio)
        nonfinite = nonfinite + 1 if not np.isfinite(ratio) else 0
        if nonfinite > MAX_NONFINITE_RETRIES:
            raise NonFiniteStateError(nonfinite_message(t_n, h), t=t_n)
        accepted = ratio <= 1.0
        if control.trace:
            records.append(StepRecord(t_n, h, ratio, accepted))
        if accepted:
            t_next = t_end if t_n + h == t_end or abs(t_end - t_n - h) <= abs(h) * 1e-14 else t_n + h
            f1 = k[-1] if tableau.fsal else f(t_next, y1, theta)
            nfe += 0 if tableau.fsal else 1
            if needs_extra_stages(tableau) and (dense or strictly_inside(t, i_out, t_next, direction)):
                k = extra_stages(f, tableau, t_n, y, h, theta, k)
                nfe += len(tableau.dense.A_extra)
            thetas, i_out = outputs_in_step(t, i_out, t_n, t_next, h, direction)
            if thetas:
                blocks.append(interpolate(tableau, thetas, h, y, y1, k, f1))
            if dense:
                steps.append(DenseStep(t_n, t_next, h, y, y1, k, f1))
            t_n, y, k1, last_clipped = t_next, y1, f1, clipped
            if keep_grid:
                grid.append(t_n)
            n_accepted += 1
        else:
            n_rejected += 1
        h = h * step_factor(ratio, q, after_rejection=rejected_last or not accepted)
        rejected_last = not accepted
    stats = dict(nfe=nfe, n_steps=n_accepted + n_rejected, n_accepted=n_accepted,
                 n_rejected=n_rejected)
    dense_fn = DenseSolution(tableau, steps, direction, float(t[0]), y0) if dense else None
    next_step = h                       # the controller's proposal after the last step,
    if last_clipped is not None and abs(last_clipped) > abs(h):   # or the step it wanted
        next_step = last_clipped                                   # before landing on t_end
    return Solution(t=t, z=concatenate(blocks), stats=stats, trace=records, grid=grid,
                    dense=dense_fn, next_step=next_step)


def nonfinite_message(t_n, h):
    return (f"the state or f became non-finite (NaN or inf) at every trial step from t = {t_n!r} "
            f"(last h = {h!r}, after {MAX_NONFINITE_RETRIES} shrinks). Check the dynamics for "
            "overflow or a singularity near this time.")


def guard_step(t_n, h, t_end, direction, control, n_attempted, last, norm):
    """The next trial step, shortened to end at t_end; raises when the solve cannot go on.

    Raises
    ------
    MaxStepsExceededError
        ``n_attempted`` reached ``control.max_steps``.
    NonFiniteStateError
        The step size shrank to nothing because f or the state kept turning non-finite.
    StepSizeUnderflowError
        |h| fell below ``control.min_step`` or 10 float64 spacings of t_n.
    """
    if n_attempted >= control.max_steps:
        raise MaxStepsExceededError(failure_message(
            f"the solve reached max_steps = {control.max_steps} attempted steps", t_n, h, last,
            "Raise max_steps (StepControl(max_steps=...)), loosen rtol/atol, or check for "
            "stiffness (an explicit method needs tiny steps on stiff problems).", norm), t=t_n)
    h = clip_step(t_n, h, t_end, direction)
    if abs(h) < max(control.min_step, MIN_STEP_ULPS * np.spacing(t_n)) and t_n + h != t_end:
        if last is not None and not np.isfinite(last[3]):
            raise NonFiniteStateError(
                f"f or the state became non-finite (NaN or inf) in every step past t = {t_n!r}, "
                f"down to h = {h!r}: the dynamics return non-finite values there. Check f "
                "near this time (a division by zero, a log of a negative number, overflow).",
                t=t_n)
        raise StepSizeUnderflowError(failure_message(
            "the step size underflowed", t_n, h, last,
            "The solution may blow up near this time (a singularity), or the tolerances are "
            "too tight for the state's precision: loosen rtol/atol or check the dynamics.", norm),
            t=t_n)
    return h


def clip_step(t_n, h, t_end, direction):
    """Shorten h so that the step does not pass t_end (a float, or per sample)."""
    over = (t_n + h - t_end) * direction > 0
    if getattr(over, "ndim", 0):
        return array_module(over).where(over, t_end - t_n, h)
    return t_end - t_n if over else h


def strictly_inside(t, i_out, t_next, direction):
    """True if the next output time lies strictly before the step's end t_next."""
    return i_out < len(t) and (t[i_out] - t_next) * direction < 0


def outputs_in_step(t, i_out, t_n, t_next, h, direction):
    """The fractions θ = (t_i - t_n) / h of the outputs in (t_n, t_next], and the next index.

    An output exactly at the step's end gets θ = 1.0, which dense output maps to y1 itself.
    """
    thetas = []
    while i_out < len(t) and (t[i_out] - t_next) * direction <= 0:
        thetas.append(1.0 if t[i_out] == t_next else (t[i_out] - t_n) / h)
        i_out += 1
    return thetas, i_out


def failure_message(what, t_n, h, last, advice, norm=None, n_worst=3):
    """"<what> at t = ..., h = ...; worst components ...; <advice>".

    The worst components are named when the norm is the RMS norm (its rtol, atol known).
    """
    message = f"{what} at t = {t_n!r} with step size h = {h!r}."
    rtol, atol = getattr(norm, "rtol", None), getattr(norm, "atol", None)
    if last is not None and rtol is not None and not isinstance(last[0], (tuple, list, dict)):
        error, y0, y1, _ = last
        scaled = np.abs(to_numpy(scaled_error(error, y0, y1, rtol, atol)))
        worst = np.argsort(scaled.ravel())[::-1][:n_worst]
        index = lambda i: tuple(int(j) for j in np.unravel_index(i, scaled.shape))  # noqa: E731
        parts = [f"{index(i)}: {scaled.ravel()[i]:.3g}" for i in worst]
        message += (" Largest scaled errors of the last step (index: error/tolerance): "
                    + ", ".join(parts) + ".")
    return message + " " + advice
