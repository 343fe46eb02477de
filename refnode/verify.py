"""Verify another ODE implementation's states and gradients against refnode's golden values.

Two ways in:

* a results file in the golden layout (:func:`results_from_file`):
  ``{"problems": {"linear": {"states": ..., "gradients": {"z0", "theta", "t"}}, ...}}``;
* a Python callable ``fn(problem: dict) -> dict | None`` (:func:`problem_dict` says what
  it receives; it returns ``{"states", "gradients": {"z0", "theta": {name: array}, "t"}}``,
  optionally ``"extras"``, or None to skip the problem).

Each quantity — the states, ∂L/∂z0, ∂L/∂θ per parameter, each ∂L/∂t_i, and the extras —
is compared by its relative error e = max|x − x_ref| / max|x_ref| against

    tol = TOLERANCE_FACTOR · rtol + accuracy,

``rtol`` the relative tolerance the implementation solved with, ``accuracy`` the golden
value's own stated accuracy. A solver with local error control at rtol makes a global
error of a modest multiple of rtol on these short, stable problems; refnode's adjoint
stays below 21·rtol over rtol = 1e-4 … 1e-10 (dopri5, tsit5, dop853), so the factor
100 leaves room for another controller and no room for a gradient that is wrong
(a wrong gradient is off by O(1)).
"""

import importlib
from collections import namedtuple

import numpy as np

from .errors import InputError
from .testing import relative_error  # noqa: F401 (the one definition; re-exported)
from .reference.golden_files import as_arrays, load_golden, read_json
from .reference.problems import PROBLEM_NAMES, get_problem
from .reference.results import (MAX_RTOL, MAX_TOLERANCE, call_for_problem,  # noqa: F401
                                check_tolerances, real_array, unsupported_groups)

#: tol = TOLERANCE_FACTOR · rtol + accuracy (module docstring for the measurement behind it).
TOLERANCE_FACTOR = 100.0

VerifyRow = namedtuple("VerifyRow", "problem quantity rel_err tolerance status detail")
VerifyRow.__doc__ = "One compared quantity: status is 'ok', 'FAIL' or 'skipped'."


def tolerance(rtol, accuracy, factor=TOLERANCE_FACTOR):
    """The tolerance a quantity must meet: factor · rtol + accuracy."""
    return factor * rtol + accuracy


def golden_quantities(golden):
    """(name, reference, accuracy, path into a results dict, scale) for each quantity.

    The scale of each ∂L/∂t_i is max_j |∂L/∂t_j|, that of the whole time gradient: one
    t_i's derivative can be small by cancellation, and its error is measured against the
    size of the vector it belongs to. Every other quantity is scaled by its own max|ref|.
    """
    g, acc = golden["gradients"], golden["accuracy"]
    items = [("state", golden["states"], acc["states"], ("states",), None),
             ("dL/dz0", g["z0"], acc["gradients"]["z0"], ("gradients", "z0"), None)]
    items += [(f"dL/dtheta[{k}]", v, acc["gradients"]["theta"][k], ("gradients", "theta", k), None)
              for k, v in g["theta"].items()]
    t_scale = float(np.max(np.abs(g["t"])))
    items += [(f"dL/dt[{i}]", g["t"][i], acc["gradients"]["t"][i], ("gradients", "t", i), t_scale)
              for i in range(len(g["t"]))]
    items += [(k, v, acc["extras"][k], ("extras", k), None) for k, v in golden["extras"].items()]
    return items


def _lookup(results, path):
    """results[path[0]][path[1]]... or None where an entry is absent."""
    node = results
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        if node is None:
            return None
    return node


def compare(name, golden, results, rtol, factor=TOLERANCE_FACTOR):
    """The rows of one problem: each golden quantity against ``results`` (nested dict).

    ``results["unsupported"]`` (optional) maps a group — "states", "z0", "theta", "t",
    "extras" — to the reason the implementation cannot give it: those rows say "n/s",
    neither pass nor fail. A golden file with an ``expected_spread`` (a non-smooth field)
    gets "spread" rows: the error beside the spread refnode itself shows, no verdict.
    """
    unsupported = unsupported_groups(results, name)
    rows, t_ok = _shape_rows(name, golden, results, rtol, factor, unsupported)
    for quantity, ref, accuracy, path, scale in golden_quantities(golden):
        tol = tolerance(rtol, accuracy, factor)
        group = path[1] if path[0] == "gradients" else path[0]
        if group in unsupported:
            rows.append(VerifyRow(name, quantity, float("nan"), tol, "n/s", unsupported[group]))
            continue
        if group == "t" and not t_ok:
            continue
        got = _lookup(results, path)
        if got is None:
            optional = path[0] == "extras"
            rows.append(VerifyRow(name, quantity, float("nan"), tol,
                                  "skipped" if optional else "FAIL", "not given"))
            continue
        got = real_array(got, f"{name}: {quantity}")
        if got.shape != np.shape(ref):
            hint = " (a missing sum over the batch?)" if got.ndim > np.ndim(ref) else ""
            rows.append(VerifyRow(name, quantity, float("inf"), tol, "FAIL",
                                  f"shape {got.shape}, expected {np.shape(ref)}{hint}"))
            continue
        err = relative_error(got, ref, scale)
        if "expected_spread" in golden:
            rows.append(_spread_row(name, quantity, group, err, golden["expected_spread"], rtol))
        else:
            rows.append(VerifyRow(name, quantity, err, tol, "ok" if err <= tol else "FAIL", ""))
    return rows


def _shape_rows(name, golden, results, rtol, factor, unsupported):
    """FAIL rows for a time gradient of the wrong length and for unknown parameter names.

    Returns (rows, whether the per-t_i rows can be compared).
    """
    rows, n = [], len(golden["t"])
    tol = tolerance(rtol, 0.0, factor)
    t_got = None if "t" in unsupported else _lookup(results, ("gradients", "t"))
    t_ok = True
    if t_got is not None:
        shape = real_array(t_got, f"{name}: dL/dt").shape
        if shape != (n,):
            rows.append(VerifyRow(name, "dL/dt", float("inf"), tol, "FAIL",
                                  f"shape {shape}, expected ({n},): one entry per output time"))
            t_ok = False
    theta = _lookup(results, ("gradients", "theta"))
    if isinstance(theta, dict) and "theta" not in unsupported:
        for key in sorted(set(theta) - set(golden["gradients"]["theta"]), key=str):
            rows.append(VerifyRow(name, f"dL/dtheta[{key}]", float("inf"), tol, "FAIL",
                                  "not a parameter of this problem"))
    return rows, t_ok


def _spread_row(name, quantity, group, err, spread, rtol):
    """A non-smooth problem's row: the error beside refnode's own spread at the nearest rtol."""
    rtols = np.asarray(spread["rtol"], dtype=np.float64)
    k = int(np.argmin(np.abs(np.log10(rtols) - np.log10(rtol))))
    if group in ("states", "extras"):
        expected = spread["states"][k]
    else:
        expected = max(spread["gradients_adjoint"][k], spread["gradients_discrete"][k])
    where = "within" if err <= expected else "beyond"
    return VerifyRow(name, quantity, err, expected, "spread",
                     f"{where} refnode's spread at rtol {rtols[k]:g}")


class VerifyReport:
    """The rows of a verification; ``str(report)`` is the table, ``passed`` the verdict."""

    HEADER = ("problem", "quantity", "rel err", "tolerance", "result")

    def __init__(self, rows, rtol, skipped=(), factor=TOLERANCE_FACTOR):
        self.rows, self.rtol, self.skipped, self.factor = list(rows), rtol, list(skipped), factor

    @property
    def failures(self):
        return [r for r in self.rows if r.status == "FAIL"]

    @property
    def passed(self):
        """No FAIL, and at least one quantity compared (n/s rows compare nothing)."""
        return not self.failures and any(r.status in ("ok", "spread") for r in self.rows)

    def __str__(self):
        cells = [self.HEADER] + [(r.problem, r.quantity, f"{r.rel_err:.2e}", f"{r.tolerance:.2e}",
                                  r.status + (f" ({r.detail})" if r.detail else ""))
                                 for r in self.rows]
        widths = [max(len(c[k]) for c in cells) for k in range(len(self.HEADER))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        head = (f"tolerance = {self.factor:g} * rtol + golden accuracy, rtol = {self.rtol:g}; "
                "rel err = max|x - ref| / max|ref|")
        return "\n".join([head, ""] + lines + [""] + self.summary())

    def summary(self):
        lines = [f"skipped (no results): {', '.join(self.skipped)}"] if self.skipped else []
        if not any(r.status in ("ok", "spread", "FAIL") for r in self.rows):
            return lines + ["FAILED: nothing was verified."]
        n_ns = sum(r.status == "n/s" for r in self.rows)
        n_spread = sum(r.status == "spread" for r in self.rows)
        if n_ns:
            lines.append(f"not supported by the implementation (neither pass nor fail): {n_ns} "
                         "quantities.")
        if n_spread:
            lines.append(f"non-smooth field, reported against refnode's own spread (neither pass "
                         f"nor fail; 'tolerance' is that spread): {n_spread} quantities.")
        for r in self.failures:
            why = r.detail or f"relative error {r.rel_err:.3g} > tolerance {r.tolerance:.3g}"
            lines.append(f"FAIL {r.problem}: {r.quantity}: {why}")
        n_ok = sum(r.status == "ok" for r in self.rows)
        n_rule = sum(r.status in ("ok", "FAIL") for r in self.rows)
        verdict = "PASSED" if self.passed else f"FAILED ({len(self.failures)} quantities)"
        return lines + [f"{verdict}: {n_ok} of {n_rule} quantities within tolerance."]


def problem_dict(name, rtol, atol):
    """What a verified callable receives: plain NumPy values and a NumPy dynamics.

    Keys: ``name``, ``description``, ``equation`` (str); ``f`` (``f(t, z, theta)``, NumPy,
    theta a dict of named arrays) and ``vjp`` (``vjp(t, z, theta, a) -> (a_z, a_theta,
    a_t)``); ``parameters`` (dict of arrays), ``z0``, ``t``, ``cotangents`` (arrays);
    ``rtol``, ``atol`` (floats: solve at these tolerances); ``extras`` (``extras(states)
    -> dict`` of derived outputs, e.g. the CNF's log-densities, or None).
    """
    problem = get_problem(name)
    return dict(name=name, description=problem.description, equation=problem.equation,
                f=problem.f, vjp=problem.f.vjp,
                parameters={k: np.array(v) for k, v in problem.theta.items()},
                z0=np.array(problem.z0), t=np.array(problem.t), cotangents=problem.cotangents,
                rtol=float(rtol), atol=float(atol), extras=problem.extras)


def verify_callable(fn, rtol, atol=None, names=PROBLEM_NAMES, golden_dir=None,
                    factor=TOLERANCE_FACTOR):
    """Call ``fn(problem_dict(...))`` on each problem and compare; returns a VerifyReport."""
    atol = rtol if atol is None else atol
    check_tolerances(rtol, factor, atol)
    rows, skipped = [], []
    for name in names:
        results = call_for_problem(fn, problem_dict(name, rtol, atol))
        if results is None:
            skipped.append(name)
            continue
        rows += compare(name, as_arrays(load_golden(name, golden_dir)), results, rtol, factor)
    return VerifyReport(rows, rtol, skipped, factor)


def verify_results(problems, rtol, names=None, golden_dir=None, factor=TOLERANCE_FACTOR):
    """Compare ``{name: results}`` (e.g. from :func:`results_from_file`); returns a VerifyReport."""
    check_tolerances(rtol, factor)
    unknown = sorted(set(problems) - set(PROBLEM_NAMES))
    if unknown:
        raise InputError(f"results for unknown problems {unknown}; the reference problems are "
                         f"{', '.join(PROBLEM_NAMES)}.")
    names = PROBLEM_NAMES if names is None else names
    rows, skipped = [], [n for n in names if n not in problems]
    for name in (n for n in names if n in problems):
        rows += compare(name, as_arrays(load_golden(name, golden_dir)), problems[name], rtol,
                        factor)
    return VerifyReport(rows, rtol, skipped, factor)


def results_from_file(path):
    """``{name: results}`` from a JSON file: ``{"problems": {name: {...}}}``, or one golden-layout
    document with a ``name``, or a list of such documents."""
    document = read_json(path)
    if isinstance(document, dict) and isinstance(document.get("problems"), dict):
        return document["problems"]
    documents = document if isinstance(document, list) else [document]
    if not all(isinstance(d, dict) and "name" in d for d in documents):
        raise InputError(f"{path}: expected {{\"problems\": {{name: results}}}}, a golden-layout "
                         "document with a \"name\", or a list of them (docs/verify.md).")
    return {d["name"]: d for d in documents}


def load_callable(spec):
    """``"package.module:function"`` -> the function."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"--callable must look like 'package.module:function', got {spec!r}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise InputError(f"cannot import {module_name!r} ({err}); is it on PYTHONPATH?") from err
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InputError(f"{module_name!r} has no callable {attr!r}.")
    return fn


def refnode_adjoint(problem, gradient="adjoint", method="dopri5"):
    """refnode itself as a verified callable: ``odeint_vjp`` with the continuous adjoint."""
    from .gradients import odeint_vjp
    z, vjp = odeint_vjp(problem["f"], problem["z0"], problem["t"], problem["parameters"],
                        method=method, rtol=problem["rtol"], atol=problem["atol"],
                        gradient=gradient)
    dz0, dtheta, dt = vjp(problem["cotangents"])
    extras = problem["extras"](z) if problem["extras"] is not None else {}
    return dict(states=z, gradients=dict(z0=dz0, theta=dtheta, t=dt), extras=extras)


def refnode_discrete(problem):
    """refnode itself with the discrete adjoint (the exact gradient of its solution)."""
    return refnode_adjoint(problem, gradient="discrete")
