"""Exceptions raised by refnode. Every message says what happened and what to try."""

import os
import sys
import traceback


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


def describe_call_error(err, what, signature):
    """One sentence on why calling a user's function ``what`` raised ``err``.

    A TypeError raised by the call itself (no frame of the function entered: the wrong
    number or names of arguments) is a signature problem; anything raised inside the
    function's body is reported with the line that raised it, in the user's file (the
    deepest frame outside NumPy and autograd).

    Parameters
    ----------
    err : Exception
        Caught right where ``what`` was called.
    what : str
        How the function was called, e.g. ``"vjp(g, x, theta, t)"``.
    signature : str
        What the call expected, e.g. ``"the VJP accepts the state, theta and a cotangent"``.
    """
    frames = traceback.extract_tb(err.__traceback__)[1:]      # [0]: the caller's own frame
    if not frames and isinstance(err, TypeError):
        return f"calling {what} raised TypeError: {err}. Check that {signature}."
    libraries = _library_dirs()
    user = [f for f in frames if not (f.filename.startswith("<")       # <frozen importlib...>
                                      or os.path.abspath(f.filename).startswith(libraries))]
    where = f" at line {user[-1].lineno} of {user[-1].filename}" if user else ""
    return f"your {what} raised {type(err).__name__}{where}: {err}"


def shape_hint(got, expected):
    """Why a gradient of shape ``got`` may not match its argument's shape ``expected``.

    More axes than the argument: a batch axis left unsummed. The same axes with one
    length off: missing (or extra) rows or columns, e.g. the time column of a
    ConcatLinear weight. Returns "" when no pattern fits.
    """
    if len(got) > len(expected):
        return " Did you forget to sum over the batch axis?"
    if len(got) != len(expected):
        return ""
    differ = [axis for axis in range(len(got)) if got[axis] != expected[axis]]
    if len(differ) != 1:
        return ""
    axis = differ[0]
    what = ("column" if axis == len(got) - 1 and len(got) > 1 else
            "row" if axis == 0 and len(got) > 1 else "entry")
    n = expected[axis] - got[axis]
    if n > 0:
        last = " (the last one, the time column of [x, t]?)" if what == "column" and n == 1 else ""
        return f" It is missing {n} {what}{'s' if n > 1 else ''}{last} along axis {axis}."
    return f" It has {-n} {what}{'s' if -n > 1 else ''} too many along axis {axis}."


def _library_dirs():
    """Folders of the packages whose frames are never "the line that raised" (refnode's own,
    NumPy, autograd, CuPy): the user's call into them is."""
    names = ("numpy", "autograd", "cupy")
    files = [__file__] + [getattr(sys.modules.get(n), "__file__", None) for n in names]
    return tuple(os.path.dirname(os.path.abspath(f)) + os.sep for f in files if f)
