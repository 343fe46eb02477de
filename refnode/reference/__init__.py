"""Reference problems with answers known in closed form, for checking solvers and gradients.

:mod:`refnode.reference.linear`: the linear ODE dz/dt = A z, its solution by the matrix
exponential and the exact gradients of a loss on several output times.
"""

from .linear import (LinearDynamics, exact_gradients, expm, expm_frechet, linear_loss,
                     linear_solution)

__all__ = ["LinearDynamics", "exact_gradients", "expm", "expm_frechet", "linear_loss",
           "linear_solution"]

# Named reference problems and their golden values (JSON files shipped in golden/):
# refnode.reference.problems, .golden, .golden_files; regenerate with
# ``python -m refnode.reference.regenerate``.
from .golden import reference_values
from .golden_files import GOLDEN_DIR, SCHEMA_VERSION, as_arrays, load_golden
from .problems import PROBLEM_NAMES, Problem, get_problem

__all__ += ["GOLDEN_DIR", "PROBLEM_NAMES", "Problem", "SCHEMA_VERSION", "as_arrays", "get_problem",
            "load_golden", "reference_values"]
