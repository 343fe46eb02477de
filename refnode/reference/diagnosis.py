"""The likely cause of a failed quantity, from its numbers (docs/verify.md, "Reading a failure").

``refnode verify`` is a judge; these functions make it a diagnostician too. Each looks for
one pattern that a wrong implementation leaves, and names it only where the numbers show
it — the failing value, corrected by the pattern, would pass the same tolerance:

* a constant factor: −1 (a sign error), B or 1/B (a batch sum against a mean), other
  integers (:func:`refnode.testing.factor_hint`, shared with ``check_vjp``); zero;
* a transpose (:func:`refnode.testing.is_transpose`);
* along the output times: values shifted by one index, in reverse order, or wrong at
  a few indices only; the first output time left out;
* per problem: the states pass and the gradients fail (the backward pass is wrong), or
  both fail (fix the forward solve first).
"""

import numpy as np

from ..testing import factor_hint, is_transpose, relative_error

#: Where the report points for the conventions behind these causes.
SEE = 'docs/verify.md, "Reading a failure"'


def quantity_hint(got, ref, tol, scale=None, batch=None, gradient=True):
    """The likely cause of ``got`` failing against ``ref`` (same shape), or "".

    Parameters
    ----------
    got, ref : ndarray
        The implementation's value and the golden one, of one shape.
    tol : float
        The quantity's tolerance on the relative error.
    scale : float, optional
        The relative error's denominator (default max|ref|).
    batch : int, optional
        The problem's batch size B.
    gradient : bool
        Whether ``got`` is a gradient: only then are integer factors read as a sum or a
        mean (a state off by a factor is just that).
    """
    if not np.all(np.isfinite(got)):
        return "not finite (NaN or inf)"
    if not np.any(got) and np.any(ref):
        return "all zero: is it computed at all?"
    if is_transpose(got, ref, rtol=max(tol, 1e-9)):
        return "the transpose of the golden value"
    factor = _fitted_factor(got, ref)
    if factor is None or relative_error(got / factor, ref, scale) > tol:
        return ""
    named = factor_hint(factor, batch, rtol=max(1e-3, 2.0 * tol))
    if named and not gradient and "sign" not in named:
        named = None
    if named or np.size(ref) == 1:                 # one number is always a multiple of another
        return named or ""
    return f"got ≈ {factor:.4g} × golden: off by a constant factor"


def time_hint(got, ref, tol, scale=None):
    """For a quantity indexed by output time first (states, ∂L/∂t): a shift, a reversal,
    or the few indices that are wrong; "" when none of these shows."""
    n = len(ref)
    if n < 2:
        return ""
    if relative_error(got[1:], ref[:-1], scale) <= tol:
        return "shifted by one output time: got[i] = golden[i - 1]"
    if relative_error(got[:-1], ref[1:], scale) <= tol:
        return "shifted by one output time: got[i] = golden[i + 1]"
    if relative_error(got[::-1], ref, scale) <= tol:
        return "the output times in reverse order"
    wrong = [i for i in range(n) if relative_error(got[i], ref[i], _scale(ref, scale)) > tol]
    if 0 < len(wrong) <= max(1, n // 4):
        shown = ", ".join(str(i) for i in wrong[:5]) + (", ..." if len(wrong) > 5 else "")
        return f"wrong only at output time{'s' if len(wrong) > 1 else ''} i = {shown} of 0..{n - 1}"
    return ""


def shape_hint(got, ref, tol):
    """Why ``got`` has the wrong shape, where its values show it (e.g. the transpose), or ""."""
    got = np.asarray(got, dtype=float)
    if got.ndim > ref.ndim:
        return "a missing sum over the batch?"
    if got.ndim == 2 and got.shape == ref.shape[::-1] and relative_error(got.T, ref) <= tol:
        return "the transpose of the golden value"
    if (ref.ndim >= 1 and got.shape == (ref.shape[0] - 1,) + ref.shape[1:]
            and relative_error(got, ref[1:]) <= tol):
        return "the first output time left out: z(t[0]) = z0 and dL/dt[0] belong in the results"
    return ""


def problem_hints(rows):
    """{problem: hint} from a report's rows: the states pass and gradients fail, or both fail."""
    hints = {}
    for problem in dict.fromkeys(r.problem for r in rows):
        mine = [r for r in rows if r.problem == problem]
        state = [r.status for r in mine if r.quantity == "state"]
        gradients_fail = any(r.status == "FAIL" and r.quantity.startswith("dL/") for r in mine)
        if state == ["ok"] and gradients_fail:
            hints[problem] = ("the states pass and gradients fail: the forward solve is right, "
                              "the error is in the backward pass (the VJP of f, the adjoint, or "
                              "a convention)")
        elif state == ["FAIL"] and gradients_fail:
            hints[problem] = ("the states fail too: fix the forward solve first (solve at the "
                              "rtol and atol asked for); gradients of wrong states are wrong")
    return hints


def _fitted_factor(got, ref):
    """The c minimising |got − c · ref| (least squares), or None when it is 0 or undefined."""
    r, g = np.ravel(ref), np.ravel(got)
    rr = float(r @ r)
    if rr == 0.0:
        return None
    c = float(g @ r) / rr
    return c if c != 0.0 and np.isfinite(c) else None


def _scale(ref, scale):
    return float(np.max(np.abs(ref))) if scale is None else scale
