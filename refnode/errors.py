"""Exceptions raised by refnode. Every message says what happened and what to try."""


class RefnodeError(Exception):
    """Base class of every refnode error."""


class InputError(RefnodeError, ValueError):
    """An argument is invalid; raised before any work is done."""


class SolverError(RefnodeError, RuntimeError):
    """A solve failed part-way. ``t`` is the time reached when it failed."""

    def __init__(self, message, t=None):
        super().__init__(message)
        self.t = t


class NonFiniteStateError(SolverError):
    """The state or its derivative became NaN or infinite."""


class StepSizeUnderflowError(SolverError):
    """The adaptive step size fell below the minimum step."""


class MaxStepsExceededError(SolverError):
    """The solve needed more steps than ``max_steps``."""
