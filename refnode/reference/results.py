"""Checks on what a verified implementation hands back, and on the tolerances it claims.

``refnode verify`` must never be talked into passing a wrong answer, and never end in a
raw traceback on odd input. Three rules, each raising :class:`~refnode.errors.InputError`
(exit status 2 from the command):

* :func:`check_tolerances`: the verdict tol = C · rtol + accuracy is meaningful only while
  C · rtol is well below the size of the errors it has to catch;
* :func:`real_array`: every returned quantity is a real, numeric, rectangular array
  (complex values are refused, not cut to their real part);
* :func:`call_for_problem` (and :func:`run_user_code` beneath it): whatever the verified
  code does other than return — raise, call ``sys.exit``, raise ``KeyboardInterrupt``
  itself — is reported with the problem it was solving and where it happened; what it
  prints goes to stderr, so stdout carries verify's report alone. A real Ctrl-C (SIGINT
  received, :class:`InterruptWatch`) is not the callable's doing: it propagates.
"""

import contextlib
import math
import sys
import traceback
from collections.abc import Mapping

import numpy as np

from ..errors import InputError
from ..interrupt import InterruptWatch

#: Largest C · rtol accepted. A wrong gradient is off by O(1): a sign flip by 2, a mean
#: taken for a sum over a batch of B by 1 − 1/B >= 0.5, states scaled by 3 by 2. A
#: tolerance of 0.1 still fails all of them; a larger one could pass them.
MAX_TOLERANCE = 0.1
#: Largest rtol accepted. The rule assumes the solver's global error is a modest multiple
#: of rtol, which holds only in the asymptotic regime of small steps (rtol well below 1;
#: SciPy's default 1e-3 is the loosest common setting).
MAX_RTOL = 1e-2
#: The kinds of NumPy dtype accepted as results: signed/unsigned integers and floats.
NUMERIC_KINDS = "iuf"


def check_tolerances(rtol, factor, atol=None):
    """Refuse tolerances under which the verdict would mean nothing (module docstring)."""
    for name, value in (("rtol", rtol), ("factor", factor), ("atol", atol)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise InputError(f"{name} must be a number, got {value!r}.")
        if not (math.isfinite(value) and value > 0.0):
            raise InputError(f"{name} must be a finite number > 0, got {value!r}; a verdict "
                             f"needs rtol <= {MAX_RTOL:g} and factor * rtol <= {MAX_TOLERANCE:g} "
                             "(docs/verify.md, the tolerance rule).")
    if rtol > MAX_RTOL:
        raise InputError(
            f"rtol = {rtol:g} is above {MAX_RTOL:g}: the tolerance rule (C * rtol) assumes the "
            "solver's error is a modest multiple of a small rtol. Solve at rtol <= "
            f"{MAX_RTOL:g} and verify at that rtol.")
    if factor * rtol > MAX_TOLERANCE:
        raise InputError(
            f"factor * rtol = {factor:g} * {rtol:g} = {factor * rtol:g} is above {MAX_TOLERANCE:g}: "
            "at that tolerance a wrong gradient (off by O(1): a sign flip by 2, a mean for a sum "
            "by >= 0.5) could pass. Use a smaller --factor or --rtol.")


def real_array(value, where):
    """``value`` as a float64 array, or an InputError naming ``where`` (e.g. 'decay: states').

    Refused: ragged nesting, strings and other non-numbers, booleans, and complex values.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, RecursionError) as err:
        raise InputError(f"{where}: not a rectangular array of numbers ({_short(err)}).") from err
    except Exception as err:                       # the value's own __array__ (user code)
        raise InputError(f"{where}: converting it to a NumPy array raised {type(err).__name__}: "
                         f"{_short(err).rstrip('.')}. Return NumPy arrays (a torch tensor: "
                         "t.detach().cpu().numpy()).") from err
    if array.dtype.kind == "c":
        raise InputError(f"{where}: complex values ({array.dtype}); refnode verify compares real "
                         "states and gradients. Return real arrays (the imaginary part is "
                         "not dropped silently).")
    if array.dtype.kind not in NUMERIC_KINDS:
        raise InputError(f"{where}: expected real numbers, got {_describe(value, array)}.")
    return array.astype(np.float64)


def call_for_problem(fn, problem):
    """``fn(problem)``, its results as plain dicts; anything else it does is an InputError.

    The message names the problem and the file:line where the callable raised, exited or
    was interrupted by its own ``KeyboardInterrupt`` (:func:`run_user_code`).
    """
    where = f"while solving problem {problem['name']!r}"
    results = run_user_code(lambda: plain_dicts(fn(problem)), "the verified callable", where)
    if results is not None and not isinstance(results, dict):
        raise InputError(f"the verified callable returned {type(results).__name__} for problem "
                         f"{problem['name']!r}; expected a dict {{'states', 'gradients', ...}} "
                         "or None to skip the problem.")
    return results


def plain_dicts(tree):
    """``tree`` with every mapping in it made a plain dict (leaves untouched)."""
    if isinstance(tree, Mapping):
        return {key: plain_dicts(value) for key, value in tree.items()}
    return tree


def run_user_code(thunk, who, where):
    """``thunk()``, run as someone else's code: its verdict cannot become verify's.

    What it prints goes to stderr. An exception, a ``sys.exit`` or a ``KeyboardInterrupt``
    it raises itself becomes an :class:`InputError` naming ``who`` and ``where`` and the
    file:line it came from; a real Ctrl-C (:class:`InterruptWatch`) propagates as
    ``KeyboardInterrupt``.
    """
    with InterruptWatch() as watch, contextlib.redirect_stdout(sys.stderr):
        try:
            return thunk()
        except KeyboardInterrupt as err:
            if watch.received or not watch.active:
                raise
            what = "raised KeyboardInterrupt itself (no Ctrl-C was received)"
            failure = err
        except SystemExit as err:
            what = f"called sys.exit({err.code!r})"
            failure = err
        except Exception as err:                   # the user's code: any exception
            what = f"raised {type(err).__name__}"
            failure = err
    detail = "" if isinstance(failure, (SystemExit, KeyboardInterrupt)) else f": {_short(failure)}"
    raise InputError(f"{who} {what} {where}{detail} (at {_origin(failure)}).") from failure


def _origin(err):
    """file:line of the innermost frame of ``err``'s traceback."""
    frames = traceback.extract_tb(err.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "an unknown place"


#: The groups of quantities a results dict may declare unsupported.
GROUPS = ("states", "z0", "theta", "t", "extras")


def unsupported_groups(results, name):
    """``results["unsupported"]`` checked: {group: reason}, groups from :data:`GROUPS`."""
    declared = (results.get("unsupported") or {}) if isinstance(results, dict) else {}
    if not isinstance(declared, dict) or not set(declared) <= set(GROUPS):
        raise InputError(f"{name}: 'unsupported' must map some of {', '.join(GROUPS)} to a "
                         f"reason, got {declared!r:.80}.")
    return {k: str(v) for k, v in declared.items()}


def _describe(value, array):
    if array.dtype.kind == "b":
        return "booleans"
    if array.dtype.kind == "O":
        return "a mix of values that are not all numbers"
    return f"{array.dtype.name} values such as {str(np.ravel(array)[:1].tolist())[:40]}"


def _short(err, limit=200):
    text = str(err) or type(err).__name__
    return text if len(text) <= limit else text[:limit] + "..."
