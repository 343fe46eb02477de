"""The rules of an adaptive step, written once for one step size or one per sample.

Both adaptive loops — :func:`refnode.drivers.solve_adaptive` (one h for the whole state)
and :mod:`refnode.independent.loop` (an h per sample) — call these functions; each takes
a Python float or a (B,) array for t, h and the error ratio (:mod:`refnode.per_sample`).

* landing: a step never passes the end time (:func:`clip_step`), and one that ends within
  rounding of it lands on it exactly (:func:`step_end`); the outputs a step reaches
  (:func:`outputs_reached`; where they lie in it is dense output's
  :func:`refnode.dense_output.step_fraction`);
* the controller's next step (:func:`next_step`) and the step carried into a continuing
  solve (:func:`carried_step`);
* the next step's first stage (:func:`end_derivative`, FSAL) and the cost of a step in
  evaluations of f (:func:`evaluations`);
* when the solve cannot go on (:func:`failure`): max_steps, non-finite steps, a step too
  short for min_step or for the float64 resolution of t — and the error each raises, with
  one message for both loops (:func:`failure_error`).
"""

import numpy as np

from .backend import array_module, to_numpy
from .errors import MaxStepsExceededError, NonFiniteStateError, StepSizeUnderflowError
from .params import tree_leaves
from .per_sample import isfinite, spacing, where
from .step_size import scaled_error, step_factor

#: Steps shorter than this many float64 spacings of the current t count as underflow
#: (SciPy's ``10 * np.abs(np.nextafter(t, direction * np.inf) - t)``).
MIN_STEP_ULPS = 10
#: Consecutive non-finite trial steps tolerated (each shrinks h by MIN_FACTOR) before
#: the solve gives up and raises NonFiniteStateError.
MAX_NONFINITE_RETRIES = 10
#: A step ending within this fraction of |h| of the end time lands on it exactly.
LANDING_TOLERANCE = 1e-14
#: A step too short for t's float64 resolution, yet at least this fraction of the
#: solve's span, is short only because |t| is large: the cause is the time resolution.
RESOLUTION_FRACTION = 1e-8

#: The codes of :func:`failure`.
OK, MAX_STEPS, NONFINITE, TOO_SHORT = 0, 1, 2, 3


def clip_step(t_n, h, t_end, direction):
    """Shorten h so that the step does not pass t_end."""
    return where((t_n + h - t_end) * direction > 0, t_end - t_n, h)


def step_end(t_n, h, t_end):
    """The time a step of h from t_n reaches: t_end itself if it ends within rounding of it."""
    lands = (t_n + h == t_end) | (abs(t_end - t_n - h) <= abs(h) * LANDING_TOLERANCE)
    return where(lands, t_end, t_n + h)


def next_step(h, ratio, q, rejected_last):
    """The controller's next trial step: no growth right after a rejection."""
    return h * step_factor(ratio, q, after_rejection=where(ratio <= 1.0, rejected_last, True))


def carried_step(proposed, h, h_new):
    """The step a continuing solve should start with, after an accepted step of h.

    The controller's proposal ``h_new``, or the step it ``proposed`` before h was shortened
    to land on the end time, if that was longer.
    """
    return where((h != proposed) & (abs(proposed) > abs(h_new)), proposed, h_new)


def count_nonfinite(count, ratio):
    """Consecutive non-finite trial steps: one more if this ratio is NaN or inf, else 0."""
    return where(isfinite(ratio), 0, count + 1)


def end_derivative(f, tableau, t_next, y1, theta, k):
    """f(t_next, y1) for the next step's first stage: the last stage itself if FSAL."""
    return k[-1] if tableau.fsal else f(t_next, y1, theta)


def n_extra_stages(tableau):
    """The evaluations of f the interpolant needs beyond the step's own stages."""
    return 0 if tableau.dense is None else len(tableau.dense.A_extra)


def evaluations(tableau, accepted, extra):
    """Evaluations of f a trial step costs (its first stage is the previous step's last).

    s − 1 stages; one more at the end of an accepted step unless the method is FSAL; the
    interpolant's extra stages if they were taken (``extra``: an output inside the step).
    """
    return (tableau.stages - 1 + accepted * (0 if tableau.fsal else 1)
            + extra * n_extra_stages(tableau))


def output_inside(times, i_out, t_next, direction):
    """True if the next output time t[i_out] lies strictly before the step's end t_next."""
    n = times.shape[0]
    return (i_out < n) & ((times[where(i_out < n, i_out, n - 1)] - t_next) * direction < 0)


def outputs_reached(times, t_next, direction):
    """The index of the first output time after t_next (outputs up to t_next are reached)."""
    signed = direction * times
    if isinstance(signed, np.ndarray):      # NumPy's method: its function adds ~1 µs a call
        return signed.searchsorted(direction * t_next, side="right")
    return array_module(signed).searchsorted(signed, direction * t_next, side="right")


def failure(t_n, h, t_end, n_attempted, nonfinite, control):
    """Why the step h from t_n cannot be tried (a code: OK when it can).

    MAX_STEPS: ``control.max_steps`` steps were attempted. NONFINITE: the last
    MAX_NONFINITE_RETRIES trial steps were all non-finite, or h became too short while
    they were. TOO_SHORT: |h| is below ``control.min_step`` or 10 float64 spacings of
    t_n (and the step does not land on t_end).
    """
    short = ((abs(h) < MIN_STEP_ULPS * spacing(t_n, h)) | (abs(h) < control.min_step)) & (
        t_n + h != t_end)
    nonfinite_steps = (nonfinite > MAX_NONFINITE_RETRIES) | (short & (nonfinite > 0))
    return where(n_attempted >= control.max_steps, MAX_STEPS,
                 where(nonfinite_steps, NONFINITE, short * TOO_SHORT))


def failure_error(code, t_n, h, span, last, control, norm, sample=None):
    """The exception for a failure ``code`` at one time (host floats), its one message.

    Parameters
    ----------
    code : int
        From :func:`failure`.
    t_n, h : float
        The time reached and the step that cannot be tried.
    span : (float, float)
        The solve's first and last time.
    last : tuple (error, y0, y1) or None
        The last trial step (one sample's rows), for the worst components and to tell a
        norm returning NaN from a non-finite f.
    control : StepControl
    norm : callable
    sample : int, optional
        The sample's row in the caller's batch (per-sample steps), named first.
    """
    t_n, h = float(t_n), float(h)
    prefix = "" if sample is None else f"sample {sample}: "
    if code == MAX_STEPS:
        return MaxStepsExceededError(prefix + failure_message(
            f"the solve reached max_steps = {control.max_steps} attempted steps", t_n, h, last,
            "Raise max_steps (StepControl(max_steps=...)), loosen rtol/atol, or check for "
            "stiffness (an explicit method needs tiny steps on stiff problems).", norm), t=t_n)
    if code == NONFINITE:
        return NonFiniteStateError(prefix + nonfinite_message(t_n, h, last), t=t_n)
    return StepSizeUnderflowError(prefix + too_short_message(t_n, h, span, last, control, norm),
                                  t=t_n)


def nonfinite_message(t_n, h, last):
    if last is not None and all(all_finite(x) for x in last):
        return (f"the error norm returned NaN or inf for the finite step from t = {t_n!r} "
                f"(down to h = {h!r}): a norm must return a number >= 0, finite for finite "
                "arrays. Check the norm (StepControl(norm=...)).")
    return (f"f or the state became non-finite (NaN or inf) at every trial step from t = "
            f"{t_n!r}, down to h = {h!r}: the dynamics return non-finite values there. "
            "Check f near this time (a division by zero, a log of a negative number, "
            "overflow).")


def too_short_message(t_n, h, span, last, control, norm):
    """min_step, the float64 resolution of t, or an underflow (a singularity, tight tolerances)."""
    gap = float(spacing(t_n, h))
    if abs(h) < control.min_step:
        return (f"the step size h = {h!r} at t = {t_n!r} fell below min_step = "
                f"{control.min_step!r}: the error control needs shorter steps there. Lower "
                "min_step (StepControl(min_step=...)) or loosen rtol/atol.")
    if abs(h) >= RESOLUTION_FRACTION * abs(span[1] - span[0]):
        return (f"the step size h = {h!r} at t = {t_n!r} is below the time resolution of "
                f"float64 there (neighbouring times are {gap!r} apart, and a step needs "
                f"{MIN_STEP_ULPS} of them): |t| is too large for the step. Shift the time "
                f"origin: solve from 0 to {span[1] - span[0]!r} (t - {span[0]!r}), adding the "
                "offset inside f if it depends on t.")
    return failure_message(
        "the step size underflowed", t_n, h, last,
        f"Steps shorter than {MIN_STEP_ULPS} float64 spacings of t ({MIN_STEP_ULPS * gap!r} "
        "here) cannot be taken. The solution may blow up near this time (a singularity), or "
        "the tolerances are too tight for the state's precision: loosen rtol/atol or check "
        "the dynamics.", norm)


def all_finite(x):
    """True if every entry of an array or a tree of arrays is finite (host copy)."""
    return all(bool(np.all(np.isfinite(to_numpy(leaf)))) for leaf in tree_leaves(x))


def failure_message(what, t_n, h, last, advice, norm=None, n_worst=3):
    """"<what> at t = ..., h = ...; worst components ...; <advice>".

    The worst components are named when the norm is the RMS norm (its rtol, atol known).
    """
    message = f"{what} at t = {t_n!r} with step size h = {h!r}."
    rtol, atol = getattr(norm, "rtol", None), getattr(norm, "atol", None)
    if last is not None and rtol is not None and not isinstance(last[0], (tuple, list, dict)):
        error, y0, y1 = (to_numpy(x) for x in last)
        scaled = np.abs(scaled_error(error, y0, y1, rtol, atol))
        worst = np.argsort(scaled.ravel())[::-1][:n_worst]
        parts = [f"{index(i, scaled.shape)}: {scaled.ravel()[i]:.3g}" for i in worst]
        message += (" Largest scaled errors of the last step (index: error/tolerance): "
                    + ", ".join(parts) + ".")
    return message + " " + advice


def index(i, shape):
    return tuple(int(j) for j in np.unravel_index(i, shape))
