"""Drivers and entry points: ``solve`` and ``odeint``.

Two drivers share :func:`refnode.rk_step.rk_step`:

* :func:`solve_fixed` — a fixed grid: each output interval [t_i, t_{i+1}] is cut into
  equal steps (``n_steps`` of them, or the fewest no longer than ``step_size``), so the
  output times are step points and nothing is interpolated;
* :func:`solve_adaptive` — an embedded pair with error control (module
  :mod:`refnode.step_size`); output times between step points are filled in by dense
  output (:mod:`refnode.dense_output`), so they never shorten a step.

Batches: a state of shape (B, D) is one big state. The error norm is taken over the whole
batch, so all samples share one step size (``batch="shared"``, the default and what
torchdiffeq does); a stiff sample sets the pace for all of them. ``batch="independent"``
gives each sample its own steps (:mod:`refnode.independent`).

GPU arrays (CuPy): every stage, error estimate and dense output stays on the device; the
loop reads one value on the host per step, the error ratio that decides accept/reject
(:func:`refnode.backend.to_float`). Times and step sizes are host floats.
"""

import numpy as np

from .backend import array_module, to_numpy
from .checks import (check_derivative, check_positive_int, check_state, check_times,
                     check_tolerances)
from .dense_output import (DenseSolution, DenseStep, extra_stages, interpolate,
                           needs_extra_stages)
from .errors import (InputError, MaxStepsExceededError, NonFiniteStateError,
                     StepSizeUnderflowError)
from .methods import ADAPTIVE_METHODS, get_method
from .params import tree_leaves, tree_map
from .rk_step import rk_step, weighted_sum
from .solution import Solution, StepRecord
from .step_size import error_ratio, initial_step, scaled_error, step_factor

#: Default relative and absolute tolerances (as in the public API contract).
DEFAULT_RTOL, DEFAULT_ATOL = 1e-7, 1e-9
#: Default cap on attempted steps of one adaptive solve.
DEFAULT_MAX_STEPS = 100_000
#: Steps shorter than this many float64 spacings at the current t count as underflow
#: (SciPy's ``10 * np.abs(np.nextafter(t, direction * np.inf) - t)``).
MIN_STEP_ULPS = 10
#: Consecutive non-finite trial steps tolerated (each shrinks h by MIN_FACTOR) before
#: the solve gives up and raises NonFiniteStateError.
MAX_NONFINITE_RETRIES = 10


def odeint(f, z0, t, theta=None, method="dopri5", rtol=DEFAULT_RTOL, atol=DEFAULT_ATOL, **options):
    """Solve dz/dt = f(t, z, theta) and return the states at the times ``t``.

    Parameters are those of :func:`solve`.

    Returns
    -------
    z : array, shape (len(t), *z0.shape)
    """
    return solve(f, z0, t, theta, method=method, rtol=rtol, atol=atol, **options).z


def solve(f, z0, t, theta=None, method="dopri5", rtol=DEFAULT_RTOL, atol=DEFAULT_ATOL, *,
          step_size=None, n_steps=None, first_step=None, max_steps=DEFAULT_MAX_STEPS,
          min_step=0.0, trace=False, dense=False, norm=None, keep_grid=True, batch="shared"):
    """Solve the initial value problem dz/dt = f(t, z, theta), z(t[0]) = z0.

    Parameters
    ----------
    f : callable
        ``f(t, z, theta) -> dz/dt`` (time first, as SciPy and torchdiffeq; the paper
        writes f(z, t, θ)). Must return the shape and dtype of z.
    z0 : array, shape (D,) or (B, D) or any shape f accepts
        Initial state at t[0].
    t : array, shape (N,), N >= 1
        Output times, strictly increasing or strictly decreasing; t[0] is the initial time.
    theta : array or tuple/list/dict of arrays, optional
        Parameters passed through to f.
    method : str or ButcherTableau
        One of :data:`refnode.methods.METHODS` (default ``"dopri5"``).
    rtol, atol : float or array broadcastable to z0
        Error tolerances of adaptive methods (see :mod:`refnode.step_size`).
    step_size : float, optional
        Fixed-grid solve: the largest step; each output interval is cut into equal steps.
    n_steps : int, optional
        Fixed-grid solve: the number of equal steps per output interval.
    first_step : float, optional
        Initial step of an adaptive solve (default: Hairer's starting step, 1 extra NFE).
    max_steps : int
        Most attempted steps of an adaptive solve before MaxStepsExceededError.
    min_step : float
        Smallest |h| allowed before StepSizeUnderflowError (never below 10 ulps of t).
    trace : bool
        Record every attempted step in ``Solution.trace``.
    dense : bool
        Keep every step so that ``Solution.dense(tau)`` can evaluate the solution anywhere.
    norm : callable, optional
        ``norm(error, y0, y1) -> float`` replacing the RMS error ratio (the adjoint uses
        it for its seminorm).
    keep_grid : bool
        Record the accepted step points in ``Solution.grid`` (one float per step; the
        discrete adjoint replays them). False keeps the memory of a solve independent of
        its number of steps, as the continuous adjoint needs.
    batch : {"shared", "independent"}
        For a batch z0 of shape (B, ...): one step size for the whole batch ("shared",
        the default), or a step size, accept/reject and stats per sample
        ("independent", adaptive methods only; f then receives t of shape (B,)).
        See :mod:`refnode.independent`.

    Returns
    -------
    Solution
        ``z`` of shape (N, *z0.shape), ``stats``, and the options' extras.

    Raises
    ------
    InputError
        Before any work, for invalid arguments or dynamics of the wrong shape/dtype.
    NonFiniteStateError, StepSizeUnderflowError, MaxStepsExceededError
        When the solve fails; the message names the time reached and what to try.
    """
    tableau = get_method(method)
    t, direction = check_times(t)
    z0 = check_state(z0)
    check_tolerances(rtol, atol, z0)
    fixed = step_size is not None or n_steps is not None
    if step_size is not None and n_steps is not None:
        raise InputError("give step_size or n_steps, not both.")
    if step_size is not None and not (np.isfinite(step_size) and step_size > 0):
        raise InputError(f"step_size must be a positive number; got {step_size!r}.")
    if n_steps is not None:
        n_steps = check_positive_int(n_steps, "n_steps")
    if not fixed and not tableau.adaptive:
        raise InputError(f"method {tableau.name!r} has no error estimate, so it needs a grid: "
                         f"pass step_size= or n_steps=, or use an adaptive method "
                         f"({', '.join(ADAPTIVE_METHODS)}).")
    max_steps = check_positive_int(max_steps, "max_steps")
    if batch != "shared":
        from .independent import check_independent, solve_independent
        check_independent(batch, z0, fixed, trace, dense)
        return solve_independent(f, tableau, z0, t, direction, theta, rtol, atol,
                                 first_step=first_step, max_steps=max_steps,
                                 min_step=min_step, norm=norm)
    k1 = f(float(t[0]), z0, theta)      # times reach f as Python floats, which never
    check_derivative(k1, z0, t[0])      # promote a float32 state (NumPy's NEP 50)
    if fixed:
        return solve_fixed(f, tableau, z0, t, theta, k1, step_size, n_steps, trace, keep_grid)
    options = dict(first_step=first_step, max_steps=max_steps, min_step=min_step,
                   trace=trace, dense=dense, norm=norm, keep_grid=keep_grid)
    return solve_adaptive(f, tableau, z0, t, direction, theta, k1, rtol, atol, **options)


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
    times = t.tolist()                  # Python floats: see solve
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


def all_finite(y):
    """True if every entry of the state (an array or a tree of arrays) is finite."""
    return all(bool(to_numpy(array_module(leaf).all(array_module(leaf).isfinite(leaf))))
               for leaf in tree_leaves(y))


def expand(y):
    """y with a new leading axis of length 1 (arrays or trees)."""
    return tree_map(lambda leaf: leaf[None], y)


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


def error_power(tableau):
    """q, the power of h in the error estimate: p̂ + 1, or 8 for dop853's combined estimate."""
    if getattr(tableau, "e3_float", None) is not None:
        return 8
    return min(tableau.order, tableau.error_order) + 1


def solve_adaptive(f, tableau, y0, t, direction, theta, k1, rtol, atol, *, first_step=None,
                   max_steps=DEFAULT_MAX_STEPS, min_step=0.0, trace=False, dense=False, norm=None,
                   keep_grid=True):
    """Adaptive driver: try a step, accept it if its error ratio is <= 1, adapt h.

    Outputs inside an accepted step come from dense output; the last step is shortened
    to land exactly on t[-1]. Arguments as in :func:`solve` (``k1`` = f(t[0], y0)).
    """
    q = error_power(tableau)
    if norm is None:
        norm = lambda e, y_a, y_b, e3=None: error_ratio(e, y_a, y_b, rtol, atol, e3)
    t_end = float(t[-1])
    if first_step is None and len(t) > 1:
        h = initial_step(f, float(t[0]), y0, k1, theta, direction, q, rtol, atol,
                         norm=lambda x, y: norm(x, y, y))
        nfe = 2
    else:
        h, nfe = direction * abs(first_step or 0.0), 1
    t_n, y, blocks, i_out = float(t[0]), y0, [expand(y0)], 1
    grid = [t_n] if keep_grid else None
    records, steps = [] if trace else None, [] if dense else None
    n_accepted = n_rejected = nonfinite = 0
    rejected_last, last = False, None
    while i_out < len(t):
        h = guard_step(t_n, h, t_end, direction, min_step, n_accepted + n_rejected, max_steps,
                       last, rtol, atol)
        y1, error, k = rk_step(f, tableau, t_n, y, h, theta, k1)
        nfe += tableau.stages - 1
        error3 = weighted_sum(h, dop853_terms(tableau, k)) if q == 8 else None
        ratio = norm(error, y, y1, error3) if q == 8 else norm(error, y, y1)
        last = (error, y, y1)
        nonfinite = nonfinite + 1 if not np.isfinite(ratio) else 0
        if nonfinite > MAX_NONFINITE_RETRIES:
            raise NonFiniteStateError(
                f"the state became non-finite at every trial step from t = {t_n!r} "
                f"(last h = {h!r}, after {MAX_NONFINITE_RETRIES} shrinks). Check the dynamics "
                "for overflow or a singularity near this time.", t=t_n)
        accepted = ratio <= 1.0
        if trace:
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
            t_n, y, k1 = t_next, y1, f1
            if keep_grid:
                grid.append(t_n)
            n_accepted += 1
        else:
            n_rejected += 1
        h = h * step_factor(ratio, q, after_rejection=rejected_last or not accepted)
        rejected_last = not accepted
    stats = dict(nfe=nfe, n_steps=n_accepted + n_rejected, n_accepted=n_accepted,
                 n_rejected=n_rejected)
    dense_fn = DenseSolution(tableau, steps, direction) if dense else None
    return Solution(t=t, z=concatenate(blocks), stats=stats, trace=records, grid=grid,
                    dense=dense_fn)


def guard_step(t_n, h, t_end, direction, min_step, n_attempted, max_steps, last, rtol, atol):
    """The next trial step, shortened to end at t_end; raises when the solve cannot go on.

    Raises
    ------
    MaxStepsExceededError
        ``n_attempted`` reached ``max_steps``.
    StepSizeUnderflowError
        |h| fell below ``min_step`` or 10 float64 spacings of t_n.
    """
    if n_attempted >= max_steps:
        raise MaxStepsExceededError(failure_message(
            f"the solve reached max_steps = {max_steps} attempted steps", t_n, h, last, rtol,
            atol, "Raise max_steps, loosen rtol/atol, or check for stiffness (an explicit "
            "method needs tiny steps on stiff problems)."), t=t_n)
    h = clip_step(t_n, h, t_end, direction)
    if abs(h) < max(min_step, MIN_STEP_ULPS * np.spacing(t_n)) and t_n + h != t_end:
        raise StepSizeUnderflowError(failure_message(
            "the step size underflowed", t_n, h, last, rtol, atol,
            "The solution may blow up near this time (a singularity), or the tolerances are "
            "too tight for float64: loosen rtol/atol or check the dynamics."), t=t_n)
    return h


def clip_step(t_n, h, t_end, direction):
    """Shorten h so that the step does not pass t_end."""
    if (t_n + h - t_end) * direction > 0:
        return t_end - t_n
    return h


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


def dop853_terms(tableau, k):
    """[(e3_i, k_i)]: dop853's third-order error estimator weights with the stages."""
    return [(w, k_i) for w, k_i in zip(tableau.e3_float, k) if w != 0.0]


def failure_message(what, t_n, h, last, rtol, atol, advice, n_worst=3):
    """"<what> at t = ..., h = ...; worst components ...; <advice>"."""
    message = f"{what} at t = {t_n!r} with step size h = {h!r}."
    if last is not None and not isinstance(last[0], (tuple, list, dict)):
        error, y0, y1 = last
        scaled = np.abs(to_numpy(scaled_error(error, y0, y1, rtol, atol)))
        worst = np.argsort(scaled.ravel())[::-1][:n_worst]
        index = lambda i: tuple(int(j) for j in np.unravel_index(i, scaled.shape))  # noqa: E731
        parts = [f"{index(i)}: {scaled.ravel()[i]:.3g}" for i in worst]
        message += " Largest scaled errors of the last step (index: error/tolerance): " + ", ".join(parts) + "."
    return message + " " + advice
