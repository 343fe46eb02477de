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
(a wrong gradient is off by O(1)). A callable is asked to solve at atol =
:data:`ATOL_FACTOR` · rtol unless told otherwise.

A verification passes when nothing fails, at least one quantity was compared by that
rule, and at least one of them was a gradient — unless only the states were asked for
(``states_only``). A failure names its likely cause where the numbers show one
(:mod:`refnode.reference.diagnosis`).
"""

import importlib
import os
import sys
from collections import namedtuple

import numpy as np

from .errors import InputError
from .testing import relative_error  # noqa: F401 (the one definition; re-exported)
from .reference import diagnosis
from .reference.golden_files import as_arrays, load_golden, read_json
from .reference.problems import PROBLEM_NAMES, get_problem
from .reference.results import (MAX_RTOL, MAX_TOLERANCE, call_for_problem,  # noqa: F401
                                check_tolerances, real_array, run_user_code, unsupported_groups)

#: tol = TOLERANCE_FACTOR · rtol + accuracy (module docstring for the measurement behind it).
TOLERANCE_FACTOR = 100.0
#: atol = ATOL_FACTOR · rtol when none is given. Gradients live in channels smaller than
#: the states: at atol = rtol, refnode's own adjoint fails 5 to 18 of the stiff problem's
#: 81 ∂L/∂t_i (they multiply the fast mode's absolute error, up to atol, by 300) at every
#: rtol from 1e-4 to 1e-10; at atol = 1e-3 · rtol it passes every problem there with its
#: worst error at most 0.07 of the tolerance (docs/verify.md, "The default atol").
ATOL_FACTOR = 1e-3

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


def compare(name, golden, results, rtol, factor=TOLERANCE_FACTOR, states_only=False):
    """The rows of one problem: each golden quantity against ``results`` (nested dict).

    ``results["unsupported"]`` (optional) maps a group — "states", "z0", "theta", "t",
    "extras" — to the reason the implementation cannot give it: those rows say "n/s",
    neither pass nor fail. A golden file with an ``expected_spread`` (a non-smooth field)
    gets "spread" rows: the error beside the spread refnode itself shows, no verdict.
    With ``states_only`` the gradients are not compared (no rows). A failing row's
    ``detail`` names the likely cause where the numbers show one (:mod:`.diagnosis`).
    """
    unsupported = unsupported_groups(results, name)
    if states_only:
        unsupported = dict(unsupported, **{g: None for g in ("z0", "theta", "t")})
    rows, t_got = _shape_rows(name, golden, results, rtol, factor, unsupported)
    batch = golden["z0"].shape[0] if golden["z0"].ndim == 2 else None
    for quantity, ref, accuracy, path, scale in golden_quantities(golden):
        tol = tolerance(rtol, accuracy, factor)
        group = path[1] if path[0] == "gradients" else path[0]
        if group in unsupported:
            if unsupported[group] is not None:
                rows.append(VerifyRow(name, quantity, float("nan"), tol, "n/s", unsupported[group]))
            continue
        if group == "t" and t_got is None and _lookup(results, path[:2]) is not None:
            continue                                # its length failed in _shape_rows
        got = _lookup(results, path)
        if got is None:
            optional = path[0] == "extras"
            rows.append(VerifyRow(name, quantity, float("nan"), tol,
                                  "skipped" if optional else "FAIL", "not given"))
            continue
        got = real_array(got, f"{name}: {quantity}")
        if got.shape != np.shape(ref):
            hint = diagnosis.shape_hint(got, ref, tol)
            rows.append(VerifyRow(name, quantity, float("inf"), tol, "FAIL",
                                  f"shape {got.shape}, expected {np.shape(ref)}"
                                  + (f" ({hint})" if hint else "")))
            continue
        err = relative_error(got, ref, scale)
        if "expected_spread" in golden:
            rows.append(_spread_row(name, quantity, group, err, golden["expected_spread"], rtol))
        elif err <= tol:
            rows.append(VerifyRow(name, quantity, err, tol, "ok", ""))
        else:
            hint = _failure_hint(group, got, ref, tol, scale, batch, t_got, golden)
            rows.append(VerifyRow(name, quantity, err, tol, "FAIL", hint))
    return rows


def _failure_hint(group, got, ref, tol, scale, batch, t_got, golden):
    """The likely cause of one failing quantity ("" if the numbers show none).

    Quantities indexed by output time (the states, ∂L/∂t) are read as a whole first: a
    shift or a reversal explains every failing entry at once.
    """
    gradient = group in ("z0", "theta", "t")
    whole = ""
    if group == "t":
        t_ref = golden["gradients"]["t"]
        whole = (diagnosis.time_hint(t_got, t_ref, tol, scale)
                 or diagnosis.quantity_hint(t_got, t_ref, tol, scale, batch))
    elif group == "states":
        whole = diagnosis.time_hint(got, ref, tol)
    if whole and not whole.startswith("wrong only"):
        return whole
    return diagnosis.quantity_hint(got, ref, tol, scale, batch, gradient) or whole


def _shape_rows(name, golden, results, rtol, factor, unsupported):
    """FAIL rows for a time gradient of the wrong length and for unknown parameter names.

    Returns (rows, the time gradient as an array when it can be compared entry by entry,
    else None).
    """
    rows, n = [], len(golden["t"])
    tol = tolerance(rtol, 0.0, factor)
    t_got = None if "t" in unsupported else _lookup(results, ("gradients", "t"))
    if t_got is not None:
        t_got = real_array(t_got, f"{name}: dL/dt")
        if t_got.shape != (n,):
            hint = diagnosis.shape_hint(t_got, golden["gradients"]["t"], tol)
            rows.append(VerifyRow(name, "dL/dt", float("inf"), tol, "FAIL",
                                  f"shape {t_got.shape}, expected ({n},): one entry per output "
                                  "time" + (f" ({hint})" if hint else "")))
            t_got = None
    theta = _lookup(results, ("gradients", "theta"))
    if isinstance(theta, dict) and "theta" not in unsupported:
        for key in sorted(set(theta) - set(golden["gradients"]["theta"]), key=str):
            rows.append(VerifyRow(name, f"dL/dtheta[{key}]", float("inf"), tol, "FAIL",
                                  "not a parameter of this problem"))
    return rows, t_got


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

    def __init__(self, rows, rtol, skipped=(), factor=TOLERANCE_FACTOR, states_only=False):
        self.rows, self.rtol, self.skipped, self.factor = list(rows), rtol, list(skipped), factor
        self.states_only = states_only

    @property
    def failures(self):
        return [r for r in self.rows if r.status == "FAIL"]

    @property
    def verified(self):
        """The rows judged by the pass/fail rule (not n/s, not a spread, not skipped)."""
        return [r for r in self.rows if r.status in ("ok", "FAIL")]

    @property
    def gradients_verified(self):
        """How many gradient quantities (∂L/∂z0, ∂L/∂θ, ∂L/∂t_i) passed the rule."""
        return sum(r.status == "ok" and r.quantity.startswith("dL/") for r in self.rows)

    @property
    def passed(self):
        """No FAIL, at least one quantity passed the rule, and at least one of them a
        gradient unless only the states were asked for (spread and n/s rows judge nothing)."""
        return (not self.failures and any(r.status == "ok" for r in self.rows)
                and (self.states_only or self.gradients_verified > 0))

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
        """The lines under the table: what was not judged, each failure with its likely
        cause, and the verdict (the last line)."""
        lines = [f"skipped (no results): {', '.join(self.skipped)}"] if self.skipped else []
        if self.states_only:
            lines.append("--states-only: the gradients were not compared.")
        n_ns = sum(r.status == "n/s" for r in self.rows)
        n_spread = sum(r.status == "spread" for r in self.rows)
        if n_ns:
            lines.append(f"not supported by the implementation (neither pass nor fail): {n_ns} "
                         "quantities.")
        if n_spread:
            lines.append(f"non-smooth field, reported against refnode's own spread (neither pass "
                         f"nor fail; 'tolerance' is that spread): {n_spread} quantities.")
        for r in self.failures:
            why = f"relative error {r.rel_err:.3g} > tolerance {r.tolerance:.3g}"
            if not np.isfinite(r.rel_err):
                why = r.detail
            elif r.detail:
                why += f" (likely: {r.detail})"
            lines.append(f"FAIL {r.problem}: {r.quantity}: {why}")
        by_hint = {}
        for problem, hint in diagnosis.problem_hints(self.rows).items():
            by_hint.setdefault(hint, []).append(problem)
        lines += [f"likely, {', '.join(problems)}: {hint}." for hint, problems in by_hint.items()]
        if self.failures:
            lines.append(f"How to read a failure, and the conventions behind it: {diagnosis.SEE}.")
        return lines + [self.verdict()]

    def verdict(self):
        """One line: PASSED, or FAILED and why."""
        n_ok, n_rule = sum(r.status == "ok" for r in self.rows), len(self.verified)
        counts = f"{n_ok} of {n_rule} quantities within tolerance"
        if self.failures:
            return f"FAILED ({len(self.failures)} quantities): {counts}."
        if not self.rows or all(r.status in ("n/s", "skipped") for r in self.rows):
            return "FAILED: nothing was verified."
        if n_rule == 0:
            return ("FAILED: nothing was verified by the pass/fail rule: the non-smooth relu "
                    "problem is reported against a spread, neither pass nor fail. Verify at "
                    "least one other problem.")
        if not self.passed:
            return (f"FAILED: no gradient was verified ({counts}, all of them states or "
                    "extras; every gradient was declared unsupported). To verify the states "
                    "alone, say so: --states-only.")
        gradients = "" if self.states_only else f", {self.gradients_verified} of them gradients"
        return f"PASSED: {counts}{gradients}."


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
                    factor=TOLERANCE_FACTOR, states_only=False):
    """Call ``fn(problem_dict(...))`` on each problem and compare; returns a VerifyReport.

    ``atol`` defaults to :data:`ATOL_FACTOR` · rtol. With ``states_only`` the gradients
    are not compared and the report can pass without them.
    """
    atol = ATOL_FACTOR * rtol if atol is None else atol
    check_tolerances(rtol, factor, atol)
    rows, skipped = [], []
    for name in names:
        results = call_for_problem(fn, problem_dict(name, rtol, atol))
        if results is None:
            skipped.append(name)
            continue
        rows += compare(name, as_arrays(load_golden(name, golden_dir)), results, rtol, factor,
                        states_only)
    return VerifyReport(rows, rtol, skipped, factor, states_only)


def verify_results(problems, rtol, names=None, golden_dir=None, factor=TOLERANCE_FACTOR,
                   states_only=False):
    """Compare ``{name: results}`` (e.g. from :func:`results_from_file`); returns a VerifyReport."""
    check_tolerances(rtol, factor)
    unknown = sorted(set(problems) - set(PROBLEM_NAMES), key=str)
    if unknown:
        raise InputError(f"results for unknown problems {unknown}; the reference problems are "
                         f"{', '.join(PROBLEM_NAMES)}.")
    names = PROBLEM_NAMES if names is None else names
    rows, skipped = [], [n for n in names if n not in problems]
    for name in (n for n in names if n in problems):
        if not isinstance(problems[name], dict):
            raise InputError(f"{name}: expected an object {{\"states\", \"gradients\", ...}}, "
                             f"got {type(problems[name]).__name__} (docs/verify.md).")
        rows += compare(name, as_arrays(load_golden(name, golden_dir)), problems[name], rtol,
                        factor, states_only)
    return VerifyReport(rows, rtol, skipped, factor, states_only)


def results_from_file(path):
    """``{name: results}`` from a JSON file: ``{"problems": {name: {...}}}``, or one golden-layout
    document with a ``name``, or a list of such documents (each name once)."""
    document = read_json(path)
    if isinstance(document, dict) and isinstance(document.get("problems"), dict):
        return document["problems"]
    documents = document if isinstance(document, list) else [document]
    if not all(isinstance(d, dict) and isinstance(d.get("name"), str) for d in documents):
        raise InputError(f"{path}: expected {{\"problems\": {{name: results}}}}, a golden-layout "
                         "document with a \"name\", or a list of them (docs/verify.md).")
    names = [d["name"] for d in documents]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"{path}: results for {', '.join(twice)} given more than once; give "
                         "each problem once.")
    return {d["name"]: d for d in documents}


def load_callable(spec):
    """``"package.module:function"`` -> the function.

    The current directory is searched first, as ``python -m`` does, so a ``mymod.py``
    beside the user is found. Anything the import raises is an InputError.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"--callable must look like 'package.module:function', got {spec!r}.")
    if module_name.endswith(".py") or os.sep in module_name:
        raise InputError(f"--callable takes a module name, not a file: for ./mymod.py give "
                         f"'mymod:{attr}' from its directory (got {spec!r}).")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = run_user_code(lambda: importlib.import_module(module_name),
                               f"the module {module_name!r}", "while being imported")
    except InputError as err:
        cause = err.__cause__
        if isinstance(cause, ModuleNotFoundError) and cause.name is not None and (
                module_name == cause.name or module_name.startswith(cause.name + ".")):
            raise InputError(f"cannot import {module_name!r}: no such module in the current "
                             f"directory ({os.getcwd()}) or on the Python path.") from cause
        raise
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
