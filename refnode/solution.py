"""The result of a solve: states at the requested times, statistics, an optional trace."""

from dataclasses import dataclass, field

from .dense_output import NoDenseSolution


@dataclass
class StepRecord:
    """One attempted step, for tutorials and diagnosis.

    Attributes
    ----------
    t : float
        Time at the start of the step.
    h : float
        Step size tried.
    error_ratio : float
        Scaled RMS error (accept when <= 1); ``nan`` for fixed-step methods.
    accepted : bool
    """

    t: float
    h: float
    error_ratio: float
    accepted: bool


@dataclass
class Solution:
    """What :func:`refnode.solve` returns.

    Attributes
    ----------
    t : array, shape (N,)
        The requested output times.
    z : array, shape (N, *z0.shape)
        The state at each output time; ``z[0]`` is ``z0``.
    stats : dict
        ``nfe`` (evaluations of f), ``n_steps`` (attempted), ``n_accepted``, ``n_rejected``.
    trace : list of StepRecord or None
        Every attempted step, when ``trace=True`` was asked for.
    grid : list of float or None
        The accepted step points t_0 < t_1 < ... (or decreasing): what the discrete
        adjoint and the autograd oracle replay (None when solved with keep_grid=False).
    dense : callable
        With ``dense=True``: ``sol.dense(tau)`` evaluates the interpolant at any time
        ``tau`` inside the solved interval. Without it, calling ``sol.dense`` raises an
        InputError that says so (and ``bool(sol.dense)`` is False).
    next_step : float or None
        Adaptive solves: the step the controller would try next (the step it wanted
        before the last one was shortened to land on t[-1]); a solve that continues
        from here can start with it instead of estimating a first step.
    """

    t: object
    z: object
    stats: dict
    trace: list = None
    grid: list = field(default_factory=list)
    dense: object = None
    next_step: float = None

    def __post_init__(self):
        if self.dense is None:
            self.dense = NoDenseSolution()

    @property
    def nfe(self):
        """Number of evaluations of f."""
        return self.stats["nfe"]
