"""Reference problems with answers known in closed form, for checking solvers and gradients.

:mod:`refnode.reference.linear`: the linear ODE dz/dt = A z, its solution by the matrix
exponential and the exact gradients of a loss on several output times.
"""

from .linear import (LinearDynamics, exact_gradients, expm, expm_frechet, linear_loss,
                     linear_solution)

__all__ = ["LinearDynamics", "exact_gradients", "expm", "expm_frechet", "linear_loss",
           "linear_solution"]
