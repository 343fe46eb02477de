"""Options as objects: how steps are controlled, and how the adjoint solves backwards.

``solve`` and ``odeint_vjp`` take the common arguments by name (method, rtol, atol, a
fixed grid, the batch mode). The rest travel in two small immutable objects, each
checked when it is built, so a bad value fails before any work with a message that
names it:

* :class:`StepControl` — limits of the step-size controller and its diagnostic trace;
* :class:`Adjoint` — the continuous adjoint's reverse solve, passed as
  ``gradient=Adjoint(...)`` (``gradient="adjoint"`` is ``Adjoint()``).
"""

from dataclasses import dataclass, replace

import numpy as np

from .checks import check_positive_int, check_real
from .errors import InputError
from .methods import get_method

#: Default cap on attempted steps of one solve (adaptive or fixed grid).
DEFAULT_MAX_STEPS = 100_000


@dataclass(frozen=True)
class StepControl:
    """Limits of the step-size controller.

    Parameters
    ----------
    first_step : float, optional
        |h| of the first adaptive step (default: Hairer's starting step, one extra NFE).
    max_steps : int
        Most attempted steps of one solve (adaptive or fixed grid) before
        MaxStepsExceededError; a fixed grid that needs more is refused before it starts.
    min_step : float
        Smallest |h| allowed before StepSizeUnderflowError (never below 10 ulps of t).
    trace : bool
        Record every attempted step in ``Solution.trace`` (shared batch mode).
    norm : callable, optional
        ``norm(error, y0, y1) -> ratio`` replacing the RMS error ratio of
        :func:`refnode.step_size.rms_norm` (accept a step where ratio <= 1). One
        signature for every method: a method with two error estimates (dop853) calls it
        once per estimate. ``error``, ``y0``, ``y1`` have the state's shape; return a
        float, or with ``batch="independent"`` an array of shape (B,), one per sample.
    """

    first_step: float = None
    max_steps: int = DEFAULT_MAX_STEPS
    min_step: float = 0.0
    trace: bool = False
    norm: object = None

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("first_step", check_real(self.first_step, "first_step", positive=True,
                                       allow_none=True))
        set_("max_steps", check_positive_int(self.max_steps, "max_steps"))
        set_("min_step", check_real(self.min_step, "min_step"))
        if not isinstance(self.trace, (bool, np.bool_)):
            raise InputError(f"trace must be True or False; got {self.trace!r}.")
        if self.norm is not None and not callable(self.norm):
            raise InputError(f"norm must be callable as norm(error, y0, y1); got "
                             f"{type(self.norm).__name__}.")


@dataclass(frozen=True)
class Adjoint:
    """The continuous adjoint (Algorithm 2) and the settings of its reverse solve.

    ``None`` means "as the forward solve": the forward's method, tolerances, fixed grid
    and step limit.

    Parameters
    ----------
    method : str or ButcherTableau, optional
        Method of the reverse solves.
    rtol, atol : float, optional
        Tolerances of the reverse solves.
    seminorm : bool
        Error control on z and a alone (Kidger et al. 2021): θ̄ and t̄ are integrals
        nothing reads back, so their error need not limit the step.
    reset : bool
        Restart z from the stored forward state at each output time (torchdiffeq, JAX).
        False is pure Algorithm 2: z reconstructed backwards all the way.
    max_steps : int, optional
        Most attempted steps of each reverse solve.
    step_size, n_steps : optional
        A fixed grid for the reverse solves (fixed-step methods).
    """

    method: object = None
    rtol: float = None
    atol: float = None
    seminorm: bool = False
    reset: bool = True
    max_steps: int = None
    step_size: float = None
    n_steps: int = None

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if self.method is not None:
            set_("method", get_method(self.method))
        for name in ("rtol", "atol", "step_size"):
            set_(name, check_real(getattr(self, name), name, positive=True, allow_none=True))
        for name in ("max_steps", "n_steps"):
            if getattr(self, name) is not None:
                set_(name, check_positive_int(getattr(self, name), name))
        for name in ("seminorm", "reset"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InputError(f"Adjoint {name} must be True or False; got "
                                 f"{getattr(self, name)!r}.")
        if self.step_size is not None and self.n_steps is not None:
            raise InputError("Adjoint: give step_size or n_steps, not both.")

    def resolved(self, method, rtol, atol, step_size, n_steps, max_steps):
        """A copy with every ``None`` filled in from the forward solve's settings."""
        fixed = self.step_size is not None or self.n_steps is not None
        return replace(
            self, method=self.method if self.method is not None else method,
            rtol=rtol if self.rtol is None else self.rtol,
            atol=atol if self.atol is None else self.atol,
            step_size=self.step_size if fixed else step_size,
            n_steps=self.n_steps if fixed else n_steps,
            max_steps=max_steps if self.max_steps is None else self.max_steps)


def as_control(control):
    """``control`` checked: None means the defaults (one shared immutable instance)."""
    if control is None:
        return DEFAULT_CONTROL
    if not isinstance(control, StepControl):
        raise InputError(f"control must be a refnode.StepControl; got {type(control).__name__}.")
    return control


#: The defaults, built (and checked) once.
DEFAULT_CONTROL = StepControl()
