"""Golden values: every reference problem's answer, with its accuracy and provenance.

Where a closed form exists (:mod:`refnode.reference.closed_form`) it is the answer, with
accuracy :data:`CLOSED_FORM_ACCURACY`. Elsewhere each value is computed twice,
independently, and kept only where the two agree:

* states: dop853 at rtol = atol = 1e-13, and tsit5 at 1e-12 (another tableau, another
  step sequence);
* gradients: the discrete adjoint of that dop853 solve (the exact gradient of the
  computed solution), and the continuous adjoint (Algorithm 2) by dop853 at 1e-12.

The dop853 values are stored. The accuracy of each quantity is the relative
disagreement d = max|a − b| / max|b| of the two computations, times a safety factor,
and never below a floor: ``max(ACCURACY_SAFETY · d, ACCURACY_FLOOR)`` (for each ∂L/∂t_i
the scale is max_j |∂L/∂t_j|, as in :mod:`refnode.verify`). On the three
closed-form problems the same procedure's values lie within the accuracy it states
(tests/test_reference.py checks this), which is the evidence that d bounds the error.
"""

import numpy as np

from ..odeint import odeint
from ..gradients import odeint_vjp

#: The computations behind numerical golden values (module docstring).
REFERENCE_METHOD, REFERENCE_RTOL = "dop853", 1e-13
ADJOINT_METHOD, ADJOINT_RTOL = "dop853", 1e-12
STATE_CHECK_METHOD, STATE_CHECK_RTOL = "tsit5", 1e-12
#: Two computations that disagree by more than this (relative) are not golden: the
#: regeneration stops with an error instead of storing them.
AGREEMENT_MAX = 1e-8
#: accuracy = max(ACCURACY_SAFETY · disagreement, ACCURACY_FLOOR). The disagreement is
#: not a strict bound: the discrete adjoint's ∂L/∂t_i (the derivative of the dense-output
#: interpolant) converges more slowly than the adjoint's, and at rtol = 1e-10 it was off
#: the golden value by up to 3× the disagreement (tests/test_reference.py regenerates at
#: that tolerance). The factor 10 covers that. The floor covers the rounding error
#: accumulated over the steps: 1e-12 was exceeded (1.1e-12, ∂L/∂t_9 of the 25-time
#: ``backward`` problem, about a thousand dop853 steps at 1e-13), hence 1e-11.
ACCURACY_SAFETY, ACCURACY_FLOOR = 10.0, 1e-11
#: Relative accuracy claimed for closed-form values: the (6, 6) Padé expm has a backward
#: error of about 3.4e-16 (refnode.reference.linear); these small, well-conditioned
#: problems amplify it by far less than 300 (checked against 30-digit mpmath in the tests).
CLOSED_FORM_ACCURACY = 1e-13


class DisagreementError(RuntimeError):
    """Two independent computations of a golden value disagree beyond AGREEMENT_MAX."""


def reference_values(problem, rtol=REFERENCE_RTOL, adjoint_rtol=ADJOINT_RTOL,
                     state_check_rtol=STATE_CHECK_RTOL, spread=True):
    """The golden values of ``problem``: closed form where there is one, else computed twice.

    Returns
    -------
    dict
        ``states`` (N, *z0.shape); ``gradients`` {"z0", "theta": {name: array}, "t"};
        ``extras`` {name: array}; ``accuracy`` of the same layout (floats; one per t_i);
        ``provenance`` {"states": str, "gradients": str}; for a non-smooth field,
        ``spread`` (:func:`expected_spread`; left out with ``spread=False``).
    """
    if problem.closed_form is not None:
        return closed_form_values(problem)
    if problem.nonsmooth:
        return nonsmooth_values(problem, rtol, adjoint_rtol, state_check_rtol, spread)
    return numerical_values(problem, rtol, adjoint_rtol, state_check_rtol)


def closed_form_values(problem):
    """Values from ``problem.closed_form``, each with accuracy CLOSED_FORM_ACCURACY."""
    states, grads = problem.closed_form(problem.theta, problem.z0, problem.t, problem.cotangents)
    accuracy = dict(states=CLOSED_FORM_ACCURACY,
                    gradients=dict(z0=CLOSED_FORM_ACCURACY,
                                   theta={k: CLOSED_FORM_ACCURACY for k in grads["theta"]},
                                   t=[CLOSED_FORM_ACCURACY] * len(problem.t)))
    doc = " ".join((problem.closed_form.__doc__ or "").split())
    source = f"closed form, refnode.reference.closed_form.{problem.closed_form.__name__}: {doc}"
    provenance = dict(states=source, gradients=source)
    return _with_extras(problem, dict(states=states, gradients=grads, accuracy=accuracy,
                                      provenance=provenance))


def numerical_values(problem, rtol=REFERENCE_RTOL, adjoint_rtol=ADJOINT_RTOL,
                     state_check_rtol=STATE_CHECK_RTOL):
    """Two independent computations; the first is kept, their disagreement sets the accuracy."""
    g = problem.cotangents
    args = (problem.f, problem.z0, problem.t, problem.theta)
    states, vjp = odeint_vjp(*args, method=REFERENCE_METHOD, rtol=rtol, atol=rtol,
                             gradient="discrete")
    dz0, dtheta, dt = vjp(g)
    check = odeint(*args, method=STATE_CHECK_METHOD, rtol=state_check_rtol, atol=state_check_rtol)
    _, adjoint_vjp = odeint_vjp(*args, method=ADJOINT_METHOD, rtol=adjoint_rtol, atol=adjoint_rtol,
                                gradient="adjoint")
    a_z0, a_theta, a_t = adjoint_vjp(g)
    accuracy = _accuracies(problem.name, states, check, (dz0, dtheta, dt), (a_z0, a_theta, a_t))
    provenance = dict(
        states=f"{REFERENCE_METHOD} at rtol = atol = {rtol:g}; checked against "
               f"{STATE_CHECK_METHOD} at rtol = atol = {state_check_rtol:g}",
        gradients=f"discrete adjoint of the {REFERENCE_METHOD} solve at rtol = atol = {rtol:g}; "
                  f"checked against the continuous adjoint (Algorithm 2), {ADJOINT_METHOD} at "
                  f"rtol = atol = {adjoint_rtol:g}")
    values = dict(states=states, gradients=dict(z0=dz0, theta=dict(dtheta), t=dt),
                  accuracy=accuracy, provenance=provenance)
    return _with_extras(problem, values, extras_check=check)


#: The tolerances at which a non-smooth problem's expected spread is measured.
SPREAD_RTOLS = (1e-4, 1e-7, 1e-10)
SPREAD_METHOD = "dopri5"


def nonsmooth_values(problem, rtol=REFERENCE_RTOL, adjoint_rtol=ADJOINT_RTOL,
                     state_check_rtol=STATE_CHECK_RTOL, spread=True):
    """A field that is not differentiable everywhere: both gradients by the continuous adjoint.

    The discrete adjoint differentiates each RK step across a switch of the field with the
    derivative at its stages, and converges to the flow's gradient far more slowly than
    the adjoint (which solves the variational equation with error control). So the stored
    gradients are the adjoint's by dop853 at ``rtol``, checked against the adjoint by
    tsit5 at ``adjoint_rtol``; states as in :func:`numerical_values`. ``spread`` records
    how far refnode's own dopri5 solves land from these values (:func:`expected_spread`).
    """
    g, args = problem.cotangents, (problem.f, problem.z0, problem.t, problem.theta)
    states, vjp = odeint_vjp(*args, method=REFERENCE_METHOD, rtol=rtol, atol=rtol,
                             gradient="adjoint")
    dz0, dtheta, dt = vjp(g)
    check = odeint(*args, method=STATE_CHECK_METHOD, rtol=state_check_rtol, atol=state_check_rtol)
    _, check_vjp = odeint_vjp(*args, method=STATE_CHECK_METHOD, rtol=adjoint_rtol,
                              atol=adjoint_rtol, gradient="adjoint")
    c_z0, c_theta, c_t = check_vjp(g)
    accuracy = _accuracies(problem.name, states, check, (dz0, dtheta, dt), (c_z0, c_theta, c_t))
    provenance = dict(
        states=f"{REFERENCE_METHOD} at rtol = atol = {rtol:g}; checked against "
               f"{STATE_CHECK_METHOD} at rtol = atol = {state_check_rtol:g}",
        gradients=f"continuous adjoint (Algorithm 2), {REFERENCE_METHOD} at rtol = atol = "
                  f"{rtol:g}; checked against the continuous adjoint by {STATE_CHECK_METHOD} at "
                  f"rtol = atol = {adjoint_rtol:g} (the discrete adjoint converges too slowly "
                  "across the field's switches to serve as a check)")
    values = dict(states=states, gradients=dict(z0=dz0, theta=dict(dtheta), t=dt),
                  accuracy=accuracy, provenance=provenance)
    if spread:
        values["spread"] = expected_spread(problem, values)
    return _with_extras(problem, values, extras_check=check)


def expected_spread(problem, values, rtols=SPREAD_RTOLS):
    """How far refnode's dopri5 solves land from ``values`` at each rtol (atol = rtol).

    Returns ``{"method", "rtol": [...], "states", "gradients_adjoint",
    "gradients_discrete": [...]}``: the largest relative error over the quantities of
    that kind (each ∂L/∂t_i scaled by max_j |∂L/∂t_j|), one entry per rtol.
    """
    from ..verify import relative_error            # the measure verify reports
    spread = dict(method=SPREAD_METHOD, rtol=list(rtols), states=[], gradients_adjoint=[],
                  gradients_discrete=[])
    ref = values["gradients"]
    t_scale = float(np.max(np.abs(ref["t"])))
    for rtol in rtols:
        for gradient in ("adjoint", "discrete"):
            z, vjp = odeint_vjp(problem.f, problem.z0, problem.t, problem.theta,
                                method=SPREAD_METHOD, rtol=rtol, atol=rtol, gradient=gradient)
            dz0, dtheta, dt = vjp(problem.cotangents)
            errs = [relative_error(dz0, ref["z0"]), relative_error(dt, ref["t"], t_scale)]
            errs += [relative_error(dtheta[k], ref["theta"][k]) for k in ref["theta"]]
            spread[f"gradients_{gradient}"].append(max(errs))
        spread["states"].append(relative_error(z, values["states"]))
    return spread


def _accuracies(where, states, check, gradients, reference):
    """The accuracy entry of a golden file: states against ``check``, each gradient
    (dL/dz0, dL/dtheta[k], dL/dt[i]) against the same quantity from ``reference``."""
    (dz0, dtheta, dt), (r_z0, r_theta, r_t) = gradients, reference
    return dict(
        states=_accuracy(states, check, f"{where}: states"),
        gradients=dict(z0=_accuracy(dz0, r_z0, f"{where}: dL/dz0"),
                       theta={k: _accuracy(dtheta[k], r_theta[k], f"{where}: dL/dtheta[{k}]")
                              for k in dtheta},
                       t=[_accuracy(dt[i], r_t[i], f"{where}: dL/dt[{i}]", np.max(np.abs(dt)))
                          for i in range(len(dt))]))


def _accuracy(value, other, what, scale=None):
    """max(SAFETY · d, FLOOR), d = max|other − value| / scale (default max|value|)."""
    scale = np.max(np.abs(value)) if scale is None else scale
    d = float(np.max(np.abs(np.asarray(other) - value))) / scale
    if not d <= AGREEMENT_MAX:
        raise DisagreementError(f"{what}: the two computations disagree by {d:.3g} (relative), "
                                f"more than {AGREEMENT_MAX:g}; no golden value is stored.")
    return max(ACCURACY_SAFETY * d, ACCURACY_FLOOR)


def _with_extras(problem, values, extras_check=None):
    """Add the problem's derived outputs (e.g. log-densities) and their accuracy."""
    if problem.extras is None:
        values["extras"] = {}
        return values
    values["extras"] = problem.extras(values["states"])
    if extras_check is None:
        values["accuracy"]["extras"] = {k: CLOSED_FORM_ACCURACY for k in values["extras"]}
    else:
        other = problem.extras(extras_check)
        values["accuracy"]["extras"] = {k: _accuracy(v, other[k], f"{problem.name}: {k}")
                                        for k, v in values["extras"].items()}
    values["provenance"]["extras"] = "derived from the states (see the dynamics)"
    return values

