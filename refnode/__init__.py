"""refnode: a readable NumPy reference implementation of Neural ODEs.

The public map::

    odeint(f, z0, t, theta)          states at the times t
    solve(f, z0, t, theta)           a Solution with states, stats and optional trace
    odeint_vjp(f, z0, t, theta)      the states and their vector-Jacobian product
    StepControl, Adjoint             options as objects: step limits; the adjoint's settings
    methods.METHODS                  every Butcher tableau, by name
    errors                           the exceptions refnode raises
"""

from . import errors, methods, nn, testing
from .errors import (InputError, MaxStepsExceededError, NonFiniteStateError, RefnodeError,
                     SolverError, StepSizeUnderflowError)
from .methods import METHODS, get_method
from .odeint import odeint, solve
from .options import Adjoint, StepControl
from .solution import Solution, StepRecord
from .tableau import ButcherTableau

__version__ = "0.1.0"
from .gradients import GRADIENTS, odeint_vjp
