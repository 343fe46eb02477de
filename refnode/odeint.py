"""The entry points ``solve`` and ``odeint``: check everything, then hand over to a driver.

* :func:`refnode.drivers.solve_fixed` — a fixed grid (``step_size=`` or ``n_steps=``);
* :func:`refnode.drivers.solve_adaptive` — error control with one step size for the whole
  state (``batch="shared"``, the default and what torchdiffeq does);
* :func:`refnode.independent.solve_independent` — error control with a step size per
  sample of a batch (``batch="independent"``).

All three run the same step arithmetic (:mod:`refnode.rk_step`, :mod:`refnode.step_size`,
:mod:`refnode.dense_output`); the method computes its own error ratio.
"""

from typing import NamedTuple

import numpy as np

from .checks import (CheckedNorm, check_positive_int, check_real, check_state,
                     check_theta_tree, check_times, check_tolerances, first_derivative)
from .dynamics import CheckedDynamics
from .drivers import fixed_grid, solve_adaptive, solve_fixed
from .errors import InputError
from .independent import check_independent, solve_independent
from .methods import ADAPTIVE_METHODS, get_method
from .options import StepControl, as_control
from .step_size import rms_norm

#: Default relative and absolute tolerances (as in the public API contract).
DEFAULT_RTOL, DEFAULT_ATOL = 1e-7, 1e-9
#: The batch modes of :func:`solve`.
BATCH_MODES = ("shared", "independent")


def odeint(f, z0, t, theta=None, method="dopri5", rtol=None, atol=None, *,
           step_size=None, n_steps=None, control=None, dense=False, batch="shared"):
    """Solve dz/dt = f(t, z, theta) and return the states at the times ``t``.

    Parameters are those of :func:`solve` (``dense`` is checked, and unused here).

    Returns
    -------
    z : array, shape (len(t), *z0.shape)
    """
    return solve(f, z0, t, theta, method=method, rtol=rtol, atol=atol, step_size=step_size,
                 n_steps=n_steps, control=control, dense=dense, batch=batch).z


def solve(f, z0, t, theta=None, method="dopri5", rtol=None, atol=None, *,
          step_size=None, n_steps=None, control=None, dense=False, batch="shared"):
    """Solve the initial value problem dz/dt = f(t, z, theta), z(t[0]) = z0.

    Parameters
    ----------
    f : callable
        ``f(t, z, theta) -> dz/dt`` (time first, as SciPy and torchdiffeq; the paper
        writes f(z, t, θ)). Must return the shape and dtype of z at every time.
    z0 : array, shape (D,) or (B, D) or any shape f accepts
        Initial state at t[0] (real floating point: float64, float32).
    t : array, shape (N,), N >= 1
        Output times, strictly increasing or strictly decreasing; t[0] is the initial time.
    theta : array or tuple/list/dict of arrays, optional
        Parameters passed through to f.
    method : str or ButcherTableau
        One of :data:`refnode.methods.METHODS` (default ``"dopri5"``).
    rtol, atol : float or array broadcastable to z0, optional
        Error tolerances of adaptive methods (see :mod:`refnode.step_size`); None means
        :data:`DEFAULT_RTOL` = 1e-7, :data:`DEFAULT_ATOL` = 1e-9. A fixed grid has no error
        control, so tolerances given with ``step_size``/``n_steps`` are refused.
    step_size : float, optional
        Fixed-grid solve: the largest step; each output interval is cut into equal steps.
    n_steps : int, optional
        Fixed-grid solve: the number of equal steps per output interval.
    control : StepControl, optional
        ``first_step``, ``max_steps``, ``min_step``, ``trace`` (every attempted step
        in ``Solution.trace``) and ``norm`` (the error norm, one signature for every
        method); see :class:`refnode.StepControl`. A fixed grid takes ``max_steps`` and
        ``trace`` only (``first_step``, ``min_step`` or ``norm`` with it are refused).
    dense : bool
        Keep every step so that ``Solution.dense(tau)`` can evaluate the solution anywhere
        (adaptive solves only: a fixed grid with ``dense=True`` is refused).
    batch : {"shared", "independent"}
        For a batch z0 of shape (B, ...): one step size for the whole batch ("shared",
        the default), or a step size, accept/reject and stats per sample
        ("independent", adaptive methods only). In the independent mode f receives
        ``t`` of shape (B, 1, ..., 1), one time per row with as many axes as z, so
        that ``t * z`` pairs row b with time b, in the state's dtype (a float32 state
        sees its times to 6e-8 relative: keep t near 0 or solve in float64 when f
        depends on t far from 0); ``f.vjp`` returns ``a_t`` of shape
        (B,) (or of t's shape); per-sample data in ``theta`` (leaves whose leading axis
        is B) stays aligned with the rows: see :mod:`refnode.independent`.

    Returns
    -------
    Solution
        ``z`` of shape (N, *z0.shape), ``stats``, and the options' extras. ``Solution.t``
        is a float64 copy of ``t``.

    Raises
    ------
    InputError
        Before any work, for invalid arguments or dynamics of the wrong shape/dtype.
    NonFiniteStateError, StepSizeUnderflowError, MaxStepsExceededError
        When the solve fails; the message names the time reached and what to try.
    """
    problem = check_solve(f, z0, t, theta, method, rtol, atol, step_size, n_steps, control,
                          dense, batch)
    return solve_checked(problem)


class Problem(NamedTuple):
    """A solve's arguments after :func:`check_solve`: what :func:`solve_checked` runs."""

    f: CheckedDynamics         # the caller's f, its every value checked
    tableau: object
    z0: object
    t: object                  # float64 NumPy copy of the caller's times
    direction: float
    theta: object
    rtol: object
    atol: object
    step_size: float
    n_steps: int
    control: StepControl
    norm: object               # the error norm: control.norm checked, or the RMS norm
    dense: bool
    batch: str

    @property
    def fixed(self):
        """True for a fixed-grid solve."""
        return self.step_size is not None or self.n_steps is not None


def check_solve(f, z0, t, theta, method, rtol, atol, step_size, n_steps, control, dense, batch):
    """Every argument of :func:`solve` checked once, before any work: a :class:`Problem`."""
    control = as_control(control)
    check_batch(batch)
    if not callable(f):
        raise InputError(f"f must be callable as f(t, z, theta); got {type(f).__name__}.")
    f = CheckedDynamics(f)
    tableau = get_method(method)
    check_theta_tree(theta)
    t, direction = check_times(t)
    z0 = check_state(z0)
    step_size, n_steps = check_grid(tableau, t, step_size, n_steps, control)
    rtol, atol = tolerances(rtol, atol, step_size is not None or n_steps is not None)
    check_tolerances(rtol, atol, z0, per_sample=batch == "independent")
    if not isinstance(dense, (bool, np.bool_)):
        raise InputError(f"dense must be True or False; got {dense!r}.")
    if dense and (step_size is not None or n_steps is not None):
        raise InputError("dense=True keeps the steps of an adaptive solve; a fixed grid "
                         "(step_size/n_steps) keeps none: drop the grid, or dense=True.")
    per_sample = batch == "independent"
    if per_sample:
        check_independent(z0, step_size is not None or n_steps is not None, control.trace,
                          dense)
    norm = (CheckedNorm(control.norm, per_sample) if control.norm is not None
            else rms_norm(rtol, atol, per_sample=per_sample))
    return Problem(f, tableau, z0, t, direction, theta, rtol, atol, step_size, n_steps,
                   control, norm, bool(dense), batch)


def solve_checked(p, keep_states=False):
    """Run the driver for a checked :class:`Problem` (no checks here: see check_solve).

    ``keep_states`` keeps the state at every step point (``Solution.states``; the shared
    drivers only).
    """
    if p.batch == "independent":
        return solve_independent(p.f, p.tableau, p.z0, p.t, p.direction, p.theta, p.norm,
                                 p.control)
    k1 = first_derivative(p.f, float(p.t[0]), p.z0, p.theta)  # times reach f as Python
    if p.fixed:                                               # floats (NumPy's NEP 50)
        return solve_fixed(p.f, p.tableau, p.z0, p.t, p.theta, k1, p.step_size, p.n_steps,
                           p.control.trace, keep_states=keep_states)
    return solve_adaptive(p.f, p.tableau, p.z0, p.t, p.direction, p.theta, k1,
                          p.norm, p.control, dense=p.dense, keep_states=keep_states)


def tolerances(rtol, atol, fixed):
    """(rtol, atol) with the defaults for None; given with a fixed grid, refused.

    A fixed grid takes its steps whatever the error, so a tolerance there would be
    silently ignored (the defaults are kept in the checked problem, unused).
    """
    if fixed:
        given = [name for name, tol in (("rtol", rtol), ("atol", atol)) if tol is not None]
        if given:
            raise InputError(f"{' and '.join(given)} control the step size of an adaptive solve; "
                             "a fixed grid (step_size/n_steps) takes its steps whatever the "
                             f"error: drop {' and '.join(given)}, or the grid.")
    return (DEFAULT_RTOL if rtol is None else rtol), (DEFAULT_ATOL if atol is None else atol)


def check_batch(batch):
    if not isinstance(batch, str) or batch not in BATCH_MODES:
        raise InputError(f"batch must be 'shared' or 'independent'; got {batch!r}.")


def check_grid(tableau, t, step_size, n_steps, control):
    """(step_size, n_steps) checked (both None: adaptive); the grid's size capped.

    Raises
    ------
    InputError
        Both or a bad step_size/n_steps; a fixed-step method without a grid; a grid
        with an adaptive-only control (first_step, min_step, norm); a grid of more
        than ``control.max_steps`` steps (refused before it starts).
    """
    if step_size is not None and n_steps is not None:
        raise InputError("give step_size or n_steps, not both.")
    if step_size is not None:
        step_size = check_real(step_size, "step_size", positive=True)
    if n_steps is not None:
        n_steps = check_positive_int(n_steps, "n_steps")
    fixed = step_size is not None or n_steps is not None
    adaptive_only = [name for name, given in (("first_step", control.first_step is not None),
                                              ("min_step", control.min_step != 0.0),
                                              ("norm", control.norm is not None)) if given]
    if fixed and adaptive_only:
        raise InputError(f"StepControl({', '.join(adaptive_only)}=...) steers the adaptive step "
                         "size; a fixed grid (step_size/n_steps) has none to steer: drop "
                         f"{' and '.join(adaptive_only)}, or the grid.")
    if not fixed and not tableau.adaptive:
        raise InputError(f"method {tableau.name!r} has no error estimate, so it needs a grid: "
                         f"pass step_size= or n_steps=, or use an adaptive method "
                         f"({', '.join(ADAPTIVE_METHODS)}).")
    if fixed and len(t) > 1:
        total = sum(fixed_grid(t, step_size, n_steps))
        if total > control.max_steps:
            raise InputError(f"the fixed grid needs {total} steps, more than max_steps = "
                             f"{control.max_steps}: use a larger step_size (or fewer n_steps), "
                             "or raise the cap with control=StepControl(max_steps=...).")
    return step_size, n_steps


__all__ = ["odeint", "solve", "StepControl", "DEFAULT_RTOL", "DEFAULT_ATOL"]
